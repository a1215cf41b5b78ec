import { revokedBy } from '@writ/sdk/verifier';
import { EventType, type Revocation } from '@writ/sdk/wire';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { auditRefusal } from '../audit/refusal.js';
import { authenticateBearer, type TokenBearer } from '../auth/bearer.js';
import { eventsAudience, Paths, type WritContext } from '../context.js';
import type { WorkloadRisk } from '../detection/finding.js';
import { invalidRequest } from '../errors.js';
import { info } from '../request/info.js';
import { type SnapshotRevocations, SnapshotSet, snapshotFrame, snapshotPageFrame } from './snapshot.js';
import { EventStream, type StreamSlot } from './stream.js';
import type { StreamEvent } from './stream-event.js';
import { verifierFrame, verifierRisks } from './verifier-view.js';

/** How recently this node must have read the event log to keep a stream open (it reads it every second). */
const LOG_CURRENT_MS = 3000;

/**
 * `GET /v1/events`: Server-Sent Events of the event log for verifiers (which are workloads: they present
 * a Writ token for the events audience, DPoP-bound when their class says so). Resumes after
 * `Last-Event-ID`; a verifier that is new or further behind than the log keeps gets a `snapshot` of the
 * revocations in force first. Each event goes out as verifiers see it (`verifier-view.ts`): what they
 * enforce, never operators' notes. A `head` event (no id) opens every stream with the last seq at that moment.
 * Comment heartbeats let it detect a silent stream.
 */
/** The query of `GET /v1/events` (the OpenAPI document describes it with this schema). */
export const eventsQuery = z.object({
  revocations: z.literal('sha256').describe('Required: revocation values come as SHA-256 digests.'),
  snapshot: z.literal('paged').describe('The snapshot in pages (`snapshot.page` events).').optional(),
});

export function registerEventRoutes(app: FastifyInstance, ctx: WritContext): void {
  const snapshots = new SnapshotSet(ctx.store, ctx.clock);
  const view = { riskHalfLife: ctx.settings.detection.riskHalfLife };
  app.get(Paths.events, async (req, reply) => {
    let subscriber: TokenBearer;
    let slot: StreamSlot;
    try {
      subscriber = await authenticateBearer(ctx, info(req), eventsAudience(ctx.settings.issuer));
      const query = (req.query ?? {}) as Record<string, unknown>;
      if (!eventsQuery.shape.revocations.safeParse(query['revocations']).success)
        throw invalidRequest(
          'this server sends revocation values as SHA-256 digests (value_sha256); open the stream with ?revocations=sha256 (the @writ/sdk verifier does): a verifier that matches only clear values would enforce no revocation',
          { reason: 'stream_form' },
        );
      slot = ctx.streams.admit({ clientId: subscriber.clientId, jti: subscriber.token.jti });
    } catch (err) {
      throw await auditRefusal(ctx, 'events', err, info(req), {});
    }
    const lastId = req.headers['last-event-id'];
    const resumeFrom = typeof lastId === 'string' && /^\d{1,15}$/.test(lastId) ? Number(lastId) : undefined;
    const paged = (req.query as Record<string, unknown> | undefined)?.['snapshot'] === 'paged';
    let bounds: { first: number; last: number };
    let needsSnapshot: boolean;
    let from: number;
    let revocations: SnapshotRevocations | undefined;
    let risks: WorkloadRisk[] = [];
    // Everything that needs the store happens before the stream opens: a store that fails here is an
    // ordinary 503, not a stream left open with nothing behind it (and the stream's place is given back).
    try {
      bounds = await ctx.events.bounds();
      needsSnapshot = resumeFrom === undefined || resumeFrom < bounds.first - 1 || resumeFrom > bounds.last;
      from = needsSnapshot || resumeFrom === undefined ? bounds.last : resumeFrom;
      // Read after the bounds: it holds every revocation logged up to `bounds.last` (the catch-up starts
      // after it), and perhaps a few logged since, which verifiers then get twice and apply once.
      // Revocations that expired a moment ago are still sent: verifiers accept a token a few seconds past
      // its `exp` (their leeway), and the revocation must reach them for as long as the token does
      // (SNAPSHOT_EXPIRY_GRACE_MS).
      // Risks likewise from the store, after the bounds: a finding logged up to `bounds.last` raised its
      // row in the same transaction.
      if (needsSnapshot) [revocations, risks] = await Promise.all([snapshots.read(), ctx.store.listRisks()]);
      await ctx.audit.append({
        type: 'events.subscribed',
        outcome: 'success',
        actor: subscriber.clientId,
        data: { from, snapshot: needsSnapshot, ip: req.ip },
      });
    } catch (err) {
      slot.release();
      throw err;
    }
    reply.hijack();
    const res = reply.raw;
    const stream = new EventStream(
      res,
      { clientId: subscriber.clientId, jti: subscriber.token.jti },
      ctx.streams.limits,
    );
    // Registered before the first write, so the caps count a stream from the moment it exists.
    ctx.streams.add(stream, slot);
    ctx.metrics.openStreams.set(ctx.streams.size);
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    stream.send('retry: 2000\n\n');
    // The log's head as this stream opens: a resuming verifier is in sync once it has seen this id (the
    // catch-up comes first), and until then must not take the open stream for fresh state.
    stream.send(`event: ${EventType.head}\ndata: ${JSON.stringify({ head: bounds.last })}\n\n`);
    // Live events that arrive while a paged snapshot is still being written wait behind it, in order.
    const pending: StreamEvent[] = [];
    let snapshotting = needsSnapshot;
    const deliver = (e: StreamEvent) => {
      if (stream.ended) return;
      stream.send(verifierFrame(e, view));
      // Decided from the event itself: this node's own set may not have applied it yet (another node
      // committed it, or it came inside a larger transaction), and the stream must not outlive its token.
      if (e.type === EventType.revocation && revokedBy(e.data['revocation'] as Revocation, subscriber.token))
        stream.end('token_revoked');
    };
    // The stream lives as long as the subscriber's token: it ends at `exp` or when the token is revoked.
    const unsubscribe = ctx.events.subscribe(
      from,
      (e) => {
        if (snapshotting) pending.push(e);
        else deliver(e);
        // Unsent bytes are capped by `send`; events held behind a snapshot are capped the same way.
        if (pending.length > 0 && approximateBytes(pending) > ctx.streams.limits.maxUnsentBytes)
          stream.end('slow_reader');
      },
      () => stream.drained(),
    );
    const heartbeat = setInterval(() => {
      // A heartbeat says "nothing you missed". A node that cannot read the log (its store is unreachable)
      // cannot say that: it ends the stream, and the verifier reconnects (to a node that can) or goes
      // stale and fails closed, rather than hearing heartbeats while other nodes' revocations pass it by.
      if (ctx.events.sinceLastRead() > LOG_CURRENT_MS) {
        stream.end('log_unreadable');
        return;
      }
      if (!snapshotting) stream.send(`: heartbeat ${ctx.clock.now()}\n\n`);
    }, ctx.settings.events.heartbeat * 1000);
    const expiry = setTimeout(
      () => stream.end('token_expired'),
      Math.max(0, subscriber.token.exp * 1000 - ctx.clock.now()),
    );
    stream.onEnd((reason) => {
      clearInterval(heartbeat);
      clearTimeout(expiry);
      unsubscribe();
      pending.length = 0;
      ctx.metrics.streamsEnded.inc({ reason });
      ctx.metrics.openStreams.set(ctx.streams.size);
    });
    if (revocations) {
      const ts = ctx.clock.now();
      const snapshot = {
        seq: bounds.last,
        ts,
        keys: ctx.keys.publicJwks().keys.map((k) => k.kid),
        paged,
        risks: verifierRisks(risks, ts, view),
      };
      if (paged) await sendPagedSnapshot(stream, revocations, snapshot, ctx.settings.events.snapshotPage);
      else stream.send(snapshotFrame(snapshot, revocations.json(0, revocations.size)));
      snapshotting = false;
      for (const e of pending.splice(0)) deliver(e);
    }
  });
}

/**
 * A snapshot too large for one event, in pages: `snapshot.page` events (no id: a reconnect in the middle
 * starts over) carry the revocations in force, and the closing `snapshot` (with the id) carries the last
 * page and `paged: true`. A verifier replaces its set only at the closing event, with every page it got
 * on that connection. Pages are written as the client takes them, so a slow reader holds one page.
 */
async function sendPagedSnapshot(
  stream: EventStream,
  revocations: SnapshotRevocations,
  snapshot: Parameters<typeof snapshotFrame>[0],
  pageSize: number,
): Promise<void> {
  let at = 0;
  for (; revocations.size - at > pageSize; at += pageSize) {
    const ok = await stream.sendAndDrain(
      snapshotPageFrame(snapshot.seq, revocations.json(at, at + pageSize)),
    );
    if (!ok) return;
  }
  stream.send(snapshotFrame(snapshot, revocations.json(at, revocations.size)));
}

/** A cheap upper estimate of what a queue of events will take on the wire. */
function approximateBytes(events: readonly StreamEvent[]): number {
  // Revocation events are a few hundred bytes; the estimate only has to grow with the queue.
  return events.length * 512;
}
