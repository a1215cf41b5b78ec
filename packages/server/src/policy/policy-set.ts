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
