import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// Node's test summary counts skipped tests, not suites skipped as a whole, so a run without
// PostgreSQL read "skipped 0" while whole suites had not run. scripts/run-tests.mjs counts them and
// lists every skip with its file and reason at the end. It is run here on a tree of its own: a
// compiled-test folder holding one file that skips a suite, skips a test and passes a test.

const RUN_TESTS = fileURLToPath(new URL('../../../../scripts/run-tests.mjs', import.meta.url));

const FIXTURE = `const { describe, it } = require('node:test');
describe('conformance on PostgreSQL', { skip: 'WRIT_TEST_POSTGRES_URL is not set' }, () => {
  it('never runs', () => {});
});
describe('certificates', () => {
  it('needs the openssl CLI', { skip: 'the openssl CLI is not installed' }, () => {});
  it('runs', () => {});
});
`;

describe('the test summary lists what did not run', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-test-summary-'));
    mkdirSync(join(dir, 'packages/server/dist/test'), { recursive: true });
    writeFileSync(join(dir, 'packages/server/dist/test/fixture.test.js'), FIXTURE);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('counts the skipped suite, and names each skip with its file and reason at the end', () => {
    const env = { ...process.env };
    delete env['WRIT_TEST_POSTGRES_URL'];
    delete env['WRIT_TEST_STORE'];
    // Run as a top-level runner, not as a child reporting to this one.
    delete env['NODE_TEST_CONTEXT'];
    const r = spawnSync(process.execPath, [RUN_TESTS], { cwd: dir, env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const out = r.stdout;
    // Node's own line counts the suite too: not "skipped 1" (the test alone) as if every suite ran.
    assert.match(out, /skipped 1 tests, 1 suites \(listed at the end\)/);
    const end = out.slice(out.indexOf('# not run:'));
    assert.ok(out.includes('# not run:'), out.slice(-1500));
    assert.deepEqual(end.trimEnd().split('\n'), [
      '# not run: 1 suites, 1 tests, and a whole pass',
      '#   suite packages/server/dist/test/fixture.test.js › conformance on PostgreSQL: WRIT_TEST_POSTGRES_URL is not set',
      '#   test packages/server/dist/test/fixture.test.js › needs the openssl CLI: the openssl CLI is not installed',
      '#   the PostgreSQL pass of the HTTP suite (1 files): WRIT_TEST_POSTGRES_URL is unset',
    ]);
  });
});
