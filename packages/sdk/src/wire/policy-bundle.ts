/**
 * The policy bundle: what a resource server needs to decide request-time policy locally. Served at
 * `GET /v1/policy/bundle?audience=<API>` to verifiers of that API as a compact JWS with this `typ`,
 * signed by a policy-bundle key: never by a key that signs tokens, so no access-token verifier (which
 * holds only the keys of `/.well-known/jwks.json`) can take a bundle for a token. A `policy.bundle`
 * event (`EventType.policyBundle`) on the event stream announces each new version.
 */
export const POLICY_BUNDLE_TYP = 'writ-policy-bundle+jwt';
export const POLICY_BUNDLE_PATH = '/v1/policy/bundle';
/** The JWKS of the policy-bundle keys (public, like the token JWKS, and apart from it). */
export const POLICY_BUNDLE_KEYS_PATH = '/v1/policy/jwks';

/** An entity named in a policy's scope. */
export interface BundleEntityRef {
  type: string;
  id: string;
}

/** A policy's principal scope, reduced to what slicing needs (`in` is `==`: Writ's entities have no parents). */
export type BundlePrincipalScope =
  | { op: 'all' }
  | { op: 'eq'; entity: BundleEntityRef }
  | { op: 'in'; entities: BundleEntityRef[] }
  | { op: 'is'; type: string; entity?: BundleEntityRef };

/** One Cedar policy of the bundle, as the server accepted it. */
export interface BundlePolicy {
  id: string;
  effect: 'permit' | 'forbid';
  text: string;
  /** Who it can apply to, and for which request actions: the verifier hands Cedar only those that can. */
  principal: BundlePrincipalScope;
  actions: string[];
}

/** The API the bundle is for, as policies see it (`Api` entity). */
export interface BundleResource {
  id: string;
  sensitivity: string;
  environment: string;
  owner: string;
  /** Grows whenever the attributes change (a `PUT /admin/v1/resources/{id}`). */
  version: number;
}

/** A workload that may hold tokens for the API (`Workload` entity): registry attributes, config tags. */
export interface BundleWorkload {
  id: string;
  owner: string;
  environment: string;
  state: string;
  classes: string[];
  tags: Record<string, string>;
}

/** The payload of a policy bundle JWS. */
export interface PolicyBundleClaims {
  iss: string;
  /** The API (audience URI) the bundle is for. */
  aud: string;
  iat: number;
  /** The bundle is not taken, nor decided with, after this (a few minutes after `iat`). */
  exp: number;
  /**
   * Grows with every change of what any bundle holds (policies, resource attributes, the registry);
   * a verifier never goes back to a lower one.
   */
  version: number;
  /** The policy set's version (`<counter>-<hash>`), as `GET /admin/v1/policy` shows it. */
  policy_version: string;
  /** True while the server runs its built-in set (no request-time permit: everything is denied). */
  built_in: boolean;
  /** Writ's Cedar schema. */
  schema: string;
  /** The policies whose scope can match a request action on this API (the others cannot apply). */
  policies: BundlePolicy[];
  /** Context fields the policies read (sorted), or `all`: decisions are cached on these values. */
  context_reads: string[] | 'all';
  /**
   * What the server's context record holds when nothing is known (`""`, `0`, records of `""`), for
   * every field but the time and the source address: the verifier starts from it, so a field added to
   * the schema is present in its decisions too.
   */
  context_defaults: Record<string, unknown>;
  resource: BundleResource;
  /** Workloads whose token classes allow this audience. Any other principal is denied. */
  workloads: BundleWorkload[];
}
