import type { Clock } from '../clock.js';
import type { Store } from '../store/store.js';

/** Request budgets (per client, per source address): token buckets, refilled continuously. */
export interface RateLimiter {
  /** Takes one request from `key`'s bucket; 0 when allowed, else the whole seconds to wait. */
  take(key: string): number | Promise<number>;
}

/** Buckets in this process's memory: the limiter of a single node. Bounded: idle buckets are dropped. */
export class MemoryRateLimiter implements RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;

  constructor(ratePerSecond: number, burst: number, clock: Clock) {
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#clock = clock;
  }

  take(key: string): number {
    const b = this.#refill(key);
    if (b.tokens < 1) return this.#waitFor(b);
    b.tokens -= 1;
    return 0;
  }

  /** Like `take` but takes nothing: 0 while `key` has a request left, else the whole seconds to wait. */
  wait(key: string): number {
    const b = this.#buckets.get(key);
    return b === undefined ? 0 : this.#waitFor(this.#refill(key));
  }

  #refill(key: string): { tokens: number; at: number } {
    const now = this.#clock.now();
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= 100_000) this.#sweep(now);
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(key, b);
    }
    // A clock set back (a test's, or a corrected system clock) refills nothing and charges nothing.
    b.tokens = Math.min(this.#burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.#rate);
    b.at = Math.max(b.at, now);
    return b;
  }

  #waitFor(b: { tokens: number }): number {
    return b.tokens < 1 ? Math.max(1, Math.ceil((1 - b.tokens) / this.#rate)) : 0;
  }

  #sweep(now: number): void {
    for (const [k, b] of this.#buckets)
      if (now - b.at > (this.#burst / this.#rate) * 1000) this.#buckets.delete(k);
  }
}

/** How long a node may hand out requests it leased from the shared bucket; leftovers are then dropped. */
export const LEASE_MS = 1000;
/** The most requests one lease takes, whatever the burst. */
const MAX_LEASE = 256;

interface Lease {
  /** Requests leased and not yet handed out. */
  tokens: number;
  /** Until when (this node's clock) they may be handed out. */
  until: number;
  /** How many the next lease asks for: doubles while leases run out before they lapse. */
  size: number;
  /** Requests waiting for the lease in flight, in arrival order. */
  queue: { resolve(wait: number): void; reject(err: unknown): void }[];
  busy: boolean;
}

/**
 * Buckets in the store, shared by every node on it: a client spreading its requests over N nodes gets
 * the budget once, not N times. A node does not ask the store for every request: it leases several of
 * a client's requests at once (`Store.leaseRate`, one statement, no write lock) and hands them out from
 * memory for at most `LEASE_MS`. A busy client's lease grows from 1 to an eighth of its burst (at most
 * 256), so the store sees one statement per that many requests; an idle client's shrinks back.
 *
 * Tolerance, the same on any number of nodes: nothing is admitted that the shared bucket did not grant,
 * and a grant is spent within `LEASE_MS` of it, so in any interval the cluster admits at most
 * `burst + rate × (interval + 1 s)` — one second of refill beyond the bucket's own bound. The other way,
 * requests leased by one node and not used are lost to the client for under a second: at most
 * (nodes − 1) leases, each at most an eighth of the burst, may be refused elsewhere meanwhile. Concurrent
 * requests of one client on one node wait for one lease together. When the store is unreachable the
 * requests waiting fail as unavailable; requests already leased are still handed out (for under a second).
 */
export class StoreRateLimiter implements RateLimiter {
  readonly #store: Pick<Store, 'leaseRate'>;
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;
  readonly #maxLease: number;
  readonly #leases = new Map<string, Lease>();

  constructor(store: Pick<Store, 'leaseRate'>, ratePerSecond: number, burst: number, clock: Clock) {
    this.#store = store;
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#clock = clock;
    this.#maxLease = Math.max(1, Math.min(MAX_LEASE, Math.floor(burst / 8)));
  }

  take(key: string): number | Promise<number> {
    const now = this.#clock.now();
    let l = this.#leases.get(key);
    if (!l) {
      if (this.#leases.size >= 100_000) this.#sweep(now);
      l = { tokens: 0, until: 0, size: 1, queue: [], busy: false };
      this.#leases.set(key, l);
    }
    if (l.queue.length === 0 && l.tokens >= 1 && now < l.until) {
      l.tokens -= 1;
      return 0;
    }
    const lease = l;
    return new Promise<number>((resolve, reject) => {
      lease.queue.push({ resolve, reject });
      if (!lease.busy) void this.#lease(key, lease);
    });
  }

  /** Leases for the requests waiting until none is left: each gets one, or all get the bucket's wait. */
  async #lease(key: string, l: Lease): Promise<void> {
    l.busy = true;
    try {
      while (l.queue.length > 0) {
        const now = this.#clock.now();
        // Grow while leases are used up before they lapse; shrink after one lapsed with requests left.
        l.size = now < l.until ? Math.min(this.#maxLease, l.size * 2) : Math.max(1, Math.ceil(l.size / 2));
        l.tokens = 0;
        const want = Math.min(this.#maxLease, Math.max(l.size, l.queue.length));
        const got = await this.#store.leaseRate(`client:${key}`, this.#rate, this.#burst, want, now);
        l.tokens = got.granted;
        l.until = this.#clock.now() + LEASE_MS;
        while (l.tokens >= 1 && l.queue.length > 0) {
          l.tokens -= 1;
          l.queue.shift()!.resolve(0);
        }
        if (l.queue.length > 0 && got.granted < want) {
          // The shared bucket is empty: every request waiting is refused with its wait.
          for (const w of l.queue.splice(0)) w.resolve(Math.max(1, got.wait));
        }
      }
    } catch (err) {
      for (const w of l.queue.splice(0)) w.reject(err);
    } finally {
      l.busy = false;
    }
  }

  #sweep(now: number): void {
    for (const [k, l] of this.#leases) if (!l.busy && now >= l.until + LEASE_MS) this.#leases.delete(k);
  }
}
