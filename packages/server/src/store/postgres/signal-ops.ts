import type pg from 'pg';
import type { QueuedSet, SsfStream } from '../../ssf/stream-record.js';
import type { UsageAggregate, UsageScan } from '../../usage/usage-aggregate.js';
import type { Row } from '../rows.js';
import { streamSpec, toQueuedSet, toSsfStream, toUsageAggregate } from '../signal-rows.js';

type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult<Row>>;

/**
 * The cluster store's statements for usage aggregates, Shared Signals streams and their queues, and
 * event-log followers. `query` runs on the pool, or on the transaction's connection inside one.
 * None of these take the write lock: they touch no hash chain and no gap-free sequence.
 */
export class PostgresSignalOps {
  readonly #s: string;
  readonly #query: Query;

  constructor(schema: string, query: Query) {
    this.#s = schema;
    this.#query = query;
  }

  async addUsage(rows: UsageAggregate[]): Promise<void> {
    if (rows.length === 0) return;
    // One statement for the batch; rows sharing a key are merged first (ON CONFLICT may touch a row once).
    const merged = new Map<string, UsageAggregate>();
    for (const r of rows) {
      const key = JSON.stringify([r.jti, r.operation, r.source, r.decision, r.reason]);
      const prev = merged.get(key);
      if (!prev) merged.set(key, { ...r });
      else {
        const later = r.lastSeen >= prev.lastSeen ? r : prev;
        merged.set(key, {
          ...later,
          count: prev.count + r.count,
          firstSeen: Math.min(prev.firstSeen, r.firstSeen),
          lastSeen: Math.max(prev.lastSeen, r.lastSeen),
        });
      }
    }
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (const r of merged.values()) {
      const base = values.length;
      values.push(
        r.jti,
        r.operation,
        r.source,
        r.decision,
        r.reason,
        r.sub,
        r.tid,
        r.reporter,
        r.userAgent,
        r.count,
        r.firstSeen,
        r.lastSeen,
      );
      tuples.push(`(${Array.from({ length: 12 }, (_, i) => `$${base + i + 1}`).join(', ')})`);
    }
    const t = `${this.#s}.token_usage`;
    await this.#query(
      `INSERT INTO ${t} AS u (jti, operation, source, decision, reason, sub, tid, reporter, user_agent, count, first_seen, last_seen)
       VALUES ${tuples.join(', ')}
       ON CONFLICT (jti, operation, source, decision, reason) DO UPDATE SET
         count = u.count + excluded.count,
         first_seen = LEAST(u.first_seen, excluded.first_seen),
         reporter = CASE WHEN excluded.last_seen >= u.last_seen THEN excluded.reporter ELSE u.reporter END,
         user_agent = CASE WHEN excluded.last_seen >= u.last_seen THEN excluded.user_agent ELSE u.user_agent END,
         last_seen = GREATEST(u.last_seen, excluded.last_seen)`,
      values,
    );
  }
  async usageForToken(jti: string, limit: number): Promise<UsageAggregate[]> {
    const { rows } = await this.#query(
      `SELECT * FROM ${this.#s}.token_usage WHERE jti = $1
       ORDER BY first_seen, operation, source, decision, reason LIMIT $2`,
      [jti, limit],
    );
    return rows.map(toUsageAggregate);
  }
  async scanUsage(q: UsageScan): Promise<UsageAggregate[]> {
    const values: unknown[] = [q.lastSeenFrom];
    const where = ['last_seen >= $1'];
    if (q.decision !== undefined) {
      values.push(q.decision);
      where.push(`decision = $${values.length}`);
    }
    if (q.after !== undefined) {
      const base = values.length;
      values.push(...q.after);
      where.push(
        `(jti, operation, source, decision, reason) > ($${base + 1}, $${base + 2}, $${base + 3}, $${base + 4}, $${base + 5})`,
      );
    }
    values.push(q.limit);
    const { rows } = await this.#query(
      `SELECT * FROM ${this.#s}.token_usage WHERE ${where.join(' AND ')}
       ORDER BY jti, operation, source, decision, reason LIMIT $${values.length}`,
      values,
    );
    return rows.map(toUsageAggregate);
  }
  async pruneUsage(beforeMs: number): Promise<number> {
    return (await this.#query(`DELETE FROM ${this.#s}.token_usage WHERE last_seen < $1`, [beforeMs]))
      .rowCount!;
  }

  async putSsfStream(st: SsfStream): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.ssf_streams (id, owner, spec, sealed_authorization, status, status_reason, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, spec = excluded.spec,
         sealed_authorization = excluded.sealed_authorization, status = excluded.status,
         status_reason = excluded.status_reason, updated_at = excluded.updated_at`,
      [
        st.id,
        st.owner,
        streamSpec(st),
        st.sealedAuthorization,
        st.status,
        st.statusReason,
        st.createdAt,
        st.updatedAt,
      ],
    );
  }
  async getSsfStream(id: string): Promise<SsfStream | undefined> {
    const r = (await this.#query(`SELECT * FROM ${this.#s}.ssf_streams WHERE id = $1`, [id])).rows[0];
    return r ? toSsfStream(r) : undefined;
  }
  async listSsfStreams(owner?: string): Promise<SsfStream[]> {
    const { rows } =
      owner === undefined
        ? await this.#query(`SELECT * FROM ${this.#s}.ssf_streams ORDER BY created_at, id`)
        : await this.#query(`SELECT * FROM ${this.#s}.ssf_streams WHERE owner = $1 ORDER BY created_at, id`, [
            owner,
          ]);
    return rows.map(toSsfStream);
  }
  async deleteSsfStream(id: string): Promise<boolean> {
    // One statement, so a concurrent enqueue cannot leave SETs behind for a deleted stream's id.
    const r = await this.#query(
      `WITH gone AS (DELETE FROM ${this.#s}.ssf_sets WHERE stream_id = $1)
       DELETE FROM ${this.#s}.ssf_streams WHERE id = $1`,
      [id],
    );
    return r.rowCount === 1;
  }

  async enqueueSsfSets(
    sets: Array<Omit<QueuedSet, 'attempts' | 'lastError'>>,
    maxPerStream: number,
  ): Promise<Array<{ streamId: string; dropped: number }>> {
    const streams = new Set<string>();
    for (const st of sets) {
      await this.#query(
        `INSERT INTO ${this.#s}.ssf_sets (stream_id, jti, event_seq, payload, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (stream_id, jti) DO NOTHING`,
        [st.streamId, st.jti, st.eventSeq, JSON.stringify(st.payload), st.createdAt, st.nextAttemptAt],
      );
      streams.add(st.streamId);
    }
    const out: Array<{ streamId: string; dropped: number }> = [];
    for (const streamId of streams) {
      const dropped = (
        await this.#query(
          `DELETE FROM ${this.#s}.ssf_sets WHERE stream_id = $1 AND id NOT IN
             (SELECT id FROM ${this.#s}.ssf_sets WHERE stream_id = $1 ORDER BY id DESC LIMIT $2)`,
          [streamId, maxPerStream],
        )
      ).rowCount!;
      if (dropped > 0) out.push({ streamId, dropped });
    }
    return out;
  }
  async pendingSsfSets(streamId: string, limit: number): Promise<QueuedSet[]> {
    const { rows } = await this.#query(
      `SELECT * FROM ${this.#s}.ssf_sets WHERE stream_id = $1 ORDER BY id LIMIT $2`,
      [streamId, limit],
    );
    return rows.map(toQueuedSet);
  }
  async ackSsfSets(streamId: string, jtis: string[]): Promise<number> {
    if (jtis.length === 0) return 0;
    return (
      await this.#query(`DELETE FROM ${this.#s}.ssf_sets WHERE stream_id = $1 AND jti = ANY($2::text[])`, [
        streamId,
        [...new Set(jtis)],
      ])
    ).rowCount!;
  }
  async claimSsfSet(streamId: string, now: number, leaseUntil: number): Promise<QueuedSet | undefined> {
    // Two nodes racing pick the same head; the loser waits for the winner's row lock, re-checks
    // next_attempt_at against the updated row and claims nothing.
    const r = (
      await this.#query(
        `UPDATE ${this.#s}.ssf_sets SET attempts = attempts + 1, next_attempt_at = $1
         WHERE id = (SELECT MIN(id) FROM ${this.#s}.ssf_sets WHERE stream_id = $2) AND next_attempt_at <= $3
         RETURNING *`,
        [leaseUntil, streamId, now],
      )
    ).rows[0];
    return r ? toQueuedSet(r) : undefined;
  }
  async deferSsfSet(streamId: string, jti: string, nextAttemptAt: number, lastError: string): Promise<void> {
    await this.#query(
      `UPDATE ${this.#s}.ssf_sets SET next_attempt_at = $1, last_error = $2 WHERE stream_id = $3 AND jti = $4`,
      [nextAttemptAt, lastError, streamId, jti],
    );
  }

  async followerPosition(name: string): Promise<number | undefined> {
    const r = (await this.#query(`SELECT seq FROM ${this.#s}.event_followers WHERE name = $1`, [name]))
      .rows[0];
    return r ? (r['seq'] as number) : undefined;
  }
  async setFollowerPosition(name: string, seq: number): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.event_followers AS f (name, seq) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET seq = GREATEST(f.seq, excluded.seq)`,
      [name, seq],
    );
  }
}
