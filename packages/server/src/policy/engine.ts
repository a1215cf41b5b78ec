import type { PolicyContext } from '@writ/sdk/wire';
import { BundlePosition } from './bundle-position.js';
import { cedar, type EntityJson, type EntityUidJson } from './cedar.js';
import {
  type CompiledPolicy,
  type CompiledPolicySet,
  compilePolicies,
  DEFAULT_POLICY_SOURCES,
  type ResourceSpec,
} from './compile.js';
import { ACTIONS, cedarContext, type DecisionRequest, type PolicyAction } from './request.js';
import { actionGroups, PolicyIndex } from './slice.js';

/** A loaded policy set's identity: a counter that grows with every accepted set, and its content hash. */
export interface PolicyVersion {
  /** `<counter>-<first 12 hex of the hash>`, e.g. `3-9f2c0a1b7d4e`. */
  id: string;
  counter: number;
  hash: string;
  builtIn: boolean;
  policies: number;
}

export interface Decision {
  decision: 'allow' | 'deny';
  /** Ids of the determining policies: the satisfied permits on allow, the satisfied forbids on deny. */
  reasons: string[];
  /** Policies that failed to evaluate, as `id: message`. A failing forbid denies (fail closed). */
  errors: string[];
  policyVersion: string;
  /** Served from the decision cache. */
  cached: boolean;
}

export interface Explanation extends Decision {
  /** The policies the slice handed to Cedar (all others cannot match the request's scope). */
  considered: Array<{ id: string; effect: 'permit' | 'forbid'; file: string; line: number }>;
  /** The determining policies with their source. */
  determining: Array<{ id: string; effect: 'permit' | 'forbid'; file: string; line: number; text: string }>;
  resource: ResourceSpec;
  context: PolicyContext;
}

export interface PolicyEngineOptions {
  /** Give Cedar only the policies whose scope can match (default true). */
  slicing?: boolean;
  /** Cache decisions keyed by everything that affects them (default true; needs slicing). */
  cache?: boolean;
  /** Decisions kept, at most (default 100000). */
  cacheSize?: number;
  /** The set to start with (default: the built-in set). */
  set?: CompiledPolicySet;
  /** The last version recorded before this process started (from the audit log). */
  last?: { counter: number; hash: string } | undefined;
}

interface Slice {
  /** Cedar's preparsed set id; undefined when no policy can apply (deny without a call). */
  setId: string | undefined;
  policies: CompiledPolicy[];
  /** Context fields the slice reads (sorted): the cache key holds their values, Cedar gets only them. */
  fields: string[] | 'all';
  /** Principal and resource attributes the slice reads (`#tags`: the principal's tags). */
  principal: ReadonlySet<string> | 'all';
  resource: ReadonlySet<string> | 'all';
}

const ALL_READS = { fields: 'all', principal: 'all', resource: 'all' } as const;

function union(
  policies: readonly CompiledPolicy[],
  pick: (p: CompiledPolicy) => ReadonlySet<string> | 'all',
): Set<string> | 'all' {
  const out = new Set<string>();
  for (const p of policies) {
    const r = pick(p);
    if (r === 'all') return 'all';
    for (const x of r) out.add(x);
  }
  return out;
}

/** Only what the policies read: Cedar's cost grows with the data handed to it. */
function only<T extends Record<string, unknown>>(
  data: T,
  keys: ReadonlySet<string> | 'all',
): Record<string, unknown> {
  if (keys === 'all') return data;
  const out: Record<string, unknown> = {};
  for (const k of keys) if (k in data) out[k] = data[k];
  return out;
}

const MAX_SLICES = 20_000;
const ACTION_PARENTS = Object.fromEntries(
  ACTIONS.map((a) => [a, actionGroups(a).map((id) => ({ type: 'Action', id }))]),
) as Record<PolicyAction, EntityUidJson[]>;
let instances = 0;

/**
 * The policy engine (the PolicyEngine port over Cedar). Decisions are synchronous: a load or a resource
 * change and a decision never interleave, so a decision made after a change was acknowledged sees it.
 * The cache key holds the policy generation and the entity versions, so an entry made before a change
 * can never be served after it.
 */
export class PolicyEngine {
  readonly #prefix = `writ${++instances}`;
  readonly #slicing: boolean;
  readonly #caching: boolean;
  readonly #cacheSize: number;
  #set!: CompiledPolicySet;
  #version!: PolicyVersion;
  #generation = 0;
  #counter: number;
  #countedHash: string | undefined;
  #index!: PolicyIndex;
  #byId = new Map<string, CompiledPolicy>();
  /** APIs described by the running set's `resources.yaml`. */
  #described = new Map<string, { spec: ResourceSpec; version: number }>();
  /** APIs set through the admin API: they win over `resources.yaml` until cleared. */
  #overrides = new Map<string, { spec: ResourceSpec; version: number }>();
  #resourceSeq = 0;
  #slices = new Map<string, Slice>();
  #sets = new Map<string, string>();
  #cache = new Map<string, Decision>();
  readonly stats = { decisions: 0, cacheHits: 0, evaluations: 0 };
  /** The version of the bundle verifiers fetch of what this engine runs (policy/bundle.ts). */
  readonly bundle = new BundlePosition();
  /** The last change to this engine queued by `takeTurn`. */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(options: PolicyEngineOptions = {}) {
    this.#slicing = options.slicing ?? true;
    this.#caching = (options.cache ?? true) && this.#slicing;
    this.#cacheSize = options.cacheSize ?? 100_000;
    this.#counter = options.last?.counter ?? 0;
    this.#countedHash = options.last?.hash;
    this.load(options.set ?? compilePolicies(DEFAULT_POLICY_SOURCES, true));
  }

  get version(): PolicyVersion {
    return this.#version;
  }
  /** The running set. */
  get set(): CompiledPolicySet {
    return this.#set;
  }

  /**
   * Runs `change` once the changes queued before it have settled. Local changes and reloads from the
   * store take turns on one node: a reload that read the store before a local change committed must
   * not be applied after it (it would bring the old set back for a moment).
   */
  takeTurn<T>(change: () => Promise<T>): Promise<T> {
    const next = this.#turn.then(change, change);
    this.#turn = next.catch(() => undefined);
    return next;
  }

  /**
   * Makes `set` the running set. Returns its version; the counter grows only when the content differs
   * from the last counted set. Resource attributes set through the admin API stay in force.
   */
  load(set: CompiledPolicySet, counter?: number): PolicyVersion {
    this.#version = this.preview(set, counter);
    this.#counter = this.#version.counter;
    this.#countedHash = set.hash;
    this.#set = set;
    this.#generation++;
    this.#byId = new Map(set.policies.map((p) => [p.id, p]));
    this.#index = new PolicyIndex(set.policies);
    this.#resetSlices();
    this.#described = new Map(set.resources.map((spec) => [spec.id, { spec, version: ++this.#resourceSeq }]));
    const all = cedar.preparsePolicySet(`${this.#prefix}.all`, {
      staticPolicies: Object.fromEntries(set.policies.map((p) => [p.id, p.text])),
    });
    if (all.type === 'failure') throw new Error(`cedar: ${all.errors[0]?.message ?? 'cannot load policies'}`);
    return this.#version;
  }

  /**
   * The version `set` would get if it were loaded now; `counter` given, the version it has (the stored
   * set's, which another node may have counted).
   */
  preview(set: CompiledPolicySet, given?: number): PolicyVersion {
    const counter = given ?? (set.hash === this.#countedHash ? this.#counter : this.#counter + 1);
    return {
      id: `${counter}-${set.hash.slice(0, 12)}`,
      counter,
      hash: set.hash,
      builtIn: set.builtIn,
      policies: set.policies.length,
    };
  }

  /**
   * Sets (or with `undefined` clears) the admin-API attributes of one API; the next decision about it
   * sees them. Returns the resource's new entity version.
   */
  setResource(id: string, spec: ResourceSpec | undefined): number {
    const version = ++this.#resourceSeq;
    if (spec) this.#overrides.set(id, { spec, version });
    else if (this.#overrides.delete(id)) {
      // Back to the description (or the default), under a version never used before.
      const described = this.#described.get(id);
      if (described) this.#described.set(id, { spec: described.spec, version });
    }
    return version;
  }

  /**
   * Makes `specs` the admin-API attributes of every API (as the store holds them): those that changed
   * get a new entity version, those that are gone fall back to the description.
   */
  replaceResources(specs: readonly ResourceSpec[]): void {
    const next = new Map(specs.map((s) => [s.id, s]));
    for (const id of [...this.#overrides.keys()]) if (!next.has(id)) this.setResource(id, undefined);
    for (const [id, spec] of next) {
      const held = this.#overrides.get(id)?.spec;
      if (
        !held ||
        held.sensitivity !== spec.sensitivity ||
        held.environment !== spec.environment ||
        held.owner !== spec.owner
      )
        this.setResource(id, spec);
    }
  }

  resource(id: string): ResourceSpec {
    return (
      (this.#overrides.get(id) ?? this.#described.get(id))?.spec ?? {
        id,
        sensitivity: 'unrated',
        environment: '',
        owner: '',
      }
    );
  }

  /** Every described or overridden API, with where its attributes come from. */
  resources(): Array<ResourceSpec & { source: 'admin' | 'file' }> {
    const out = new Map<string, ResourceSpec & { source: 'admin' | 'file' }>();
    for (const [id, r] of this.#described) out.set(id, { ...r.spec, source: 'file' });
    for (const [id, r] of this.#overrides) out.set(id, { ...r.spec, source: 'admin' });
    return [...out.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  #resourceVersion(id: string): number {
    return (this.#overrides.get(id) ?? this.#described.get(id))?.version ?? 0;
  }

  /** The entity version of one API's attributes: changes whenever they change. */
  resourceVersion(id: string): number {
    return this.#resourceVersion(id);
  }

  /** Grows with every change of any API's attributes (a load or an admin-API update). */
  get resourceGeneration(): number {
    return this.#resourceSeq;
  }

  /** `decide({principal, action, resource, context}) → {decision, reasons, policyVersion}`. */
  decide(req: DecisionRequest): Decision {
    this.stats.decisions++;
    const slice = this.#slice(req);
    let cacheKey: string | undefined;
    if (this.#caching) {
      let fields: unknown = req.context;
      if (slice.fields !== 'all') {
        const read: unknown[] = [];
        for (const f of slice.fields) read.push(req.context[f as keyof PolicyContext]);
        fields = read;
      }
      cacheKey = JSON.stringify([
        this.#generation,
        req.action,
        req.principal.type,
        req.principal.id,
        req.principal.version,
        req.resource,
        this.#resourceVersion(req.resource),
        fields,
      ]);
      const hit = this.#cache.get(cacheKey);
      if (hit) {
        this.stats.cacheHits++;
        return { ...hit, cached: true };
      }
    }
    const decision = this.#evaluate(req, slice);
    if (cacheKey !== undefined) {
      if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value as string);
      this.#cache.set(cacheKey, decision);
    }
    return decision;
  }

  /** Why a request is allowed or denied: the slice, the determining policies and any errors. */
  explain(req: DecisionRequest): Explanation {
    const slice = this.#slice(req);
    const d = this.#evaluate(req, slice);
    const src = (p: CompiledPolicy) => ({ id: p.id, effect: p.effect, file: p.file, line: p.line });
    return {
      ...d,
      considered: slice.policies.map(src),
      determining: d.reasons.flatMap((id) => {
        const p = this.#byId.get(id);
        return p ? [{ ...src(p), text: p.text }] : [];
      }),
      resource: this.resource(req.resource),
      context: req.context,
    };
  }

  #resetSlices(): void {
    this.#slices.clear();
    this.#sets.clear();
    this.#cache.clear();
  }

  #slice(req: DecisionRequest): Slice {
    if (!this.#slicing) {
      return { setId: `${this.#prefix}.all`, policies: this.#set.policies, ...ALL_READS };
    }
    const sliceKey = JSON.stringify([req.action, req.principal.type, req.principal.id, req.resource]);
    const known = this.#slices.get(sliceKey);
    if (known) return known;
    if (this.#slices.size >= MAX_SLICES) this.#resetSlices();
    const indices = this.#index.slice({ type: req.principal.type, id: req.principal.id }, req.action, {
      type: 'Api',
      id: req.resource,
    });
    const policies = indices.map((i) => this.#set.policies[i]!);
    let setId: string | undefined;
    if (policies.length > 0) {
      const idsKey = indices.join(',');
      setId = this.#sets.get(idsKey);
      if (setId === undefined) {
        setId = `${this.#prefix}.${this.#sets.size}`;
        const r = cedar.preparsePolicySet(setId, {
          staticPolicies: Object.fromEntries(policies.map((p) => [p.id, p.text])),
        });
        if (r.type === 'failure') throw new Error(`cedar: ${r.errors[0]?.message ?? 'cannot load policies'}`);
        this.#sets.set(idsKey, setId);
      }
    }
    const fields = union(policies, (p) => p.reads.context);
    const slice: Slice = {
      setId,
      policies,
      fields: fields === 'all' ? 'all' : [...fields].sort(),
      principal: union(policies, (p) => p.reads.principal),
      resource: union(policies, (p) => p.reads.resource),
    };
    this.#slices.set(sliceKey, slice);
    return slice;
  }

  #evaluate(req: DecisionRequest, slice: Slice): Decision {
    const policyVersion = this.#version.id;
    const setId = slice.setId;
    if (setId === undefined)
      return { decision: 'deny', reasons: [], errors: [], policyVersion, cached: false };
    this.stats.evaluations++;
    const r = this.resource(req.resource);
    const tags = slice.principal === 'all' || slice.principal.has('#tags');
    const entities: EntityJson[] = [
      {
        uid: { type: req.principal.type, id: req.principal.id },
        attrs: only(req.principal.attrs, slice.principal) as EntityJson['attrs'],
        parents: [],
        ...(tags && req.principal.tags ? { tags: req.principal.tags } : {}),
      },
      {
        uid: { type: 'Api', id: req.resource },
        attrs: only(
          { sensitivity: r.sensitivity, environment: r.environment, owner: r.owner },
          slice.resource,
        ) as EntityJson['attrs'],
        parents: [],
      },
      {
        uid: { type: 'Action', id: req.action },
        attrs: {},
        parents: ACTION_PARENTS[req.action],
      },
    ];
    const answer = cedar.statefulIsAuthorized({
      principal: { type: req.principal.type, id: req.principal.id },
      action: { type: 'Action', id: req.action },
      resource: { type: 'Api', id: req.resource },
      context: cedarContext(req.context, slice.fields),
      preparsedPolicySetId: setId,
      entities,
    });
    if (answer.type === 'failure') {
      return {
        decision: 'deny',
        reasons: [],
        errors: answer.errors.map((e) => e.message.slice(0, 300)),
        policyVersion,
        cached: false,
      };
    }
    const { decision, diagnostics } = answer.response;
    const errors: string[] = [];
    const failedForbids: string[] = [];
    for (const e of diagnostics.errors) {
      errors.push(`${e.policyId}: ${e.error.message.slice(0, 300)}`);
      if (this.#byId.get(e.policyId)?.effect === 'forbid') failedForbids.push(e.policyId);
    }
    // Cedar skips a policy that errors; a forbid that could not be evaluated must not let a request through.
    if (decision === 'allow' && failedForbids.length > 0) {
      return { decision: 'deny', reasons: failedForbids, errors, policyVersion, cached: false };
    }
    const reasons = diagnostics.reason.slice();
    reasons.sort();
    return { decision, reasons, errors, policyVersion, cached: false };
  }
}
