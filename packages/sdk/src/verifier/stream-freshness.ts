/**
 * Whether the revocation set is current, from what the event stream delivered. The set counts as
 * current only once an (re)opened stream has caught up to the server's head (the `head` it announced,
 * or a snapshot, or — from a server that announces no head — its first heartbeat, which follows the
 * catch-up). Until then the last time it was current still decides staleness, so a verifier cut off
 * past its bound keeps refusing until it has heard every revocation it missed.
 */
export class StreamFreshness {
  readonly #stalenessMs: number;
  readonly #now: () => number;
  #synced = false;
  /** How far the catch-up of the open connection goes; undefined until announced. */
  #head: number | undefined;
  #lastHeard = Number.NEGATIVE_INFINITY;

  constructor(o: { stalenessMs: number; now: () => number }) {
    this.#stalenessMs = o.stalenessMs;
    this.#now = o.now;
  }

  /** The open stream has delivered everything up to the server's head as it opened. */
  get synced(): boolean {
    return this.#synced;
  }

  /** When the stream last proved the set current (ms, the verifier's clock). */
  get lastHeardMs(): number {
    return this.#lastHeard;
  }

  /** Past the staleness bound: tokens are to be refused (or introspected). */
  stale(): boolean {
    return this.#now() - this.#lastHeard > this.#stalenessMs;
  }

  /** A connection opened: it has to catch up before it counts. */
  opened(): void {
    this.#synced = false;
    this.#head = undefined;
  }

  closed(): void {
    this.#synced = false;
  }

  /** The server's head as the connection opened; anything else than a number: never caught up by ids. */
  announced(head: unknown): void {
    this.#head = typeof head === 'number' ? head : Number.POSITIVE_INFINITY;
  }

  /** A snapshot is the whole state as of its id: the stream is current from here on. */
  snapshot(): void {
    this.#synced = true;
  }

  /** An event was applied; `lastEventId` is the newest id the verifier holds. */
  received(lastEventId: string | undefined): void {
    if (
      !this.#synced &&
      this.#head !== undefined &&
      lastEventId !== undefined &&
      Number(lastEventId) >= this.#head
    )
      this.#synced = true;
    this.#heard();
  }

  heartbeat(): void {
    if (this.#head === undefined) this.#synced = true;
    this.#heard();
  }

  #heard(): void {
    if (this.#synced) this.#lastHeard = this.#now();
  }
}
