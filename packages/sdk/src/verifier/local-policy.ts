import { isIP } from 'node:net';
import type { VerificationKey } from '../jose/jwk.js';
import type { AccessTokenClaims } from '../wire/claims.js';
import { EventType } from '../wire/events.js';
import {
  type BundlePolicy,
  type BundleWorkload,
  POLICY_BUNDLE_PATH,
  type PolicyBundleClaims,
} from '../wire/policy-bundle.js';
import { type CedarApi, loadCedar } from './local-cedar.js';
import { PolicyBundleError, scopeMatches, verifyPolicyBundle } from './policy-bundle.js';
import { type PresentedRequest, RequestRefusal } from './request.js';
import type { UseContext } from './usage.js';

/** Operations decided at request time (Writ's schema: `Action::"request"`). */
export const REQUEST_ACTIONS = ['read', 'write', 'export', 'delete'] as const;
export type RequestAction = (typeof REQUEST_ACTIONS)[number];

/** The context record of Writ's schema, as the verifier fills it (unknown values are "" or 0). */
export interface LocalPolicyContext {
  source_ip: string;
  environment: string;
  task_id: string;
  purpose: string;
  attestation: string;
  binding: string;
  risk: number;
  scopes: string[];
  token_class: string;
  client_id: string;
}

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

export interface LocalDecision {
  decision: 'allow' | 'deny';
  /** The determining policies: satisfied permits on allow, satisfied (or failing) forbids on deny. */
  reasons: string[];
  errors: string[];
  /** Set when the policies were not asked: `no_bundle`, `unknown_workload`, `workload_disabled`... */
  refusal?: string;
  /** The bundle the decision was made under. */
  version: number | undefined;
  policyVersion: string | undefined;
  cached: boolean;
}

export interface LocalPolicyStatus {
  /** The version in force, undefined until a valid bundle is loaded. */
  version: number | undefined;
  policyVersion: string | undefined;
  /** The highest version the stream announced. */
  announced: number;
  /** Why the last fetched bundle was refused or could not be fetched. */
  lastError: string | undefined;
  /** Bundles refused so far (bad signature, wrong typ, issuer or audience, older version...). */
  refused: number;
}

/** Request-time policy decided in the verifier from the signed bundle. */
export interface LocalPolicy {
  /** Resolves with the version in force once a bundle of at least `version` is loaded (any, without it). */
  loaded(version?: number): Promise<number>;
  decide(req: LocalDecisionRequest): Promise<LocalDecision>;
  /** Fetches the bundle now (it is fetched on its own when the stream opens or announces one). */
  refresh(): Promise<void>;
  status(): LocalPolicyStatus;
}

/** Distinct slices kept per bundle; past it they are parsed again (Cedar's ids are reused, not leaked). */
const MAX_SLICES = 10_000;

/** What `createLocalPolicy` needs from the verifier it belongs to. */
export interface LocalPolicyDeps {
  issuer: string;
  audience: string;
  fetch: typeof fetch;
  now: () => number;
  keys: () => readonly VerificationKey[];
  refreshKeys: () => Promise<void>;
  /** `Authorization` and `DPoP` headers for a GET of `url`, with a fresh token when `fresh`. */
  authorize: (url: string, fresh: boolean) => Promise<Record<string, string>>;
  /** True while the verifier's revocation stream is past its staleness bound. */
  stale: () => boolean;
}

interface Loaded {
  claims: PolicyBundleClaims;
  effects: Map<string, 'permit' | 'forbid'>;
  workloads: Map<string, BundleWorkload>;
  /** (principal, action) → Cedar's preparsed set of the policies that can apply; undefined: none can. */
  slices: Map<string, string | undefined>;
  /** Policy indices → preparsed set id: principals with the same slice share one set. */
  sets: Map<string, string>;
}

let instances = 0;

/**
 * The local policy of one verifier: fetches the signed bundle for its API when the stream opens and
 * whenever it announces a newer version, refuses any bundle that does not verify, and decides with
 * Cedar. No valid bundle, no allow.
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
  const url = `${d.issuer}${POLICY_BUNDLE_PATH}`;
  const maxBytes = o.maxBundleBytes ?? 8 * 1024 * 1024;
  const cacheSize = o.cacheSize ?? 10_000;
  const waitMs = o.waitMs ?? 5000;
  const cache = new Map<string, LocalDecision>();
  let cedar: Promise<CedarApi> | undefined;
  let current: Loaded | undefined;
  let announced = 0;
  let lastError: string | undefined;
  let refused = 0;
  let closed = false;
  let fetching: Promise<void> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let backoff = 250;
  const waiters = new Set<{ version: number; done: (v: number) => void; fail: (e: Error) => void }>();

  const getCedar = () => {
    cedar ??= (o.cedar ?? loadCedar)();
    return cedar;
  };

  const wake = () => {
    for (const w of waiters) {
      if (current && current.claims.version >= w.version) {
        waiters.delete(w);
        w.done(current.claims.version);
      }
    }
  };

  const load = async (jws: string) => {
    const check = { issuer: d.issuer, audience: d.audience, maxBytes, held: current?.claims.version };
    let claims: PolicyBundleClaims;
    try {
      claims = verifyPolicyBundle(jws, { ...check, keys: d.keys() });
    } catch (err) {
      // Signed by a key published since the JWKS was read (a rotation): look once more.
      if (!(err instanceof PolicyBundleError) || err.reason !== 'no_key') throw err;
      await d.refreshKeys();
      claims = verifyPolicyBundle(jws, { ...check, keys: d.keys() });
    }
    if (current && claims.version === current.claims.version) return;
    const api = await getCedar();
    if (claims.policies.length > 0) {
      // The whole set once, so a bundle Cedar cannot parse is refused now, not at some decision.
      const r = api.preparsePolicySet(`${prefix}.all`, {
        staticPolicies: Object.fromEntries(claims.policies.map((p) => [p.id, p.text])),
      });
      if (r.type === 'failure')
        throw new PolicyBundleError(
          'policies',
          `policy bundle: ${r.errors[0]?.message ?? 'policies do not parse'}`,
        );
    }
    // A newer bundle may have been loaded while Cedar was parsing this one.
    if (current && claims.version <= current.claims.version) return;
    current = {
      claims,
      effects: new Map(claims.policies.map((p) => [p.id, p.effect])),
      workloads: new Map(claims.workloads.map((w) => [w.id, w])),
      slices: new Map(),
      sets: new Map(),
    };
    cache.clear();
    wake();
  };

  const fetchOnce = async () => {
    let res: Response | undefined;
    for (const fresh of [false, true]) {
      res = await d.fetch(`${url}?audience=${encodeURIComponent(d.audience)}`, {
        headers: { ...(await d.authorize(url, fresh)), accept: 'application/jwt' },
      });
      if (res.status !== 401) break;
      await res.body?.cancel().catch(() => undefined);
    }
    if (!res?.ok) {
      await res?.body?.cancel().catch(() => undefined);
      throw new PolicyBundleError('http', `policy bundle: HTTP ${res?.status ?? 'error'}`);
    }
    await load((await boundedText(res, maxBytes)).trim());
  };

  /** Fetches until a bundle at least as new as the announced one is in force; backs off on failure. */
  const refresh = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (retry) {
      clearTimeout(retry);
      retry = undefined;
    }
    fetching ??= fetchOnce()
      .then(
        () => {
          lastError = undefined;
          if (current && current.claims.version >= announced) backoff = 250;
        },
        (err: unknown) => {
          if (err instanceof PolicyBundleError && err.reason !== 'http' && err.reason !== 'cedar_missing')
            refused++;
          lastError = err instanceof Error ? err.message : String(err);
          if (err instanceof PolicyBundleError && err.reason === 'cedar_missing')
            for (const w of waiters) {
              waiters.delete(w);
              w.fail(err);
            }
        },
      )
      .finally(() => {
        fetching = undefined;
        // Refused, unreachable, or older than announced (the server was still applying): try again.
        const behind = !current || current.claims.version < announced;
        if (behind && !closed) {
          retry = setTimeout(() => {
            retry = undefined;
            refresh().catch(() => undefined);
          }, backoff);
          retry.unref();
          backoff = Math.min(backoff * 2, 5000);
        }
      });
    return fetching;
  };

  const loaded = (version = 1): Promise<number> => {
    if (current && current.claims.version >= version) return Promise.resolve(current.claims.version);
    return new Promise<number>((done, fail) => {
      waiters.add({ version, done, fail });
    });
  };

  const deny = (refusal: string, errors: string[] = []): LocalDecision => ({
    decision: 'deny',
    reasons: [],
    errors,
    refusal,
    version: current?.claims.version,
    policyVersion: current?.claims.policy_version,
    cached: false,
  });

  /** Waits (bounded) for a bundle announced but not yet loaded: no decision under an outdated one. */
  const upToDate = async (): Promise<boolean> => {
    if (current && current.claims.version >= announced) return true;
    if (!current && announced === 0 && fetching === undefined) return false;
    const ok = await new Promise<boolean>((resolve) => {
      const w = {
        version: Math.max(announced, 1),
        done: () => {
          clearTimeout(timer);
          resolve(true);
        },
        fail: () => {
          clearTimeout(timer);
          resolve(false);
        },
      };
      // Given up on: the waiter goes, so requests during a long outage do not pile up waiters.
      const timer = setTimeout(() => {
        waiters.delete(w);
        resolve(false);
      }, waitMs);
      waiters.add(w);
    });
    return ok && current !== undefined && current.claims.version >= announced;
  };

  const decide = async (req: LocalDecisionRequest): Promise<LocalDecision> => {
    // A missing Cedar is a deployment error, not a denial: it throws for the operator to see.
    const api = await getCedar();
    if (d.stale()) return deny('stale');
    if (!(await upToDate())) return deny(current ? 'bundle_outdated' : 'no_bundle');
    const b = current!;
    if (!(REQUEST_ACTIONS as readonly string[]).includes(req.action)) return deny('unknown_action');
    let principal: {
      uid: { type: string; id: string };
      attrs: Record<string, unknown>;
      tags?: Record<string, string>;
    };
    let environment = '';
    if (req.principal.type === 'Workload') {
      const w = b.workloads.get(req.principal.id);
      if (!w) return deny('unknown_workload');
      if (w.state !== 'active') return deny(`workload_${w.state}`);
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
    const context = buildContext(d.now(), b.claims.context_defaults, {
      ...req.context,
      environment: req.context?.environment || environment || b.claims.resource.environment,
    });
    const reads = b.claims.context_reads;
    const key = JSON.stringify([
      b.claims.version,
      req.principal.type,
      req.principal.id,
      req.principal.type === 'Human' ? principal.attrs : null,
      req.action,
      reads === 'all' ? context : reads.map((f) => context[f]),
    ]);
    const hit = cache.get(key);
    if (hit) return { ...hit, cached: true };
    const decision = evaluate(api, b, principal, req.action, context);
    if (decision.version === b.claims.version && current === b) {
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string);
      cache.set(key, decision);
    }
    return decision;
  };

  /**
   * Cedar's set for the policies whose scope can match this principal and action: one whose scope
   * cannot is never satisfied, so leaving it out changes no decision, and Cedar's cost grows with
   * what it is handed.
   */
  const slice = (
    api: CedarApi,
    b: Loaded,
    uid: { type: string; id: string },
    action: RequestAction,
  ): string | undefined => {
    const sliceKey = JSON.stringify([uid.type, uid.id, action]);
    if (b.slices.has(sliceKey)) return b.slices.get(sliceKey);
    if (b.slices.size >= MAX_SLICES) {
      b.slices.clear();
      b.sets.clear();
    }
    const picked: BundlePolicy[] = [];
    const indices: number[] = [];
    for (const [i, p] of b.claims.policies.entries()) {
      if (p.actions.includes(action) && scopeMatches(p.principal, uid)) {
        picked.push(p);
        indices.push(i);
      }
    }
    let setId: string | undefined;
    if (picked.length > 0) {
      const idsKey = indices.join(',');
      setId = b.sets.get(idsKey);
      if (setId === undefined) {
        setId = `${prefix}.s${b.sets.size}`;
        const r = api.preparsePolicySet(setId, {
          staticPolicies: Object.fromEntries(picked.map((p) => [p.id, p.text])),
        });
        if (r.type === 'failure')
          throw new PolicyBundleError(
            'policies',
            `policy bundle: ${r.errors[0]?.message ?? 'policies do not parse'}`,
          );
        b.sets.set(idsKey, setId);
      }
    }
    b.slices.set(sliceKey, setId);
    return setId;
  };

  const evaluate = (
    api: CedarApi,
    b: Loaded,
    principal: {
      uid: { type: string; id: string };
      attrs: Record<string, unknown>;
      tags?: Record<string, string>;
    },
    action: RequestAction,
    context: Record<string, unknown>,
  ): LocalDecision => {
    const base = { version: b.claims.version, policyVersion: b.claims.policy_version, cached: false };
    const setId = slice(api, b, principal.uid, action);
    if (setId === undefined) return { decision: 'deny', reasons: [], errors: [], ...base };
    const r = b.claims.resource;
    const answer = api.statefulIsAuthorized({
      principal: principal.uid,
      action: { type: 'Action', id: action },
      resource: { type: 'Api', id: d.audience },
      context: { ...context, source_ip: { __extn: { fn: 'ip', arg: context['source_ip'] } } },
      preparsedPolicySetId: setId,
      entities: [
        {
          uid: principal.uid,
          attrs: principal.attrs,
          parents: [],
          ...(principal.tags ? { tags: principal.tags } : {}),
        },
        {
          uid: { type: 'Api', id: d.audience },
          attrs: { sensitivity: r.sensitivity, environment: r.environment, owner: r.owner },
          parents: [],
        },
        { uid: { type: 'Action', id: action }, attrs: {}, parents: [{ type: 'Action', id: 'request' }] },
      ],
    });
    if (answer.type === 'failure')
      return {
        decision: 'deny',
        reasons: [],
        errors: answer.errors.map((e) => e.message.slice(0, 300)),
        ...base,
      };
    const { decision, diagnostics } = answer.response;
    const errors = diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message.slice(0, 300)}`);
    // Cedar skips a policy that errors; a forbid that could not be evaluated must not let a request through.
    const failedForbids = diagnostics.errors
      .filter((e) => b.effects.get(e.policyId) === 'forbid')
      .map((e) => e.policyId);
    if (decision === 'allow' && failedForbids.length > 0)
      return { decision: 'deny', reasons: failedForbids.sort(), errors, ...base };
    return { decision, reasons: [...diagnostics.reason].sort(), errors, ...base };
  };

  return {
    loaded,
    decide,
    refresh,
    status: () => ({
      version: current?.claims.version,
      policyVersion: current?.claims.policy_version,
      announced,
      lastError,
      refused,
    }),
    onEvent(type, data) {
      if (type === EventType.head || type === EventType.snapshot) {
        // A (re)opened stream: whatever was announced while it was down, the bundle now is current.
        refresh().catch(() => undefined);
      } else if (type === EventType.policyBundle) {
        const v = data['version'];
        if (typeof v === 'number' && Number.isSafeInteger(v) && v > announced) announced = v;
        if (!current || current.claims.version < announced) refresh().catch(() => undefined);
      }
    },
    async enforce(req, claims) {
      const action = o.action ? o.action(req, claims) : defaultAction(req.method);
      const binding = claims.cnf?.jkt ? 'dpop' : claims.cnf?.['x5t#S256'] ? 'mtls' : 'bearer';
      const given: Partial<LocalPolicyContext> = {
        scopes: claims.scope.split(' ').filter((s) => s !== ''),
        token_class: claims.cls,
        task_id: claims.tid ?? '',
        client_id: claims.client_id,
        binding,
        ...(req.source !== undefined && isIP(stripMapped(req.source)) !== 0 ? { source_ip: req.source } : {}),
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
    close() {
      closed = true;
      if (retry) clearTimeout(retry);
      for (const w of waiters) w.fail(new PolicyBundleError('closed', 'the verifier is closed'));
      waiters.clear();
    },
  };
}

/** The body as text, refusing (and no longer reading) one longer than `max` bytes. */
async function boundedText(res: Response, max: number): Promise<string> {
  const tooLarge = () => new PolicyBundleError('too_large', `policy bundle: larger than ${max} bytes`);
  if (Number(res.headers.get('content-length') ?? 0) > max) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) {
      await res.body.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function defaultAction(method: string): RequestAction {
  const m = method.toUpperCase();
  if (m === 'GET' || m === 'HEAD' || m === 'OPTIONS') return 'read';
  if (m === 'DELETE') return 'delete';
  return 'write';
}

function stripMapped(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/**
 * The full context record: the bundle's defaults (every field of the schema's record), time from the
 * verifier's clock (UTC), then what the verifier and the resource server know.
 */
function buildContext(
  nowMs: number,
  defaults: Record<string, unknown>,
  given: Partial<LocalPolicyContext>,
): Record<string, unknown> {
  const t = new Date(nowMs);
  const ip = stripMapped(given.source_ip ?? '0.0.0.0');
  const risk = given.risk ?? 0;
  return {
    ...defaults,
    now: Math.floor(nowMs / 1000),
    hour: t.getUTCHours(),
    weekday: t.getUTCDay(),
    environment: given.environment ?? '',
    task_id: given.task_id ?? '',
    purpose: given.purpose ?? '',
    attestation: given.attestation ?? '',
    binding: given.binding ?? '',
    // A risk outside 0-100 is a PEP bug; read it as the highest risk rather than as none.
    risk: Number.isInteger(risk) && risk >= 0 && risk <= 100 ? risk : 100,
    scopes: [...(given.scopes ?? [])],
    token_class: given.token_class ?? '',
    grant_type: '',
    client_id: given.client_id ?? '',
    source_ip: isIP(ip) !== 0 ? ip : '0.0.0.0',
  };
}
