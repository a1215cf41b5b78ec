import { hash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  checkHolderBinding,
  defaultAction,
  type PresentedRequest,
  presentedToken,
  RequestRefusal,
  TokenError,
  tokenContext,
  type UsageRecord,
  UsageReporter,
  type UseContext,
  type Verifier,
  verifyAccessTokenJwt,
} from '@writ/sdk/verifier';
import {
  type AccessTokenClaims,
  PolicyContextError,
  type RefusalReason,
  requestEnvironment,
  signalOfRefusal,
} from '@writ/sdk/wire';
import { auditRefusal } from '../audit/refusal.js';
import { unverifiedClaim } from '../auth/unverified-claim.js';
import { seconds } from '../clock.js';
import type { RequestInfo, WritContext } from '../context.js';
import { DPOP_SETTINGS } from '../dpop/check.js';
import { ConfigError, OAuthError } from '../errors.js';
import { buildContext, workloadPrincipal } from '../policy/request.js';
import { notBeforeLeeway, TOKEN_LEEWAY } from '../tokens/access-token.js';
import { ingestUsageReport } from '../usage/ingest.js';
import { detectOnTakenUsage } from '../usage/routes.js';
import { PROXY_METADATA_PATH } from './exec-forwarder.js';
import { createVendorProxy, type ProxyOutcome, type VendorKeySource } from './proxy.js';
import type { VendorRoute } from './route.js';
import { leasableVersions, openVendorKey } from './vendor-keys.js';

/** Where the vendor routes are on the server's listener: `<issuer>/vendors/NAME/...`, as `writ proxy`'s. */
const VENDORS_PREFIX = '/vendors/';
/** How long the in-server proxy uses the keys it read before reading them (and their grants) again. */
const KEY_HOLD_MS = 5000;

/** The vendor-key proxy inside `writ serve`: the requests it takes, and its shutdown. */
export interface ServerVendorProxy {
  /** Answers the request when it is the proxy's (a vendor route, its metadata): true; else false. */
  handles(req: IncomingMessage, res: ServerResponse): boolean;
  close(): Promise<void>;
}

/**
 * The proxy of `writ proxy` (`createVendorProxy`, the same checks in the same order) served by the
 * server itself, setting `vendor_proxy.workload`: tokens are verified against the server's own keys and
 * revocation set (the state its own endpoints use, current on every node without an event stream),
 * DPoP proofs against `<issuer>/vendors/...` with their `jti` consumed in the store (once across a
 * cluster), request-time policy by the server's Cedar engine (`vendor_proxy.policy`), keys opened from
 * the store under the same grants as a lease (the key lists the workload, an exception holds), uses
 * ingested as that workload's usage reports, and every refusal audited as `vendor_proxy.refused`.
 */
export function createServerVendorProxy(ctx: WritContext, routes: readonly VendorRoute[]): ServerVendorProxy {
  const { workload, policy } = ctx.settings.vendorProxy;
  checkProxyWorkload(ctx, workload, routes);
  const issuer = ctx.settings.issuer;
  const usage = new UsageReporter({
    issuer,
    client: { fetch: (_url, init) => ingestInProcess(ctx, workload, init?.body) },
    onError: (err) => ctx.logger.warn({ err: err.message }, 'vendor proxy: usage not recorded'),
  });
  const verifiers = new Map<string, Verifier>(
    routes.map((r) => [r.name, serverVerifier(ctx, { audience: r.audience, usage, policy })]),
  );
  const audits = new Set<Promise<unknown>>();
  const handler = createVendorProxy({
    routes,
    verifiers,
    keys: new StoreVendorKeys(ctx, workload),
    publicUrl: issuer,
    onRequest: (r, req) => {
      ctx.metrics.vendorProxyRequests.inc({
        route: r.route ?? '',
        status: String(r.status),
        reason: r.reason ?? '',
      });
      if (r.reason === undefined || r.status < 400) return;
      // Written after the answer; awaited at close, so none is cut off by the store closing.
      const written = auditOutcome(ctx, r, req);
      if (!written) return;
      audits.add(written);
      written.finally(() => audits.delete(written));
    },
  });
  const metadata = JSON.stringify({
    routes: routes.map((r) => ({ name: r.name, audience: r.audience, scopes: r.scopes })),
  });
  return {
    handles(req, res) {
      const url = req.url ?? '';
      if (url.startsWith(VENDORS_PREFIX)) {
        handler(req, res);
        return true;
      }
      if (url === PROXY_METADATA_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
        res.end(metadata);
        return true;
      }
      return false;
    },
    async close() {
      await Promise.allSettled([...audits]);
      await usage.close();
      await handler.close();
    },
  };
}

/** The workload the proxy acts as must be registered and serve every route's audience, or nothing starts. */
function checkProxyWorkload(ctx: WritContext, workload: string, routes: readonly VendorRoute[]): void {
  const fail = (why: string) => new ConfigError('settings', 'vendor_proxy.workload', why);
  if (routes.length === 0)
    throw fail('no vendor routes: add vendors/NAME.yaml to the config directory, or leave the setting empty');
  if (!ctx.registry.workload(workload))
    throw fail(`${JSON.stringify(workload.slice(0, 200))} is not a registered workload`);
  const unserved = routes.filter((r) => !ctx.registry.serves(workload, r.audience));
  if (unserved.length > 0)
    throw fail(
      `the workload must serve each route's audience (serves: in its file); it does not serve ${unserved.map((r) => r.audience).join(', ')}`,
    );
}

/** A usage report of the proxy taken in this process, as `POST /v1/usage` would take it. */
async function ingestInProcess(ctx: WritContext, workload: string, body: unknown): Promise<Response> {
  try {
    const { receipt, taken } = await ingestUsageReport(ctx, workload, JSON.parse(String(body)), 'in-process');
    detectOnTakenUsage(ctx, workload, taken);
    return new Response(JSON.stringify(receipt), { status: 202 });
  } catch (err) {
    if (err instanceof OAuthError) return new Response(JSON.stringify(err.toBody()), { status: err.status });
    throw err;
  }
}

/**
 * A verifier of the SDK's shape (`Verifier`, what `decide` and the proxy take) over the server's own
 * state: the checks of `verifyBearer` (signature by a Writ key, `typ`, `iss`, `aud`, `exp`, `nbf`, not
 * revoked, holder binding), then the caller's `check` (scopes, the route table), then policy; every
 * use, allowed or denied, is recorded for the usage report.
 */
function serverVerifier(
  ctx: WritContext,
  o: { audience: string; usage: UsageReporter; policy: boolean },
): Verifier {
  const issuer = ctx.settings.issuer;
  const verifyRequest = async (
    req: PresentedRequest & UseContext,
    seen: (claims: AccessTokenClaims) => void,
  ): Promise<AccessTokenClaims> => {
    const presented = presentedToken(req.authorization);
    const nowMs = ctx.clock.now();
    const now = seconds(nowMs);
    let claims: AccessTokenClaims;
    let kid: string;
    try {
      ({ claims, kid } = verifyAccessTokenJwt(presented.token, {
        keys: ctx.keys.verificationKeys(),
        issuer,
        audience: o.audience,
        nowSeconds: now,
        leeway: TOKEN_LEEWAY,
        notBeforeLeeway: notBeforeLeeway(ctx.settings),
        maxBytes: ctx.settings.limits.tokenBytes,
      }));
    } catch (err) {
      if (err instanceof TokenError)
        throw new RequestRefusal('invalid_token', err.reason, err.message, { claims: err.claims });
      throw new RequestRefusal('invalid_token', 'invalid', 'token is invalid');
    }
    seen(claims);
    if (ctx.revocations.match({ ...claims, kid }))
      throw new RequestRefusal('invalid_token', 'revoked', 'token has been revoked');
    await checkHolderBinding(req, presented, claims, {
      algorithms: ctx.settings.dpop.algorithms,
      nowSeconds: now,
      iatWindow: ctx.settings.dpop.iatWindow,
      settingNames: DPOP_SETTINGS,
      consumeJti: (key, exp) => ctx.store.consume('dpop', key, exp * 1000, nowMs),
    });
    req.check?.(claims);
    if (o.policy) decidePolicy(ctx, o.audience, req, claims);
    return claims;
  };
  return {
    ready: async () => undefined,
    async verify(req) {
      let known: AccessTokenClaims | undefined;
      try {
        const claims = await verifyRequest(req, (c) => {
          known = c;
        });
        o.usage.record(useOf(issuer, req, claims, undefined, ctx.clock.now()));
        return { claims, cached: false };
      } catch (err) {
        if (err instanceof RequestRefusal)
          o.usage.record(useOf(issuer, req, known ?? err.claims, err.reason, ctx.clock.now()));
        throw err;
      }
    },
    // The server's own state: current whenever the node serves (no stream of its own to go stale).
    status: () => ({
      connected: true,
      synced: true,
      stale: false,
      lastHeardMs: ctx.clock.now(),
      revocations: ctx.revocations.size,
      risks: 0,
      lastEventId: undefined,
      keys: ctx.keys.verificationKeys().length,
      connections: 0,
    }),
    riskOf: (sub) => ctx.detection.riskOf(sub),
    close: () => undefined,
  };
}

/**
 * Request-time policy for the route's `Api`, as the signed bundle decides it in `writ proxy --policy`:
 * the token's workload as principal, the action of the method, the context from the token, the
 * connection and the workload's risk. Anything but an allow refuses (403 `insufficient_scope`).
 */
function decidePolicy(
  ctx: WritContext,
  audience: string,
  req: PresentedRequest & UseContext,
  claims: AccessTokenClaims,
): void {
  const refuse = (reason: RefusalReason) =>
    new RequestRefusal('insufficient_scope', reason, 'the request is not allowed by policy');
  const w = ctx.registry.workload(claims.sub);
  if (!w) throw refuse('policy_unknown_workload');
  if (w.state !== 'active')
    throw refuse(w.state === 'quarantined' ? 'policy_workload_quarantined' : 'policy_workload_disabled');
  const action = defaultAction(req.method);
  let context: ReturnType<typeof buildContext>;
  try {
    context = buildContext(ctx.clock.now(), {
      ...tokenContext(claims, req.source),
      risk: ctx.detection.riskOf(claims.sub),
      environment: requestEnvironment(undefined, w.environment, ctx.policy.resource(audience).environment),
    });
  } catch (err) {
    if (err instanceof PolicyContextError) throw refuse('policy_invalid_context');
    throw err;
  }
  const d = ctx.policy.decide({
    principal: workloadPrincipal(w, ctx.registry.generation),
    action,
    resource: audience,
    context,
  });
  ctx.metrics.policyDecisions.inc({ endpoint: 'vendor_proxy', action, decision: d.decision });
  if (d.decision !== 'allow') throw refuse('policy_denied');
}

/** The usage record of one verification, as the SDK verifier makes it (`useOf` there). */
function useOf(
  issuer: string,
  req: PresentedRequest & UseContext,
  claims: AccessTokenClaims | undefined,
  reason: string | undefined,
  time: number,
): UsageRecord {
  const path = req.url.startsWith(issuer) ? req.url.slice(issuer.length) || '/' : req.url;
  const signal = reason === undefined ? undefined : signalOfRefusal(reason);
  let tokenSha256: string | undefined;
  if (signal === 'wrong_audience' && claims) {
    try {
      tokenSha256 = hash('sha256', presentedToken(req.authorization).token, 'base64url');
    } catch {
      tokenSha256 = undefined;
    }
  }
  return {
    jti: claims?.jti ?? '',
    operation: `${req.method.toUpperCase()} ${path}`,
    source: req.source ?? 'unknown',
    userAgent: req.userAgent,
    decision: reason === undefined ? 'allow' : 'deny',
    reason,
    ...(signal ? { signal } : {}),
    ...(tokenSha256 ? { tokenSha256 } : {}),
    time,
  };
}

/** The proxy's own refusals (before or after the token check), as audit reasons. */
const PROXY_REFUSALS: Record<string, { code: OAuthError['code']; reason: RefusalReason }> = {
  no_route: { code: 'not_found', reason: 'vendor_no_route' },
  ambiguous_path: { code: 'invalid_request', reason: 'vendor_path' },
  bad_path: { code: 'invalid_request', reason: 'vendor_path' },
  body_too_large: { code: 'invalid_request', reason: 'body_too_large' },
  no_key: { code: 'temporarily_unavailable', reason: 'vendor_key_unavailable' },
};

/**
 * Audits a refused request (`vendor_proxy.refused`) once its answer is sent. The caller is named only
 * when the token and its holder were verified (a 403: the token was good, the route or policy said no);
 * refusals of unproven callers are counted per source address like the server's own (`auditRefusal`).
 * Upstream failures (502, 504, a stream cut) are the vendor's, logged and counted, not refusals.
 */
function auditOutcome(ctx: WritContext, r: ProxyOutcome, req: IncomingMessage): Promise<unknown> | undefined {
  let error: OAuthError;
  if (r.refusal) {
    const code = r.refusal.code === 'use_dpop_nonce' ? 'invalid_dpop_proof' : r.refusal.code;
    error = new OAuthError(code, r.refusal.description, {
      status: r.status,
      detail: { reason: r.refusal.reason },
    });
  } else if (r.reason === 'token') {
    error = new OAuthError('invalid_token', 'an access token is required (Authorization: DPoP or Bearer)', {
      status: r.status,
      detail: { reason: 'no_token' },
    });
  } else {
    const known = PROXY_REFUSALS[r.reason ?? ''];
    if (!known) {
      ctx.logger.warn(
        { route: r.route, method: r.method, status: r.status, reason: r.reason },
        'vendor proxy: the vendor request failed',
      );
      return undefined;
    }
    error = new OAuthError(known.code, `vendor proxy: ${r.reason}`, {
      status: r.status,
      detail: { reason: known.reason },
    });
  }
  const authorization = req.headers.authorization;
  const token = /^(?:DPoP|Bearer) +(\S+)$/i.exec(authorization?.trim() ?? '')?.[1];
  // A 403 comes only after the token, its holder and its revocation were checked: its client is proven.
  const caller = r.status === 403 && token !== undefined ? unverifiedClaim(token, 'client_id') : undefined;
  const info: RequestInfo = {
    ip: req.socket?.remoteAddress ?? 'unknown',
    method: r.method,
    path: (req.url ?? '/').split('?')[0]!.slice(0, 256),
    userAgent: req.headers['user-agent']?.slice(0, 256),
    authorization: undefined,
    dpop: [],
    ...(typeof caller === 'string' ? { caller } : {}),
  };
  return auditRefusal(ctx, 'vendor_proxy', error, info, {
    ...(r.route !== undefined ? { route: r.route } : {}),
    method: r.method,
  }).catch((err: unknown) =>
    ctx.logger.error({ err: (err as Error).message }, 'vendor proxy: could not audit a refusal'),
  );
}

interface HeldKeys {
  version: number;
  current: string;
  all: readonly string[];
  until: number;
}

/**
 * The vendor keys of the in-server proxy, opened from the store: only while the key lists the proxy's
 * workload and an exception covering it holds (`leasableVersions`, the grants of a lease), re-read every
 * few seconds so a rotation, a retirement or an ended exception reaches it at once. A new version is
 * audited as leased (`vendor_key.leased`), as a proxy's lease is; the key itself never leaves.
 */
class StoreVendorKeys implements VendorKeySource {
  readonly #ctx: WritContext;
  readonly #workload: string;
  readonly #held = new Map<string, HeldKeys>();
  readonly #pending = new Map<string, Promise<HeldKeys>>();

  constructor(ctx: WritContext, workload: string) {
    this.#ctx = ctx;
    this.#workload = workload;
  }

  async current(name: string): Promise<string> {
    const held = this.#held.get(name);
    if (held && held.until > this.#ctx.clock.now()) return held.current;
    let p = this.#pending.get(name);
    if (!p) {
      p = this.#read(name).finally(() => this.#pending.delete(name));
      this.#pending.set(name, p);
    }
    return (await p).current;
  }

  inFlight(name: string): readonly string[] {
    return this.#held.get(name)?.all ?? [];
  }

  async #read(name: string): Promise<HeldKeys> {
    const before = this.#held.get(name);
    let versions: Awaited<ReturnType<typeof leasableVersions>>;
    try {
      versions = await leasableVersions(this.#ctx, name, this.#workload);
    } catch (err) {
      this.#held.delete(name);
      throw err;
    }
    const current = versions.at(-1)!;
    const keys = versions.map((v) => openVendorKey(this.#ctx, v));
    const held: HeldKeys = {
      version: current.version,
      current: keys.at(-1)!,
      all: [keys.at(-1)!, ...keys.slice(0, -1)],
      until: this.#ctx.clock.now() + KEY_HOLD_MS,
    };
    if (before?.version !== held.version)
      await this.#ctx.audit.append({
        type: 'vendor_key.leased',
        outcome: 'success',
        actor: this.#workload,
        data: {
          name,
          version: current.version,
          fingerprint: current.fingerprint.slice(0, 16),
          in_server: true,
        },
      });
    this.#held.set(name, held);
    return held;
  }
}
