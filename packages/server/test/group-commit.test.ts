import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { verifyAuditChain } from '../src/audit/verify.js';
import { StoreUnavailableError } from '../src/errors.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { Store } from '../src/store/store.js';

// The embedded store commits concurrent transactions together. Each must still succeed or fail alone,
// and none may be told it succeeded before its writes are committed.
describe('embedded store: group commit', () => {
  let dir: string;
  let path: string;
  let store: Store;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-group-'));
    path = join(dir, 'writ.db');
    store = openSqliteStore({ path });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const audit = (tx: Store, i: number) =>
    tx.appendAudit({ ts: 1000 + i, type: 'test.event', outcome: 'success', actor: `a${i}`, data: { i } });

  it('runs concurrent transactions in one batch; a failing one rolls back alone', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        store.transaction(async (tx) => {
          await tx.consume('group', `id-${i}`, 10_000, 0);
          const e = await audit(tx, i);
          if (i % 3 === 0) throw new Error(`callback ${i} fails after writing`);
          return e.seq;
        }),
      ),
    );
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
    assert.deepEqual(
      failed,
      Array.from({ length: 40 }, (_, i) => i).filter((i) => i % 3 === 0),
    );
    for (const r of results) {
      if (r.status === 'rejected') assert.match((r.reason as Error).message, /fails after writing/);
    }
    // Committed ones hold their writes; rolled-back ones left nothing (their ids are still unused).
    for (let i = 0; i < 40; i++) {
      assert.equal(await store.consume('group', `id-${i}`, 10_000, 0), i % 3 === 0, `id-${i}`);
    }
    // The audit chain has exactly the committed events, gap-free, in commit order, and verifies.
    const events = await store.scanAudit(0, 100);
    assert.deepEqual(
      events.map((e) => e.data['i']),
      Array.from({ length: 40 }, (_, i) => i).filter((i) => i % 3 !== 0),
    );
    assert.deepEqual(
      events.map((e) => e.seq),
      events.map((_, k) => k + 1),
    );
    assert.deepEqual(
      results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
      events.map((e) => e.seq),
    );
    const v = await verifyAuditChain(store);
    assert.equal(v.ok, true, JSON.stringify(v.firstBad));
  });

  it('a statement the database refuses fails only its own transaction, as StoreUnavailableError', async () => {
    const before = (await store.auditHead())?.seq ?? 0;
    // A second connection makes audit rows with a reserved type unwritable (as a full or broken disk would).
    const side = new Database(path);
    side.exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_events WHEN NEW.type = 'poison'
               BEGIN SELECT RAISE(ABORT, 'audit store refuses'); END`);
    try {
      const results = await Promise.allSettled(
        ['ok', 'poison', 'ok', 'ok', 'poison', 'ok'].map((type, i) =>
          store.transaction(async (tx) => {
            await tx.consume('poison', `p-${i}`, 10_000, 0);
            return tx.appendAudit({ ts: 2000 + i, type, outcome: 'success', actor: 'x', data: { i } });
          }),
        ),
      );
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
      );
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(r.reason instanceof StoreUnavailableError, String(r.reason));
      }
      // The refused transactions' other writes were rolled back with them.
      assert.equal(await store.consume('poison', 'p-1', 10_000, 0), true);
      assert.equal(await store.consume('poison', 'p-0', 10_000, 0), false);
      assert.equal((await store.auditHead())?.seq, before + 4);
      assert.equal((await verifyAuditChain(store)).ok, true);
    } finally {
      side.exec('DROP TRIGGER refuse_poison');
      side.close();
    }
  });

  it('a transaction started after a batch settled sees everything the batch committed', async () => {
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        store.transaction((tx) => tx.consume('seen', `s-${i}`, 10_000, 0)),
      ),
    );
    const seen = await store.transaction(async (tx) => {
      const out: boolean[] = [];
      for (let i = 0; i < 10; i++) out.push(await tx.consume('seen', `s-${i}`, 10_000, 0));
      return out;
    });
    assert.deepEqual(seen, Array(10).fill(false));
  });
});
