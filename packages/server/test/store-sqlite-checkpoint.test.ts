import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { WalCheckpointerStats } from '../src/store/sqlite/wal-checkpointer.js';
import type { Store } from '../src/store/store.js';

// The embedded store copies its WAL into the database from a worker thread (wal-checkpointer.ts), not in
// the committing request on the event loop. These cases check what that must keep: the WAL stays bounded
// while the server writes without pause, committed data survives a crash of the process, and closing
// the store stops the thread (the last connection then folds the WAL back and removes it).

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function storeFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'writ-wal-'));
  dirs.push(dir);
  return join(dir, 'writ.db');
}

const statsOf = (s: Store) =>
  (s as unknown as { walCheckpointStats(): WalCheckpointerStats | undefined }).walCheckpointStats();
const walBytes = (path: string) => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);
/** About 2 KB per event, so a transaction of 25 writes some 50 KB of WAL. */
const PAYLOAD = 'x'.repeat(2000);
const turn = () => new Promise((r) => setImmediate(r));

describe('embedded store: WAL checkpoints off the event loop', () => {
  it('keeps the WAL bounded under sustained writes, emptying it once it holds restartPages frames', async () => {
    const path = storeFile();
    const store = openSqliteStore({ path, walCheckpoint: { intervalMs: 20, restartPages: 128 } });
    const written = 24 * 1024 * 1024;
    let bytes = 0;
    let largest = 0;
    let seq = 0;
    try {
      while (bytes < written) {
        await store.transaction(async (tx) => {
          for (let i = 0; i < 25; i++)
            seq = (await tx.appendEvent({ ts: seq, type: 'test', data: { i, pad: PAYLOAD } })).seq;
        });
        bytes += 25 * PAYLOAD.length;
        largest = Math.max(largest, walBytes(path));
        // A server turns its event loop between requests; the checkpointer's messages arrive there.
        await turn();
      }
      const stats = statsOf(store)!;
      assert.equal(stats.failed, undefined);
      assert.ok(stats.restarts >= 10, `the WAL was hardly emptied (${JSON.stringify(stats)})`);
      // 128 frames are about 0.5 MiB; a transaction adds about 50 KB. Without the truncation the WAL
      // holds everything written (24 MiB and more with page overhead).
      assert.ok(
        largest <= 2 * 1024 * 1024,
        `the WAL grew to ${largest} bytes while ${written} were written (restarts: ${stats.restarts})`,
      );
      assert.equal((await store.readEvents(seq - 1, 5)).length, 1);
    } finally {
      await store.close();
    }
  });

  it('keeps every committed write across a crash of the process, restarts included', () => {
    const path = storeFile();
    const events = 3000;
    // A child process writes (with the checkpointer restarting the WAL along the way) and is killed
    // with SIGKILL: no close, no final checkpoint.
    const moduleUrl = pathToFileURL(join(import.meta.dirname, '../src/store/sqlite/sqlite-store.js')).href;
    const script = `
      const { openSqliteStore } = await import(${JSON.stringify(moduleUrl)});
      const store = openSqliteStore({ path: ${JSON.stringify(path)}, walCheckpoint: { intervalMs: 5, restartPages: 64 } });
      let n = 0;
      while (n < ${events}) {
        await store.transaction(async (tx) => {
          for (let i = 0; i < 20; i++) await tx.appendEvent({ ts: n, type: 'test', data: { n: n++, pad: 'y'.repeat(2000) } });
        });
        await new Promise((r) => setImmediate(r));
      }
      // Make sure the crash comes after at least one restart, with commits after it.
      for (let i = 0; i < 2000 && store.walCheckpointStats().restarts === 0; i++) {
        await store.transaction(async (tx) => { await tx.appendEvent({ ts: n, type: 'test', data: { n: n++ } }); });
        await new Promise((r) => setTimeout(r, 5));
      }
      for (let i = 0; i < 50; i++)
        await store.transaction(async (tx) => { await tx.appendEvent({ ts: n, type: 'test', data: { n: n++ } }); });
      process.stdout.write(JSON.stringify({ n, restarts: store.walCheckpointStats().restarts }));
      process.kill(process.pid, 'SIGKILL');
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    const reported = JSON.parse(child.stdout) as { n: number; restarts: number };
    assert.ok(reported.restarts >= 1, `no restart before the crash: ${child.stdout}`);
    assert.ok(existsSync(`${path}-wal`), 'the WAL of the killed process is left for recovery');
    const db = new Database(path);
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      const row = db.prepare('SELECT count(*) AS n, max(seq) AS last FROM events').get() as {
        n: number;
        last: number;
      };
      assert.equal(row.n, reported.n, 'every committed event is there after the crash');
    } finally {
      db.close();
    }
  });

  it('closing the store stops the thread and folds the WAL back into the database', async () => {
    const path = storeFile();
    const store = openSqliteStore({ path, walCheckpoint: { intervalMs: 10, restartPages: 32 } });
    for (let j = 0; j < 40; j++) {
      await store.transaction(async (tx) => {
        for (let i = 0; i < 10; i++) await tx.appendEvent({ ts: j, type: 'test', data: { i, pad: PAYLOAD } });
      });
      await turn();
    }
    assert.ok(existsSync(`${path}-wal`));
    await store.close();
    // Only the last connection to close removes the WAL: the thread's connection was closed first.
    assert.equal(existsSync(`${path}-wal`), false, 'the -wal file is left: another connection is open');
    const db = new Database(path, { readonly: true });
    try {
      assert.equal((db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n, 400);
    } finally {
      db.close();
    }
  });

  it('an in-memory or read-only store has no checkpointer thread', async () => {
    const memory = openSqliteStore({ path: ':memory:' });
    assert.equal(statsOf(memory), undefined);
    await memory.close();
    const path = storeFile();
    await openSqliteStore({ path, walCheckpoint: false }).close();
    const readonly = openSqliteStore({ path, readonly: true });
    assert.equal(statsOf(readonly), undefined);
    await readonly.close();
  });
});
