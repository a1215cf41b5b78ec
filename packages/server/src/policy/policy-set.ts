/** Attributes of one API (a token audience) as policies see it. */
export interface StoredResource {
  id: string;
  sensitivity: string;
  environment: string;
  owner: string;
}

/**
 * The running policy set, shared by every node: the sources it was compiled from (`null`: the built-in
 * set), its version, and the base of the policy bundle versions verifiers see.
 */
export interface StoredPolicySet {
  sources: { files: Array<{ file: string; text: string }>; resources: StoredResource[] } | null;
  counter: number;
  /** SHA-256 (hex) of the compiled set (see docs/policy.md, Versions). */
  hash: string;
  /** Hash of the set last applied from a config directory at start; null when none was. */
  configHash: string | null;
  /** Milliseconds: bundle versions are this plus an event-log seq (fixed when the store first held a set). */
  bundleEpoch: number;
  /** Milliseconds. */
  updatedAt: number;
}

/** How many applied policy versions the store keeps (the newest; older ones are pruned as new ones land). */
export const POLICY_VERSIONS_KEPT = 50;

/** One applied policy version as the version list shows it. */
export interface PolicyVersionSummary {
  /** `<counter>-<first 12 hex of the hash>`, as `policy.loaded` names it. */
  id: string;
  counter: number;
  /** Milliseconds: when it was applied. */
  created: number;
  /** Who applied it (`operator:<name>`, `startup`), when known. */
  actor: string | null;
  builtIn: boolean;
  /** How many policies it holds. */
  policies: number;
}

/** One applied policy version with the text of its source files (the built-in set's own, when built in). */
export interface StoredPolicyVersion extends PolicyVersionSummary {
  files: Array<{ file: string; text: string }>;
}
