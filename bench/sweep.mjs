// Task sweeper benchmark (issue 20): how late does the server close a task whose lease lapsed while
// thousands of other tasks fall due at the same moment? One Writ (in this process, system clock, the
// server's own sweep timer at `tasks.sweep_interval` = 1 s) holds, per run, `--tasks` tasks whose
// deadlines pass at one instant and `--victims` tasks whose leases run out 1 ms later while their
// deadlines are an hour away (so the victims are swept last). Half of the tasks (`--with-tokens`) issued a token, so
// closing them stores a `tid` revocation as well. Tasks and token records are written straight to the
// store (the fast path); the closing is the server's.
//
// Reported per run: the lag of the latest victim (its close time minus its lease end), the median and
// the largest lag over every task, and tasks closed per second; then the median of each over the runs.
//
//   node bench/sweep.mjs [--tasks 3000] [--victims 10] [--runs 5] [--with-tokens 0.5] [--postgres URL]
//                        [--dist packages/server/dist]
//
// `--dist` runs the same scenario on another build (an older one, to compare). Every loop is bounded,
// the store is removed (SQLite directory, PostgreSQL schema) on exit.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { median, quantile } from './lib/common.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, '..');

const { values: opts } = parseArgs({
  options: {
    tasks: { type: 'string', default: '3000' },
    victims: { type: 'string', default: '10' },
    runs: { type: 'string', default: '5' },
    'with-tokens': { type: 'string', default: '0.5' },
    postgres: { type: 'string' },
    dist: { type: 'string', default: join(ROOT, 'packages/server/dist') },
  },
});
const TASKS = bounded('tasks', 1, 200_000);
const VICTIMS = bounded('victims', 1, 1000);
const RUNS = bounded('runs', 1, 50);
const WITH_TOKENS = Number(opts['with-tokens']);
if (!(WITH_TOKENS >= 0 && WITH_TOKENS <= 1)) throw new Error('--with-tokens must be in [0, 1]');
/** A run that has not closed every due task by then has failed. */
const RUN_TIMEOUT_MS = 300_000;
const WORKLOAD = 'spiffe://bench.writ/sweep/flood';

function bounded(name, min, max) {
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return v;
}

const dist = resolve(opts.dist);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { createWrit } = await load('src/writ.js');
const { resolveSettings } = await load('src/config/settings.js');
const { kekFromBytes } = await load('src/keys/kek.js');
const { openSqliteStore } = await load('src/store/sqlite/sqlite-store.js');
const { openPostgresStore } = await load('src/store/postgres/postgres-store.js');

const pgUrl = opts.postgres;
const schema = `writ_bench_sweep_${randomBytes(4).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'writ-bench-sweep-'));
const cleanup = async () => {
  rmSync(dir, { recursive: true, force: true });
  if (pgUrl) {
    const c = new pg.Client({ connectionString: pgUrl });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  }
};
process.on('SIGINT', () => cleanup().finally(() => process.exit(130)));

const store = pgUrl
  ? await openPostgresStore(pgUrl, { schema, maxConnections: 8 })
  : openSqliteStore({ path: join(dir, 'writ.db') });
const settings = resolveSettings(
  undefined,
  {},
  {
    'listen.port': 0,
    'log.level': 'silent',
    'tasks.sweep_interval': 1,
  },
);
const writ = await createWrit({ settings, store, kek: kekFromBytes(randomBytes(32), 'bench') });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const results = [];
try {
  for (let run = 0; run < RUNS; run++) results.push(await oneRun(run));
} finally {
  await writ.close();
  await cleanup();
}

/** Writes the tasks, waits for the sweeper to close every one, and reads when each closed. */
async function oneRun(run) {
  // Far enough ahead that writing the tasks finishes first.
  const dueAt = Date.now() + 2000 + Math.ceil(TASKS / 5000) * 1000;
  const prefix = `r${run}-`;
  const victims = [];
  const all = [];
  for (let from = 0; from < TASKS + VICTIMS; from += 2000) {
    await store.transaction(async (tx) => {
      for (let i = from; i < Math.min(TASKS + VICTIMS, from + 2000); i++) {
        const victim = i >= TASKS;
        const id = `${prefix}${victim ? 'victim' : 'flood'}-${i}`;
        // The flood falls due a moment before the victims: they are swept last, the worst case.
        const deadline = victim ? dueAt + 3_600_000 : dueAt - 1;
        const task = {
          id,
          workload: WORKLOAD,
          purpose: 'bench',
          labels: {},
          openedBy: WORKLOAD,
          openedAt: dueAt - 60_000,
          deadline,
          leaseUntil: victim ? dueAt : null,
          closedAt: null,
          closeReason: null,
        };
        await tx.createTask(task);
        if ((i * 0.6180339887) % 1 < WITH_TOKENS)
          await tx.recordToken({
            jti: `${id}-token`,
            sub: WORKLOAD,
            clientId: WORKLOAD,
            cls: 'bench',
            aud: 'https://api.bench.writ',
            scope: 'bench:read',
            kid: 'bench',
            tid: id,
            iat: Math.floor((dueAt - 60_000) / 1000),
            exp: Math.floor(dueAt / 1000) + 600,
            fingerprint: `fp-${id}`,
          });
        (victim ? victims : all).push({ id, due: victim ? dueAt : deadline });
      }
    });
  }
  all.push(...victims);
  while ((await store.listTasks({ open: true, limit: 1 })).length > 0) {
    if (Date.now() > dueAt + RUN_TIMEOUT_MS) throw new Error(`run ${run}: tasks still open`);
    await sleep(100);
  }
  // Every task of the run is closed: read when.
  const lags = [];
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const t of all) {
    const closedAt = (await store.getTask(t.id)).closedAt;
    if (closedAt === null) throw new Error(`run ${run}: ${t.id} is still open`);
    lags.push(closedAt - t.due);
    first = Math.min(first, closedAt);
    last = Math.max(last, closedAt);
  }
  const victimLag = Math.max(...victims.map((v) => lags[all.indexOf(v)]));
  lags.sort((a, b) => a - b);
  const r = {
    victimLagMs: victimLag,
    medianLagMs: quantile(lags, 0.5),
    maxLagMs: lags[lags.length - 1],
    closedPerSecond: Math.round(all.length / Math.max(0.001, (last - first) / 1000)),
  };
  console.error(
    `run ${run + 1}/${RUNS}: latest victim ${r.victimLagMs} ms after its lease ended; all tasks: median ${r.medianLagMs} ms, max ${r.maxLagMs} ms; ${r.closedPerSecond} closed/s`,
  );
  // Let the next run start on an idle server.
  await sleep(1500);
  return r;
}

const summary = {
  store: pgUrl ? 'postgres' : 'sqlite',
  dist: opts.dist,
  tasks: TASKS,
  victims: VICTIMS,
  withTokens: WITH_TOKENS,
  runs: RUNS,
  cores: cpus().length,
  node: process.version,
  median: {
    victimLagMs: median(results.map((r) => r.victimLagMs)),
    medianLagMs: median(results.map((r) => r.medianLagMs)),
    maxLagMs: median(results.map((r) => r.maxLagMs)),
    closedPerSecond: median(results.map((r) => r.closedPerSecond)),
  },
  results,
};
console.log(
  [
    `| ${summary.store}, ${TASKS.toLocaleString('en')} tasks due + ${VICTIMS} lapsed leases | median of ${RUNS} runs |`,
    '|---|---:|',
    `| latest lapsed lease closed after its end | ${summary.median.victimLagMs} ms |`,
    `| every due task: median lag | ${summary.median.medianLagMs} ms |`,
    `| every due task: largest lag | ${summary.median.maxLagMs} ms |`,
    `| tasks closed per second | ${summary.median.closedPerSecond} |`,
  ].join('\n'),
);
mkdirSync(join(BENCH, 'results'), { recursive: true });
writeFileSync(join(BENCH, 'results', `sweep-${summary.store}.json`), `${JSON.stringify(summary, null, 2)}\n`);
