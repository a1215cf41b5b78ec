import type { Clock } from '../clock.js';
import { temporarilyUnavailable } from '../errors.js';
import type { StoreCluster } from '../store/store.js';

/** How often a node measures its clock against the database's. */
export const SKEW_CHECK_MS = 15_000;

/** What `/readyz` says about this node's clock. */
export interface ClockReport {
  /**
   * The clock shared times are compared with: `database` (the PostgreSQL server's), or `node` (the
   * embedded store: one process, one clock; nothing to disagree with).
   */
  reference: 'database' | 'node';
  /** Milliseconds this node's clock is ahead of the database's (negative: behind); null: not measured. */
  skew_ms: number | null;
  /** Milliseconds: past this the node is not ready and issues no token (`cluster.max_clock_skew`). */
  max_skew_ms: number;
}

/**
 * This node's clock against the database's. Nodes still write their own time into shared rows (token
 * `iat`, task deadlines, assertion expiries), and the store's comparisons can only make up for a bounded
 * skew: past the bound the node stops issuing tokens and reports not ready, so the load balancer drains
 * it until its time synchronization is fixed.
 */
export class ClockSkew {
  readonly #cluster: Pick<StoreCluster, 'databaseTime'> | undefined;
  readonly #clock: Clock;
  readonly #maxMs: number;
  readonly #onMeasure: (skewMs: number) => void;
  #reference: ClockReport['reference'];
  #skewMs: number | undefined;

  constructor(o: {
    cluster: Pick<StoreCluster, 'databaseTime'> | undefined;
    clock: Clock;
    /** Seconds (`cluster.max_clock_skew`). */
    maxSkew: number;
    onMeasure?: (skewMs: number) => void;
  }) {
    this.#cluster = o.cluster;
    this.#clock = o.clock;
    this.#maxMs = o.maxSkew * 1000;
    this.#onMeasure = o.onMeasure ?? (() => undefined);
    this.#reference = o.cluster ? 'database' : 'node';
  }

  /**
   * One round trip: this node's time at its midpoint minus the database's. A round trip longer than the
   * bound cannot tell a skew within it, so such a sample is dropped and the last one stands. Rejects when
   * the store is unavailable.
   */
  async measure(): Promise<void> {
    if (!this.#cluster) return;
    const sent = this.#clock.now();
    const database = await this.#cluster.databaseTime();
    const received = this.#clock.now();
    if (database === undefined) {
      // The store takes the callers' times (a test on a fake clock): there is no other clock.
      this.#reference = 'node';
      this.#skewMs = undefined;
      return;
    }
    if (received - sent > this.#maxMs) return;
    this.#skewMs = Math.round((sent + received) / 2 - database);
    this.#onMeasure(this.#skewMs);
  }

  /** Why this node must not issue tokens now (safe to send to a client), or undefined while within the bound. */
  refusal(): string | undefined {
    const skew = this.#skewMs;
    if (skew === undefined || Math.abs(skew) <= this.#maxMs) return undefined;
    const by = `${(Math.abs(skew) / 1000).toFixed(1)}s ${skew > 0 ? 'ahead of' : 'behind'}`;
    return `this node's clock is ${by} the database's, more than the ${this.#maxMs / 1000}s allowed (cluster.max_clock_skew); retry on another node`;
  }

  report(): ClockReport {
    return { reference: this.#reference, skew_ms: this.#skewMs ?? null, max_skew_ms: this.#maxMs };
  }
}

/**
 * Refuses to issue (503 `temporarily_unavailable`, audited by the caller) while this node's clock is past
 * the bound: its tokens would carry an `iat` and `exp` the rest of the cluster disagrees with.
 */
export function refuseWhileSkewed(skew: ClockSkew): void {
  const why = skew.refusal();
  if (why) throw temporarilyUnavailable(why, { reason: 'clock_skew', skew_ms: skew.report().skew_ms });
}
