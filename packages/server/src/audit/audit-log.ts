import type { Clock } from '../clock.js';
import type { KeyManager } from '../keys/key-manager.js';
import type { Store } from '../store/store.js';
import type { AuditDraft, AuditEvent } from './audit-event.js';
import type { AuditEventType } from './audit-types.js';

/** What a producer appends: a draft of a type in the audit vocabulary; the log adds the time. */
export type AuditEntry = Omit<AuditDraft, 'ts' | 'type'> & { type: AuditEventType };

/** Checkpoint JWS `typ`. */
export const CHECKPOINT_TYP = 'writ-audit-checkpoint+jwt';

export interface AuditLog {
  /** Appends one event (inside `tx` when given). Throws when the store refuses: callers fail closed. */
  append(draft: AuditEntry, tx?: Store): Promise<AuditEvent>;
  /** Appends several events in order inside `tx` (the caller notes them once it commits). */
  appendMany(drafts: AuditEntry[], tx: Store): Promise<AuditEvent[]>;
  /** Signs a checkpoint over the current head if events arrived since the last one. */
  checkpoint(): Promise<void>;
  /** Called after each committed append; signs a checkpoint every N events or T seconds. */
  noteCommitted(event: AuditEvent): void;
}

export function createAuditLog(deps: {
  store: Store;
  clock: Clock;
  keys: KeyManager;
  every: number;
  intervalSeconds: number;
  onError: (err: unknown) => void;
}): AuditLog {
  const { store, clock, keys } = deps;
  let lastCheckpointSeq = -1;
  let lastCheckpointAt = clock.now();
  let pending: Promise<void> | undefined;

  const checkpoint = async () => {
    const head = await store.auditHead();
    if (!head || head.seq === lastCheckpointSeq) return;
    const ts = clock.now();
    const { jws, kid } = keys.signJwt(CHECKPOINT_TYP, { seq: head.seq, hash: head.hash, ts });
    await store.addCheckpoint({ seq: head.seq, hash: head.hash, ts, kid, jws });
    lastCheckpointSeq = head.seq;
    lastCheckpointAt = ts;
  };

  const log: AuditLog = {
    async append(draft, tx) {
      const event = await (tx ?? store).appendAudit({ ...draft, ts: clock.now() });
      if (!tx) log.noteCommitted(event);
      return event;
    },
    appendMany(drafts, tx) {
      const ts = clock.now();
      return tx.appendAuditBatch(drafts.map((d) => ({ ...d, ts })));
    },
    checkpoint: () => {
      pending ??= checkpoint().finally(() => {
        pending = undefined;
      });
      return pending;
    },
    noteCommitted(event) {
      const due =
        lastCheckpointSeq < 0
          ? event.seq % deps.every === 0
          : event.seq - lastCheckpointSeq >= deps.every ||
            clock.now() - lastCheckpointAt >= deps.intervalSeconds * 1000;
      if (due) log.checkpoint().catch(deps.onError);
    },
  };
  return log;
}
