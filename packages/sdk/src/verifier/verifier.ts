import { hash } from 'node:crypto';
import type { WorkloadClient } from '../client/workload-client.js';
import type { VerifyAlgorithm } from '../jose/jwk.js';
import type { AccessTokenClaims } from '../wire/claims.js';
import type { VerifierRisk } from '../wire/events.js';
import { EventType } from '../wire/events.js';
import { POLICY_BUNDLE_KEYS_PATH } from '../wire/policy-bundle.js';
import type { VerifierRevocation } from '../wire/revocation.js';
import { signalOfRefusal } from '../wire/signals.js';
import { TokenError, verifyAccessTokenJwt } from './access-token.js';
import type { DpopNonceSource } from './dpop-nonces.js';
import { EventStreamFollower } from './event-stream-follower.js';
import { createHolderCheck } from './holder-check.js';
import { createIntrospection } from './introspection.js';
import { createLocalPolicy, type LocalPolicy, type LocalPolicyOptions } from './local-policy.js';
import { PublishedKeys } from './published-keys.js';
import { ReplayCache, type ReplayStore } from './replay-cache.js';
import { type PresentedRequest, presentedToken, RequestRefusal } from './request.js';
import { requestPath } from './request-path.js';
import { RevocationSet } from './revocation-set.js';
import { StreamCredential } from './stream-credential.js';
import { StreamFreshness } from './stream-freshness.js';
import type { UsageRecord, UsageReporter, UseContext } from './usage.js';
import { type VerifiedToken, VerifiedTokenCache } from './verified-token-cache.js';
import { WorkloadRisks } from './workload-risks.js';

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
  /**
   * Seconds a token is still accepted past its `exp` (and before its `nbf`). Default 5, at most 60: the
   * server keeps an expired revocation in snapshots for 60 s, so a larger leeway could outlive it.
   */
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
  /** Workloads whose risk the server announced (`risk` events, the snapshot's `risks`). */
  risks: number;
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
  /**
   * The risk of workload `sub` now, 0 to 100, as the server last announced it on the stream, decayed
   * as on the server: what local policy reads as `context.risk` for its tokens (or more, when the
   * caller's `context` says more). 0 for a workload the server announced no risk of.
   */
  riskOf(sub: string): number;
  /** Local request-time policy, when the `policy` option is set. */
  policy?: LocalPolicy;
  close(): void;
}

/**
 * A verifier for a resource server: verifies Writ tokens locally against cached JWKS, refuses revoked
 * ones from the set it follows over the event stream, checks DPoP binding, and fails closed when the
 * stream goes silent past its staleness bound (see `StreamFreshness` for when the set counts as
 * current).
 *
 * The parts, one concern each: `PublishedKeys` (the JWKS), `EventStreamFollower` with its
 * `StreamCredential` (the connection), `StreamFreshness` (staleness), `VerifiedTokenCache`,
 * `createHolderCheck` (DPoP, replay, nonces), `createIntrospection` (the stale fallback) and the local
 * policy. This function wires them together and runs the checks of one request in order.
 */
export function createVerifier(o: VerifierOptions): Verifier {
  const issuer = o.issuer.replace(/\/+$/, '');
  const now = o.now ?? Date.now;
  const doFetch = o.fetch ?? fetch;
  const staleness = o.stalenessMs ?? 15_000;
  const leeway = o.leewaySeconds ?? 5;
  if (!Number.isFinite(leeway) || leeway < 0 || leeway > 60)
    throw new TypeError(`leewaySeconds must be between 0 and 60 (got ${String(o.leewaySeconds)})`);
  const revocations = new RevocationSet();
  const risks = new WorkloadRisks();
  const keys = new PublishedKeys({ issuer, fetch: doFetch, now, cooldownMs: o.jwksCooldownMs ?? 30_000 });
  const tokens = new VerifiedTokenCache(o.cacheSize ?? 10_000);
  const freshness = new StreamFreshness({ stalenessMs: staleness, now });
  const eventsUrl = `${issuer}/v1/events`;
  const credential = new StreamCredential(o.client, eventsUrl, now);
  const holderCheck = createHolderCheck({
    algorithms: o.dpopAlgorithms ?? ['ES256', 'EdDSA', 'ES384', 'PS256'],
    iatWindow: o.dpopIatWindow ?? 60,
    settingNames: { algorithms: 'dpopAlgorithms', iatWindow: 'dpopIatWindow' },
    replay: o.replay ?? new ReplayCache(),
    nonces: o.dpopNonces,
  });
  const introspect = createIntrospection({
    issuer,
    audience: o.audience,
    fetch: doFetch,
    clientAuth: () => o.client.clientAuth(),
  });
  let lastPrune = Number.NEGATIVE_INFINITY;
  let resolveReady!: () => void;
  const readyPromise = new Promise<void>((r) => {
    resolveReady = r;
  });

  // Bundles are signed by keys of their own, published apart from the token keys.
  const bundleKeys =
    o.policy &&
    new PublishedKeys({ issuer, fetch: doFetch, now, cooldownMs: 0, path: POLICY_BUNDLE_KEYS_PATH });
  const localPolicy =
    o.policy &&
    bundleKeys &&
    createLocalPolicy(o.policy, {
      issuer,
      audience: o.audience,
      fetch: doFetch,
      now,
      leewaySeconds: leeway,
      keys: () => bundleKeys.keys,
      refreshKeys: () => bundleKeys.refresh(),
      // The bundle is fetched with the stream's own token (same audience, same holder key).
      authorize: (url, fresh) => credential.headers(url, fresh),
      stale: () => freshness.stale(),
      riskOf: (sub) => risks.of(sub, now()),
    });

  /** Pages of the snapshot being received on the open connection (`snapshot.page`), applied at its end. */
  let snapshotPages: VerifierRevocation[] = [];
  const onEvent = (type: string, data: Record<string, unknown>) => {
    localPolicy?.onEvent(type, data);
    if (type === EventType.head) {
      freshness.announced(data['head']);
    } else if (type === EventType.snapshotPage) {
      // A page of a snapshot too large for one event: nothing changes until the closing `snapshot`.
      if (Array.isArray(data['revocations']))
        snapshotPages.push(...(data['revocations'] as VerifierRevocation[]));
    } else if (type === EventType.snapshot) {
      const last = (data['revocations'] as VerifierRevocation[]) ?? [];
      // A revocation the set cannot read throws: the set stays as it was and the connection drops.
      revocations.reset(data['paged'] === true ? [...snapshotPages, ...last] : last, 0);
      // Risks come whole on the closing event; a server that predates them sends none (kept as held).
      if (Array.isArray(data['risks'])) risks.reset(data['risks'] as VerifierRisk[]);
      snapshotPages = [];
      freshness.snapshot();
      const kids = Array.isArray(data['keys']) ? (data['keys'] as unknown[]) : [];
      if (kids.some((kid) => !keys.has(kid)))
        keys
          .refresh()
          .catch(() => undefined)
          .finally(resolveReady);
      else resolveReady();
    } else if (type === EventType.revocation) {
      revocations.apply(data['revocation'] as VerifierRevocation);
    } else if (type === EventType.keysRotated) {
      keys.refresh().catch(() => undefined);
    } else if (type === EventType.risk) {
      // One it cannot read throws: the connection drops and resumes before it (fail closed, as for
      // revocations), rather than running on without a risk the server announced.
      risks.apply(data as unknown as VerifierRisk);
    }
  };

  const stream = new EventStreamFollower({
    url: eventsUrl,
    authorize: (url, fresh) => credential.headers(url, fresh),
    fetch: doFetch,
    now,
    idleMs: o.streamIdleMs ?? Math.max(1000, Math.floor((staleness * 2) / 3)),
    maxEventBytes: o.maxEventBytes ?? 16 * 1024 * 1024,
    handlers: {
      opened: () => {
        snapshotPages = [];
        freshness.opened();
      },
      event(type, data, lastEventId) {
        onEvent(type, data);
        freshness.received(lastEventId);
      },
      heartbeat: () => freshness.heartbeat(),
      closed: () => freshness.closed(),
      current: () => freshness.synced,
    },
  });

  /** Signature and claims against the published keys; an unknown `kid` fetches the JWKS once more. */
  const verifySignature = async (token: string, nowSeconds: number): Promise<VerifiedToken> => {
    const check = {
      issuer,
      audience: o.audience,
      nowSeconds,
      leeway,
      maxBytes: o.maxTokenBytes ?? 8192,
    };
    let verified: ReturnType<typeof verifyAccessTokenJwt>;
    try {
      verified = verifyAccessTokenJwt(token, { ...check, keys: keys.keys });
    } catch (err) {
      if (!(err instanceof TokenError) || err.reason !== 'no_key' || !(await keys.refreshForUnknownKey()))
        throw toRefusal(err);
      try {
        verified = verifyAccessTokenJwt(token, { ...check, keys: keys.keys });
      } catch (again) {
        throw toRefusal(again);
      }
    }
    return { claims: verified.claims, kid: verified.kid, thumbprint: verified.key.thumbprint };
  };

  /** Verifies one request; `seen` learns the claims once the token itself is verified. */
  const verifyRequest = async (
    req: PresentedRequest & UseContext,
    seen?: (claims: AccessTokenClaims) => void,
  ): Promise<VerifiedRequest> => {
    const presented = presentedToken(req.authorization);
    let claims: AccessTokenClaims;
    let cached = false;
    // The token's SHA-256 from the token cache: the proof's `ath` is checked against it.
    let tokenSha256: string | undefined;
    if (now() - lastPrune > 60_000) {
      lastPrune = now();
      // Kept for the leeway past `expires_at`: a token is accepted that long after its `exp`.
      revocations.prune(now() - (leeway + 1) * 1000);
    }
    if (freshness.stale()) {
      if (o.onStale !== 'introspect')
        throw new RequestRefusal(
          'invalid_token',
          'stale',
          'revocation state is stale; refusing until the stream resumes',
        );
      claims = await introspect(presented.token);
      seen?.(claims);
    } else {
      const nowSeconds = Math.floor(now() / 1000);
      const v = await tokens.verified(
        presented.token,
        { nowSeconds, leeway, publishes: (t) => keys.publishes(t) },
        () => verifySignature(presented.token, nowSeconds),
      );
      claims = v.claims;
      cached = v.cached;
      tokenSha256 = v.sha256;
      seen?.(claims);
      if (revocations.size > 0 && revocations.match({ ...claims, kid: v.kid }))
        throw new RequestRefusal('invalid_token', 'revoked', 'token has been revoked');
    }
    await holderCheck(req, presented, claims, Math.floor(now() / 1000), tokenSha256);
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
        // A refusal of the token itself (audience, expiry) carries its claims once the signature verified.
        if (err instanceof RequestRefusal)
          usage.record(useOf(req, known ?? err.claims, 'deny', err.reason, now()));
        throw err;
      }
    },
    status: () => ({
      connected: stream.connected,
      synced: freshness.synced,
      stale: freshness.stale(),
      lastHeardMs: freshness.lastHeardMs,
      revocations: revocations.size,
      risks: risks.size,
      lastEventId: stream.lastEventId,
      keys: keys.keys.length,
      connections: stream.connections,
    }),
    riskOf: (sub) => risks.of(sub, now()),
    ...(localPolicy ? { policy: localPolicy } : {}),
    close() {
      localPolicy?.close();
      stream.close();
    },
  };

  keys
    .refresh()
    .catch(() => undefined)
    .finally(() => {
      stream.run().catch(() => undefined);
    });
  return verifier;
}

/**
 * The usage record of one verification: claims only once the token's signature has been verified. A
 * denial that says something about who holds the token carries its signal (`signalOfRefusal`); a
 * `wrong_audience` one also the token's SHA-256, which proves to the server the verifier saw the token
 * itself and not only its `jti` (the server takes a use of a token for an API the verifier does not
 * serve on that proof alone). Other signals are about tokens of this verifier's own API, which the
 * server takes on the `jti`: their tokens are not hashed.
 */
function useOf(
  req: PresentedRequest & UseContext,
  claims: AccessTokenClaims | undefined,
  decision: 'allow' | 'deny',
  reason: string | undefined,
  time: number,
): UsageRecord {
  const signal = decision === 'deny' ? signalOfRefusal(reason) : undefined;
  const token = signal === 'wrong_audience' && claims ? presentedTokenOf(req) : undefined;
  // One object, without spreads: this runs on every request.
  const record: UsageRecord = {
    jti: claims?.jti ?? '',
    sub: claims?.sub ?? '',
    tid: claims?.tid,
    operation: req.operation ?? operationOf(req.method, req.url),
    source: req.source ?? 'unknown',
    userAgent: req.userAgent,
    decision,
    reason,
    time,
  };
  if (signal) record.signal = signal;
  if (token) record.tokenSha256 = hash('sha256', token, 'base64url');
  return record;
}

/**
 * `METHOD /path` of a request: the same string for the same method and URL as the one before, so the
 * usage records held until the next report share it rather than each holding a copy.
 */
let lastOperation = { method: '', url: '', operation: '' };
function operationOf(method: string, url: string): string {
  if (lastOperation.url === url && lastOperation.method === method) return lastOperation.operation;
  const operation = `${method.toUpperCase()} ${requestPath(url)}`;
  lastOperation = { method, url, operation };
  return operation;
}

function presentedTokenOf(req: PresentedRequest): string | undefined {
  try {
    return presentedToken(req.authorization).token;
  } catch {
    return undefined;
  }
}

function toRefusal(err: unknown): RequestRefusal {
  if (err instanceof RequestRefusal) return err;
  if (err instanceof TokenError)
    return new RequestRefusal('invalid_token', err.reason, err.message, { claims: err.claims });
  return new RequestRefusal('invalid_token', 'invalid', 'token is invalid');
}
