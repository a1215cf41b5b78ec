import { randomBytes } from 'node:crypto';
import type { AuditEvent } from '../audit/audit-event.js';
import { seconds } from '../clock.js';
import type { WritContext } from '../context.js';
import { OAuthError } from '../errors.js';
import type { Store } from '../store/store.js';
import { securityEvents, setClaims, setId } from './events.js';
import { type PushOutcome, pushSet } from './push.js';
import { checkPushTarget, type PushTarget, parsePushEndpoint } from './push-target.js';
import { ownerKind, type QueuedSet, type SsfStream } from './stream-record.js';
import { eventsDelivered, pushAuthorization } from './streams.js';
import { DeliveryMethod, SET_TYP, SecurityEventType } from './vocabulary.js';

/** The transmitter's position in the event log, kept in the store. */
export const FOLLOWER = 'ssf-transmitter';
const BATCH = 200;

export interface Transmitter {
  /** Queues a verification event on a stream (SSF 1.0 §8.1.4). */
  verify(stream: SsfStream, state: string | undefined): Promise<void>;
  /** Signs queued SETs for delivery: the server's current key signs, whenever the SET was queued. */
  sign(set: QueuedSet): string;
  /** Resolves when SETs are queued on the stream, after `ms`, or at shutdown, whichever comes first. */
  waitForSets(streamId: string, ms: number): Promise<void>;
  /** A stream was created, changed or re-enabled: look at its queue now. */
  streamChanged(streamId: string): void;
  /** Stops following, wakes waiting polls, and waits for pushes in flight. */
  close(): Promise<void>;
}

/**
 * The Shared Signals transmitter. It follows the event log from the position it keeps in the store
 * (so a restart, or another node, carries on where it stopped), turns each entry into CAEP events,
 * and queues one SET per event for every stream that asked for that type, in the same transaction that
 * moves its position. Push streams are drained in order, one SET at a time, by whichever node claims
 * the head; a failed push waits 1 s, 2 s, 4 s … up to `ssf.push_retry_max`. Poll streams wait for
 * their receiver.
 */
export function createTransmitter(ctx: WritContext): Transmitter {
  const { store, settings, clock, logger } = ctx;
  const issuer = settings.issuer;
  let closed = false;
  let following: Promise<void> | undefined;
  let followAgain = false;
  const waiters = new Map<string, Set<() => void>>();
  const pushing = new Map<string, Promise<void>>();
  const pushAgain = new Set<string>();
  const retryTimers = new Map<string, NodeJS.Timeout>();

  const wakeWaiters = (streamId: string) => {
    const set = waiters.get(streamId);
    if (!set) return;
    waiters.delete(streamId);
    for (const w of set) w();
  };

  /** Audits SETs a full queue lost; returns the last audit event, to note once committed. */
  const auditDropped = async (
    tx: Store,
    dropped: Array<{ streamId: string; dropped: number }>,
  ): Promise<AuditEvent | undefined> => {
    let last: AuditEvent | undefined;
    for (const d of dropped)
      last = await ctx.audit.append(
        {
          type: 'ssf.sets.dropped',
          outcome: 'failure',
          actor: 'system',
          data: { stream_id: d.streamId, dropped: d.dropped, max_queued: settings.ssf.maxQueued },
        },
        tx,
      );
    return last;
  };

  /** Queues SETs and tells whoever waits for them. */
  const queued = (streamIds: Iterable<string>) => {
    for (const id of new Set(streamIds)) {
      wakeWaiters(id);
      schedulePush(id);
    }
  };

  // ---- following the event log ----

  const followOnce = async () => {
    let position = await store.followerPosition(FOLLOWER);
    if (position === undefined) {
      // First start: events from before the transmitter existed concern no stream.
      position = (await ctx.events.bounds()).last;
      await store.setFollowerPosition(FOLLOWER, position);
    }
    for (;;) {
      if (closed) return;
      const events = await ctx.events.read(position, BATCH);
      if (events.length === 0) return;
      const first = events[0]!;
      if (first.seq > position + 1) {
        // Trimmed before this transmitter read them (it was down longer than `events.retention`).
        logger.error({ from: position + 1, to: first.seq - 1 }, 'SSF transmitter missed trimmed events');
        await ctx.audit.append({
          type: 'ssf.events.missed',
          outcome: 'failure',
          actor: 'system',
          data: { from: position + 1, to: first.seq - 1 },
        });
      }
      const last = events[events.length - 1]!.seq;
      const from = position;
      const sets: Array<Omit<QueuedSet, 'attempts' | 'lastError'>> = [];
      // Streams are read in the transaction that queues: a stream created meanwhile either exists here or
      // was created after these events (its `fromSeq` is at least `last`), so no event slips between.
      const audited = await store.transaction(async (tx) => {
        // Another node may have queued part of this batch already (it moved the position first).
        const done = (await tx.followerPosition(FOLLOWER)) ?? from;
        const streams = (await tx.listSsfStreams()).filter((s) => s.status !== 'disabled');
        const now = clock.now();
        for (const e of events) {
          if (e.seq <= done) continue;
          const found = securityEvents(e, issuer);
          if (found.length === 0) continue;
          for (const s of streams) {
            if (e.seq <= s.fromSeq) continue;
            const wanted = eventsDelivered(s);
            found.forEach((event, i) => {
              if (!wanted.includes(event.type)) return;
              const jti = setId(s.id, e.seq, i);
              const payload = setClaims({
                issuer,
                jti,
                aud: s.aud,
                iat: seconds(now),
                txn: `writ:${e.seq}`,
                event,
              });
              sets.push({
                streamId: s.id,
                jti,
                eventSeq: e.seq,
                payload,
                createdAt: now,
                nextAttemptAt: now,
              });
            });
          }
        }
        const dropped = sets.length ? await tx.enqueueSsfSets(sets, settings.ssf.maxQueued) : [];
        await tx.setFollowerPosition(FOLLOWER, last);
        return auditDropped(tx, dropped);
      });
      if (audited) ctx.audit.noteCommitted(audited);
      position = last;
      queued(sets.map((s) => s.streamId));
    }
  };

  const follow = () => {
    if (closed) return;
    if (following) {
      followAgain = true;
      return;
    }
    following = followOnce()
      .catch((err: unknown) =>
        logger.error({ err: (err as Error).message }, 'SSF transmitter could not follow the event log'),
      )
      .finally(() => {
        following = undefined;
        if (followAgain && !closed) {
          followAgain = false;
          follow();
        }
      });
  };

  // ---- push delivery (RFC 8935) ----

  const backoffMs = (attempts: number) =>
    Math.min(settings.ssf.pushRetryMax * 1000, 1000 * 2 ** Math.max(0, attempts - 1));

  const retryAt = (streamId: string, at: number) => {
    clearTimeout(retryTimers.get(streamId));
    const t = setTimeout(
      () => {
        retryTimers.delete(streamId);
        schedulePush(streamId);
      },
      Math.max(0, at - clock.now()),
    );
    t.unref();
    retryTimers.set(streamId, t);
  };

  const drain = async (streamId: string) => {
    while (!closed) {
      const s = await store.getSsfStream(streamId);
      if (!s || s.deliveryMethod !== DeliveryMethod.push || s.status !== 'enabled') return;
      const now = clock.now();
      // Held while this node pushes (resolving, then sending: each within the push timeout); should it
      // die meanwhile, another node retries when the hold ends.
      const lease = now + (2 * settings.ssf.pushTimeout + 5) * 1000;
      const set = await store.claimSsfSet(streamId, now, lease);
      if (!set) {
        const [head] = await store.pendingSsfSets(streamId, 1);
        if (head && head.nextAttemptAt > now) retryAt(streamId, head.nextAttemptAt);
        return;
      }
      const outcome = await push(s, set);
      if (outcome.kind === 'delivered') {
        await store.ackSsfSets(streamId, [set.jti]);
      } else if (outcome.kind === 'rejected') {
        await store.ackSsfSets(streamId, [set.jti]);
        await ctx.audit.append({
          type: 'ssf.set.rejected',
          outcome: 'failure',
          actor: s.owner,
          data: { stream_id: streamId, jti: set.jti, err: outcome.err, description: outcome.description },
        });
      } else {
        const next = clock.now() + backoffMs(set.attempts);
        if (outcome.kind === 'refused' && set.lastError !== outcome.reason)
          // Once per SET and reason: a stream stuck on a refused address is not audited at every retry.
          await ctx.audit.append({
            type: 'ssf.push.refused',
            outcome: 'refused',
            actor: 'system',
            data: { stream_id: streamId, owner: s.owner, jti: set.jti, ...outcome.detail },
          });
        await store.deferSsfSet(streamId, set.jti, next, outcome.reason);
        logger.warn(
          { stream: streamId, attempts: set.attempts, reason: outcome.reason },
          'SET push failed; retrying',
        );
        retryAt(streamId, next);
        return;
      }
    }
  };

  /**
   * One push of `set`: the endpoint judged again as at creation (its owner's rules, every address its
   * host resolves to now), then sent to the address just judged, so a name that changed its answer since
   * (DNS rebinding) leads nowhere it may not go.
   */
  const push = async (
    s: SsfStream,
    set: QueuedSet,
  ): Promise<PushOutcome | { kind: 'refused'; reason: string; detail: Record<string, unknown> }> => {
    let target: PushTarget;
    try {
      target = await checkPushTarget(ctx, parsePushEndpoint(s.endpointUrl), ownerKind(s.owner));
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      return {
        kind: 'refused',
        reason: `refused: ${err.message}`.slice(0, 300),
        detail: { ...err.detail, error: err.code, error_description: err.message },
      };
    }
    return pushSet(target, transmitter.sign(set), {
      authorization: pushAuthorization(ctx, s),
      timeoutMs: settings.ssf.pushTimeout * 1000,
    });
  };

  function schedulePush(streamId: string): void {
    if (closed) return;
    if (pushing.has(streamId)) {
      pushAgain.add(streamId);
      return;
    }
    const run = drain(streamId)
      .catch((err: unknown) => {
        logger.error({ err: (err as Error).message, stream: streamId }, 'SET push loop failed');
        retryAt(streamId, clock.now() + 1000);
      })
      .finally(() => {
        pushing.delete(streamId);
        if (pushAgain.delete(streamId)) schedulePush(streamId);
      });
    pushing.set(streamId, run);
  }

  /** Every few seconds: catch up on the log (a lost wake-up) and on push streams (another node's work). */
  const sweep = async () => {
    follow();
    for (const s of await store.listSsfStreams())
      if (s.deliveryMethod === DeliveryMethod.push && s.status === 'enabled') schedulePush(s.id);
  };

  const transmitter: Transmitter = {
    async verify(stream, state) {
      const now = clock.now();
      const jti = randomBytes(16).toString('base64url');
      const payload = setClaims({
        issuer,
        jti,
        aud: stream.aud,
        iat: seconds(now),
        event: {
          type: SecurityEventType.verification,
          subId: { format: 'opaque', id: stream.id },
          body: state !== undefined ? { state } : {},
        },
      });
      const audited = await store.transaction(async (tx) => {
        const dropped = await tx.enqueueSsfSets(
          [{ streamId: stream.id, jti, eventSeq: null, payload, createdAt: now, nextAttemptAt: now }],
          settings.ssf.maxQueued,
        );
        return auditDropped(tx, dropped);
      });
      if (audited) ctx.audit.noteCommitted(audited);
      queued([stream.id]);
    },
    sign: (set) => ctx.keys.signJwt(SET_TYP, set.payload).jws,
    waitForSets(streamId, ms) {
      if (closed) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const set = waiters.get(streamId) ?? new Set<() => void>();
        waiters.set(streamId, set);
        const done = () => {
          clearTimeout(timer);
          set.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        set.add(done);
      });
    },
    streamChanged(streamId) {
      wakeWaiters(streamId);
      schedulePush(streamId);
    },
    async close() {
      closed = true;
      clearInterval(sweepTimer);
      unsubscribe();
      for (const t of retryTimers.values()) clearTimeout(t);
      retryTimers.clear();
      for (const id of [...waiters.keys()]) wakeWaiters(id);
      await Promise.allSettled([following, ...pushing.values()]);
    },
  };

  // New events wake the follower at once; the sweep covers a missed wake-up.
  let unsubscribe: () => void = () => undefined;
  ctx.events
    .bounds()
    .then(({ last }) => {
      if (!closed) unsubscribe = ctx.events.subscribe(last, () => follow());
    })
    .catch(() => undefined);
  const sweepTimer = setInterval(() => {
    sweep().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'SSF sweep failed'));
  }, 2000);
  sweepTimer.unref();
  follow();
  sweep().catch(() => undefined);
  return transmitter;
}
