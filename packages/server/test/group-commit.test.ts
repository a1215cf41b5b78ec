import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { verifyAuditChain } from '../src/audit/verify.js';
import { StoreUnavailableError } from '../src/errors.js';
import type { IssuanceWrite } from '../src/store/issuance-write.js';
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

  it('an issuance the database refuses midway fails its whole batch, and nothing of the batch is written', async () => {
    const before = (await store.auditHead())?.seq ?? 0;
    // Issuances take no savepoint of their own (their refusals come before any write): a statement that
    // fails after some of an issuance's rows were written must take the whole batch down with it.
    const side = new Database(path);
    side.exec(`CREATE TRIGGER refuse_issuance BEFORE INSERT ON audit_events WHEN NEW.jti = 'jti-poison'
               BEGIN SELECT RAISE(ABORT, 'audit store refuses'); END`);
    const issuance = (jti: string): IssuanceWrite => ({
      consume: [{ scope: 'assertion:batch', id: `a-${jti}`, expiresAt: 10_000 }],
      now: 0,
      token: {
        jti,
        sub: 'w',
        clientId: 'w',
        cls: 'c',
        aud: 'https://api.test',
        scope: 's',
        kid: 'k',
        iat: 1,
        exp: 2,
        fingerprint: `f-${jti}`,
      },
      audit: { ts: 3000, type: 'token.issued', outcome: 'success', actor: 'w', subject: 'w', jti, data: {} },
    });
    try {
      const jtis = ['jti-1', 'jti-poison', 'jti-2'];
      const results = await Promise.allSettled(jtis.map((j) => store.recordIssuance(issuance(j))));
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        assert.ok(r.reason instanceof StoreUnavailableError, String(r.reason));
      }
      for (const j of jtis) {
        assert.equal(await store.getToken(j), undefined, `no token ${j}`);
        assert.equal(await store.consume('assertion:batch', `a-${j}`, 10_000, 0), true, `${j} left unspent`);
      }
      assert.equal((await store.auditHead())?.seq ?? 0, before, 'no event');
    } finally {
      side.exec('DROP TRIGGER refuse_issuance');
      side.close();
    }
    // The store goes on: the next issuance commits, and the chain verifies.
    const e = await store.recordIssuance(issuance('jti-3'));
    assert.equal(e.seq, before + 1);
    assert.ok(await store.getToken('jti-3'));
    assert.equal((await verifyAuditChain(store)).ok, true);
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
