import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readConfigDir } from '../src/config/config-read.js';
import { readStartupConfig } from '../src/config/startup-config.js';
import { ConfigError } from '../src/errors.js';
import { workloadFileOf, writeHarnessConfig } from './helpers/config-dir.js';
import { type Harness, OTHER_WORKLOAD, startHarness, WORKLOAD } from './helpers/harness.js';

// `writ serve` applies its config directory at every start. The store records the files it applied
// (digest and documents); a start reads only the files that changed since, applies only their diff, and
// a directory that did not change is neither validated nor applied again.

describe('start-up reads and applies only the config files that changed since the last apply', () => {
  let h: Harness;
  let dir: string;
  /** The file of the harness config directory holding workload `id`. */
  let fileOf: (id: string) => string;
  const startup = () => readStartupConfig(dir, h.settings, h.store, 'test-build');
  before(async () => {
    h = await startHarness();
    dir = writeHarnessConfig(h);
    fileOf = workloadFileOf(dir);
  });
  after(() => h.close());

  it('first start on a store that recorded no files: every file is read, validated and recorded', async () => {
    const s = await startup();
    assert.equal(s.parsed, s.total);
    assert.ok(s.config, 'validated');
    await h.restart(s);
    const recorded = await h.store.listConfigFiles();
    assert.ok(recorded.some((f) => f.path === fileOf(WORKLOAD)));
    assert.equal(recorded.filter((f) => !f.path.startsWith('(')).length, s.total);
  });

  it('nothing changed: no file parsed, nothing validated, nothing applied or audited', async () => {
    const before = (await h.auditEvents('config.applied')).length;
    const s = await startup();
    assert.equal(s.files, 'unchanged');
    assert.equal(s.parsed, 0);
    assert.equal(s.config, undefined);
    await h.restart(s);
    assert.equal((await h.auditEvents('config.applied')).length, before);
    assert.ok(await h.store.getWorkload(WORKLOAD));
  });

  it('a build or a setting validation depends on changed: validated again, though no file changed', async () => {
    const s = await readStartupConfig(dir, h.settings, h.store, 'another-build');
    assert.equal(s.parsed, 0);
    assert.ok(s.config, 'validated again');
    await h.restart(s);
    assert.equal((await startup()).config !== undefined, true, 'and again for the first build');
    await h.restart(await startup());
  });

  it('one workload changed and one deleted: only the changed file is read; the removed workload is gone and its tokens revoked', async () => {
    const issued = await h.requestToken();
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const other = join(dir, fileOf(OTHER_WORKLOAD));
    writeFileSync(
      other,
      JSON.stringify({ ...JSON.parse(readFileSync(other, 'utf8')), owner: 'team-ledger' }),
    );
    const removed = fileOf(WORKLOAD);
    rmSync(join(dir, removed));
    const s = await startup();
    assert.equal(s.parsed, 1, 'only the changed file is parsed');
    assert.notEqual(s.files, 'unchanged');
    if (s.files === 'unchanged') return;
    assert.deepEqual(
      s.files.put.map((f) => f.path).filter((p) => !p.startsWith('(')),
      [fileOf(OTHER_WORKLOAD)],
    );
    assert.deepEqual(s.files.remove, [removed]);
    await h.restart(s);
    const applied = (await h.auditEvents('config.applied')).at(-1);
    assert.deepEqual(applied?.data?.['changes'], [
      { op: 'change', kind: 'workload', name: OTHER_WORKLOAD, fields: ['owner'] },
      { op: 'remove', kind: 'workload', name: WORKLOAD },
    ]);
    assert.equal(await h.store.getWorkload(WORKLOAD), undefined);
    assert.equal((await h.store.getWorkload(OTHER_WORKLOAD))?.owner, 'team-ledger');
    // As a full apply would: the removed workload's tokens are revoked.
    const revoked = await h.store.listRevocations(0, h.writ.ctx.clock.now());
    assert.ok(
      revoked.some(
        (r) => r.kind === 'sub' && r.value === WORKLOAD && r.reason === 'workload removed by config',
      ),
      JSON.stringify(revoked),
    );
    assert.equal(
      (await h.store.listConfigFiles()).some((f) => f.path === removed),
      false,
      'the removed file is forgotten',
    );
    assert.equal((await startup()).files, 'unchanged');
  });

  it('a changed file that fails validation: start-up refuses, and nothing is applied or recorded', async () => {
    const recorded = await h.store.listConfigFiles();
    const other = join(dir, fileOf(OTHER_WORKLOAD));
    const good = readFileSync(other, 'utf8');
    writeFileSync(other, JSON.stringify({ ...JSON.parse(good), classes: ['no-such-class'] }));
    await assert.rejects(
      startup(),
      (err) => err instanceof ConfigError && /unknown class "no-such-class"/.test(err.message),
    );
    assert.deepEqual(await h.store.listConfigFiles(), recorded);
    assert.equal((await h.store.getWorkload(OTHER_WORKLOAD))?.classes.includes('no-such-class'), false);
    writeFileSync(other, good);
    assert.equal((await startup()).files, 'unchanged');
  });
});

describe('a config file with the stamp it was applied with is not read again', () => {
  const later = () => Date.now() + 60_000;
  it('a stamped file is taken as applied without being read; a same-size edit with its old modification time is read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-stamps-'));
    try {
      mkdirSync(join(dir, 'workloads'));
      const file = join(dir, 'workloads', 'a.yaml');
      writeFileSync(file, 'id: spiffe://example.org/a\nowner: team-a\n');
      const first = readConfigDir(dir, new Map(), later());
      const record = first.files?.[0];
      assert.ok(record?.stamp, 'stamped: the scan is long after the file changed');
      // Recorded with a digest that is not the file's: a file not read keeps it.
      const applied = new Map([[record.path, { ...record, digest: 'recorded-digest', documents: [] }]]);
      const again = readConfigDir(dir, applied, later());
      assert.equal(again.files?.[0]?.digest, 'recorded-digest', 'not read: its stamp is the applied one');
      assert.equal(again.parsed, 0);
      // Rewritten with as many bytes and its modification time put back: the change time moved.
      const { mtime } = statSync(file);
      writeFileSync(file, 'id: spiffe://example.org/a\nowner: team-b\n');
      utimesSync(file, mtime, mtime);
      const edited = readConfigDir(dir, applied, later());
      assert.equal(edited.parsed, 1, 'read and parsed');
      assert.notEqual(edited.files?.[0]?.digest, 'recorded-digest');
      // Replaced by a rename (an editor's save, a checkout) with as many bytes and the stamped file's
      // modification time: another inode, so read.
      const stamped = new Map([
        [record.path, { ...record, ...edited.files![0]!, digest: 'recorded-digest', documents: [] }],
      ]);
      assert.equal(readConfigDir(dir, stamped, later()).parsed, 0, 'the stamp now taken is the applied one');
      const replacement = join(dir, 'replacement.tmp');
      writeFileSync(replacement, 'id: spiffe://example.org/a\nowner: team-c\n');
      utimesSync(replacement, statSync(file).mtime, statSync(file).mtime);
      renameSync(replacement, file);
      const renamed = readConfigDir(dir, stamped, later());
      assert.equal(renamed.parsed, 1, 'a file replaced by rename is read');
      assert.notEqual(renamed.files?.[0]?.digest, 'recorded-digest');
      // A file changed a moment ago is not stamped: within a tick of the file system's clock, it could
      // change again and keep its size and times.
      assert.equal(readConfigDir(dir, new Map(), Date.now()).files?.[0]?.stamp, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
