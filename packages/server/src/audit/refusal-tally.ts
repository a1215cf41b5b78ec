import type { AuditEventType } from './audit-types.js';

/** One kind of refusal from one source: what aggregated refusals are counted by. */
export interface TallyKey {
  /** The audit event type, `<endpoint>.refused` (or `<endpoint>.challenged`). */
  type: AuditEventType;
  /** The source address's budget key, or the authenticated client for its rate-limit refusals. */
  who: string;
  /** The audit actor: `anonymous`, or that client. */
  actor: string;
  error: string;
  reason: string;
  status: number;
}

/** Refusals of one kind in one window that were counted but not written one by one. */
export interface TallySummary extends TallyKey {
  count: number;
  /** Milliseconds, by the injected clock. */
  first: number;
  last: number;
}

interface Window {
  key: TallyKey;
  opened: number;
  count: number;
  first: number;
  last: number;
}

/**
 * Counts floods of refusals so the audit log records them without one row each: the first refusal of
 * a kind (type, source, error, reason) in a window is written as usual; the rest of that window are
 * counted and written as one summary row (count, first and last time) when the window ends. Bounded:
 * past `maxKinds` kinds in flight, new kinds share one overflow kind per type.
 */
export class RefusalTally {
  readonly #windows = new Map<string, Window>();
  readonly #ended: TallySummary[] = [];
  readonly #windowMs: number;
  readonly #maxKinds: number;

  constructor(windowMs: number, maxKinds = 10_000) {
    this.#windowMs = windowMs;
    this.#maxKinds = maxKinds;
  }

  /** Counts one refusal at `now`; true when it opens its kind's window and is to be written now. */
  count(key: TallyKey, now: number): boolean {
    const id = kindOf(key);
    const open = this.#windows.get(id);
    if (open && now - open.opened < this.#windowMs) {
      tally(open, now);
      return false;
    }
    if (open) {
      // Its window ended with refusals not yet written: they go in the next summaries.
      if (open.count > 0) this.#ended.push(summary(open));
      this.#windows.delete(id);
    }
    if (this.#windows.size >= this.#maxKinds) {
      const overflow: TallyKey = {
        type: key.type,
        who: '*',
        actor: 'anonymous',
        error: '*',
        reason: 'overflow',
        status: key.status,
      };
      let w = this.#windows.get(kindOf(overflow));
      if (!w) {
        w = { key: overflow, opened: now, count: 0, first: now, last: now };
        this.#windows.set(kindOf(overflow), w);
      }
      tally(w, now);
      return false;
    }
    this.#windows.set(id, { key, opened: now, count: 0, first: now, last: now });
    return true;
  }

  /** Summaries of windows that ended by `now` (of every window with `all`), each handed out once. */
  due(now: number, all = false): TallySummary[] {
    const out = this.#ended.splice(0);
    for (const [id, w] of this.#windows) {
      if (!all && now - w.opened < this.#windowMs) continue;
      if (w.count > 0) out.push(summary(w));
      this.#windows.delete(id);
    }
    return out;
  }
}

const kindOf = (k: TallyKey): string => JSON.stringify([k.type, k.who, k.actor, k.error, k.reason, k.status]);

function tally(w: Window, now: number): void {
  if (w.count === 0) w.first = now;
  w.count += 1;
  w.last = now;
}

function summary(w: Window): TallySummary {
  return { ...w.key, count: w.count, first: w.first, last: w.last };
}
