import type { Clock } from '../clock.js';
import type { Store } from '../store/store.js';

/** How long a successful write probe vouches for the store: at most one probe write per second. */
export const WRITE_PROBE_INTERVAL_MS = 1000;

/**
 * Whether the store accepts writes, for `/readyz`. A store that answers reads can still refuse every
 * write (a full disk, a read-only file system, another process holding the write lock); a node that
 * issues nothing then must leave the load balancer. Each check commits one row (`Store.probeWrite`),
 * except within WRITE_PROBE_INTERVAL_MS of a successful one; concurrent checks share one probe. A
 * failure is never cached: the next check probes again, so the node comes back by itself as soon as
 * the store takes writes again.
 */
export class WriteReadiness {
  readonly #store: Pick<Store, 'probeWrite'>;
  readonly #clock: Clock;
  #okAt: number | undefined;
  #inFlight: Promise<boolean> | undefined;

  constructor(store: Pick<Store, 'probeWrite'>, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  /** True when the store took a write within the interval (or takes the probe now). Never rejects. */
  accepts(): Promise<boolean> {
    const now = this.#clock.now();
    if (this.#okAt !== undefined && now >= this.#okAt && now - this.#okAt < WRITE_PROBE_INTERVAL_MS)
      return Promise.resolve(true);
    this.#inFlight ??= this.#store.probeWrite(now).then(
      () => {
        this.#okAt = now;
        return true;
      },
      () => {
        this.#okAt = undefined;
        return false;
      },
    );
    const probe = this.#inFlight;
    void probe.finally(() => {
      if (this.#inFlight === probe) this.#inFlight = undefined;
    });
    return probe;
  }
}
