/**
 * Where this node's policy bundle stands: the base of bundle versions (from the stored policy set, the
 * same on every node) and the event-log seq of the last change of the policy set, an API's attributes
 * or the registry that is in effect on this node (for a node started since, the log's head when it
 * started). Versions are `epoch + seq`, so every node that has applied a change gives it one version.
 */
export class BundlePosition {
  #epoch: number | undefined;
  #seq = 0;

  /** Called at start, once the stored policy set is loaded: versions are `epoch + seq` from here on. */
  setBase(epoch: number, seq: number): void {
    this.#epoch = epoch;
    this.#seq = seq;
  }

  /** The change logged at `seq` is in effect on this node (its own, or another node's it has reloaded). */
  noteChange(seq: number): void {
    if (this.#epoch !== undefined && seq > this.#seq) this.#seq = seq;
  }

  /**
   * The base of versions. A node whose engine started without a stored set (a test's own context)
   * takes the clock's milliseconds at the first question, `now`.
   */
  epoch(now: number): number {
    this.#epoch ??= now;
    return this.#epoch;
  }

  /** The bundle version now. */
  version(now: number): number {
    return this.epoch(now) + this.#seq;
  }
}
