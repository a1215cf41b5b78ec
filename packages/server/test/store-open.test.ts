import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { storeFromOptions } from '../src/cli/store-option.js';
import { resolveSettings } from '../src/config/settings.js';
import { ConfigError } from '../src/errors.js';
import { describeStore, storeLocation } from '../src/store/open-store.js';
import { SQLITE_MIGRATIONS } from '../src/store/sqlite/migrations.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

describe('choosing the store', () => {
  it('a postgres:// or postgresql:// URL selects PostgreSQL; `sqlite` the file in the data directory', () => {
    assert.deepEqual(storeLocation('postgres://db/writ', 'd'), {
      kind: 'postgres',
      url: 'postgres://db/writ',
    });
    assert.deepEqual(storeLocation('POSTGRESQL://db/writ', 'd'), {
      kind: 'postgres',
      url: 'POSTGRESQL://db/writ',
    });
    assert.deepEqual(storeLocation('sqlite', 'd'), { kind: 'sqlite', path: join('d', 'writ.db') });
  });

  it('masks the password and secret-looking parameters of a URL, and only those', () => {
    const shown = describeStore({
      kind: 'postgres',
      url: 'postgres://writ:s3cr%40t-pw@db.internal:5433/writ?sslmode=require&sslpassword=key-pw&application_name=n1',
    });
    assert.equal(
      shown,
      'postgres://writ:***@db.internal:5433/writ?sslmode=require&sslpassword=***&application_name=n1',
    );
    assert.equal(describeStore({ kind: 'postgres', url: 'postgres://db/writ' }), 'postgres://db/writ');
    assert.doesNotMatch(describeStore({ kind: 'postgres', url: 'postgres://u:pw@[bad' }), /pw/);
  });

  it('the `store` setting defaults to sqlite, and comes from the environment, the file or the flag', () => {
    assert.equal(resolveSettings(undefined, {}).store, 'sqlite');
    const file = { name: 'settings.yaml', values: { store: 'postgres://file/writ' } };
    assert.equal(resolveSettings(file, {}).store, 'postgres://file/writ');
    assert.equal(
      resolveSettings(file, { WRIT_STORE: 'postgresql://env/writ' }).store,
      'postgresql://env/writ',
    );
    assert.equal(
      resolveSettings(file, { WRIT_STORE: 'postgres://env/w' }, { store: 'sqlite' }).store,
      'sqlite',
    );
  });

  it('refuses any other store without repeating the value (it may hold a password)', () => {
    for (const bad of ['mysql://u:hunter2@db/writ', 'postgres//u:hunter2@db', 'hunter2', '']) {
      assert.throws(
        () => resolveSettings(undefined, {}, { store: bad }),
        (err: unknown) =>
          err instanceof ConfigError && err.field === 'store' && !err.message.includes('hunter2'),
        bad,
      );
    }
  });

  it('commands that read the store directly take --store, then WRIT_STORE, then settings.yaml', () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-store-opt-'));
    try {
      assert.deepEqual(storeFromOptions({ dataDir: dir }), { kind: 'sqlite', path: join(dir, 'writ.db') });
      mkdirSync(join(dir, 'config'));
      writeFileSync(join(dir, 'config', 'settings.yaml'), 'store: postgres://from-file/writ\n');
      assert.equal(storeFromOptions({ dataDir: dir }).kind, 'postgres');
      assert.deepEqual(storeFromOptions({ dataDir: dir, store: 'sqlite' }), {
        kind: 'sqlite',
        path: join(dir, 'writ.db'),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('writ migrate (embedded store)', () => {
  it('applies every migration to a new store file, then finds nothing to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-migrate-'));
    const run = () =>
      promisify(execFile)(process.execPath, [MAIN, '--data-dir', dir, 'migrate', '--store', 'sqlite']);
    try {
      const first = await run();
      assert.match(first.stdout, /^applied to .*writ\.db:/);
      assert.equal((first.stdout.match(/^ {2}migration \d+$/gm) ?? []).length, SQLITE_MIGRATIONS.length);
      const second = await run();
      assert.match(second.stdout, /schema is up to date, nothing to apply/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
