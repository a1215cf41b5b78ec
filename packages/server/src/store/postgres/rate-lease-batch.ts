import type pg from 'pg';
import { leaseAnswer, type RateLease } from '../rate-lease.js';

/** At most this many buckets in one statement. */
const MAX_KEYS = 256;

interface Take {
  key: string;
  rate: number;
  burst: number;
  want: number;
  now: number;
  resolve: (l: RateLease) => void;
  reject: (err: unknown) => void;
}

/**
 * The statement of a batch of takes from the shared rate buckets (one key or many), all with one rate
 * (`$2`/s), one burst (`$3`) and one clock (`$4`): keys `$1`, how many each wants `$5`. A bucket's level
 * is what it held, refilled at `$2`/s since it was last touched, capped at `$3`; a take gets as many
 * whole ones as the level holds. A conflicting row learns what its take wants from the row it would
 * have inserted (`excluded.taken`: the want, capped at the burst, which caps any take anyway).
 * Rows are written in key order, so two nodes' batches over the same buckets cannot deadlock.
 */
export function rateLeaseBatchStatement(s: string, bucketNow: string): string {
  const level = `LEAST($3::float8, b.tokens + GREATEST(0, ${bucketNow} - b.at) * $2::float8 / 1000)`;
  const take = `LEAST(excluded.taken::float8, floor(${level}))`;
  const fresh = 'LEAST(u.want, floor($3::float8))';
  return `INSERT INTO ${s}.rate_buckets AS b (key, tokens, at, full_at, granted, taken)
      SELECT u.key, $3::float8 - ${fresh}, ${bucketNow},
        ${bucketNow} + ceil(${fresh} * 1000 / $2::float8)::bigint, ${fresh} >= 1, ${fresh}
      FROM unnest($1::text[], $5::float8[]) AS u(key, want) ORDER BY u.key
      ON CONFLICT (key) DO UPDATE SET
        tokens = ${level} - ${take},
        at = GREATEST(b.at, ${bucketNow}),
        full_at = GREATEST(b.at, ${bucketNow})
          + ceil(($3::float8 - ${level} + ${take}) * 1000 / $2::float8)::bigint,
        granted = ${take} >= 1,
        taken = ${take}
      RETURNING key, tokens, taken`;
}

/**
 * Takes from the shared rate buckets, batched: the takes a node asks for in one turn of its event loop
 * (each client's lease, `StoreRateLimiter`) go as one statement per rate and burst, so a node leasing for
 * many clients at once sends one statement, not one per client. A key asked for twice in one turn goes
 * in the next statement (a statement updates a row once). A failure fails every take of its statement.
 */
export class RateLeaseBatcher {
  readonly #pool: pg.Pool;
  readonly #text: string;
  readonly #fail: (err: unknown) => unknown;
  #queue: Take[] = [];
  #scheduled = false;

  constructor(deps: { pool: pg.Pool; text: string; fail: (err: unknown) => unknown }) {
    this.#pool = deps.pool;
    this.#text = deps.text;
    this.#fail = deps.fail;
  }

  take(key: string, rate: number, burst: number, want: number, now: number): Promise<RateLease> {
    return new Promise<RateLease>((resolve, reject) => {
      this.#queue.push({ key, rate, burst, want, now, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#flush();
      });
    });
  }

  #flush(): void {
    const queue = this.#queue;
    this.#queue = [];
    // One statement per rate and burst, each key once, at most MAX_KEYS keys.
    const batches = new Map<string, Array<{ takes: Take[]; keys: Set<string> }>>();
    for (const t of queue) {
      const k = `${t.rate}/${t.burst}`;
      let list = batches.get(k);
      if (!list) {
        list = [];
        batches.set(k, list);
      }
      let batch = list.find((b) => b.takes.length < MAX_KEYS && !b.keys.has(t.key));
      if (!batch) {
        batch = { takes: [], keys: new Set() };
        list.push(batch);
      }
      batch.takes.push(t);
      batch.keys.add(t.key);
    }
    for (const list of batches.values()) for (const b of list) void this.#send(b.takes);
  }

  async #send(batch: Take[]): Promise<void> {
    const first = batch[0]!;
    try {
      const r = await this.#pool.query<{ key: string; tokens: number; taken: number }>({
        name: 'writ_rate_lease_batch',
        text: this.#text,
        values: [
          batch.map((t) => t.key),
          first.rate,
          first.burst,
          // The earliest clock of the batch: no bucket refills for time a caller has not seen yet.
          Math.min(...batch.map((t) => t.now)),
          batch.map((t) => t.want),
        ],
      });
      const byKey = new Map(r.rows.map((row) => [row.key, row]));
      for (const t of batch) {
        const row = byKey.get(t.key);
        if (!row) t.reject(this.#fail(new Error(`rate bucket ${t.key}: no row returned`)));
        else t.resolve(leaseAnswer(Number(row.taken), Number(row.tokens), t.rate));
      }
    } catch (err) {
      const e = this.#fail(err);
      for (const t of batch) t.reject(e);
    }
  }
}
