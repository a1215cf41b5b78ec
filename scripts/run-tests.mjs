// Runs every compiled test file with Node's own test runner (Node 20 has no glob support of its own).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['packages/sdk/dist/test', 'packages/server/dist/test'];
const files = [];
const walk = (dir) => {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (e.endsWith('.test.js')) files.push(p);
  }
};
for (const r of roots) walk(r);
if (files.length === 0) {
  console.error('no test files found: run `npm run build` first');
  process.exit(1);
}
const filter = process.argv[2];
const selected = filter ? files.filter((f) => f.includes(filter)) : files;
// A test that hangs fails after this long, naming itself, instead of holding CI until its deadline.
const TEST_TIMEOUT_MS = 300_000;
const run = (list, env = process.env) =>
  spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=2', `--test-timeout=${TEST_TIMEOUT_MS}`, ...list],
    { stdio: 'inherit', env },
  ).status ?? 1;
let status = run(selected);

// The HTTP suite a second time on the PostgreSQL store (each harness in a schema of its own). Tests that
// already run on PostgreSQL (store conformance, clusters) are not repeated.
const pgUrl = process.env.WRIT_TEST_POSTGRES_URL;
const again = selected.filter(
  (f) =>
    f.startsWith('packages/server/') &&
    !/(^|\/)(store-|cluster-|federation-cluster)/.test(f.split('/').pop()),
);
if (process.env.WRIT_TEST_STORE === undefined && again.length > 0) {
  if (!pgUrl) {
    console.log('# skipping the PostgreSQL pass of the HTTP suite: WRIT_TEST_POSTGRES_URL is unset');
  } else {
    console.log(`# the HTTP suite again on the PostgreSQL store (${again.length} files)`);
    status = run(again, { ...process.env, WRIT_TEST_STORE: 'postgres' }) || status;
  }
}
process.exit(status);
