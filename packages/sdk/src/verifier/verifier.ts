import { hash } from 'node:crypto';
import type { WorkloadClient } from '../client/workload-client.js';
import { createDpopProof } from '../dpop/create-proof.js';
import { importPublicJwk, type VerificationKey, type VerifyAlgorithm } from '../jose/jwk.js';
import type { AccessTokenClaims } from '../wire/claims.js';
import { EventType } from '../wire/events.js';
import type { Revocation } from '../wire/revocation.js';
import { TokenError, verifyAccessTokenJwt } from './access-token.js';
import type { DpopNonceSource } from './dpop-nonces.js';
import { createLocalPolicy, type LocalPolicy, type LocalPolicyOptions } from './local-policy.js';
import { ReplayCache, type ReplayStore } from './replay-cache.js';
import { checkHolderBinding, type PresentedRequest, presentedToken, RequestRefusal } from './request.js';
import { RevocationSet } from './revocation-set.js';
import { SseParser } from './sse.js';
import type { UsageRecord, UsageReporter, UseContext } from './usage.js';

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
  /** Require a server nonce in DPoP proofs (RFC 9449 §9); refusals then carry a fresh one. */
  dpopNonces?: DpopNonceSource;
  /** Where DPoP proof `jti`s are recorded. Default: an in-memory ReplayCache of 100 000 entries. */
  replay?: ReplayStore;
  /** Verified tokens remembered (by hash) so repeat presentations skip the signature check. */
  cacheSize?: number;
  maxTokenBytes?: number;
  /** Largest event taken from the stream; the snapshot holds every revocation in force. Default 16 MiB. */
  maxEventBytes?: number;
  /**
   * Drop and reopen the stream when nothing (not even a heartbeat) arrived for this long (ms), so a
   * connection that died silently is noticed. Default two thirds of `stalenessMs`.
   */
  streamIdleMs?: number;
  fetch?: typeof fetch;
  /** Milliseconds; injected by tests. */
  now?: () => number;
  /** Reports every use (allowed or denied) to the server; see `UsageReporter`. */
  usage?: UsageReporter;
  /**
   * Decide request-time policy locally from the server's signed policy bundle (needs the optional peer
   * dependency `@cedar-policy/cedar-wasm`): `verify` then refuses what policy denies (403
   * `insufficient_scope`), and `policy` answers other questions. See docs/policy.md.
   */
  policy?: LocalPolicyOptions;
}

export interface VerifiedRequest {
  claims: AccessTokenClaims;
  /** The token came from the verified-token cache (signature not re-checked; everything else was). */
  cached: boolean;
}

export interface VerifierStatus {
  /** A stream response is open (it may still be catching up). */
  connected: boolean;
  /** The open stream has delivered everything up to the server's head as it opened. */
  synced: boolean;
  /** Past the staleness bound: every token is refused (or introspected). */
  stale: boolean;
  /** When the stream last proved the revocation set current (ms, the verifier's clock). */
  lastHeardMs: number;
  revocations: number;
  lastEventId: string | undefined;
  keys: number;
  /** Stream connections opened so far. */
  connections: number;
}

export interface Verifier {
  /** Resolves once keys and the first revocation snapshot are in. */
  ready(): Promise<void>;
  /** With a `usage` reporter each call is recorded once; the `UseContext` fields say where it came from. */
  verify(req: PresentedRequest & UseContext): Promise<VerifiedRequest>;
  /** State for health checks and metrics. */
  status(): VerifierStatus;
  /** Local request-time policy, when the `policy` option is set. */
  policy?: LocalPolicy;
  close(): void;
}

interface CachedToken {
  claims: AccessTokenClaims;
  kid: string;
  /** Thumbprint of the key that verified it: a hit needs that key still published. */
  thumbprint: string;
}

/**
 * A verifier for a resource server: verifies Writ tokens locally against cached JWKS, refuses revoked
 * ones from the set it follows over the event stream, checks DPoP binding, and fails closed when the
 * stream goes silent past its staleness bound.
 *
 * The set counts as current only once a (re)opened stream has caught up to the server's head; until
 * then the last time it was current still decides staleness, so a verifier that was cut off past its
 * bound keeps refusing until it has heard every revocation it missed.
 */
export function createVerifier(o: VerifierOptions): Verifier {
  const issuer = o.issuer.replace(/\/+$/, '');
  const now = o.now ?? Date.now;
  const doFetch = o.fetch ?? fetch;
  const staleness = o.stalenessMs ?? 15_000;
  const idleLimit = o.streamIdleMs ?? Math.max(1000, Math.floor((staleness * 2) / 3));
  const cooldown = o.jwksCooldownMs ?? 30_000;
  const leeway = o.leewaySeconds ?? 5;
  const revocations = new RevocationSet();
  const replay = o.replay ?? new ReplayCache();
  const cache = new Map<string, CachedToken>();
  const cacheSize = o.cacheSize ?? 10_000;
  let keys: VerificationKey[] = [];
  let lastJwksFetch = Number.NEGATIVE_INFINITY;
  let lastHeard = Number.NEGATIVE_INFINITY;
  let lastPrune = Number.NEGATIVE_INFINITY;
  let lastEventId: string | undefined;
  let connected = false;
  let synced = false;
  let connections = 0;
  let closed = false;
  let abort: AbortController | undefined;
  let wake: (() => void) | undefined;
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

  /** The stream of one connection: `head` tells how far the catch-up goes. */
  let head: number | undefined;
  const markSynced = () => {
    if (!synced && head !== undefined && lastEventId !== undefined && Number(lastEventId) >= head)
      synced = true;
  };

  const onEvent = (type: string, data: Record<string, unknown>) => {
    localPolicy?.onEvent(type, data);
    if (type === EventType.head) {
      head = typeof data['head'] === 'number' ? data['head'] : Number.POSITIVE_INFINITY;
    } else if (type === EventType.snapshot) {
      revocations.reset((data['revocations'] as Revocation[]) ?? [], 0);
      // The snapshot is the whole state as of its id: the stream is current from here on.
      synced = true;
      const kids = Array.isArray(data['keys']) ? (data['keys'] as unknown[]) : [];
      const missing = kids.some((kid) => !keys.some((k) => k.kid === kid));
      if (missing)
        refreshKeys()
          .catch(() => undefined)
          .finally(resolveReady);
      else resolveReady();
    } else if (type === EventType.revocation) {
      revocations.apply(data['revocation'] as Revocation);
    } else if (type === EventType.keysRotated) {
      refreshKeys().catch(() => undefined);
    }
  };

  const eventsUrl = `${issuer}/v1/events`;
  let streamToken: { token: string; type: string; renewAt: number } | undefined;
  /** The token for the stream; a fresh one after the server refused or ended the last (revoked, expired). */
  const streamCredential = async (fresh: boolean) => {
    if (fresh || !streamToken || now() >= streamToken.renewAt) {
      const r = await o.client.requestToken({ audience: eventsUrl });
      streamToken = {
        token: r.access_token,
        type: r.token_type,
        renewAt: now() + (r.expires_in * 1000 * 2) / 3,
      };
    }
    return streamToken;
  };

  const localPolicy =
    o.policy &&
    createLocalPolicy(o.policy, {
      issuer,
      audience: o.audience,
      fetch: doFetch,
      now,
      keys: () => keys,
      refreshKeys,
      // The bundle is fetched with the stream's own token (same audience, same holder key).
      authorize: async (url, fresh) => {
        const cred = await streamCredential(fresh);
        const dpop = cred.type.toLowerCase() === 'dpop';
        return {
          authorization: `${dpop ? 'DPoP' : 'Bearer'} ${cred.token}`,
          ...(dpop
            ? {
                dpop: createDpopProof(o.client.dpopKey, {
                  method: 'GET',
                  url,
                  accessToken: cred.token,
                  nowSeconds: Math.floor(now() / 1000),
                }),
              }
            : {}),
        };
      },
      stale: () => isStale(),
    });

  let lastActivity = now();
  const watchdog = setInterval(
    () => {
      if (now() - lastActivity > idleLimit) abort?.abort(new Error('event stream idle'));
    },
    Math.min(1000, Math.max(50, Math.floor(idleLimit / 4))),
  );
  watchdog.unref();

  const connect = async () => {
    let backoff = 250;
    let fresh = false;
    while (!closed) {
      const attempt = new AbortController();
      abort = attempt;
      lastActivity = now();
      const aborted = new Promise<never>((_, reject) => {
        attempt.signal.addEventListener('abort', () => reject(attempt.signal.reason), { once: true });
      });
      aborted.catch(() => undefined);
      try {
        const cred = await Promise.race([streamCredential(fresh), aborted]);
        fresh = false;
        const dpop = cred.type.toLowerCase() === 'dpop';
        const res = await doFetch(eventsUrl, {
          headers: {
            authorization: `${dpop ? 'DPoP' : 'Bearer'} ${cred.token}`,
            ...(dpop
              ? {
                  dpop: createDpopProof(o.client.dpopKey, {
                    method: 'GET',
                    url: eventsUrl,
                    accessToken: cred.token,
                    nowSeconds: Math.floor(now() / 1000),
                  }),
                }
              : {}),
            accept: 'text/event-stream',
            ...(lastEventId !== undefined ? { 'last-event-id': lastEventId } : {}),
          },
          signal: attempt.signal,
        });
        if (res.status === 401 || res.status === 403) fresh = true;
        if (!res.ok || !res.body) {
          await res.body?.cancel().catch(() => undefined);
          throw new Error(`event stream: HTTP ${res.status}`);
        }
        connected = true;
        connections++;
        synced = false;
        head = undefined;
        lastActivity = now();
        const heard = () => {
          lastActivity = now();
          if (synced) {
            lastHeard = now();
            backoff = 250;
          }
        };
        const parser = new SseParser(
          (m) => {
            const data = JSON.parse(m.data) as Record<string, unknown>;
            if (m.id !== undefined) lastEventId = m.id;
            onEvent(m.event, data);
            markSynced();
            heard();
          },
          () => {
            // A server that announces no head: its first heartbeat follows the catch-up.
            if (head === undefined) synced = true;
            heard();
          },
          o.maxEventBytes ?? 16 * 1024 * 1024,
        );
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          lastActivity = now();
          parser.push(decoder.decode(chunk, { stream: true }));
        }
        // The server ended the stream: the token expired or was revoked. Come back with a fresh one.
        fresh = true;
      } catch {
        // reconnect below
      } finally {
        connected = false;
        synced = false;
        attempt.abort();
      }
      if (closed) break;
      await new Promise<void>((r) => {
        const t = setTimeout(r, backoff);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      wake = undefined;
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
    const digest = hash('sha256', token, 'base64url');
    const hit = cache.get(digest);
    const nowS = Math.floor(now() / 1000);
    if (hit) {
      // Everything time- or key-dependent is checked again; only the signature is not.
      if (hit.claims.exp <= nowS - leeway) {
        cache.delete(digest);
        throw new RequestRefusal('invalid_token', 'expired', 'token has expired');
      }
      if (hit.claims.nbf > nowS + leeway)
        throw new RequestRefusal('invalid_token', 'nbf', 'token is not yet valid');
      if (keys.some((k) => k.thumbprint === hit.thumbprint))
        return { claims: hit.claims, kid: hit.kid, cached: true };
      // Its key is no longer published: verify from scratch (and refuse unless the key is back).
      cache.delete(digest);
    }
    const check = {
      issuer,
      audience: o.audience,
      nowSeconds: nowS,
      leeway,
      maxBytes: o.maxTokenBytes ?? 8192,
      keys,
    };
    let verified: ReturnType<typeof verifyAccessTokenJwt>;
    try {
      verified = verifyAccessTokenJwt(token, check);
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
    cache.set(digest, { claims: verified.claims, kid: verified.kid, thumbprint: verified.key.thumbprint });
    return { claims: verified.claims, kid: verified.kid, cached: false };
  };

  const isStale = () => now() - lastHeard > staleness;

  /** Verifies one request; `seen` learns the claims once the token itself is verified. */
  const verifyRequest = async (
    req: PresentedRequest & UseContext,
    seen?: (claims: AccessTokenClaims) => void,
  ): Promise<VerifiedRequest> => {
    const presented = presentedToken(req.authorization);
    let claims: AccessTokenClaims;
    let cached = false;
    if (now() - lastPrune > 60_000) {
      lastPrune = now();
      // Kept for the leeway past `expires_at`: a token is accepted that long after its `exp`.
      revocations.prune(now() - (leeway + 1) * 1000);
    }
    if (isStale()) {
      if (o.onStale !== 'introspect')
        throw new RequestRefusal(
          'invalid_token',
          'stale',
          'revocation state is stale; refusing until the stream resumes',
        );
      claims = await introspect(presented.token);
      seen?.(claims);
    } else {
      const v = await verifyToken(presented.token);
      claims = v.claims;
      cached = v.cached;
      seen?.(claims);
      if (revocations.match({ ...claims, kid: v.kid }))
        throw new RequestRefusal('invalid_token', 'revoked', 'token has been revoked');
    }
    const nowS = Math.floor(now() / 1000);
    // An unbound token presented as Bearer has no binding to check: skip building the proof check.
    if (claims.cnf !== undefined || presented.scheme !== 'Bearer') {
      const nonces = o.dpopNonces;
      try {
        await checkHolderBinding(req, presented, claims, {
          algorithms: o.dpopAlgorithms ?? ['ES256', 'EdDSA', 'ES384', 'PS256'],
          nowSeconds: nowS,
          iatWindow: o.dpopIatWindow ?? 60,
          consumeJti: (key, exp) => replay.consume(key, exp, nowS),
          ...(nonces ? { nonce: (n: string | undefined) => nonces.valid(n) } : {}),
        });
      } catch (err) {
        if (nonces && err instanceof RequestRefusal && err.code === 'use_dpop_nonce')
          throw new RequestRefusal(err.code, err.reason, err.message, { dpopNonce: nonces.current() });
        throw err;
      }
    }
    req.check?.(claims);
    if (localPolicy) await localPolicy.enforce(req, claims);
    return { claims, cached };
  };

  const verifier: Verifier = {
    ready: () => readyPromise,
    async verify(req) {
      const usage = o.usage;
      if (!usage) return verifyRequest(req);
      let known: AccessTokenClaims | undefined;
      try {
        const result = await verifyRequest(req, (c) => {
          known = c;
        });
        usage.record(useOf(req, result.claims, 'allow', undefined, now()));
        return result;
      } catch (err) {
        if (err instanceof RequestRefusal) usage.record(useOf(req, known, 'deny', err.reason, now()));
        throw err;
      }
    },
    status: () => ({
      connected,
      synced,
      stale: isStale(),
      lastHeardMs: lastHeard,
      revocations: revocations.size,
      lastEventId,
      keys: keys.length,
      connections,
    }),
    ...(localPolicy ? { policy: localPolicy } : {}),
    close() {
      closed = true;
      localPolicy?.close();
      clearInterval(watchdog);
      abort?.abort();
      wake?.();
    },
  };

  refreshKeys()
    .catch(() => undefined)
    .finally(() => {
      connect().catch(() => undefined);
    });
  return verifier;
}

/** The usage record of one verification: claims only once the token's signature has been verified. */
function useOf(
  req: PresentedRequest & UseContext,
  claims: AccessTokenClaims | undefined,
  decision: 'allow' | 'deny',
  reason: string | undefined,
  time: number,
): UsageRecord {
  let path = req.url;
  try {
    path = new URL(req.url).pathname;
  } catch {
    // not absolute: keep as given
  }
  return {
    jti: claims?.jti ?? '',
    sub: claims?.sub ?? '',
    tid: claims?.tid,
    operation: req.operation ?? `${req.method.toUpperCase()} ${path}`,
    source: req.source ?? 'unknown',
    userAgent: req.userAgent,
    decision,
    reason,
    time,
  };
}

function toRefusal(err: unknown): RequestRefusal {
  if (err instanceof RequestRefusal) return err;
  if (err instanceof TokenError) return new RequestRefusal('invalid_token', err.reason, err.message);
  return new RequestRefusal('invalid_token', 'invalid', 'token is invalid');
}
