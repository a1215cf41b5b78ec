import type { ServerResponse } from 'node:http';
import type { LiveCounts, LiveCountsFrame } from '@writ/sdk/wire';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditEvent } from '../audit/audit-event.js';
import type { WritContext } from '../context.js';

/**
 * `GET /admin/v1/events/live` (docs/console.md, "Live counters"): a server-sent event stream of how many
 * tokens were issued, refused and revoked since the last frame, for the console's overview charts. One
 * reader per node (`LiveFeed`) reads the shared audit log after the sequence number it last saw, once a
 * second, while a stream is open, and sends the same frame to every open stream; so a cluster's node
 * counts every node's events, and the audit log is read once a second whatever the number of streams.
 * Counts only: no token, subject or address leaves through it.
 */

/** How often the node's reader reads the audit log and each stream checks its session. */
const TICK_MS = 1000;
/** At most this many audit events are read per tick; more are read on the next ticks (`truncated`). */
const READ_PER_TICK = 1000;
/** Open streams per node; opening one more ends the oldest. */
export const LIVE_STREAMS_PER_NODE = 64;
/** A stream of an admin token (not a console session) ends after this long; the caller reconnects. */
const TOKEN_STREAM_MS = 10 * 60_000;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_TICKS = 15;

/** What one batch of audit events adds to the counters. */
export function countEvents(events: AuditEvent[]): LiveCounts {
  const c = { issued: 0, refused: 0, revoked: 0 };
  for (const e of events) {
    if (e.type === 'token.issued' && e.outcome === 'success') c.issued++;
    else if (e.type.endsWith('.refused')) c.refused++;
    else if (e.type === 'revocation.created') c.revoked++;
  }
  return c;
}

/** One open stream as the node's reader sees it. */
interface LiveStream {
  /** A frame for this read (undefined when nothing was counted): the stream checks its session, then sends it. */
  deliver(frame: LiveCountsFrame | undefined): Promise<void>;
  end(reason: string): void;
}

/**
 * The node's one reader of the audit log for its live streams: it starts with the first stream (at the
 * audit log's head) and stops when the last one ends; every read is counted once and the frame goes to
 * every stream open at that read.
 */
export class LiveFeed {
  readonly #ctx: WritContext;
  readonly #streams = new Set<LiveStream>();
  /** Streams being opened: they hold the reader running until they join. */
  #joining = 0;
  #timer: NodeJS.Timeout | undefined;
  #head: Promise<void> | undefined;
  #after = 0;
  #busy = false;
  /** Audit log reads since the node started (a test sees that streams share them). */
  reads = 0;

  constructor(ctx: WritContext) {
    this.#ctx = ctx;
  }

  /** Whether the reader runs: from the first stream until the last one ends. */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  get streams(): number {
    return this.#streams.size;
  }

  /**
   * Holds the reader running (starting it at the audit log's head when it is not) for a stream about to
   * join; `join` must follow without an `await` in between. Throws when the audit log cannot be read.
   */
  async open(): Promise<void> {
    this.#joining++;
    if (!this.#timer) {
      this.#after = 0;
      this.#head = this.#ctx.store.auditHead().then((head) => {
        this.#after = head?.seq ?? 0;
      });
      this.#timer = setInterval(() => void this.#tick(), TICK_MS);
      this.#timer.unref();
    }
    const head = this.#head;
    try {
      await head;
    } catch (err) {
      this.#joining--;
      // The next stream reads the head again.
      if (this.#head === head) this.#stop();
      throw err;
    }
  }

  /** A stream opened with `open` joins: it gets every frame after the returned sequence number. */
  join(stream: LiveStream): number {
    this.#joining--;
    this.#streams.add(stream);
    return this.#after;
  }

  leave(stream: LiveStream): void {
    this.#streams.delete(stream);
    if (this.#streams.size === 0 && this.#joining === 0) this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#head = undefined;
  }

  async #tick(): Promise<void> {
    if (this.#busy || this.#streams.size === 0) return;
    this.#busy = true;
    const timer = this.#timer;
    try {
      let events: AuditEvent[];
      try {
        await this.#head;
        this.reads++;
        events = await this.#ctx.store.queryAudit({
          afterSeq: this.#after,
          order: 'asc',
          limit: READ_PER_TICK,
        });
      } catch {
        // The store did not answer: every stream says so and ends; the page falls back to asking again.
        for (const s of [...this.#streams]) s.end('store_unavailable');
        return;
      }
      // Stopped (and maybe started again) while reading: this read is not the current reader's.
      if (this.#timer !== timer) return;
      let frame: LiveCountsFrame | undefined;
      if (events.length > 0) {
        this.#after = events.at(-1)!.seq;
        const c = countEvents(events);
        if (c.issued + c.refused + c.revoked > 0)
          frame = {
            at: this.#ctx.clock.now(),
            ...c,
            seq: this.#after,
            truncated: events.length >= READ_PER_TICK,
          };
      }
      // The streams open at this read, taken with the cursor's move: one that joins later starts after it.
      await Promise.all([...this.#streams].map((s) => s.deliver(frame)));
    } finally {
      this.#busy = false;
    }
  }
}

/** The live feed of each node (its context), for tests. */
const feeds = new WeakMap<WritContext, LiveFeed>();
export const liveFeed = (ctx: WritContext): LiveFeed | undefined => feeds.get(ctx);

export function registerLiveEventsRoute(
  admin: FastifyInstance,
  ctx: WritContext,
  caller: (req: FastifyRequest) => { operator: string; session: string | undefined },
): void {
  const feed = new LiveFeed(ctx);
  feeds.set(ctx, feed);
  // Insertion order is opening order: the first entry is the oldest stream.
  const streams = new Map<string, LiveStream>();
  admin.addHook('onClose', async () => {
    for (const s of [...streams.values()]) s.end('server_closing');
  });

  admin.get('/events/live', async (req, reply) => {
    const { operator, session } = caller(req);
    // One stream per console session (per operator for an admin token): a new one replaces the old.
    const key = session !== undefined ? `session:${session}` : operator;
    streams.get(key)?.end('replaced');
    while (streams.size >= LIVE_STREAMS_PER_NODE) streams.values().next().value?.end('too_many_streams');
    const started = ctx.clock.now();
    await feed.open();
    // From here to `join`, no await: the stream starts exactly where the reader is.

    reply.hijack();
    const res: ServerResponse = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    const send = (event: string, data: unknown) => {
      if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    let ended = false;
    let ticks = 0;
    const stillAllowed = async (): Promise<string | undefined> => {
      const now = ctx.clock.now();
      if (session === undefined) return now - started >= TOKEN_STREAM_MS ? 'token_stream_limit' : undefined;
      const s = await ctx.store.getConsoleSession(session);
      if (!s) return 'session_ended';
      if (now >= s.expiresAt) return 'console_expired';
      if (now - s.lastSeenAt > ctx.settings.console.idleTimeout * 1000) return 'console_idle';
      return undefined;
    };
    const stream: LiveStream = {
      async deliver(frame) {
        if (ended) return;
        let stop: string | undefined;
        try {
          stop = await stillAllowed();
        } catch {
          stop = 'store_unavailable';
        }
        if (ended) return;
        if (stop !== undefined) return stream.end(stop);
        if (frame) send('counts', frame);
        if (++ticks % KEEPALIVE_TICKS === 0 && !res.writableEnded) res.write(': keep-alive\n\n');
      },
      end(reason) {
        if (ended) return;
        ended = true;
        feed.leave(stream);
        if (streams.get(key) === stream) streams.delete(key);
        send('end', { reason });
        res.end();
      },
    };
    const after = feed.join(stream);
    streams.set(key, stream);
    res.on('close', () => stream.end('closed_by_client'));
    res.write('retry: 5000\n\n');
    send('hello', { seq: after, every_ms: TICK_MS });
  });
}
