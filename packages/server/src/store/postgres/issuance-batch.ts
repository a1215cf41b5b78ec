import type pg from 'pg';
import type { AuditEvent } from '../../audit/audit-event.js';
import { AuditChainBrokenError, type AuditHead, checkHeldHead, linkAuditEvent } from '../../audit/chain.js';
import { IssuanceRefusedError, type IssuanceWrite } from '../issuance-write.js';

/** At most this many issuances in one transaction (a few thousand parameters, well under the limit). */
export const MAX_ISSUANCE_BATCH = 256;

interface Pending {
  w: IssuanceWrite;
  held: AuditHead | undefined;
  resolve: (e: AuditEvent) => void;
  reject: (err: unknown) => void;
}

/**
 * The statements of a batch, schema and clock spliced in once. `commit` is one statement for the
 * whole batch: it spends every replay entry, checks every task is open and, only when all of them
 * passed, inserts every token record and audit event (`ok` says which happened).
 */
export function issuanceStatements(s: string, earlierThan: (param: string) => string) {
  return {
    // Simple protocol, one round trip: BEGIN, the cluster's write lock, then (a statement of its own, so
    // its snapshot is taken once the lock is held) the chain's head and the event at the held sequence.
    lockAndHead: (heldSeq: number) => `BEGIN; SELECT 1 FROM ${s}.write_head WHERE id = 1 FOR UPDATE;
      (SELECT seq, hash, true AS head FROM ${s}.audit_events ORDER BY seq DESC LIMIT 1)
      UNION ALL (SELECT seq, hash, false AS head FROM ${s}.audit_events WHERE seq = ${heldSeq})`,
    commit: `WITH c AS (
        INSERT INTO ${s}.replay AS r (scope, id, expires_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
        ON CONFLICT (scope, id) DO UPDATE SET expires_at = excluded.expires_at WHERE r.expires_at <= ${earlierThan('$4')}
        RETURNING 1),
      chk AS (SELECT (SELECT count(*) FROM c) = cardinality($1::text[])
          AND (SELECT count(*) FROM ${s}.tasks WHERE id = ANY($5::text[]) AND closed_at IS NULL) = cardinality($5::text[]) AS ok),
      t AS (INSERT INTO ${s}.tokens (jti, sub, client_id, cls, aud, scope, kid, tid, iat, exp, fingerprint, ajti)
        SELECT u.* FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
          $13::text[], $14::bigint[], $15::bigint[], $16::text[], $17::text[]) AS u, chk WHERE chk.ok),
      a AS (INSERT INTO ${s}.audit_events (seq, ts, type, outcome, actor, subject, jti, data, prev_hash, hash)
        SELECT u.* FROM unnest($18::bigint[], $19::bigint[], $20::text[], $21::text[], $22::text[], $23::text[],
          $24::text[], $25::text[], $26::text[], $27::text[]) AS u, chk WHERE chk.ok)
      SELECT ok FROM chk`,
  };
}
type IssuanceStatements = ReturnType<typeof issuanceStatements>;

/**
 * Group commit of issuances on PostgreSQL. Issuances queue while the node's batches are in flight (at
 * most `maxInFlight`); when one commits, the queue (up to `MAX_ISSUANCE_BATCH`) goes as the next batch.
 * An idle node sends at the end of the current turn of the event loop, so a lone request waits for no
 * timer. A batch is three round trips whatever its size: BEGIN with the write lock and the chain's head;
 * one statement with every replay entry, task check, token record and audit event; COMMIT. Every caller
 * settles after the COMMIT. When one issuance of the batch is refused (a spent entry, a closed task) the
 * statement writes nothing, the batch rolls back and each issuance is retried in a transaction of its
 * own, so only the refused one fails; any other failure rejects every issuance of the batch (no token
 * leaves without its audit event).
 */
export class IssuanceBatcher {
  readonly #pool: pg.Pool;
  readonly #sql: IssuanceStatements;
  readonly #alone: (w: IssuanceWrite, held: AuditHead | undefined) => Promise<AuditEvent>;
  readonly #fail: (err: unknown) => unknown;
  readonly #maxInFlight: number;
  #queue: Pending[] = [];
  #inFlight = 0;
  #scheduled = false;
  /** Statements sent to the database (batches and fallbacks), for the benchmark's per-token count. */
  statements = 0;

  constructor(deps: {
    pool: pg.Pool;
    sql: IssuanceStatements;
    /** One issuance in a transaction of its own (the fallback after a refusal in a batch). */
    alone: (w: IssuanceWrite, held: AuditHead | undefined) => Promise<AuditEvent>;
    /** Maps a driver error to the store's error. */
    fail: (err: unknown) => unknown;
    maxInFlight?: number;
  }) {
    this.#pool = deps.pool;
    this.#sql = deps.sql;
    this.#alone = deps.alone;
    this.#fail = deps.fail;
    this.#maxInFlight = deps.maxInFlight ?? 2;
  }

  submit(w: IssuanceWrite, held: AuditHead | undefined): Promise<AuditEvent> {
    return new Promise<AuditEvent>((resolve, reject) => {
      this.#queue.push({ w, held, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#maxInFlight || this.#queue.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
        const batch = this.#queue.splice(0, MAX_ISSUANCE_BATCH);
        this.#inFlight++;
        this.#run(batch).finally(() => {
          this.#inFlight--;
          this.#schedule();
        });
      }
    });
  }

  async #run(batch: Pending[]): Promise<void> {
    // A replay entry twice in one batch: the first spends it, the later ones are refused without a trip.
    const seen = new Set<string>();
    const live: Pending[] = [];
    for (const p of batch) {
      const twice = p.w.consume.findIndex((c) => {
        const key = `${c.scope}\u0000${c.id}`;
        return seen.has(key);
      });
      if (twice >= 0) {
        p.reject(new IssuanceRefusedError('replay', twice));
        continue;
      }
      for (const c of p.w.consume) seen.add(`${c.scope}\u0000${c.id}`);
      live.push(p);
    }
    if (live.length === 0) return;
    let events: AuditEvent[] | undefined;
    try {
      events = await this.#commit(live);
    } catch (err) {
      for (const p of live) p.reject(err);
      return;
    }
    if (events) {
      for (const [i, p] of live.entries()) p.resolve(events[i]!);
      return;
    }
    // Refused somewhere in the batch: each alone, so the refusal reaches only its own caller.
    await Promise.all(
      live.map((p) =>
        this.#alone(p.w, p.held).then(
          (e) => p.resolve(e),
          (err: unknown) => p.reject(err),
        ),
      ),
    );
  }

  /** The batch's events once committed, or undefined when the statement found a refusal (rolled back). */
  async #commit(batch: Pending[]): Promise<AuditEvent[] | undefined> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw this.#fail(err);
    }
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken ??= err;
    };
    client.on('error', onError);
    let begun = false;
    try {
      // The newest event any caller of the batch holds (they all come from this node's log).
      let held: AuditHead | undefined;
      for (const p of batch) if (p.held && (!held || p.held.seq > held.seq)) held = p.held;
      const heldSeq = held?.seq ?? 0;
      if (!Number.isSafeInteger(heldSeq) || heldSeq < 0) throw new Error('held sequence is not an integer');
      begun = true;
      this.statements += 3;
      const results = (await client.query(this.#sql.lockAndHead(heldSeq))) as unknown as pg.QueryResult[];
      const rows = results[2]!.rows as Array<{ seq: number; hash: string; head: boolean }>;
      const h = rows.find((r) => r.head);
      const at = rows.find((r) => !r.head);
      let head: AuditHead | undefined = h ? { seq: Number(h.seq), hash: h.hash } : undefined;
      checkHeldHead(held, at?.hash, head);
      const events: AuditEvent[] = [];
      for (const p of batch) {
        const e = linkAuditEvent(head, p.w.audit);
        events.push(e);
        head = e;
      }
      const values = this.#values(batch, events);
      this.statements++;
      const r = await client.query<{ ok: boolean }>({
        name: 'writ_issue_batch',
        text: this.#sql.commit,
        values,
      });
      if (r.rows[0]?.ok !== true) {
        this.statements++;
        await client.query('ROLLBACK');
        return undefined;
      }
      this.statements++;
      await client.query('COMMIT');
      return events;
    } catch (err) {
      if (begun && !broken) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          broken = rollbackErr as Error;
        }
      }
      throw err instanceof AuditChainBrokenError ? err : this.#fail(err);
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  #values(batch: Pending[], events: AuditEvent[]): unknown[] {
    const col = <T>(f: (p: Pending, i: number) => T): T[] => batch.map(f);
    const consumes = batch.flatMap((p) => p.w.consume);
    const tids = [...new Set(batch.flatMap((p) => (p.w.token.tid !== undefined ? [p.w.token.tid] : [])))];
    // The replay entries' clock: the earliest caller's (an entry is reused only once every clock agrees).
    const now = Math.min(...batch.map((p) => p.w.now));
    const t = (p: Pending) => p.w.token;
    return [
      consumes.map((c) => c.scope),
      consumes.map((c) => c.id),
      consumes.map((c) => c.expiresAt),
      now,
      tids,
      col((p) => t(p).jti),
      col((p) => t(p).sub),
      col((p) => t(p).clientId),
      col((p) => t(p).cls),
      col((p) => t(p).aud),
      col((p) => t(p).scope),
      col((p) => t(p).kid),
      col((p) => t(p).tid ?? null),
      col((p) => t(p).iat),
      col((p) => t(p).exp),
      col((p) => t(p).fingerprint),
      col((p) => (t(p).ajti !== undefined ? JSON.stringify(t(p).ajti) : null)),
      events.map((e) => e.seq),
      events.map((e) => e.ts),
      events.map((e) => e.type),
      events.map((e) => e.outcome),
      events.map((e) => e.actor),
      events.map((e) => e.subject ?? null),
      events.map((e) => e.jti ?? null),
      events.map((e) => JSON.stringify(e.data)),
      events.map((e) => e.prevHash),
      events.map((e) => e.hash),
    ];
  }
}
