import type Database from 'better-sqlite3';
import type { QueuedSet, SsfStream } from '../../ssf/stream-record.js';
import type { UsageAggregate, UsageScan } from '../../usage/usage-aggregate.js';
import type { Row } from '../rows.js';
import { streamSpec, toQueuedSet, toSsfStream, toUsageAggregate } from '../signal-rows.js';

/**
 * The embedded store's statements for usage aggregates, Shared Signals streams and their queues, and
 * event-log followers. Synchronous: the store's queue (or its transaction) serializes them.
 */
export class SqliteSignalOps {
  readonly #db: Database.Database;
  #addUsageStatement: Database.Statement | undefined;

  constructor(db: Database.Database) {
    this.#db = db;
  }

  // Prepared on first use: a read-only store opened on an older file must not fail for want of a table.
  get #addUsage(): Database.Statement {
    // In an UPDATE every expression sees the row as it was, so the CASEs compare with the old last_seen.
    this.#addUsageStatement ??= this.#db.prepare(
      `INSERT INTO token_usage (jti, operation, source, decision, reason, sub, tid, reporter, user_agent, count, first_seen, last_seen)
       VALUES (@jti, @operation, @source, @decision, @reason, @sub, @tid, @reporter, @userAgent, @count, @firstSeen, @lastSeen)
       ON CONFLICT (jti, operation, source, decision, reason) DO UPDATE SET
         count = token_usage.count + excluded.count,
         first_seen = MIN(token_usage.first_seen, excluded.first_seen),
         reporter = CASE WHEN excluded.last_seen >= token_usage.last_seen THEN excluded.reporter ELSE token_usage.reporter END,
         user_agent = CASE WHEN excluded.last_seen >= token_usage.last_seen THEN excluded.user_agent ELSE token_usage.user_agent END,
         last_seen = MAX(token_usage.last_seen, excluded.last_seen)`,
    );
    return this.#addUsageStatement;
  }

  addUsage(rows: UsageAggregate[]): void {
    for (const r of rows) this.#addUsage.run(r);
  }
  usageForToken(jti: string, limit: number): UsageAggregate[] {
    return this.#db
      .prepare(
        `SELECT * FROM token_usage WHERE jti = ?
         ORDER BY first_seen, operation, source, decision, reason LIMIT ?`,
      )
      .all(jti, limit)
      .map((r) => toUsageAggregate(r as Row));
  }
  scanUsage(q: UsageScan): UsageAggregate[] {
    const where = ['last_seen >= @from'];
    if (q.decision !== undefined) where.push('decision = @decision');
    if (q.after !== undefined)
      where.push('(jti, operation, source, decision, reason) > (@a0, @a1, @a2, @a3, @a4)');
    const [a0, a1, a2, a3, a4] = q.after ?? [];
    return this.#db
      .prepare(
        `SELECT * FROM token_usage WHERE ${where.join(' AND ')}
         ORDER BY jti, operation, source, decision, reason LIMIT @limit`,
      )
      .all({
        from: q.lastSeenFrom,
        limit: q.limit,
        ...(q.decision !== undefined ? { decision: q.decision } : {}),
        ...(q.after !== undefined ? { a0, a1, a2, a3, a4 } : {}),
      })
      .map((r) => toUsageAggregate(r as Row));
  }
  pruneUsage(beforeMs: number): number {
    return this.#db.prepare('DELETE FROM token_usage WHERE last_seen < ?').run(beforeMs).changes;
  }

  putSsfStream(s: SsfStream): void {
    this.#db
      .prepare(
        `INSERT INTO ssf_streams (id, owner, spec, sealed_authorization, status, status_reason, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, spec = excluded.spec,
           sealed_authorization = excluded.sealed_authorization, status = excluded.status,
           status_reason = excluded.status_reason, updated_at = excluded.updated_at`,
      )
      .run(
        s.id,
        s.owner,
        streamSpec(s),
        s.sealedAuthorization,
        s.status,
        s.statusReason,
        s.createdAt,
        s.updatedAt,
      );
  }
  getSsfStream(id: string): SsfStream | undefined {
    const r = this.#db.prepare('SELECT * FROM ssf_streams WHERE id = ?').get(id) as Row | undefined;
    return r ? toSsfStream(r) : undefined;
  }
  listSsfStreams(owner?: string): SsfStream[] {
    const rows =
      owner === undefined
        ? this.#db.prepare('SELECT * FROM ssf_streams ORDER BY created_at, id').all()
        : this.#db.prepare('SELECT * FROM ssf_streams WHERE owner = ? ORDER BY created_at, id').all(owner);
    return rows.map((r) => toSsfStream(r as Row));
  }
  deleteSsfStream(id: string): boolean {
    this.#db.prepare('DELETE FROM ssf_sets WHERE stream_id = ?').run(id);
    return this.#db.prepare('DELETE FROM ssf_streams WHERE id = ?').run(id).changes === 1;
  }

  enqueueSsfSets(
    sets: Array<Omit<QueuedSet, 'attempts' | 'lastError'>>,
    maxPerStream: number,
  ): Array<{ streamId: string; dropped: number }> {
    const insert = this.#db.prepare(
      `INSERT INTO ssf_sets (stream_id, jti, event_seq, payload, created_at, next_attempt_at)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (stream_id, jti) DO NOTHING`,
    );
    const streams = new Set<string>();
    for (const s of sets) {
      insert.run(s.streamId, s.jti, s.eventSeq, JSON.stringify(s.payload), s.createdAt, s.nextAttemptAt);
      streams.add(s.streamId);
    }
    const out: Array<{ streamId: string; dropped: number }> = [];
    for (const streamId of streams) {
      const dropped = this.#db
        .prepare(
          `DELETE FROM ssf_sets WHERE stream_id = ? AND id NOT IN
             (SELECT id FROM ssf_sets WHERE stream_id = ? ORDER BY id DESC LIMIT ?)`,
        )
        .run(streamId, streamId, maxPerStream).changes;
      if (dropped > 0) out.push({ streamId, dropped });
    }
    return out;
  }
  pendingSsfSets(streamId: string, limit: number): QueuedSet[] {
    return this.#db
      .prepare('SELECT * FROM ssf_sets WHERE stream_id = ? ORDER BY id LIMIT ?')
      .all(streamId, limit)
      .map((r) => toQueuedSet(r as Row));
  }
  ackSsfSets(streamId: string, jtis: string[]): number {
    const del = this.#db.prepare('DELETE FROM ssf_sets WHERE stream_id = ? AND jti = ?');
    let n = 0;
    for (const jti of new Set(jtis)) n += del.run(streamId, jti).changes;
    return n;
  }
  claimSsfSet(streamId: string, now: number, leaseUntil: number): QueuedSet | undefined {
    const r = this.#db
      .prepare(
        `UPDATE ssf_sets SET attempts = attempts + 1, next_attempt_at = ?
         WHERE id = (SELECT MIN(id) FROM ssf_sets WHERE stream_id = ?) AND next_attempt_at <= ?
         RETURNING *`,
      )
      .get(leaseUntil, streamId, now) as Row | undefined;
    return r ? toQueuedSet(r) : undefined;
  }
  deferSsfSet(streamId: string, jti: string, nextAttemptAt: number, lastError: string): void {
    this.#db
      .prepare('UPDATE ssf_sets SET next_attempt_at = ?, last_error = ? WHERE stream_id = ? AND jti = ?')
      .run(nextAttemptAt, lastError, streamId, jti);
  }

  followerPosition(name: string): number | undefined {
    const r = this.#db.prepare('SELECT seq FROM event_followers WHERE name = ?').get(name) as
      | { seq: number }
      | undefined;
    return r?.seq;
  }
  setFollowerPosition(name: string, seq: number): void {
    this.#db
      .prepare(
        `INSERT INTO event_followers (name, seq) VALUES (?, ?)
         ON CONFLICT (name) DO UPDATE SET seq = MAX(event_followers.seq, excluded.seq)`,
      )
      .run(name, seq);
  }
}
