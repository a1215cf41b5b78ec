import { importPublicJwk } from '../jose/jwk.js';
import { parseClaims, verifyCompactJws } from '../jose/jws.js';
import type { Store } from '../store/store.js';
import type { AuditCheckpoint, AuditEvent } from './audit-event.js';
import { type AuditHead, CHECKPOINT_TYP, chainHash, GENESIS_HASH } from './chain.js';

export interface AuditVerification {
  ok: boolean;
  events: number;
  checkpoints: number;
  /** The first event (or checkpoint) that does not verify, and why. */
  firstBad?: { seq: number; reason: string };
}

const PAGE = 5000;

/** An event (or checkpoint) that does not verify, and why. */
export type Bad = { seq: number; reason: string };

/** How `walkChain` goes on: where it stops, and what it does at an event that does not verify. */
export interface WalkOptions {
  /** Stop after this sequence number (a head fixed before the walk: later appends are not read). */
  until?: number;
  /**
   * Called at each event that does not verify; `'continue'` walks on from that event (its content is
   * passed to `onEvent` only when its own hash recomputes), so every break is named, not only the first.
   * Default: stop at the first.
   */
  onBad?: (bad: Bad) => 'continue' | 'stop';
  /** Awaited after each page of events (a caller's batched reads, progress). */
  onPage?: (walked: number) => Promise<void>;
}

/**
 * Walks the chain forward from `from` (the genesis when undefined): every event's `prev_hash` must be the
 * previous event's hash, its hash must be recomputable from its content, and sequence numbers must have
 * no gaps. `onEvent` sees each event that verified. Returns the head reached, or the first bad event.
 */
export async function walkChain(
  store: Pick<Store, 'scanAudit'>,
  from: AuditHead | undefined,
  onEvent: (e: AuditEvent) => void,
  opts: WalkOptions = {},
): Promise<{ head: AuditHead | undefined; bad?: Bad }> {
  let prevSeq = from?.seq ?? 0;
  let prevHash = from?.hash ?? GENESIS_HASH;
  let first: Bad | undefined;
  const until = opts.until ?? Number.POSITIVE_INFINITY;
  for (;;) {
    if (prevSeq >= until) break;
    const page = await store.scanAudit(prevSeq, Math.min(PAGE, until - prevSeq));
    if (page.length === 0) break;
    for (const e of page) {
      if (e.seq > until) break;
      const reason =
        e.seq !== prevSeq + 1
          ? `event ${prevSeq + 1}${e.seq - prevSeq > 2 ? `..${e.seq - 1}` : ''} missing before event ${e.seq}`
          : e.prevHash !== prevHash
            ? 'prev_hash does not match the previous event (deleted, inserted or reordered)'
            : undefined;
      const intact = chainHash(e.prevHash, e.seq, e) === e.hash;
      const why = reason ?? (intact ? undefined : 'content does not match its hash (edited)');
      if (why !== undefined) {
        const bad = { seq: e.seq, reason: why };
        first ??= bad;
        if ((opts.onBad?.(bad) ?? 'stop') === 'stop') return { head: { seq: prevSeq, hash: prevHash }, bad };
      }
      if (intact) onEvent(e);
      prevSeq = e.seq;
      prevHash = e.hash;
    }
    await opts.onPage?.(prevSeq);
  }
  const head = prevSeq === 0 ? undefined : { seq: prevSeq, hash: prevHash };
  return first ? { head, bad: first } : { head };
}

/**
 * Whether the store still holds `point` (an event this verifier got from somewhere other than the store:
 * a checkpoint it kept, the anchor file). Names the deleted range when the store ends before it.
 */
export async function checkHeldPoint(
  store: Pick<Store, 'scanAudit' | 'auditHead'>,
  point: AuditHead,
  what: string,
): Promise<Bad | undefined> {
  const [e] = await store.scanAudit(point.seq - 1, 1);
  if (e?.seq === point.seq && e.hash === point.hash)
    return chainHash(e.prevHash, e.seq, e) === e.hash
      ? undefined
      : { seq: e.seq, reason: `${what} at event ${e.seq}: content does not match its hash (edited)` };
  if (e?.seq === point.seq)
    return {
      seq: point.seq,
      reason: `${what} at event ${point.seq}: the store's event has a different hash`,
    };
  const top = (await store.auditHead())?.seq ?? 0;
  if (top < point.seq)
    return {
      seq: top + 1,
      reason: `log truncated: ${what} holds event ${point.seq} but the store ends at event ${top} (events ${top + 1}..${point.seq} deleted)`,
    };
  return { seq: point.seq, reason: `${what} at event ${point.seq}: the event is missing from the store` };
}

/**
 * Verifies the chain from `from` (an event known good: the last checkpoint) to the store's head, and
 * that the store still holds `from`. What a server runs at start: bounded by the events since `from`.
 */
export async function verifyChainFrom(
  store: Pick<Store, 'scanAudit' | 'auditHead'>,
  from: AuditHead | undefined,
  what: string,
): Promise<{ head: AuditHead | undefined; bad?: Bad }> {
  if (from) {
    const bad = await checkHeldPoint(store, from, what);
    if (bad) return { head: undefined, bad };
  }
  return walkChain(store, from, () => undefined);
}

/** Checks a checkpoint's signature against the store's keys; a reason when it does not verify. */
function checkpointSignature(
  c: AuditCheckpoint,
  keys: ReturnType<typeof importPublicJwk>[],
): string | undefined {
  let claims: Record<string, unknown>;
  try {
    const jws = verifyCompactJws(c.jws, { algorithms: ['ES256', 'EdDSA'], keys, maxBytes: 4096 });
    if (jws.header.typ !== CHECKPOINT_TYP) return 'wrong typ';
    claims = parseClaims(jws.payload);
  } catch (err) {
    return `signature does not verify (${(err as Error).message})`;
  }
  if (claims['seq'] !== c.seq || claims['hash'] !== c.hash)
    return 'signed content differs from the stored checkpoint';
  return undefined;
}

/**
 * Walks the whole chain (see `walkChain`). Then every checkpoint must carry a valid server signature and
 * match the event at its sequence number. With `anchor` (a checkpoint kept outside the store, e.g. the
 * anchor file), the store must still hold the event it signs: a cut tail whose checkpoints were deleted
 * with it is named with the deleted sequence numbers.
 */
export async function verifyAuditChain(
  store: Pick<Store, 'scanAudit' | 'listCheckpoints' | 'listKeys' | 'auditHead'>,
  anchor?: AuditCheckpoint,
): Promise<AuditVerification> {
  const hashes = new Map<number, string>();
  const checkpoints = await store.listCheckpoints();
  const wanted = new Set(checkpoints.map((c) => c.seq));
  let count = 0;
  const walked = await walkChain(store, undefined, (e) => {
    if (wanted.has(e.seq)) hashes.set(e.seq, e.hash);
    count++;
  });
  const result = (bad?: Bad): AuditVerification => ({
    ok: bad === undefined,
    events: count,
    checkpoints: checkpoints.length,
    ...(bad ? { firstBad: bad } : {}),
  });
  if (walked.bad) return result(walked.bad);
  return result(await checkSignedPoints(store, checkpoints, hashes, anchor));
}

/**
 * After a walk: every checkpoint must carry a valid server signature and match the event at its sequence
 * number (`hashes`: the walked events' hashes at the checkpoints' sequence numbers). With `anchor`, the
 * store must still hold the event it signs. The first that does not verify, or undefined.
 */
export async function checkSignedPoints(
  store: Pick<Store, 'scanAudit' | 'listKeys' | 'auditHead'>,
  checkpoints: readonly AuditCheckpoint[],
  hashes: ReadonlyMap<number, string>,
  anchor?: AuditCheckpoint,
): Promise<Bad | undefined> {
  const keys = (await store.listKeys()).map((k) => importPublicJwk({ ...k.publicJwk }));
  if (anchor) {
    const wrong = checkpointSignature(anchor, keys);
    if (wrong) return { seq: anchor.seq, reason: `anchor at event ${anchor.seq}: ${wrong}` };
    const bad = await checkHeldPoint(store, anchor, 'the anchor');
    if (bad) return bad;
  }
  for (const c of checkpoints) {
    const bad = (reason: string) => ({ seq: c.seq, reason: `checkpoint at event ${c.seq}: ${reason}` });
    const wrong = checkpointSignature(c, keys);
    if (wrong) return bad(wrong);
    const eventHash = hashes.get(c.seq);
    if (eventHash === undefined) return bad('the event it signs is missing (log truncated?)');
    if (eventHash !== c.hash) return bad('the event it signs has a different hash');
  }
  return undefined;
}
