import assert from 'node:assert/strict';
import type { Stats } from 'node:fs';
import {
  appendFileSync,
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EventType } from '@writ/sdk/wire';
import { changedFileBody, stampedFileBody } from '../src/admin/config-files.js';
import { fileStamp, STAMP_SETTLE_MS } from '../src/config/config-files.js';
import { readConfigDir } from '../src/config/config-read.js';
import { type OperatorCli, operatorCli } from './helpers/cli.js';
import { workloadFileOf, writeHarnessConfig } from './helpers/config-dir.js';
import { type Harness, OTHER_WORKLOAD, startHarness, WORKLOAD } from './helpers/harness.js';

// `writ apply` asks the server which files it applied last (path and digest), reads only the files
// that differ, and sends those and the paths that are gone. The server merges them with the files it
// holds, validates the whole as it would a whole directory, applies the diff and records the files.

describe('writ apply of a change sends and applies only the files that changed', () => {
  let h: Harness;
  let writ: OperatorCli;
  let dir: string;
  /** The file of the harness config directory holding workload `id`. */
  let fileOf: (id: string) => string;
  const recorded = async () =>
    new Map((await h.store.listConfigFiles()).map((f) => [f.path, f.digest] as const));
  const apply = async (...flags: string[]) => {
    const r = await writ(['apply', dir, ...flags]);
    return { code: r.code, out: r.stdout + r.stderr };
  };
  before(async () => {
    h = await startHarness({ listen: true });
    writ = operatorCli(h);
    dir = writeHarnessConfig(h);
    fileOf = workloadFileOf(dir);
  });
  after(() => h.close());

  it('first apply (the server records no files): every file is sent and recorded', async () => {
    assert.equal((await h.store.listConfigFiles()).length, 0);
    const r = await apply();
    assert.equal(r.code, 0, r.out);
    const paths = [...(await recorded()).keys()];
    assert.ok(paths.includes(fileOf(WORKLOAD)) && paths.includes('operators/7.json'), paths.join(' '));
    const listed = await h.admin('GET', '/config/files');
    assert.equal(listed.status, 200);
    assert.equal((listed.body['files'] as unknown[]).length, paths.length);
    assert.match((await apply()).out, /no changes/);
  });

  it('one workload changed: only its file is sent; one change applied and audited', async () => {
    const before = await recorded();
    const audited = (await h.auditEvents('config.applied')).length;
    const file = join(dir, fileOf(OTHER_WORKLOAD));
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), owner: 'team-ledger' }));
    const r = await apply();
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`~ workload ${OTHER_WORKLOAD} \\(owner\\)\\napplied 1 change\\(s\\)`));
    const events = await h.auditEvents('config.applied');
    assert.equal(events.length, audited + 1);
    assert.deepEqual(events.at(-1)?.data?.['changes'], [
      { op: 'change', kind: 'workload', name: OTHER_WORKLOAD, fields: ['owner'] },
    ]);
    // The record moved for that file alone.
    const now = await recorded();
    const moved = [...now].filter(([p, d]) => before.get(p) !== d).map(([p]) => p);
    assert.deepEqual(moved, [fileOf(OTHER_WORKLOAD)]);
    assert.equal((await h.store.getWorkload(OTHER_WORKLOAD))?.owner, 'team-ledger');
  });

  it('a change of workload files only names its workloads to the other nodes (they reload those alone)', async () => {
    const file = join(dir, fileOf(OTHER_WORKLOAD));
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), owner: 'team-atlas' }));
    const r = await apply();
    assert.equal(r.code, 0, r.out);
    const logged = (await h.store.readEvents(0, 100_000)).filter((e) => e.type === EventType.configApplied);
    assert.deepEqual(logged.at(-1)?.data, { changes: 1, workloads: [OTHER_WORKLOAD] });
    assert.equal(h.writ.ctx.registry.workload(OTHER_WORKLOAD)?.owner, 'team-atlas');
  });

  it("a workload file that takes the id of another file's workload is refused, naming the other file", async () => {
    const before = await recorded();
    const file = join(dir, fileOf(OTHER_WORKLOAD));
    const good = readFileSync(file, 'utf8');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(good), id: WORKLOAD }));
    const r = await apply();
    assert.notEqual(r.code, 0);
    assert.match(r.out, new RegExp(`workload "${WORKLOAD}" is also defined in`));
    assert.deepEqual(await recorded(), before);
    writeFileSync(file, good);
    assert.match((await apply()).out, /no changes/);
  });

  it("the applied files and a change are the operators': a workload's token or none is refused", async () => {
    const before = await recorded();
    const issued = await h.requestToken();
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const token = String(issued.body['access_token']);
    const path = fileOf(OTHER_WORKLOAD);
    const doc = JSON.parse(readFileSync(join(dir, path), 'utf8')) as Record<string, unknown>;
    const change = {
      files: [
        {
          path,
          was: before.get(path),
          digest: 'a-workload-wrote-this',
          refs: [],
          documents: [{ kind: 'workload', index: 0, doc: { ...doc, owner: 'team-intruder' } }],
        },
      ],
    };
    for (const authorization of [`Bearer ${token}`, `DPoP ${token}`, undefined]) {
      const headers = authorization ? { authorization } : {};
      const listed = await h.writ.app.inject({ method: 'GET', url: '/admin/v1/config/files', headers });
      assert.equal(listed.statusCode, 401, listed.body);
      assert.doesNotMatch(listed.body, /workloads\//);
      const sent = await h.writ.app.inject({
        method: 'POST',
        url: '/admin/v1/config',
        headers: { ...headers, 'content-type': 'application/json' },
        payload: JSON.stringify(change),
      });
      assert.equal(sent.statusCode, 401, sent.body);
    }
    assert.deepEqual(await recorded(), before);
    assert.notEqual((await h.store.getWorkload(OTHER_WORKLOAD))?.owner, 'team-intruder');
  });

  it('a workload file deleted: the workload is removed and its tokens revoked, as by a whole apply', async () => {
    const issued = await h.requestToken();
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const gone = fileOf(WORKLOAD);
    rmSync(join(dir, gone));
    const r = await apply();
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`- workload ${WORKLOAD}\\napplied 1 change\\(s\\)`));
    assert.equal(await h.store.getWorkload(WORKLOAD), undefined);
    const revoked = await h.store.listRevocations(0, h.writ.ctx.clock.now());
    assert.ok(
      revoked.some(
        (x) => x.kind === 'sub' && x.value === WORKLOAD && x.reason === 'workload removed by config',
      ),
    );
    assert.equal((await recorded()).has(gone), false);
    const refused = await h.requestToken();
    assert.equal(refused.status, 401, JSON.stringify(refused.body));
  });

  it('a change that fails validation applies nothing: the error names the file and field', async () => {
    const before = await recorded();
    const audited = (await h.auditEvents('config.applied')).length;
    const file = join(dir, fileOf(OTHER_WORKLOAD));
    const good = readFileSync(file, 'utf8');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(good), classes: ['no-such-class'] }));
    const r = await apply();
    assert.notEqual(r.code, 0);
    assert.match(
      r.out,
      /invalid_request: .*workloads[/\\]\d+\.json: classes\.0: unknown class "no-such-class"/,
    );
    assert.deepEqual(await recorded(), before);
    assert.equal((await h.auditEvents('config.applied')).length, audited);
    assert.deepEqual((await h.store.getWorkload(OTHER_WORKLOAD))?.classes, ['billing-write']);
    writeFileSync(file, good);
    assert.match((await apply()).out, /no changes/);
  });

  // A change of workload files alone is planned against the stored config (admin/workload-files.ts);
  // what it cannot check there sends it down the whole path, which refuses as a whole apply would.
  it('a workload change that breaks a governance rule is refused as by a whole apply', async () => {
    const governance = join(dir, 'governance.yaml');
    writeFileSync(
      governance,
      JSON.stringify({ rules: [{ id: 'owned', check: 'workload.owner', environments: ['audited'] }] }),
    );
    assert.equal((await apply()).code, 0);
    const before = await recorded();
    const file = join(dir, fileOf(OTHER_WORKLOAD));
    const good = readFileSync(file, 'utf8');
    writeFileSync(
      file,
      JSON.stringify({ ...JSON.parse(good), environment: 'audited', owner: 'nobody-known' }),
    );
    const r = await apply();
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /governance rule owned refuses .*workloads[/\\]\d+\.json: owner: /);
    assert.deepEqual(await recorded(), before);
    assert.equal((await h.store.getWorkload(OTHER_WORKLOAD))?.environment, 'prod');
    writeFileSync(file, good);
    rmSync(governance);
    assert.equal((await apply()).code, 0);
  });

  it('a workload file removed while an exception names its workload is refused as by a whole apply', async () => {
    const exception = join(dir, 'exceptions', 'names-other.json');
    mkdirSync(join(dir, 'exceptions'), { recursive: true });
    writeFileSync(
      exception,
      JSON.stringify({
        id: 'names-other',
        covers: { kind: 'legacy_client_secret', class: 'billing-write', workloads: [OTHER_WORKLOAD] },
        owner: 'team-billing',
        justification: 'a test of the workload-only path',
        expires: '2099-01-01',
      }),
    );
    assert.equal((await apply()).code, 0);
    const before = await recorded();
    const file = join(dir, fileOf(OTHER_WORKLOAD));
    const good = readFileSync(file, 'utf8');
    rmSync(file);
    const r = await apply();
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`covers\\.workloads\\.0: unknown workload "${OTHER_WORKLOAD}"`));
    assert.deepEqual(await recorded(), before);
    assert.ok(await h.store.getWorkload(OTHER_WORKLOAD));
    writeFileSync(file, good);
    rmSync(exception);
    assert.equal((await apply()).code, 0);
  });

  it('a change against files that changed since it compared them is refused (config_changed), and audited', async () => {
    const path = fileOf(OTHER_WORKLOAD);
    const doc = JSON.parse(readFileSync(join(dir, path), 'utf8')) as Record<string, unknown>;
    const r = await h.admin('POST', '/config', {
      files: [
        {
          path,
          was: 'not-the-applied-digest',
          digest: 'new-digest',
          refs: [],
          documents: [{ kind: 'workload', index: 0, doc: { ...doc, owner: 'team-racer' } }],
        },
      ],
    });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(String(r.body['error_description']), /changed on the server since writ apply compared it/);
    assert.notEqual((await h.store.getWorkload(OTHER_WORKLOAD))?.owner, 'team-racer');
    const refusals = (await h.auditEvents()).filter((e) => e.data?.['reason'] === 'config_changed');
    assert.equal(refusals.length, 1);
    // Both forms at once, or neither: refused.
    const both = await h.admin('POST', '/config', { documents: [], files: [] });
    assert.equal(both.status, 400);
  });
});

describe('the stamps writ apply sends', () => {
  it('the server takes every stamp fileStamp writes: a time before 1970 is negative', () => {
    const now = Date.now();
    for (const [mtimeMs, ctimeMs] of [
      [-43_200_000, now - 60_000],
      [now - 60_000, now - 60_000],
      [0.5, 1e-7],
    ] as const) {
      const stamp = fileStamp({ size: 42, mtimeMs, ctimeMs, ino: 2 ** 40 + 1 } as Stats, now);
      assert.ok(stamp, 'stamped: changed long before now');
      const digest = 'A'.repeat(43);
      assert.ok(stampedFileBody.safeParse({ path: 'workloads/a.yaml', digest, stamp }).success, stamp);
      const changed = { path: 'workloads/a.yaml', was: null, digest, stamp, refs: [], documents: [] };
      assert.ok(changedFileBody.safeParse(changed).success, stamp);
    }
    // Still only numbers and their separators.
    for (const stamp of ['1:2:3:x', '1 2', '', 'a'.repeat(101)])
      assert.equal(stampedFileBody.safeParse({ path: 'a', digest: 'A', stamp }).success, false, stamp);
  });
});

// `writ apply` with a data directory keeps the listing of applied files it saw (apply-listing.ts) and
// then asks only for what changed since its version. Every kind of change must still be applied, and any
// doubt about the kept listing must cost a whole listing, never a skipped file.
describe('writ apply keeps the listing it saw and asks only for what changed since', () => {
  let h: Harness;
  let writ: OperatorCli;
  let dir: string;
  let data: string;
  let fileOf: (id: string) => string;
  const NEW_WORKLOAD = `${OTHER_WORKLOAD}-new`;
  const apply = async (from = dir, dataDir = data) => {
    const r = await writ(['--data-dir', dataDir, 'apply', from]);
    return { code: r.code, out: r.stdout + r.stderr };
  };
  /** The kept listing file (one per server). */
  const kept = () => {
    const files = readdirSync(join(data, 'apply-listings'));
    assert.equal(files.length, 1, files.join(' '));
    return join(data, 'apply-listings', files[0]!);
  };
  const keptLines = () =>
    readFileSync(kept(), 'utf8')
      .split('\n')
      .filter((l) => l !== '').length;
  const owner = async (id: string) => (await h.store.getWorkload(id))?.owner;
  const edit = (file: string, changes: Record<string, unknown>) =>
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), ...changes }));
  before(async () => {
    h = await startHarness({ listen: true });
    writ = operatorCli(h);
    dir = writeHarnessConfig(h);
    fileOf = workloadFileOf(dir);
    data = mkdtempSync(join(h.dir, 'data-'));
    assert.equal((await apply()).code, 0);
    // Files changed STAMP_SETTLE_MS ago get stamps: later applies take them as unchanged unread.
    await new Promise((r) => setTimeout(r, STAMP_SETTLE_MS + 200));
    assert.match((await apply()).out, /no changes/);
    assert.ok(
      (await h.store.listConfigFiles()).some((f) => f.stamp !== undefined),
      'stamps recorded',
    );
  });
  after(() => h.close());

  it('kept 0600 after an apply; then a changed file, a new file and a deleted file are each applied', async () => {
    if (process.platform !== 'win32') {
      assert.equal(statSync(kept()).mode & 0o777, 0o600);
      assert.equal(statSync(join(data, 'apply-listings')).mode & 0o777, 0o700);
    }
    const lines = keptLines();
    edit(join(dir, fileOf(OTHER_WORKLOAD)), { owner: 'team-kept-1' });
    let r = await apply();
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /applied 1 change/);
    assert.equal(await owner(OTHER_WORKLOAD), 'team-kept-1');
    // The next run lists the changes since the version kept (this change among them) and appends them,
    // not the whole listing.
    assert.match((await apply()).out, /no changes/);
    assert.ok(keptLines() > lines, 'a line of changes appended');

    const added = join(dir, 'workloads', 'added.json');
    writeFileSync(
      added,
      JSON.stringify({
        ...JSON.parse(readFileSync(join(dir, fileOf(OTHER_WORKLOAD)), 'utf8')),
        id: NEW_WORKLOAD,
      }),
    );
    r = await apply();
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`\\+ workload ${NEW_WORKLOAD}`));
    assert.ok(await h.store.getWorkload(NEW_WORKLOAD));

    rmSync(added);
    r = await apply();
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`- workload ${NEW_WORKLOAD}`));
    assert.equal(await h.store.getWorkload(NEW_WORKLOAD), undefined);
    assert.match((await apply()).out, /no changes/);
  });

  it('a stamped file replaced by one of the same size and modification time is applied', async () => {
    const file = join(dir, fileOf(OTHER_WORKLOAD));
    edit(file, { owner: 'team-same-a' });
    assert.equal((await apply()).code, 0);
    await new Promise((r) => setTimeout(r, STAMP_SETTLE_MS + 200));
    assert.match((await apply()).out, /no changes/);
    const path = fileOf(OTHER_WORKLOAD);
    assert.ok((await h.store.listConfigFiles({ paths: [path] }))[0]?.stamp, 'the file is stamped');
    const replacement = join(dir, 'replacement.tmp');
    writeFileSync(replacement, readFileSync(file, 'utf8').replace('team-same-a', 'team-same-b'));
    assert.equal(statSync(replacement).size, statSync(file).size);
    utimesSync(replacement, statSync(file).atime, statSync(file).mtime);
    renameSync(replacement, file);
    const r = await apply();
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /applied 1 change/);
    assert.equal(await owner(OTHER_WORKLOAD), 'team-same-b');
  });

  it("another operator's apply in between: the changes since bring it, and this directory's file is applied again", async () => {
    assert.match((await apply()).out, /no changes/);
    // Another checkout of the directory, applied without a kept listing (another machine).
    const other = mkdtempSync(join(h.dir, 'other-'));
    cpSync(dir, other, { recursive: true });
    edit(join(other, fileOf(OTHER_WORKLOAD)), { owner: 'team-elsewhere' });
    const r = await writ(['--data-dir', join(h.dir, 'no-such-data-dir'), 'apply', other]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await owner(OTHER_WORKLOAD), 'team-elsewhere');
    // This directory's file is unchanged on disk (its stamp is the one kept), but the server's differs.
    const back = await apply();
    assert.equal(back.code, 0, back.out);
    assert.match(back.out, /applied 1 change/);
    assert.equal(await owner(OTHER_WORKLOAD), 'team-same-b');
  });

  it('any doubt about the kept listing costs a whole listing, and the change is still applied', async () => {
    const file = join(dir, fileOf(OTHER_WORKLOAD));
    const doubts: Array<[string, () => void]> = [
      ['a line cut short', () => appendFileSync(kept(), '{"since":"1.x","vers')],
      [
        'a broken chain',
        () => appendFileSync(kept(), '{"since":"7.not-held","version":"8.x","files":[],"removed":[]}\n'),
      ],
      ['writable by others', () => chmodSync(kept(), 0o666)],
      ['not JSON', () => writeFileSync(kept(), 'not a listing\n{}\n', { mode: 0o600 })],
      [
        'a version the server does not hold',
        () => {
          const [header, whole] = readFileSync(kept(), 'utf8').split('\n');
          const listing = JSON.parse(whole!) as { version: string };
          writeFileSync(
            kept(),
            `${header}\n${JSON.stringify({ ...listing, version: '1.not-this-store' })}\n`,
          );
        },
      ],
    ];
    for (const [i, [doubt, spoil]] of doubts.entries()) {
      edit(file, { owner: `team-doubt-${i}` });
      spoil();
      const r = await apply();
      assert.equal(r.code, 0, `${doubt}: ${r.out}`);
      assert.match(r.out, /applied 1 change/, doubt);
      assert.equal(await owner(OTHER_WORKLOAD), `team-doubt-${i}`, doubt);
      assert.equal(keptLines(), 2, `${doubt}: the whole listing kept anew`);
      if (process.platform !== 'win32') assert.equal(statSync(kept()).mode & 0o777, 0o600);
    }
  });

  it('a whole apply (documents) forgets the versions: the kept one is refused, and the next apply lists the whole record', async () => {
    const held = JSON.parse(readFileSync(kept(), 'utf8').split('\n')[1]!) as { version: string };
    const since = (await h.admin('GET', `/config/files?since=${encodeURIComponent(held.version)}`)).body;
    assert.equal(since['since'], held.version);
    const stale = async () =>
      (await h.auditEvents()).filter((e) => e.data?.['reason'] === 'stale_version').length;
    const audited = await stale();
    const documents = readConfigDir(dir).documents;
    assert.equal((await h.admin('POST', '/config', { documents })).status, 200);
    const refused = await h.admin(
      'GET',
      `/config/files?since=${encodeURIComponent(String(since['version']))}`,
    );
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.match(String(refused.body['error_description']), /holds no version .*list without since/);
    assert.equal(await stale(), audited + 1, 'the refusal is audited');
    edit(join(dir, fileOf(OTHER_WORKLOAD)), { owner: 'team-after-whole' });
    const r = await apply();
    assert.equal(r.code, 0, r.out);
    assert.equal(await owner(OTHER_WORKLOAD), 'team-after-whole');
    assert.equal(keptLines(), 2);
  });

  it('since must have the form of a version; the listing and its changes are the operators’ alone', async () => {
    const listed = await h.admin('GET', '/config/files');
    const version = String(listed.body['version']);
    assert.match(version, /^\d+\.[A-Za-z0-9_-]+$/);
    for (const bad of [
      'abc',
      '1.',
      '.x',
      '-1.x',
      '01.x',
      '1.a b',
      '1.x/y',
      `1.${'a'.repeat(65)}`,
      `${'9'.repeat(16)}.x`,
    ])
      await refusedSince(`since=${encodeURIComponent(bad)}`, bad);
    await refusedSince(`since=${encodeURIComponent(version)}&since=${encodeURIComponent(version)}`, 'twice');
    const issued = await h.requestToken();
    const token = String(issued.body['access_token']);
    for (const authorization of [`Bearer ${token}`, `DPoP ${token}`, undefined]) {
      const res = await h.writ.app.inject({
        method: 'GET',
        url: `/admin/v1/config/files?since=${encodeURIComponent(version)}`,
        headers: authorization ? { authorization } : {},
      });
      assert.equal(res.statusCode, 401, res.body);
      assert.doesNotMatch(res.body, /workloads\//);
    }
  });

  async function refusedSince(query: string, what: string) {
    const r = await h.admin('GET', `/config/files?${query}`);
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body['error'], 'invalid_request', what);
    assert.match(String(r.body['error_description']), /since must be a version/, what);
  }
});
