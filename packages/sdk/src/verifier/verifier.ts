import { createHash } from 'node:crypto';
import type { WorkloadClient } from '../client/workload-client.js';
import { createDpopProof } from '../dpop/create-proof.js';
import { importPublicJwk, type VerificationKey, type VerifyAlgorithm } from '../jose/jwk.js';
import type { AccessTokenClaims } from '../wire/claims.js';
import type { Revocation } from '../wire/revocation.js';
import { TokenError, verifyAccessTokenJwt } from './access-token.js';
import { ReplayCache } from './replay-cache.js';
import { checkHolderBinding, type PresentedRequest, presentedToken, RequestRefusal } from './request.js';
import { RevocationSet } from './revocation-set.js';
import { SseParser } from './sse.js';

export interface VerifierOptions {
  issuer: string;
  /** This API's audience: tokens for anything else are refused. */
  audience: string;
  /** The verifier's own workload client: it attests to follow the revocation stream. */
  client: WorkloadClient;
  /** Deny everything when the stream has been silent this long (ms). Default 15 s. */
  stalenessMs?: number;
  /** On staleness: `deny` (default, fail closed) or `introspect` each token at the server. */
  onStale?: 'deny' | 'introspect';
  leewaySeconds?: number;
  /** Minimum time between JWKS refetches caused by an unknown `kid` (ms). Default 30 s. */
  jwksCooldownMs?: number;
  dpopAlgorithms?: VerifyAlgorithm[];
  dpopIatWindow?: number;
  /** Verified tokens remembered (by hash) so repeat presentations skip the signature check. */
  cacheSize?: number;
  maxTokenBytes?: number;
  fetch?: typeof fetch;
  /** Milliseconds; injected by tests. */
  now?: () => number;
}

export interface VerifiedRequest {
  claims: AccessTokenClaims;
  /** The token came from the verified-token cache (signature not re-checked; everything else was). */
  cached: boolean;
}

export interface Verifier {
  /** Resolves once keys and the first revocation snapshot are in. */
  ready(): Promise<void>;
  verify(req: PresentedRequest): Promise<VerifiedRequest>;
  /** State for health checks and metrics. */
  status(): {
    connected: boolean;
    lastHeardMs: number;
    revocations: number;
    lastEventId: string | undefined;
    keys: number;
  };
  close(): void;
}

/**
 * A verifier for a resource server: verifies Writ tokens locally against cached JWKS, refuses revoked
 * ones from the set it follows over the event stream, checks DPoP binding, and fails closed when the
 * stream goes silent past its staleness bound.
 */
export function createVerifier(o: VerifierOptions): Verifier {
  const issuer = o.issuer.replace(/\/+$/, '');
  const now = o.now ?? Date.now;
  const doFetch = o.fetch ?? fetch;
  const staleness = o.stalenessMs ?? 15_000;
  const cooldown = o.jwksCooldownMs ?? 30_000;
  const revocations = new RevocationSet();
  const replay = new ReplayCache();
  const cache = new Map<string, { claims: AccessTokenClaims; kid: string }>();
  const cacheSize = o.cacheSize ?? 10_000;
  let keys: VerificationKey[] = [];
  let lastJwksFetch = Number.NEGATIVE_INFINITY;
  let lastHeard = Number.NEGATIVE_INFINITY;
  let lastEventId: string | undefined;
  let connected = false;
  let closed = false;
  let abort: AbortController | undefined;
  let resolveReady!: () => void;
  const readyPromise = new Promise<void>((r) => {
    resolveReady = r;
  });

  const refreshKeys = async () => {
    lastJwksFetch = now();
    const res = await doFetch(`${issuer}/.well-known/jwks.json`);
    if (!res.ok) throw new Error(`JWKS: HTTP ${res.status}`);
    const jwks = (await res.json()) as { keys: unknown[] };
    keys = jwks.keys.flatMap((k) => {
      try {
        return [importPublicJwk(k)];
      } catch {
        return [];
      }
    });
  };

  const onEvent = (type: string, data: Record<string, unknown>) => {
    if (type === 'snapshot') {
      revocations.reset((data['revocations'] as Revocation[]) ?? [], 0);
      resolveReady();
    } else if (type === 'revocation') {
      revocations.apply(data['revocation'] as Revocation);
    } else if (type === 'keys.rotated') {
      refreshKeys().catch(() => undefined);
    }
  };

  const eventsUrl = `${issuer}/v1/events`;
  const connect = async () => {
    let backoff = 250;
    while (!closed) {
      abort = new AbortController();
      try {
        const token = await o.client.token({ audience: eventsUrl });
        const res = await doFetch(eventsUrl, {
          headers: {
            authorization: `DPoP ${token}`,
            dpop: createDpopProof(o.client.dpopKey, { method: 'GET', url: eventsUrl, accessToken: token }),
            accept: 'text/event-stream',
            ...(lastEventId !== undefined ? { 'last-event-id': lastEventId } : {}),
          },
          signal: abort.signal,
        });
        if (!res.ok || !res.body) throw new Error(`event stream: HTTP ${res.status}`);
        connected = true;
        backoff = 250;
        lastHeard = now();
        const parser = new SseParser(
          (m) => {
            lastHeard = now();
            if (m.id !== undefined) lastEventId = m.id;
            onEvent(m.event, JSON.parse(m.data) as Record<string, unknown>);
          },
          () => {
            lastHeard = now();
          },
        );
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
          parser.push(decoder.decode(chunk, { stream: true }));
      } catch {
        // reconnect below
      } finally {
        connected = false;
      }
      if (closed) break;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 5000);
    }
  };

  const introspect = async (token: string): Promise<AccessTokenClaims> => {
    const res = await doFetch(`${issuer}/oauth2/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...o.client.clientAuth(), token }).toString(),
    });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok || body['active'] !== true)
      throw new RequestRefusal('invalid_token', 'inactive', 'token is not active');
    if (body['aud'] !== o.audience)
      throw new RequestRefusal('invalid_token', 'aud', 'token is not for this audience');
    return body as unknown as AccessTokenClaims;
  };

  const verifyToken = async (
    token: string,
  ): Promise<{ claims: AccessTokenClaims; kid: string; cached: boolean }> => {
    const hash = createHash('sha256').update(token).digest('base64url');
    const hit = cache.get(hash);
    const nowS = Math.floor(now() / 1000);
    const leeway = o.leewaySeconds ?? 5;
    if (hit) {
      if (hit.claims.exp <= nowS - leeway) {
        cache.delete(hash);
        throw new RequestRefusal('invalid_token', 'expired', 'token has expired');
      }
      return { ...hit, cached: true };
    }
    const check = {
      issuer,
      audience: o.audience,
      nowSeconds: nowS,
      leeway,
      maxBytes: o.maxTokenBytes ?? 8192,
    };
    let verified: { claims: AccessTokenClaims; kid: string };
    try {
      verified = verifyAccessTokenJwt(token, { ...check, keys });
    } catch (err) {
      if (!(err instanceof TokenError) || err.reason !== 'no_key' || now() - lastJwksFetch < cooldown)
        throw toRefusal(err);
      await refreshKeys().catch(() => undefined);
      try {
        verified = verifyAccessTokenJwt(token, { ...check, keys });
      } catch (again) {
        throw toRefusal(again);
      }
    }
    if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string);
    cache.set(hash, verified);
    return { ...verified, cached: false };
  };

  const verifier: Verifier = {
    ready: () => readyPromise,
    async verify(req) {
      const presented = presentedToken(req.authorization);
      let claims: AccessTokenClaims;
      let cached = false;
      if (now() - lastHeard > staleness) {
        if (o.onStale !== 'introspect')
          throw new RequestRefusal(
            'invalid_token',
            'stale',
            'revocation state is stale; refusing until the stream resumes',
          );
        claims = await introspect(presented.token);
      } else {
        const v = await verifyToken(presented.token);
        claims = v.claims;
        cached = v.cached;
        if (revocations.match({ ...claims, kid: v.kid }))
          throw new RequestRefusal('invalid_token', 'revoked', 'token has been revoked');
      }
      const nowS = Math.floor(now() / 1000);
      await checkHolderBinding(req, presented, claims, {
        algorithms: o.dpopAlgorithms ?? ['ES256', 'EdDSA', 'ES384', 'PS256'],
        nowSeconds: nowS,
        iatWindow: o.dpopIatWindow ?? 60,
        consumeJti: (key, exp) => replay.consume(key, exp, nowS),
      });
      return { claims, cached };
    },
    status: () => ({
      connected,
      lastHeardMs: lastHeard,
      revocations: revocations.size,
      lastEventId,
      keys: keys.length,
    }),
    close() {
      closed = true;
      abort?.abort();
    },
  };

  refreshKeys()
    .catch(() => undefined)
    .finally(() => {
      connect().catch(() => undefined);
    });
  return verifier;
}

function toRefusal(err: unknown): RequestRefusal {
  if (err instanceof RequestRefusal) return err;
  if (err instanceof TokenError) return new RequestRefusal('invalid_token', err.reason, err.message);
  return new RequestRefusal('invalid_token', 'invalid', 'token is invalid');
}
