export interface TokenClass {
  name: string;
  description?: string;
  /** Seconds. */
  maxTtl: number;
  /** Seconds. */
  defaultTtl: number;
  audiences: string[];
  scopes: string[];
  /** Scopes granted when a request names none; empty means a scope is required. */
  defaultScopes: string[];
  /**
   * Holder binding of issued tokens: `dpop` (default), `mtls` (bound to the client certificate the
   * workload authenticated with, RFC 8705 §3) or `bearer` (an exception, flagged in audit).
   */
  binding: 'dpop' | 'mtls' | 'bearer';
  /** Seconds: a task of this class, and every token renewed in it, ends at most this long after it opened. */
  renewalMaxLifetime: number;
  /** Workloads that may act for workloads of this class through token exchange (RFC 8693 `act`). */
  delegationActors: string[];
}
