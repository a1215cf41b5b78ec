// Runs every compiled test file with Node's own test runner (Node 20 has no glob support of its own).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
// `node --test` with no file runs every test it can find, so a filter that names nothing is an error.
if (selected.length === 0) {
  console.error(
    `no test file path contains "${filter}": nothing run (e.g. \`node scripts/run-tests.mjs store-sqlite\`)`,
  );
  process.exit(1);
}
// A test that hangs fails after this long, naming itself, instead of holding CI until its deadline. The
// PostgreSQL store conformance file (a fresh migrated schema per case) took over 300 s on a machine at
// load 17, so the bound leaves room for a busy machine.
const TEST_TIMEOUT_MS = 600_000;
// Node's reporter, plus skipped suites in its count and every skip written down for the summary.
const REPORTER = fileURLToPath(new URL('./test-reporter.mjs', import.meta.url));
const skipsDir = mkdtempSync(join(tmpdir(), 'writ-test-skips-'));
/** What did not run, pass by pass, listed at the very end where a reader looks. */
const notRun = [];
const run = (list, pass, env = process.env) => {
  const skipsFile = join(skipsDir, `${notRun.length}.jsonl`);
  const status =
    spawnSync(
      process.execPath,
      [
        '--test',
        '--test-concurrency=2',
        `--test-timeout=${TEST_TIMEOUT_MS}`,
        `--test-reporter=${REPORTER}`,
        '--test-reporter-destination=stdout',
        ...list,
      ],
      { stdio: 'inherit', env: { ...env, WRIT_TEST_SKIPS: skipsFile } },
    ).status ?? 1;
  let lines = [];
  try {
    lines = readFileSync(skipsFile, 'utf8').split('\n').filter(Boolean);
  } catch {}
  notRun.push({ pass, skips: lines.map((l) => JSON.parse(l)) });
  return status;
};
let status = run(
  selected,
  process.env.WRIT_TEST_STORE === 'postgres' ? 'PostgreSQL store' : 'embedded store',
);

// The HTTP suite a second time on the PostgreSQL store (each harness in a schema of its own). Tests that
// already run on PostgreSQL (store conformance, clusters) are not repeated.
const pgUrl = process.env.WRIT_TEST_POSTGRES_URL;
const again = selected.filter(
  (f) =>
    f.startsWith('packages/server/') &&
    !/(^|\/)(store-|cluster-|federation-cluster)/.test(f.split('/').pop()),
);
let skippedPass;
if (process.env.WRIT_TEST_STORE === undefined && again.length > 0) {
  if (!pgUrl) {
    skippedPass = `the PostgreSQL pass of the HTTP suite (${again.length} files): WRIT_TEST_POSTGRES_URL is unset`;
    console.log(`# skipping ${skippedPass}`);
  } else {
    console.log(`# the HTTP suite again on the PostgreSQL store (${again.length} files)`);
    status = run(again, 'PostgreSQL pass', { ...process.env, WRIT_TEST_STORE: 'postgres' }) || status;
  }
}
rmSync(skipsDir, { recursive: true, force: true });

// The summary of what did not run: Node's own counts no suite skipped as a whole.
const all = notRun.flatMap(({ pass, skips }) => skips.map((s) => ({ ...s, pass })));
const count = (kind) => all.filter((s) => s.kind === kind).length;
const passes = new Set(notRun.map((r) => r.pass)).size;
console.log(
  all.length === 0 && !skippedPass
    ? '# not run: nothing, every suite ran'
    : `# not run: ${count('suite')} suites, ${count('test')} tests${skippedPass ? ', and a whole pass' : ''}`,
);
for (const s of all)
  console.log(
    `#   ${s.kind} ${s.file} › ${s.name}${passes > 1 ? ` [${s.pass}]` : ''}: ${s.reason || '(no reason given)'}`,
  );
if (skippedPass) console.log(`#   ${skippedPass}`);
process.exit(status);
