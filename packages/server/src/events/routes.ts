import { EventType, type StreamEventType } from '@writ/sdk/wire';
import type { FastifyInstance } from 'fastify';
import { auditRefusal } from '../audit/refusal.js';
import { authenticateBearer, type TokenBearer } from '../auth/bearer.js';
import { eventsAudience, Paths, type WritContext } from '../context.js';
import { info } from '../request/info.js';

/** How recently this node must have read the event log to keep a stream open (it reads it every second). */
const LOG_CURRENT_MS = 3000;

/**
 * `GET /v1/events`: Server-Sent Events of the event log for verifiers (which are workloads: they present
 * a Writ token for the events audience, DPoP-bound when their class says so). Resumes after
 * `Last-Event-ID`; a verifier that is new or further behind than the log keeps gets a `snapshot` of the
 * revocations in force first. A `head` event (no id) opens every stream with the last seq at that moment.
 * Comment heartbeats let it detect a silent stream.
 */
export function registerEventRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.get(Paths.events, async (req, reply) => {
    let subscriber: TokenBearer;
    try {
      subscriber = await authenticateBearer(ctx, info(req), eventsAudience(ctx.settings.issuer));
    } catch (err) {
      throw await auditRefusal(ctx, 'events', err, info(req), {});
    }
    const lastId = req.headers['last-event-id'];
    const resumeFrom = typeof lastId === 'string' && /^\d{1,15}$/.test(lastId) ? Number(lastId) : undefined;
    const bounds = await ctx.events.bounds();
    const needsSnapshot =
      resumeFrom === undefined || resumeFrom < bounds.first - 1 || resumeFrom > bounds.last;
    const from = needsSnapshot ? bounds.last : resumeFrom;
    // Everything that needs the store happens before the stream opens: a store that fails here is an
    // ordinary 503, not a stream left open with nothing behind it.
    const revocations = needsSnapshot ? await ctx.store.listRevocations(0, ctx.clock.now()) : [];
    await ctx.audit.append({
      type: 'events.subscribed',
      outcome: 'success',
      actor: subscriber.clientId,
      data: { from, snapshot: needsSnapshot, ip: req.ip },
    });

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    // The log's head as this stream opens: a resuming verifier is in sync once it has seen this id (the
    // catch-up comes first), and until then must not take the open stream for fresh state.
    res.write(`event: ${EventType.head}\ndata: ${JSON.stringify({ head: bounds.last })}\n\n`);
    if (needsSnapshot) {
      res.write(
        frame({
          seq: bounds.last,
          ts: ctx.clock.now(),
          type: EventType.snapshot,
          data: { revocations, keys: ctx.keys.publicJwks().keys.map((k) => k.kid) },
        }),
      );
    }
    // The stream lives as long as the subscriber's token: it ends at `exp` or when the token is revoked.
    const unsubscribe = ctx.events.subscribe(from, (e) => {
      res.write(frame(e));
      if (e.type === EventType.revocation && ctx.revocations.match(subscriber.token)) res.end();
    });
    const heartbeat = setInterval(() => {
      // A heartbeat says "nothing you missed". A node that cannot read the log (its store is unreachable)
      // cannot say that: it ends the stream, and the verifier reconnects (to a node that can) or goes
      // stale and fails closed, rather than hearing heartbeats while other nodes' revocations pass it by.
      if (ctx.events.sinceLastRead() > LOG_CURRENT_MS) {
        res.end();
        return;
      }
      res.write(`: heartbeat ${ctx.clock.now()}\n\n`);
    }, ctx.settings.events.heartbeat * 1000);
    const expiry = setTimeout(() => res.end(), Math.max(0, subscriber.token.exp * 1000 - ctx.clock.now()));
    const stop = () => {
      clearInterval(heartbeat);
      clearTimeout(expiry);
      unsubscribe();
    };
    res.on('close', stop);
    ctx.streams.add(res);
    res.on('close', () => ctx.streams.delete(res));
  });
}

/** One stream event: the log's (or the stream's own `snapshot`) with its seq as `id` and in `data`. */
function frame(e: { seq: number; ts: number; type: StreamEventType; data: object }): string {
  return `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify({ ...e.data, seq: e.seq, ts: e.ts })}\n\n`;
}
