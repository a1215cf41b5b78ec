/**
 * What the console's overview reads from the admin API (docs/console.md): the figures, the live
 * counters between two readings, and the preview of a revocation before it is sent.
 */

/** `GET /admin/v1/overview`. Counts are cut at a bound per kind of event; `truncated` says so. */
export interface AdminOverview {
  /** Milliseconds since the epoch when the answer was drawn. */
  now: number;
  window_minutes: number;
  /** The start of each minute of the window (milliseconds), oldest first; `issued` and `refused` follow it. */
  minutes: number[];
  issued: number[];
  refused: number[];
  refusals_by_reason: Array<{ reason: string; count: number }>;
  active_tokens: number;
  recent_tokens: Array<{
    jti: string;
    sub: string;
    aud: string;
    cls: string;
    iat: number;
    exp: number;
    revoked: boolean;
  }>;
  revocations: { total: number; in_window: number };
  findings_open: number;
  /** Registered workloads by state. */
  workloads: Record<string, number>;
  verifiers: { subscribed_in_window: number; connected_here: number };
  health: { store: 'ok' | 'unavailable'; store_ms: number | null; audit_head: number | null };
  truncated: boolean;
}

/** `POST /admin/v1/revocations/preview`: the live, unrevoked tokens a predicate would hit. */
export interface RevocationPreview {
  live_tokens: number;
  examined: number;
  truncated: boolean;
  /** Up to ten of their jtis. */
  sample: string[];
}

/** What one read of the audit log adds to the overview's counters. */
export interface LiveCounts {
  issued: number;
  refused: number;
  revoked: number;
}

/** One `counts` frame of `GET /admin/v1/events/live`: what happened since the last one. */
export interface LiveCountsFrame extends LiveCounts {
  /** Milliseconds since the epoch when the node read it. */
  at: number;
  /** The audit log's seq the read reached. */
  seq: number;
  truncated: boolean;
}
