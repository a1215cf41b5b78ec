import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { fakeClock } from '../src/clock.js';
import { LEASE_MS, StoreRateLimiter } from '../src/rate-limit/rate-limit.js';
import { openPostgresStore } from '../src/store/postgres/postgres-store.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { Store } from '../src/store/store.js';

/**
 * The cluster's rate limiter: each node leases a client's requests from the shared bucket in the store
 * and hands them out from memory. Two limiters on one real store are two nodes. What must hold: the
 * budget once across the nodes, within the documented tolerance (one second of refill more, never more
 * than the bucket granted); far fewer statements than requests for a busy client; refusal with a wait
 * when the bucket is empty; failure (not admission) when the store cannot be asked.
 */

const URL_ = process.env['WRIT_TEST_POSTGRES_URL'] ?? '';
const T0 = Date.UTC(2026, 11, 7, 8);

/** The real store, counting the leases it answers (how many statements the limiter sent). */
function counted(store: Store): { store: Pick<Store, 'leaseRate'>; leases: () => number } {
  let n = 0;
  return {
    store: {
      leaseRate: (...a: Parameters<Store['leaseRate']>) => {
        n++;
        return store.leaseRate(...a);
      },
    },
    leases: () => n,
  };
}

const stores: { name: string; open(): Promise<{ a: Store; b: Store; close(): Promise<void> }> }[] = [
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'writ-lease-'));
      const path = join(dir, 'writ.db');
      const a = openSqliteStore({ path });
      const b = openSqliteStore({ path });
      return {
        a,
        b,
        close: async () => {
          await a.close();
          await b.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];
if (URL_ === '') console.log('rate-limit-lease: postgres cases skipped: WRIT_TEST_POSTGRES_URL is not set');
else
  stores.push({
    name: 'postgres',
    async open() {
      const schema = `lease_${randomBytes(5).toString('hex')}`;
      // The fake clock's times, not the database's: the cases move time by hand.
      const a = await openPostgresStore(URL_, { schema, time: 'caller' });
      const b = await openPostgresStore(URL_, { schema, time: 'caller' });
      return {
        a,
        b,
        close: async () => {
          await a.close();
          await b.close();
          const c = new pg.Client({ connectionString: URL_ });
          await c.connect();
          await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
          await c.end();
        },
      };
    },
  });

for (const s of stores)
  describe(`cluster rate limiter: two nodes on ${s.name}`, () => {
    const opened: { close(): Promise<void> }[] = [];
    after(async () => {
      for (const o of opened) await o.close();
    });
    const twoNodes = async (rate: number, burst: number) => {
      const o = await s.open();
      opened.push(o);
      const clock = fakeClock(T0);
      const ca = counted(o.a);
      const cb = counted(o.b);
      return {
        clock,
        a: new StoreRateLimiter(ca.store, rate, burst, clock),
        b: new StoreRateLimiter(cb.store, rate, burst, clock),
        leases: () => ca.leases() + cb.leases(),
      };
    };

    it('concurrent requests at two nodes: the burst once, not once per node', async () => {
      const { a, b } = await twoNodes(1, 40);
      const waits = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).take('c')));
      const allowed = waits.filter((w) => w === 0).length;
      // A lease is at most burst / 8 = 5; the one a node took last may be left unused.
      assert.ok(allowed <= 40, `never more than the bucket (${allowed})`);
      assert.ok(allowed >= 35, `the burst less at most one lease (${allowed})`);
      assert.ok(
        waits.every((w) => w === 0 || w >= 1),
        'a refusal says how long to wait',
      );
    });

    it('over time, the two nodes admit at most the bucket plus one second of refill', async () => {
      const rate = 10;
      const burst = 80;
      const { clock, a, b } = await twoNodes(rate, burst);
      let allowed = 0;
      // 20 s in steps of 100 ms, 6 requests at each node a step: three times the rate.
      for (let step = 0; step < 200; step++) {
        const waits = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).take('t')));
        allowed += waits.filter((w) => w === 0).length;
        clock.advance(100);
      }
      const bound = burst + rate * (20 + LEASE_MS / 1000);
      assert.ok(allowed <= bound, `${allowed} admitted, the tolerance is ${bound}`);
      // And not much less than the bucket's own bound: unused leases lapse, they are few.
      assert.ok(allowed >= burst + rate * 20 - 2 * (burst / 8), `${allowed} admitted`);
    });

    it('a lease not used within its second is not handed out afterwards', async () => {
      const { clock, a, b } = await twoNodes(1, 16);
      // Node a leases 1, then 2 (16 / 8, the most) and uses one of them.
      assert.equal(await a.take('l'), 0);
      assert.equal(await a.take('l'), 0);
      // Node b empties what is left of the bucket.
      let fromB = 0;
      for (let i = 0; i < 20; i++) if ((await b.take('l')) === 0) fromB++;
      assert.ok(fromB >= 12 && fromB <= 13, `${fromB}`);
      clock.advance(LEASE_MS);
      // A's leftover has lapsed: a asks the bucket, which has refilled one request a second.
      assert.equal(await a.take('l'), 0, 'one second of refill');
      assert.ok((await a.take('l')) >= 1, 'the lapsed leftover is not admitted');
    });

    it('a busy client costs one statement per many requests', async () => {
      const { a, b, leases } = await twoNodes(1_000_000, 1_000_000);
      for (let i = 0; i < 2000; i++) assert.equal(await (i % 2 ? a : b).take('busy'), 0);
      // Leases double from 1 to 256 on each node: 9 each, then one per 256 requests.
      assert.ok(leases() <= 30, `${leases()} leases for 2000 requests`);
    });

    it('an idle client takes one request per lease, not a large share of its burst', async () => {
      const { clock, a, b } = await twoNodes(1, 400);
      for (let i = 0; i < 5; i++) {
        assert.equal(await a.take('idle'), 0);
        clock.advance(5 * LEASE_MS);
      }
      // Node b finds the bucket nearly full: a leased a request at a time.
      const waits = await Promise.all(Array.from({ length: 400 }, () => b.take('idle')));
      assert.ok(waits.filter((w) => w === 0).length >= 399);
    });

    it('when the store cannot be asked, the waiting requests fail instead of passing', async () => {
      const o = await s.open();
      const clock = fakeClock(T0);
      const limiter = new StoreRateLimiter(o.a, 1, 100, clock);
      await o.close();
      await assert.rejects(async () => limiter.take('down'));
      await assert.rejects(Promise.all([limiter.take('down'), limiter.take('down')]));
    });
  });
