import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { initDataDir } from '../../src/cli/commands/init.js';
import { dataPaths } from '../../src/data-dir.js';
import type { ModeTightened } from '../../src/file-modes.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { lineMatching } from '../helpers/cli.js';

// What Writ keeps on disk is for the user running it alone: a data folder left 0755 with a 0644 store
// and WAL lets any local user copy the database. Writ narrows them at open and says so.

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
const posix = process.platform !== 'win32';

describe('file modes of the data directory and the store', { skip: !posix && 'POSIX modes only' }, () => {
  const dirs: string[] = [];
  /** A data folder as another tool or a careless copy leaves it: 0755. */
  const looseDir = () => {
    const root = mkdtempSync(join(tmpdir(), 'writ-modes-'));
    dirs.push(root);
    const dir = join(root, 'writ-data');
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    return dir;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('the store narrows a 0644 database, WAL and index it finds, and reports each', async () => {
    const path = join(looseDir(), 'writ.db');
    // Another connection (as a crashed process leaves them) keeps a WAL and an index beside the file.
    const holder = new Database(path);
    holder.pragma('journal_mode = WAL');
    holder.exec('CREATE TABLE leftover (x); INSERT INTO leftover VALUES (1)');
    const files = [path, `${path}-wal`, `${path}-shm`];
    for (const f of files) chmodSync(f, 0o644);
    const reported: ModeTightened[] = [];
    const store = openSqliteStore({ path, onModeTightened: (t) => reported.push(t) });
    try {
      assert.deepEqual(
        files.map((f) => [f, mode(f)]),
        files.map((f) => [f, '600']),
      );
      assert.deepEqual(
        reported.map((t) => [t.path, t.from, t.to]),
        files.map((f) => [f, '644', '600']),
      );
    } finally {
      await store.close();
      holder.close();
    }
  });

  it('a new store is 0600 from its first byte, and so are the WAL and index SQLite creates after open', async () => {
    const path = join(looseDir(), 'writ.db');
    const store = openSqliteStore({ path });
    try {
      for (const f of [path, `${path}-wal`, `${path}-shm`]) {
        assert.ok(existsSync(f), `${f} exists while the store is open`);
        assert.equal(mode(f), '600', f);
      }
    } finally {
      await store.close();
    }
  });

  it('a stricter mode is left as it is', async () => {
    const path = join(looseDir(), 'writ.db');
    await openSqliteStore({ path }).close();
    chmodSync(path, 0o400);
    const reported: ModeTightened[] = [];
    const store = openSqliteStore({ path, readonly: true, onModeTightened: (t) => reported.push(t) });
    await store.close();
    assert.equal(mode(path), '400');
    assert.deepEqual(reported, []);
  });

  it('writ serve on a 0755 folder with 0644 files: 0700 and 0600 after start, -wal/-shm included, each one logged', async () => {
    const dir = looseDir();
    const p = dataPaths(dir);
    initDataDir(dir, 'admin');
    await openSqliteStore({ path: p.database }).close();
    for (const f of [p.kek, p.operatorKey, p.database]) chmodSync(f, 0o644);
    assert.equal(existsSync(`${p.database}-wal`), false, 'a cleanly closed store leaves no WAL');

    const child = spawn(process.execPath, [MAIN, '--data-dir', dir, 'serve', '--port', '0'], {
      env: { ...process.env, WRIT_KEK: '', WRIT_STORE: '', WRIT_PORT: '', WRIT_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = { text: '' };
    try {
      await lineMatching(child, output, /writ is serving/);
      assert.equal(mode(dir), '700', 'data folder');
      for (const f of [p.kek, p.operatorKey, p.database, `${p.database}-wal`, `${p.database}-shm`])
        assert.equal(mode(f), '600', f);
      const narrowed = output.text
        .split('\n')
        .filter((l) => l.includes('file mode narrowed'))
        .map((l) => JSON.parse(l) as { path: string; from: string; to: string });
      assert.deepEqual(
        narrowed.map((n) => [n.path, n.from, n.to]).sort(),
        [
          [dir, '755', '700'],
          [p.kek, '644', '600'],
          [p.operatorKey, '644', '600'],
          [p.database, '644', '600'],
        ].sort(),
      );
    } finally {
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    }
  });
});
