import type { Clock } from '../clock.js';
import type { KeyManager } from '../keys/key-manager.js';
import type { IssuanceWrite } from '../store/issuance-write.js';
import type { Store } from '../store/store.js';
import type { AuditCheckpoint, AuditDraft, AuditEvent } from './audit-event.js';
import type { AuditEventType } from './audit-types.js';
import { AuditChainBrokenError, type AuditHead, CHECKPOINT_TYP } from './chain.js';
import { plainEvent } from './plain-text.js';
import { verifyChainFrom } from './verify.js';

/** What a producer appends: a draft of a type in the audit vocabulary; the log adds the time. */
export type AuditEntry = Omit<AuditDraft, 'ts' | 'type'> & { type: AuditEventType };

export interface AuditLog {
  /**
   * Appends one event (inside `tx` when given), its strings bounded and their control characters
   * escaped (`plainEvent`). Throws when the store refuses: callers fail closed.
   * Throws `AuditChainBrokenError` once the store no longer holds the newest event this process wrote.
   */
  append(draft: AuditEntry, tx?: Store): Promise<AuditEvent>;
  /** Appends several events in order inside `tx` (the caller notes them once it commits). */
  appendMany(drafts: AuditEntry[], tx: Store): Promise<AuditEvent[]>;
  /**
   * Commits an issuance's writes with its audit event (`Store.recordIssuance`: group-committed with
   * the issuances arriving together) and notes the event once committed. Throws as `append`, and
   * `IssuanceRefusedError` when the store refused it (nothing written).
   */
  commitIssuance(w: Omit<IssuanceWrite, 'audit'> & { audit: AuditEntry }): Promise<AuditEvent>;
  /** Signs a checkpoint over the current head if events arrived since the last one. */
  checkpoint(): Promise<void>;
  /** Called after each committed append; signs a checkpoint every N events or T seconds. */
  noteCommitted(event: AuditEvent): void;
  /**
   * Starts holding `head` (an event verified at start): the store must keep it, or appends are refused.
   */
  hold(head: AuditHead | undefined): void;
  /** Why the log refuses appends (the chain lost events this process held), or undefined. */
  broken(): string | undefined;
}

export function createAuditLog(deps: {
  store: Store;
  clock: Clock;
  keys: KeyManager;
  every: number;
  intervalSeconds: number;
  onError: (err: unknown) => void;
  /** Called once, when the log finds the chain cut or rewritten and starts refusing appends. */
  onBroken?: (reason: string) => void;
  /** Keeps each signed checkpoint outside the store too (the anchor file). */
  anchor?: (c: AuditCheckpoint) => Promise<void>;
  /** Hears every committed event (detection reads issuances, tasks and replays from here). */
  onCommitted?: (event: AuditEvent) => void;
}): AuditLog {
  const { store, clock, keys } = deps;
  let lastCheckpointSeq = -1;
  let lastCheckpointAt = clock.now();
  let pending: Promise<void> | undefined;
  // The newest event this process wrote (committed) or verified: the store must still hold it. Kept as
  // the highest seen, since commits of concurrent transactions are noted in any order.
  let held: AuditHead | undefined;
  let brokenReason: string | undefined;

  const hold = (h: AuditHead | undefined) => {
    if (h && (!held || h.seq > held.seq)) held = { seq: h.seq, hash: h.hash };
  };
  /** Records the first break (it stays until the process restarts) and rethrows. */
  const broke = (err: unknown): never => {
    if (err instanceof AuditChainBrokenError && brokenReason === undefined) {
      brokenReason = err.message;
      deps.onBroken?.(err.message);
    }
    throw err;
  };
  const refuseIfBroken = () => {
    if (brokenReason !== undefined) throw new AuditChainBrokenError(brokenReason);
  };

  const checkpoint = async () => {
    // A broken chain gets no new checkpoint: the break was reported once, where it was found.
    if (brokenReason !== undefined) return;
    // Never sign (or anchor) a head that does not continue the one this process holds: that would bless
    // a cut. Walking the events since also moves the held head up to other nodes' appends, so a later
    // cut of events up to this head is noticed by this node as well, not only by the nodes that wrote them.
    const walked = await verifyChainFrom(store, held, 'the newest event this node wrote or verified');
    if (walked.bad)
      broke(new AuditChainBrokenError(`audit log broken at event ${walked.bad.seq}: ${walked.bad.reason}`));
    const head = walked.head;
    if (!head || head.seq === lastCheckpointSeq) return;
    hold(head);
    const ts = clock.now();
    const { jws, kid } = keys.signJwt(CHECKPOINT_TYP, { seq: head.seq, hash: head.hash, ts });
    const c = { seq: head.seq, hash: head.hash, ts, kid, jws };
    await store.addCheckpoint(c);
    await deps.anchor?.(c);
    lastCheckpointSeq = head.seq;
    lastCheckpointAt = ts;
  };

  const log: AuditLog = {
    async append(draft, tx) {
      refuseIfBroken();
      const event = await (tx ?? store)
        .appendAudit({ ...plainEvent(draft), ts: clock.now() }, held)
        .catch(broke);
      if (!tx) log.noteCommitted(event);
      return event;
    },
    appendMany(drafts, tx) {
      refuseIfBroken();
      const ts = clock.now();
      return tx
        .appendAuditBatch(
          drafts.map((d) => ({ ...plainEvent(d), ts })),
          held,
        )
        .catch(broke);
    },
    async commitIssuance(w) {
      refuseIfBroken();
      const event = await store
        .recordIssuance({ ...w, audit: { ...plainEvent(w.audit), ts: clock.now() } }, held)
        .catch(broke);
      log.noteCommitted(event);
      return event;
    },
    checkpoint: () => {
      pending ??= checkpoint().finally(() => {
        pending = undefined;
      });
      return pending;
    },
    noteCommitted(event) {
      hold(event);
      deps.onCommitted?.(event);
      const due =
        lastCheckpointSeq < 0
          ? event.seq % deps.every === 0
          : event.seq - lastCheckpointSeq >= deps.every ||
            clock.now() - lastCheckpointAt >= deps.intervalSeconds * 1000;
      if (due) log.checkpoint().catch(deps.onError);
    },
    hold,
    broken: () => brokenReason,
  };
  return log;
}
