import assert from 'node:assert/strict';
import type { Stats } from 'node:fs';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EventType } from '@writ/sdk/wire';
import { changedFileBody, stampedFileBody } from '../src/admin/config-files.js';
import { fileStamp } from '../src/config/config-files.js';
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
