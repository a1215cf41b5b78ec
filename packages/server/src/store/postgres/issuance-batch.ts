import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { AuditEvent } from '../../audit/audit-event.js';
import {
  AuditChainBrokenError,
  type AuditHead,
  chainBody,
  chainHashOf,
  checkHeldHead,
  GENESIS_HASH,
} from '../../audit/chain.js';
import { IssuanceRefusedError, type IssuanceWrite } from '../issuance-write.js';

/** SQLSTATE of `writ_issue_batch`: an issuance of the batch was refused (nothing written). */
const REFUSED = 'WR001';
/** SQLSTATE of `writ_issue_batch`: the chain no longer holds the event the node holds. */
const HELD_GONE = 'WR002';

/** At most this many issuances in one transaction (a few thousand parameters, well under the limit). */
export const MAX_ISSUANCE_BATCH = 256;

/**
 * Milliseconds a node may hold its next batch open after a batch of several issuances committed, for
 * the issuances still on their way (at most: see `IssuanceBatcher`).
 */
export const ISSUANCE_HOLD_MS = 2;

interface Pending {
  w: IssuanceWrite;
  held: AuditHead | undefined;
  resolve: (e: AuditEvent) => void;
  reject: (err: unknown) => void;
}

/**
 * The statement of a batch, schema and clock spliced in once: one call of `writ_issue_batch` (migration
 * 20), which spends every replay entry, records every token, takes the write lock, checks every task is
 * open and the event this node holds is still in the chain, then numbers, links and inserts every audit
 * event. Sent on its own (autocommit), it is one round trip and one commit, and the write lock is held
 * only while PostgreSQL runs it and flushes the commit. A refusal or a broken chain raises (`WR001`,
 * `WR002`) and nothing of the batch is written.
 */
export function issuanceStatements(s: string, earlierThan: (param: string) => string) {
  return {
    batch: `SELECT o_base_seq, o_base_hash, o_last_hash FROM ${s}.writ_issue_batch(
      $1::text[], $2::text[], $3::bigint[], ${earlierThan('$4')}, $5::text[],
      $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
      $13::text[], $14::bigint[], $15::bigint[], $16::text[], $17::text[],
      $18::bigint[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[],
      $24::text[], $25::text[], $26::text[], $27::bigint, $28::text)`,
  };
}
type IssuanceStatements = ReturnType<typeof issuanceStatements>;

/**
 * Group commit of issuances on PostgreSQL. Issuances queue while the node's batches are in flight (at
 * most `maxInFlight`, one by default); when one commits, the queue (up to `MAX_ISSUANCE_BATCH`) goes as
 * the next batch. One in flight: every batch of every node holds the write lock through its WAL flush,
 * so while one waits the next should gather, not queue on the lock too (two in flight at three nodes
 * made twice the batches, each half as large, and more lock waits).
 * An idle node sends at the end of the current turn of the event loop, so a lone request waits for no
 * timer. A busy one (its last batch had several issuances) holds the next batch open while each turn
 * of the event loop brings more, for up to `ISSUANCE_HOLD_MS` or until it is twice the last one: a
 * call costs the node and PostgreSQL far more than an issuance in it (a round trip, a commit and its
 * WAL flush: about 1 ms of CPU in all, against tens of microseconds an issuance), and at three nodes
 * each node's batches were a third to half the size of one node's, so the same tokens cost two to
 * three times the calls on the same cores. The hold bounds what this adds to a request's latency. A
 * batch is one statement whatever its size (`issuanceStatements`): one round trip, one commit, and the
 * write lock held only inside PostgreSQL. Every caller settles after the commit. When one
 * issuance of the batch is refused (a spent entry, a closed task) the call writes nothing and each
 * issuance is retried in a transaction of its own, so only the refused one fails; any other failure
 * rejects every issuance of the batch (no token leaves without its audit event).
 */
export class IssuanceBatcher {
  readonly #pool: pg.Pool;
  readonly #sql: IssuanceStatements;
  readonly #alone: (w: IssuanceWrite, held: AuditHead | undefined) => Promise<AuditEvent>;
  readonly #fail: (err: unknown) => unknown;
  readonly #maxInFlight: number;
  readonly #holdMs: number;
  #queue: Pending[] = [];
  #inFlight = 0;
  #scheduled = false;
  /** The next batch is held open until then (`performance.now()`), or until `#holdFor` are queued. */
  #holdUntil = 0;
  #holdFor = 0;
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
    /** `ISSUANCE_HOLD_MS` unless given; 0 sends every batch as soon as the one before committed. */
    holdMs?: number;
  }) {
    this.#pool = deps.pool;
    this.#sql = deps.sql;
    this.#alone = deps.alone;
    this.#fail = deps.fail;
    this.#maxInFlight = deps.maxInFlight ?? 1;
    this.#holdMs = deps.holdMs ?? ISSUANCE_HOLD_MS;
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
    this.#endOfTurn(-1);
  }

  /**
   * At the end of this turn of the event loop: sends the batch, unless it is held (`#holdUntil`) and
   * this turn brought more issuances than the last (`seen`) without doubling the last batch; then
   * looks again at the end of the next turn. A turn that brings none ends the hold: nothing more is
   * on its way, and a node with few requests in progress waits for no timer.
   */
  #endOfTurn(seen: number): void {
    setImmediate(() => {
      const n = this.#queue.length;
      if (n > seen && n < this.#holdFor && performance.now() < this.#holdUntil) {
        this.#endOfTurn(n);
        return;
      }
      this.#holdUntil = 0;
      this.#send();
    });
  }

  #send(): void {
    this.#scheduled = false;
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_ISSUANCE_BATCH);
      this.#inFlight++;
      this.#run(batch).finally(() => {
        this.#inFlight--;
        // Several at once: more are likely on their way; hold the next batch open for them.
        if (batch.length > 1 && this.#holdMs > 0) {
          this.#holdUntil = performance.now() + this.#holdMs;
          this.#holdFor = Math.min(MAX_ISSUANCE_BATCH, 2 * batch.length);
        }
        this.#schedule();
      });
    }
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

  /** The batch's events once committed, or undefined when the store refused one of them (nothing written). */
  async #commit(batch: Pending[]): Promise<AuditEvent[] | undefined> {
    // The newest event any caller of the batch holds (they all come from this node's log).
    let held: AuditHead | undefined;
    for (const p of batch) if (p.held && (!held || p.held.seq > held.seq)) held = p.held;
    if (held && (!Number.isSafeInteger(held.seq) || held.seq < 0))
      throw new Error('held sequence is not an integer');
    const bodies = batch.map((p) => chainBody(p.w.audit));
    let row: { o_base_seq: number | null; o_base_hash: string | null; o_last_hash: string };
    try {
      this.statements++;
      const r = await this.#pool.query({
        name: 'writ_issue_batch',
        text: this.#sql.batch,
        values: this.#values(batch, bodies, held),
      });
      row = r.rows[0];
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === REFUSED) return undefined;
      if (code === HELD_GONE) {
        // DETAIL: the head's sequence number, a space, the hash the store has at the held one (or none).
        const detail = String((err as { detail?: unknown }).detail ?? '');
        const cut = detail.indexOf(' ');
        const top = Number(detail.slice(0, cut));
        const atHeld = detail.slice(cut + 1) || undefined;
        checkHeldHead(held, atHeld, { seq: Number.isSafeInteger(top) ? top : 0, hash: '' });
        throw new AuditChainBrokenError('audit log rewritten: the store refused the event this node holds');
      }
      throw this.#fail(err);
    }
    // Link the events as the store did, from the head it found; the last hash must agree (it always does
    // when both hashed the same bytes): a disagreement would leave events this node cannot vouch for.
    let head: AuditHead | undefined =
      row.o_base_seq && row.o_base_hash ? { seq: Number(row.o_base_seq), hash: row.o_base_hash } : undefined;
    const events: AuditEvent[] = [];
    for (const [i, p] of batch.entries()) {
      const seq = (head?.seq ?? 0) + 1;
      const prevHash = head?.hash ?? GENESIS_HASH;
      const { head: h, tail } = bodies[i]!;
      const e: AuditEvent = { ...p.w.audit, seq, prevHash, hash: chainHashOf(prevHash, seq, h, tail) };
      events.push(e);
      head = e;
    }
    if (head?.hash !== row.o_last_hash)
      throw new AuditChainBrokenError(
        `audit log: the store linked events ${events[0]!.seq}..${head?.seq} with a hash this node does not compute (database encoding?)`,
      );
    return events;
  }

  #values(
    batch: Pending[],
    bodies: Array<{ head: string; tail: string }>,
    held: AuditHead | undefined,
  ): unknown[] {
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
      col((p) => p.w.audit.ts),
      col((p) => p.w.audit.type),
      col((p) => p.w.audit.outcome),
      col((p) => p.w.audit.actor),
      col((p) => p.w.audit.subject ?? null),
      col((p) => p.w.audit.jti ?? null),
      col((p) => JSON.stringify(p.w.audit.data)),
      bodies.map((b) => b.head),
      bodies.map((b) => b.tail),
      held?.seq ?? 0,
      held?.hash ?? null,
    ];
  }
}
