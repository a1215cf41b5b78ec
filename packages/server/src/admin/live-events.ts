import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditEvent } from '../audit/audit-event.js';
import type { WritContext } from '../context.js';

/**
 * `GET /admin/v1/events/live` (docs/console.md, "Live counters"): a server-sent event stream of how many
 * tokens were issued, refused and revoked since the last frame, for the console's overview charts. The
 * node reads the shared audit log after the sequence number it last saw, once a second, so a cluster's
 * node counts every node's events. Counts only: no token, subject or address leaves through it.
 */

/** How often a stream reads the audit log and checks its session. */
const TICK_MS = 1000;
/** At most this many audit events are read per tick; more are read on the next ticks (`truncated`). */
const READ_PER_TICK = 1000;
/** Open streams per node; opening one more ends the oldest. */
export const LIVE_STREAMS_PER_NODE = 64;
/** A stream of an admin token (not a console session) ends after this long; the caller reconnects. */
const TOKEN_STREAM_MS = 10 * 60_000;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_TICKS = 15;

export interface LiveCounts {
  issued: number;
  refused: number;
  revoked: number;
}

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

interface LiveStream {
  end(reason: string): void;
}

export function registerLiveEventsRoute(
  admin: FastifyInstance,
  ctx: WritContext,
  caller: (req: FastifyRequest) => { operator: string; session: string | undefined },
): void {
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
    let after = (await ctx.store.auditHead())?.seq ?? 0;

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
    let busy = false;
    let ticks = 0;
    const stream: LiveStream = {
      end(reason) {
        if (ended) return;
        ended = true;
        clearInterval(timer);
        if (streams.get(key) === stream) streams.delete(key);
        send('end', { reason });
        res.end();
      },
    };
    const stillAllowed = async (): Promise<string | undefined> => {
      const now = ctx.clock.now();
      if (session === undefined) return now - started >= TOKEN_STREAM_MS ? 'token_stream_limit' : undefined;
      const s = await ctx.store.getConsoleSession(session);
      if (!s) return 'session_ended';
      if (now >= s.expiresAt) return 'console_expired';
      if (now - s.lastSeenAt > ctx.settings.console.idleTimeout * 1000) return 'console_idle';
      return undefined;
    };
    const tick = async () => {
      if (busy || ended) return;
      busy = true;
      try {
        const stop = await stillAllowed();
        if (stop !== undefined) return stream.end(stop);
        const events = await ctx.store.queryAudit({ afterSeq: after, order: 'asc', limit: READ_PER_TICK });
        if (events.length > 0) {
          after = events.at(-1)!.seq;
          const c = countEvents(events);
          if (c.issued + c.refused + c.revoked > 0)
            send('counts', {
              at: ctx.clock.now(),
              ...c,
              seq: after,
              truncated: events.length >= READ_PER_TICK,
            });
        }
        if (++ticks % KEEPALIVE_TICKS === 0 && !res.writableEnded) res.write(': keep-alive\n\n');
      } catch {
        // The store did not answer: say so and end; the page falls back to asking again.
        stream.end('store_unavailable');
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void tick(), TICK_MS);
    timer.unref();
    streams.set(key, stream);
    res.on('close', () => stream.end('closed_by_client'));
    res.write('retry: 5000\n\n');
    send('hello', { seq: after, every_ms: TICK_MS });
  });
}
