import { importPublicJwk } from '../jose/jwk.js';
import { parseClaims, verifyCompactJws } from '../jose/jws.js';
import type { Store } from '../store/store.js';
import { CHECKPOINT_TYP } from './audit-log.js';
import { chainHash, GENESIS_HASH } from './chain.js';

export interface AuditVerification {
  ok: boolean;
  events: number;
  checkpoints: number;
  /** The first event (or checkpoint) that does not verify, and why. */
  firstBad?: { seq: number; reason: string };
}

const PAGE = 5000;

/**
 * Walks the whole chain: every event's `prev_hash` must be the previous event's hash, its hash must be
 * recomputable from its content, and sequence numbers must have no gaps. Then every checkpoint must
 * carry a valid server signature and match the event at its sequence number.
 */
export async function verifyAuditChain(
  store: Pick<Store, 'scanAudit' | 'listCheckpoints' | 'listKeys'>,
): Promise<AuditVerification> {
  const hashes = new Map<number, string>();
  const checkpoints = await store.listCheckpoints();
  const wanted = new Set(checkpoints.map((c) => c.seq));
  let prevSeq = 0;
  let prevHash = GENESIS_HASH;
  let count = 0;
  for (;;) {
    const page = await store.scanAudit(prevSeq, PAGE);
    if (page.length === 0) break;
    for (const e of page) {
      const fail = (reason: string): AuditVerification => ({
        ok: false,
        events: count,
        checkpoints: checkpoints.length,
        firstBad: { seq: e.seq, reason },
      });
      if (e.seq !== prevSeq + 1) {
        return fail(
          `event ${prevSeq + 1}${e.seq - prevSeq > 2 ? `..${e.seq - 1}` : ''} missing before event ${e.seq}`,
        );
      }
      if (e.prevHash !== prevHash)
        return fail('prev_hash does not match the previous event (deleted, inserted or reordered)');
      if (chainHash(e.prevHash, e.seq, e) !== e.hash) return fail('content does not match its hash (edited)');
      if (wanted.has(e.seq)) hashes.set(e.seq, e.hash);
      prevSeq = e.seq;
      prevHash = e.hash;
      count++;
    }
  }

  const keys = (await store.listKeys()).map((k) => importPublicJwk({ ...k.publicJwk }));
  for (const c of checkpoints) {
    const bad = (reason: string): AuditVerification => ({
      ok: false,
      events: count,
      checkpoints: checkpoints.length,
      firstBad: { seq: c.seq, reason: `checkpoint at event ${c.seq}: ${reason}` },
    });
    let claims: Record<string, unknown>;
    try {
      const jws = verifyCompactJws(c.jws, { algorithms: ['ES256', 'EdDSA'], keys, maxBytes: 4096 });
      if (jws.header.typ !== CHECKPOINT_TYP) return bad('wrong typ');
      claims = parseClaims(jws.payload);
    } catch (err) {
      return bad(`signature does not verify (${(err as Error).message})`);
    }
    if (claims['seq'] !== c.seq || claims['hash'] !== c.hash)
      return bad('signed content differs from the stored checkpoint');
    const eventHash = hashes.get(c.seq);
    if (eventHash === undefined) return bad('the event it signs is missing (log truncated?)');
    if (eventHash !== c.hash) return bad('the event it signs has a different hash');
  }
  return { ok: true, events: count, checkpoints: checkpoints.length };
}
