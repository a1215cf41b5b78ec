import { EventType, type LogEventType } from '@writ/sdk/wire';
import type { WritContext } from '../context.js';
import { reloadDetectionConfig } from '../detection/create-detector.js';
import type { LoggedEvent } from '../events/event-log.js';
import { reloadPolicy } from '../policy/operations.js';

type Part = 'keys' | 'registry' | 'people' | 'policy' | 'detection';

const PARTS: readonly Part[] = ['keys', 'registry', 'people', 'policy', 'detection'];

/** What a node reloads when another node (or this one) changed it. */
const RELOADS: Readonly<Partial<Record<LogEventType, readonly Part[]>>> = {
  [EventType.keysRotated]: ['keys'],
  [EventType.workloadState]: ['registry'],
  [EventType.exceptionChanged]: ['registry'],
  // The detection rules and networks are part of the config.
  [EventType.configApplied]: ['registry', 'detection'],
  [EventType.policyChanged]: ['policy'],
  [EventType.peopleChanged]: ['people'],
};

/** Changes that are in verifiers' policy bundles: their seq is the bundle version (policy/bundle.ts). */
const BUNDLE_PARTS: ReadonlySet<Part> = new Set(['registry', 'policy']);

export interface NodeFollower {
  /** The seq of the last event applied to this node's state. */
  position(): number;
  /** True while a reload that an event asked for has not succeeded yet (the store is unreachable, say). */
  behind(): boolean;
  /**
   * Resolves once every event up to `seq` is applied (reloads included), or after `timeoutMs` with
   * false. A starting node waits for this so it serves what the log says, not what it loaded earlier.
   */
  reach(seq: number, timeoutMs: number): Promise<boolean>;
  close(): void;
}

type FollowerContext = Pick<
  WritContext,
  | 'events'
  | 'store'
  | 'clock'
  | 'revocations'
  | 'keys'
  | 'registry'
  | 'policy'
  | 'detection'
  | 'settings'
  | 'logger'
>;

/**
 * Keeps this node's in-memory state in step with the event log that every node appends to: each
 * revocation goes into the revocation set, a key rotation reloads the signing keys, a workload or
 * configuration change reloads the registry (a configuration change also the detection rules and
 * networks), a policy change (set or API attributes) reloads the policy engine from the store, in log
 * order. Once every reload asked for has succeeded, the bundle version moves to the last registry or
 * policy change. The log is the truth: a node that missed part of it
 * (trimmed while the node was cut off) rebuilds everything from the store instead.
 *
 * `from` is the log's last seq read before the node loaded its state, so nothing between is missed
 * (applying an event twice is harmless: revocations are idempotent by seq, reloads by nature).
 */
export function followEventLog(ctx: FollowerContext, from: number): NodeFollower {
  let next = from + 1;
  const pending = {
    rebuild: false,
    keys: false,
    registry: false,
    people: false,
    policy: false,
    detection: false,
    /** Workloads a template admitted on some node: each is read from the store and added, no reload. */
    admitted: new Set<string>(),
    /** Workloads an apply changed (and nothing else): each is read from the store again, no reload. */
    refresh: new Set<string>(),
  };
  /** The seq of the last event received that changes policy bundles. */
  let bundleSeq = 0;
  const reloading = () =>
    pending.rebuild || PARTS.some((p) => pending[p]) || pending.admitted.size > 0 || pending.refresh.size > 0;
  const reloadPart = (part: Part): Promise<void> =>
    part === 'policy'
      ? reloadPolicy(ctx)
      : part === 'detection'
        ? reloadDetectionConfig(ctx)
        : part === 'people'
          ? ctx.registry.reloadPeople()
          : ctx[part].reload();
  let running: Promise<void> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  const waiters = new Set<{ seq: number; done: (ok: boolean) => void }>();
  const settled = () => !running && !reloading();
  const wakeWaiters = () => {
    if (!settled()) return;
    for (const w of waiters) if (next - 1 >= w.seq) w.done(true);
  };

  const work = async () => {
    while (!closed && reloading()) {
      if (pending.rebuild) {
        pending.rebuild = false;
        for (const p of PARTS) pending[p] = true;
        try {
          ctx.revocations.reset(await ctx.store.listRevocations(0, ctx.clock.now()), 0);
        } catch (err) {
          pending.rebuild = true;
          throw err;
        }
      }
      for (const part of PARTS) {
        if (!pending[part]) continue;
        pending[part] = false;
        try {
          await reloadPart(part);
        } catch (err) {
          pending[part] = true;
          throw err;
        }
      }
      // One read per admitted workload, however large the registry: first uses stay cheap.
      for (const id of [...pending.admitted]) {
        const record = await ctx.store.getWorkload(id);
        if (record) ctx.registry.remember(record);
        pending.admitted.delete(id);
      }
      if (pending.refresh.size > 0) {
        const ids = [...pending.refresh];
        await ctx.registry.refreshWorkloads(ids);
        for (const id of ids) pending.refresh.delete(id);
      }
    }
    // Nothing is pending: every reload asked for started after its event arrived, so what this node
    // holds is at least as new as every change received.
    if (!closed) ctx.policy.bundle.noteChange(bundleSeq);
  };

  const schedule = () => {
    if (running || closed) return;
    running = work()
      .catch((err: unknown) => {
        ctx.logger.warn({ err: (err as Error).message }, 'could not apply the event log; retrying');
        clearTimeout(retry);
        retry = setTimeout(schedule, 1000);
        retry.unref();
      })
      .finally(() => {
        running = undefined;
        wakeWaiters();
      });
  };

  const apply = (e: LoggedEvent) => {
    if (e.seq < next) return;
    if (e.seq > next) {
      // Events this node never read were trimmed: rebuild rather than apply a later one over the gap.
      ctx.logger.warn({ expected: next, got: e.seq }, 'event log gap; rebuilding node state from the store');
      pending.rebuild = true;
      bundleSeq = e.seq;
    } else if (e.type === EventType.revocation && !pending.rebuild) {
      ctx.revocations.apply(e.data.revocation);
    }
    next = e.seq + 1;
    if (e.type === EventType.workloadState && e.data.admitted === true && !pending.rebuild) {
      pending.admitted.add(e.data.id);
      bundleSeq = e.seq;
      schedule();
      wakeWaiters();
      return;
    }
    // An apply that changed only some workloads names them: those are read again, nothing is reloaded.
    if (e.type === EventType.configApplied && e.data.workloads !== undefined && !pending.rebuild) {
      for (const id of e.data.workloads) pending.refresh.add(id);
      bundleSeq = e.seq;
      schedule();
      wakeWaiters();
      return;
    }
    for (const part of RELOADS[e.type] ?? []) {
      pending[part] = true;
      if (BUNDLE_PARTS.has(part)) bundleSeq = e.seq;
    }
    if (reloading()) schedule();
    wakeWaiters();
  };

  const unsubscribe = ctx.events.subscribe(from, (e) => {
    try {
      apply(e);
    } catch (err) {
      ctx.logger.error({ err: (err as Error).message, seq: e.seq }, 'could not apply an event');
      pending.rebuild = true;
      schedule();
    }
  });

  return {
    position: () => next - 1,
    behind: reloading,
    reach(seq, timeoutMs) {
      if (settled() && next - 1 >= seq) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => w.done(false), timeoutMs);
        const w = {
          seq,
          done: (ok: boolean) => {
            clearTimeout(timer);
            waiters.delete(w);
            resolve(ok);
          },
        };
        waiters.add(w);
      });
    },
    close() {
      closed = true;
      for (const w of waiters) w.done(false);
      clearTimeout(retry);
      unsubscribe();
    },
  };
}
