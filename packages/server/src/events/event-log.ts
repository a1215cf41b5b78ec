import { performance } from 'node:perf_hooks';
import type { LogEvent, LogEventData, LogEventType } from '@writ/sdk/wire';
import type { Clock } from '../clock.js';
import type { Store } from '../store/store.js';
import type { StreamEvent } from './stream-event.js';

/** An event as the log holds it: its seq, its time (milliseconds) and what was appended. */
export type LoggedEvent<T extends LogEventType = LogEventType> = { seq: number; ts: number } & LogEvent<T>;

export type EventListener = (e: LoggedEvent) => void;

/**
 * The event log port: durable (rows in the store, written in the transaction that made the change),
 * ordered by seq, resumable. `notify()` after a commit wakes subscribers; notifications only wake — the
 * log is the truth, so a lost wake-up is repaired by the next one or by the periodic poll.
 */
export interface EventLog {
  /** Appends inside `tx`; the type names the payload, so a producer cannot log what no consumer knows. */
  append<T extends LogEventType>(tx: Store, type: T, data: LogEventData[T]): Promise<LoggedEvent<T>>;
  notify(): void;
  /** Delivers every event after `fromSeq`, in order, then new ones as they commit. */
  subscribe(fromSeq: number, listener: EventListener, ready?: () => Promise<void>): () => void;
  read(afterSeq: number, limit: number): Promise<LoggedEvent[]>;
  bounds(): Promise<{ first: number; last: number }>;
  /**
   * Milliseconds since this process last read the log from the store (it does so every poll interval).
   * A node that cannot read it does not know what other nodes appended, so it must not vouch for it.
   */
  sinceLastRead(): number;
  close(): void;
}

interface Subscriber {
  next: number;
  listener: EventListener;
  catchingUp: boolean;
  /** Resolves when the subscriber can take the next page of a catch-up. */
  ready: (() => Promise<void>) | undefined;
}

/** Events handed to a subscriber that is catching up before it is asked whether it can take more. */
const CATCH_UP_PAGE = 1000;

/**
 * Subscribers handed a batch between two turns of the event loop. Each hand-off is a socket write (a
 * system call once the tick ends): the soak benchmark's 100 streams that never read held the loop for
 * the whole fan-out of every revocation, and a request that arrived meanwhile waited behind all of it.
 */
const FAN_OUT_SLICE = 25;

/**
 * The embedded event log: the store's events table plus an in-process pump. The pump reads each new
 * batch once into a bounded window of recent events and fans it out; a subscriber that starts behind
 * reads the store until it reaches the window, then joins the fan-out without a gap (single-threaded
 * hand-off).
 */
export function createEventLog(
  store: Store,
  clock: Clock,
  options: { pollMs?: number; onError?: (err: unknown) => void } = {},
): EventLog {
  const subscribers = new Set<Subscriber>();
  const WINDOW = 10_000;
  let recent: LoggedEvent[] = [];
  let delivered = -1;
  let pumping: Promise<void> | undefined;
  let again = false;
  // Elapsed time, not a date: a test's clock jumping ahead must not look like an outage.
  let readAt = performance.now();

  /**
   * Hands one event to one subscriber; false once the subscriber is gone. A subscriber may unsubscribe
   * from inside its listener (a stream that just ended), and then hears nothing more of the same batch;
   * a listener that throws is dropped, and the others go on.
   */
  const hand = (s: Subscriber, e: LoggedEvent): boolean => {
    if (!subscribers.has(s)) return false;
    try {
      s.listener(e);
    } catch (err) {
      subscribers.delete(s);
      options.onError?.(err);
      return false;
    }
    s.next = e.seq + 1;
    return subscribers.has(s);
  };

  /** Delivers from the window if it reaches back to `s.next`; false when the subscriber must read the store. */
  const fromWindow = (s: Subscriber): boolean => {
    if (s.next > delivered) return true;
    const first = recent[0];
    // An empty window (nothing pumped since this process started) holds none of what the subscriber lacks.
    if (first === undefined || first.seq > s.next) return false;
    // From the subscriber's place on: walking the whole window for every subscriber on every batch
    // cost 10,000 steps per stream per revocation once the window was full.
    for (let i = firstAtOrAfter(recent, s.next); i < recent.length; i++) {
      if (!hand(s, recent[i]!)) break;
    }
    return true;
  };

  /**
   * Brings a subscriber that starts behind up to `delivered` a page at a time, from the window when it
   * reaches back far enough and from the store otherwise, waiting for `s.ready` between pages: a
   * verifier resuming far behind takes the backlog at its own pace instead of in one burst. Joins the
   * fan-out with no await between the last check and the flag, so nothing falls in between.
   */
  const catchUp = async (s: Subscriber) => {
    if (delivered < 0) delivered = (await store.eventBounds()).last;
    while (subscribers.has(s) && s.next <= delivered) {
      const first = recent[0];
      let page: LoggedEvent[];
      if (first !== undefined && first.seq <= s.next) {
        const at = firstAtOrAfter(recent, s.next);
        page = recent.slice(at, at + CATCH_UP_PAGE);
      } else page = await readLogged(store, s.next - 1, CATCH_UP_PAGE);
      if (page.length === 0) break;
      for (const e of page) {
        if (e.seq > delivered || !hand(s, e)) break;
      }
      await (s.ready?.() ?? new Promise((r) => setImmediate(r)));
    }
    s.catchingUp = false;
  };

  const pump = async () => {
    do {
      again = false;
      if (delivered < 0) delivered = (await store.eventBounds()).last;
      const events = await readLogged(store, delivered, 1000);
      readAt = performance.now();
      if (events.length === 0) continue;
      recent.push(...events);
      if (recent.length > WINDOW) recent = recent.slice(recent.length - WINDOW);
      delivered = events[events.length - 1]!.seq;
      // A subscriber added meanwhile is visited too (a Set's iteration takes it) or has caught up to
      // `delivered` itself; one removed meanwhile is skipped. Each hears every event once, in order.
      let handed = 0;
      for (const s of subscribers) {
        if (s.catchingUp) continue;
        fromWindow(s);
        if (++handed % FAN_OUT_SLICE === 0) await new Promise((r) => setImmediate(r));
      }
      if (events.length === 1000) {
        again = true;
        // Let sockets flush between batches: a store that answers without I/O (SQLite) would otherwise
        // queue the whole backlog for every stream before any of it is sent.
        await new Promise((r) => setImmediate(r));
      }
    } while (again);
  };

  const log: EventLog = {
    append: async (tx, type, data) => {
      const e = await tx.appendEvent({ ts: clock.now(), type, data });
      return { seq: e.seq, ts: e.ts, type, data } as LoggedEvent<typeof type>;
    },
    notify() {
      if (pumping) {
        again = true;
        return;
      }
      pumping = pump()
        .catch((err: unknown) => options.onError?.(err))
        .finally(() => {
          pumping = undefined;
        });
    },
    subscribe(fromSeq, listener, ready) {
      const s: Subscriber = { next: fromSeq + 1, listener, catchingUp: true, ready };
      subscribers.add(s);
      catchUp(s).catch((err: unknown) => options.onError?.(err));
      return () => subscribers.delete(s);
    },
    read: (afterSeq, limit) => readLogged(store, afterSeq, limit),
    bounds: () => store.eventBounds(),
    sinceLastRead: () => performance.now() - readAt,
    close() {
      clearInterval(timer);
      subscribers.clear();
    },
  };
  // A periodic look at the log repairs any wake-up that was lost (another process appended, say).
  const timer = setInterval(() => log.notify(), options.pollMs ?? 1000);
  timer.unref();
  return log;
}

/** The index of the first event with `seq` at or after `seq` in events ordered by seq (their length if none). */
function firstAtOrAfter(events: readonly LoggedEvent[], seq: number): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid]!.seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The store's rows as log events. `EventLog.append`, typed by the vocabulary, is the only writer of the
 * log, so every row has a known type and its payload; consumers still ignore a type they do not handle.
 */
async function readLogged(
  store: Pick<Store, 'readEvents'>,
  afterSeq: number,
  limit: number,
): Promise<LoggedEvent[]> {
  return (await store.readEvents(afterSeq, limit)) as StreamEvent[] as LoggedEvent[];
}
