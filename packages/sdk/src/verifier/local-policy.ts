import type { VerificationKey } from '../jose/jwk.js';
import type { AccessTokenClaims } from '../wire/claims.js';
import { EventType } from '../wire/events.js';
import {
  isRequestAction,
  PolicyContextError,
  policyRisk,
  type RequestAction,
} from '../wire/policy-context.js';
import { type CedarApi, loadCedar } from './local-cedar.js';
import { type BundleFollowerStatus, followBundle } from './local-policy/bundle-follower.js';
import {
  bundleContext,
  defaultAction,
  type LocalPolicyContext,
  tokenContext,
} from './local-policy/context.js';
import {
  evaluate,
  type LocalDecision,
  type LocalPrincipal,
  type LocalRefusal,
} from './local-policy/decide.js';
import { DecisionCache, decisionKey } from './local-policy/decision-cache.js';
import { type LoadedBundle, loadBundle } from './local-policy/slices.js';
import { type PresentedRequest, RequestRefusal } from './request.js';
import type { UseContext } from './usage.js';

/** The context a local decision is made with: the server's builder, from the bundle's defaults. */
export {
  bundleContext,
  defaultAction,
  type LocalPolicyContext,
  tokenContext,
} from './local-policy/context.js';
export type { LocalDecision } from './local-policy/decide.js';

export interface LocalPolicyOptions {
  /** The action a request is. Default: GET, HEAD and OPTIONS `read`, DELETE `delete`, anything else `write`. */
  action?: (req: PresentedRequest & UseContext, claims: AccessTokenClaims) => RequestAction;
  /** What the resource server knows beyond the token (purpose, risk, environment...). */
  context?: (req: PresentedRequest & UseContext, claims: AccessTokenClaims) => Partial<LocalPolicyContext>;
  /** Decisions kept, at most (default 10 000). */
  cacheSize?: number;
  /** Largest bundle accepted (default 8 MiB). */
  maxBundleBytes?: number;
  /**
   * After the stream announced a newer bundle, how long a decision waits for it before denying (ms,
   * default 5000). No decision is made under a bundle older than one announced.
   */
  waitMs?: number;
  /** Loads Cedar. Default: `import('@cedar-policy/cedar-wasm/nodejs')`, an optional peer dependency. */
  cedar?: () => Promise<CedarApi>;
}

export interface LocalDecisionRequest {
  principal: { type: 'Workload'; id: string } | { type: 'Human'; id: string; roles: string[]; mfa: boolean };
  action: RequestAction;
  context?: Partial<LocalPolicyContext>;
}

export type LocalPolicyStatus = BundleFollowerStatus;

/** Request-time policy decided in the verifier from the signed bundle. */
export interface LocalPolicy {
  /** Resolves with the version in force once a bundle of at least `version` is loaded (any, without it). */
  loaded(version?: number): Promise<number>;
  decide(req: LocalDecisionRequest): Promise<LocalDecision>;
  /** Fetches the bundle now (it is fetched on its own when the stream opens or announces one). */
  refresh(): Promise<void>;
  status(): LocalPolicyStatus;
}

/** What `createLocalPolicy` needs from the verifier it belongs to. */
export interface LocalPolicyDeps {
  issuer: string;
  audience: string;
  fetch: typeof fetch;
  now: () => number;
  /** Seconds of clock difference allowed on a bundle's `exp` (the verifier's token leeway). */
  leewaySeconds: number;
  /** The server's policy-bundle keys (not its token keys). */
  keys: () => readonly VerificationKey[];
  refreshKeys: () => Promise<void>;
  /** `Authorization` and `DPoP` headers for a GET of `url`, with a fresh token when `fresh`. */
  authorize: (url: string, fresh: boolean) => Promise<Record<string, string>>;
  /** True while the verifier's revocation stream is past its staleness bound. */
  stale: () => boolean;
  /** The risk the server announced for workload `sub` (0 when none): see `Verifier.riskOf`. */
  riskOf?: (sub: string) => number;
}

let instances = 0;

/**
 * The local policy of one verifier: follows the signed bundle for its API (fetched when the stream
 * opens and whenever it announces a newer version; any that does not verify is refused) and decides
 * with Cedar, caching decisions on what the policies read. No valid bundle, no allow.
 */
export function createLocalPolicy(
  o: LocalPolicyOptions,
  d: LocalPolicyDeps,
): LocalPolicy & {
  onEvent(type: string, data: Record<string, unknown>): void;
  enforce(req: PresentedRequest & UseContext, claims: AccessTokenClaims): Promise<void>;
  close(): void;
} {
  const prefix = `writ-sdk${++instances}`;
  const waitMs = o.waitMs ?? 5000;
  const cache = new DecisionCache<LocalDecision>(o.cacheSize ?? 10_000);
  let cedar: Promise<CedarApi> | undefined;
  const getCedar = () => {
    cedar ??= (o.cedar ?? loadCedar)();
    return cedar;
  };
  const bundle = followBundle<LoadedBundle>({
    ...d,
    maxBytes: o.maxBundleBytes ?? 8 * 1024 * 1024,
    prepare: async (claims) => loadBundle(await getCedar(), claims, prefix),
    onLoad: () => cache.clear(),
  });

  const deny = (refusal: LocalRefusal, errors: string[] = []): LocalDecision => ({
    decision: 'deny',
    reasons: [],
    errors,
    refusal,
    version: bundle.current()?.claims.version,
    policyVersion: bundle.current()?.claims.policy_version,
    cached: false,
  });

  const decide = async (req: LocalDecisionRequest): Promise<LocalDecision> => {
    // A missing Cedar is a deployment error, not a denial: it throws for the operator to see.
    const api = await getCedar();
    if (d.stale()) return deny('stale');
    if (!(await bundle.upToDate(waitMs)))
      return deny(!bundle.current() ? 'no_bundle' : bundle.expired() ? 'bundle_expired' : 'bundle_outdated');
    const b = bundle.current()!;
    if (!isRequestAction(req.action)) return deny('unknown_action');
    let principal: LocalPrincipal;
    let environment = '';
    if (req.principal.type === 'Workload') {
      const w = b.workloads.get(req.principal.id);
      if (!w) return deny('unknown_workload');
      // A state this SDK does not know is no more active than a disabled one.
      if (w.state !== 'active')
        return deny(w.state === 'quarantined' ? 'workload_quarantined' : 'workload_disabled');
      principal = {
        uid: { type: 'Workload', id: w.id },
        attrs: { owner: w.owner, environment: w.environment, state: w.state, classes: w.classes },
        tags: w.tags,
      };
      environment = w.environment;
    } else {
      const roles = [...new Set(req.principal.roles)].sort();
      principal = { uid: { type: 'Human', id: req.principal.id }, attrs: { roles, mfa: req.principal.mfa } };
    }
    let context: ReturnType<typeof bundleContext>;
    try {
      const given = req.context ?? {};
      // A workload's risk is what the server announced or what the caller knows, whichever is higher:
      // a caller may raise it, never lower it. What the caller gives is checked first (the rule of
      // `policyRisk`), so a bad value is refused rather than hidden by the announced one.
      const announced = req.principal.type === 'Workload' ? (d.riskOf?.(req.principal.id) ?? 0) : 0;
      const input = announced > 0 ? { ...given, risk: Math.max(policyRisk(given.risk), announced) } : given;
      context = bundleContext(d.now(), b.claims, input, environment);
    } catch (err) {
      // The same rule as the server's: a risk out of range or a source that is no address is refused.
      if (err instanceof PolicyContextError) return deny('invalid_context', [err.message]);
      throw err;
    }
    const key = decisionKey(
      b.claims.version,
      { ...principal.uid, attrs: principal.attrs },
      req.action,
      context,
      b.claims.context_reads,
    );
    const hit = cache.get(key);
    if (hit) return { ...hit, cached: true };
    const decision = evaluate(api, b, principal, req.action, context);
    if (bundle.current() === b) cache.set(key, decision);
    return decision;
  };

  return {
    loaded: (version) => bundle.loaded(version),
    decide,
    refresh: () => bundle.refresh(),
    status: () => bundle.status(),
    onEvent(type, data) {
      if (type === EventType.head || type === EventType.snapshot) {
        // A (re)opened stream: whatever was announced while it was down, the bundle now is current.
        bundle.refresh().catch(() => undefined);
      } else if (type === EventType.policyBundle) {
        const v = data['version'];
        bundle.announce(typeof v === 'number' ? v : Number.NaN);
      }
    },
    async enforce(req, claims) {
      const action = o.action ? o.action(req, claims) : defaultAction(req.method);
      const given: Partial<LocalPolicyContext> = {
        ...tokenContext(claims, req.source),
        ...o.context?.(req, claims),
      };
      const r = await decide({ principal: { type: 'Workload', id: claims.sub }, action, context: given });
      if (r.decision !== 'allow') {
        if (r.refusal === 'stale')
          throw new RequestRefusal(
            'invalid_token',
            'stale',
            'revocation state is stale; refusing until the stream resumes',
          );
        throw new RequestRefusal(
          'insufficient_scope',
          r.refusal ? `policy_${r.refusal}` : 'policy_denied',
          'the request is not allowed by policy',
        );
      }
    },
    close: () => bundle.close(),
  };
}
