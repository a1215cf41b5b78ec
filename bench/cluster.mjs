// Cluster benchmark: token issuance (client_credentials, private_key_jwt ES256 assertions, ES256 JWT
// access tokens, audit on) by Writ on PostgreSQL with one node and with three nodes (one database, one
// WRIT_KEK, requests spread round-robin over the nodes as a load balancer would), beside one node on the
// embedded SQLite store, all in the same run; then cross-node revocation propagation: event streams
// spread over the three nodes, revocations made on one node, and the time until each stream has each.
//
//   node bench/cluster.mjs [--postgres URL] [--rounds 3] [--seconds 5] [--connections 32]
//                          [--streams 1000] [--revocations 20] [--nodes 1,2,3] [--no-sqlite] [--rate N]
//                          [--no-build]
//
// `--rate N` paces the rounds at N requests/s in all (instead of a closed loop): CPU per token of one
// and of three nodes compared at the same rate, which a loaded machine can still measure.
//
// Per round it also prints what does not depend on the machine's load: PostgreSQL statements, round
// trips (by statement) and commits per token, CPU microseconds per token of each node, of PostgreSQL's
// processes and of the load generator (from /proc), and what the scenario's sessions were waiting on
// (pg_stat_activity sampled every 10 ms: the mean number of sessions in each state).
//
// The PostgreSQL URL defaults to WRIT_TEST_POSTGRES_URL; each scenario gets a database of its own,
// dropped afterwards. Nothing is pinned with taskset: three nodes, PostgreSQL and the load generator
// share the machine's cores (two here), and pinning would only choose which of them starve. The figures
// are for the whole machine; the output records how many cores it has. Every loop is bounded, every
// address is loopback, every child process is ended and every temp directory removed on exit.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { revocationDigest } from '@writ/sdk/verifier';
import pg from 'pg';
import { Pool } from 'undici';
import {
  ASSERTION_TYPE,
  AUDIENCE,
  benchClients,
  es256KeyPair,
  es256Signer,
  freePort,
  median,
  quantile,
  REQUESTED_SCOPE,
  SCOPES,
  TOKEN_TTL,
} from './lib/common.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, '..');
const WRIT_CLI = join(ROOT, 'packages/server/dist/src/cli/main.js');
const ISSUER = 'http://writ.bench.cluster';
const EVENTS = `${ISSUER}/v1/events`;

if (process.argv[2] === '--generator') await generator(JSON.parse(process.argv[3]));
else await main();

// ---- the load generator (a child process) ---------------------------------------------------------

/** Closed loop: `connections` workers spread over `origins`, each sending its next request when answered. */
async function generator(cfg) {
  const signers = cfg.clients.map((c) => ({ id: c.clientId, sign: es256Signer(c.privateJwk) }));
  const now = Math.floor(Date.now() / 1000);
  const bodies = Array.from({ length: cfg.requests }, (_, i) => {
    const s = signers[i % signers.length];
    return new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: s.id,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: s.sign({
        iss: s.id,
        sub: s.id,
        aud: ISSUER,
        iat: now,
        exp: now + 240,
        jti: `${cfg.run}-${i}`,
      }),
      resource: AUDIENCE,
      scope: REQUESTED_SCOPE,
    }).toString();
  });
  const pools = cfg.origins.map(
    (origin) => new Pool(origin, { connections: Math.ceil(cfg.connections / cfg.origins.length) }),
  );
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  const latencies = new Float64Array(bodies.length);
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError;
  // Signing the assertions above takes seconds: say so, and start when told (the parent takes its
  // "before" figures then, so they cover the timed part only).
  process.stdout.write('ready\n');
  await new Promise((r) => process.stdin.once('data', r));
  process.stdin.pause();
  // CPU of the timed part only.
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const deadline = start + cfg.seconds * 1000;
  const worker = async (w) => {
    const pool = pools[w % pools.length];
    while (next < bodies.length && performance.now() < deadline) {
      const i = next++;
      const body = bodies[i];
      // Paced (`cfg.rate`): request i is due at start + i/rate, and its latency counts from then, so
      // time spent queued behind a slow answer is counted too (no coordinated omission).
      const due = cfg.rate ? start + (i * 1000) / cfg.rate : undefined;
      if (due !== undefined && due > performance.now())
        await new Promise((r) => setTimeout(r, due - performance.now()));
      const t0 = due ?? performance.now();
      try {
        const res = await pool.request({ path: '/oauth2/token', method: 'POST', headers, body });
        const text = await res.body.text();
        if (res.statusCode === 200) latencies[ok++] = performance.now() - t0;
        else {
          failed++;
          firstError ??= `HTTP ${res.statusCode}: ${text.slice(0, 200)}`;
        }
      } catch (err) {
        failed++;
        firstError ??= String(err?.message ?? err);
      }
    }
  };
  await Promise.all(Array.from({ length: cfg.connections }, (_, w) => worker(w)));
  const seconds = (performance.now() - start) / 1000;
  await Promise.all(pools.map((p) => p.close()));
  const sorted = latencies.subarray(0, ok).sort();
  process.stdout.write(
    `${JSON.stringify({
      ok,
      failed,
      firstError,
      seconds,
      exhausted: next >= bodies.length,
      rate: ok / seconds,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      cpuSeconds: (() => {
        const u = process.cpuUsage(cpuStart);
        return (u.user + u.system) / 1e6;
      })(),
    })}\n`,
  );
}

// ---- the run ---------------------------------------------------------------------------------------

async function main() {
  const { values: opts } = parseArgs({
    options: {
      postgres: { type: 'string', default: process.env.WRIT_TEST_POSTGRES_URL ?? '' },
      rounds: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '5' },
      connections: { type: 'string', default: '32' },
      clients: { type: 'string', default: '64' },
      streams: { type: 'string', default: '1000' },
      revocations: { type: 'string', default: '20' },
      nodes: { type: 'string', default: '1,2,3' },
      rate: { type: 'string', default: '0' },
      'no-sqlite': { type: 'boolean', default: false },
      'no-build': { type: 'boolean', default: false },
    },
  });
  const bounded = (name, min, max) => {
    const v = Number(opts[name]);
    if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} must be in [${min}, ${max}]`);
    return v;
  };
  const ROUNDS = bounded('rounds', 1, 10);
  const SECONDS = bounded('seconds', 1, 30);
  const CONNECTIONS = bounded('connections', 1, 512);
  const CLIENTS = bounded('clients', 1, 1000);
  const STREAMS = bounded('streams', 0, 5000);
  const REVOCATIONS = bounded('revocations', 1, 200);
  const RATE = bounded('rate', 0, 100_000);
  const NODE_COUNTS = opts.nodes.split(',').map(Number);
  if (!NODE_COUNTS.every((n) => [1, 2, 3].includes(n))) throw new Error('--nodes: a list of 1, 2 and 3');
  if (!/^postgres(ql)?:\/\//.test(opts.postgres))
    throw new Error('pass --postgres postgres://… (or set WRIT_TEST_POSTGRES_URL)');
  const pgHost = new URL(opts.postgres).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(pgHost))
    throw new Error(`refusing a non-loopback PostgreSQL (${pgHost})`);

  const children = new Set();
  const cleanups = [];
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const f of cleanups.splice(0)) f();
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
    process.on(sig, () => {
      process.stderr.write(`\ncluster bench: ${sig}, stopping\n`);
      process.exit(130);
    });

  if (!opts['no-build']) {
    const b = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`build failed:\n${b.stdout}${b.stderr}`);
  }

  const clients = benchClients(CLIENTS);
  const verifier = { clientId: 'spiffe://bench.writ/verifier', ...es256KeyPair() };
  const operator = es256KeyPair();
  const work = mkdtempSync(join(tmpdir(), 'writ-cluster-bench-'));
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  const configDir = writeConfig(join(work, 'config'), clients, verifier, operator);
  // The operator key file as `writ init` writes it: what the CLI's admin client signs with.
  const operatorKeyFile = join(work, 'operator.jwk');
  writeFileSync(operatorKeyFile, `${JSON.stringify({ operator: 'bench', key: operator.privateJwk })}\n`, {
    mode: 0o600,
  });
  const kek = randomBytes(32).toString('base64');

  /** `writ serve` on `store`, sharing the config and the KEK; resolves once /readyz answers 200. */
  const startNode = async (name, store) => {
    const data = join(work, `data-${name}-${Date.now()}`);
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        '--require',
        join(BENCH, 'lib/count-pg.cjs'),
        WRIT_CLI,
        '--data-dir',
        data,
        'serve',
        '--port',
        String(port),
        '--store',
        store,
        '--config',
        configDir,
        '--issuer',
        ISSUER,
      ],
      {
        env: {
          ...process.env,
          WRIT_KEK: kek,
          WRIT_STORE: '',
          WRIT_LOG_LEVEL: 'warn',
          NODE_ENV: 'production',
          WRIT_BENCH_PG_COUNT: join(work, `pg-count-${name}.json`),
          WRIT_BENCH_SERVER_DIR: join(ROOT, 'packages/server'),
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    children.add(child);
    let log = '';
    child.stderr.on('data', (d) => {
      log = (log + d).slice(-4000);
    });
    const origin = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`node ${name} exited:\n${log}`);
      if (Date.now() > deadline) throw new Error(`node ${name} not ready:\n${log}`);
      const ready = await fetch(`${origin}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(
        () => undefined,
      );
      if (ready?.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      origin,
      pid: child.pid,
      countFile: join(work, `pg-count-${name}.json`),
      stop: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const hard = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(hard);
        children.delete(child);
      },
    };
  };

  /** A database of its own for one scenario. */
  const freshDatabase = async () => {
    const name = `writ_bench_${Math.random().toString(16).slice(2, 10)}`;
    await sql(opts.postgres, `CREATE DATABASE ${name}`);
    const u = new URL(opts.postgres);
    u.pathname = `/${name}`;
    const drop = () => sql(opts.postgres, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    return { url: u.toString(), name, drop };
  };

  /** One closed-loop measurement in a child process against `origins`. */
  /** `onReady` runs once the generator has its requests signed, before it starts sending them. */
  /**
   * `expect`: tokens/s seen so far in the scenario (closed loop): the generator signs four times that
   * many requests (at least 2,000), not the 20,000 a second that would cover a quiet machine's best;
   * signing them costs the shared cores more than the round itself on a busy machine.
   */
  const measure = async (origins, seconds, run, rate, onReady, expect) => {
    const cfg = {
      origins,
      seconds,
      run,
      ...(rate ? { rate } : {}),
      connections: CONNECTIONS,
      // Enough pre-built requests for 20k tokens/s (or for the pace); the result says if they ran out.
      requests: rate
        ? Math.ceil(rate * seconds * 1.05) + 100
        : Math.ceil(seconds * (expect ? Math.min(20_000, Math.max(500, 4 * expect)) : 20_000)),
      clients: clients.map((c) => ({ clientId: c.clientId, privateJwk: c.privateJwk })),
    };
    const child = spawn(
      process.execPath,
      [fileURLToPath(import.meta.url), '--generator', JSON.stringify(cfg)],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
        cwd: BENCH,
      },
    );
    children.add(child);
    let out = '';
    let err = '';
    let started = false;
    child.stdout.on('data', (d) => {
      out += d;
      if (!started && out.includes('ready\n')) {
        started = true;
        Promise.resolve(onReady?.())
          .then(() => child.stdin.end('go\n'))
          .catch((e) => {
            err += String(e);
            child.kill('SIGKILL');
          });
      }
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 300) * 1000);
    const [code] = await once(child, 'exit');
    clearTimeout(timer);
    children.delete(child);
    if (code !== 0) throw new Error(`generator failed (${code}):\n${err.slice(-2000)}`);
    return JSON.parse(out.trim().split('\n').pop());
  };

  /** What the nodes sent PostgreSQL so far (bench/lib/count-pg.cjs), summed. */
  const pgCounts = (nodes) => {
    const sum = { trips: 0, statements: 0, byText: {}, msByText: {}, batchRows: 0, perNode: [] };
    for (const n of nodes) {
      let c = { trips: 0, statements: 0, byText: {}, msByText: {}, batchRows: 0 };
      try {
        c = JSON.parse(readFileSync(n.countFile, 'utf8'));
      } catch {
        // not written yet: nothing sent
      }
      sum.trips += c.trips;
      sum.statements += c.statements;
      sum.batchRows += c.batchRows ?? 0;
      for (const [k, v] of Object.entries(c.byText ?? {})) sum.byText[k] = (sum.byText[k] ?? 0) + v;
      for (const [k, v] of Object.entries(c.msByText ?? {})) sum.msByText[k] = (sum.msByText[k] ?? 0) + v;
      sum.perNode.push({ batches: c.byText?.writ_issue_batch ?? 0, rows: c.batchRows ?? 0 });
    }
    return sum;
  };
  const commits = async (db) =>
    db
      ? Number(
          (
            await sql(opts.postgres, `SELECT xact_commit FROM pg_stat_database WHERE datname = '${db.name}'`)
          )[0].xact_commit,
        )
      : 0;
  const settle = () => new Promise((r) => setTimeout(r, 250));
  /** PostgreSQL's processes that work for `db`: its backends and the shared writers (WAL, checkpoints). */
  const pgPids = async (db) =>
    (
      await sql(
        opts.postgres,
        `SELECT pid FROM pg_stat_activity WHERE datname = '${db.name}'
           OR backend_type IN ('walwriter', 'checkpointer', 'background writer')`,
      )
    ).map((r) => r.pid);
  /** CPU seconds of each process and of PostgreSQL's (Linux /proc; undefined elsewhere). */
  const cpuNow = async (nodes, db) => {
    const pg = db ? await pgPids(db) : [];
    return { nodes: nodes.map((n) => cpuSeconds(n.pid)), pg: pg.map((pid) => [pid, cpuSeconds(pid)]) };
  };
  /** Samples what the scenario's PostgreSQL sessions wait on every 10 ms until `stop()`. */
  const sampleWaits = (db) => {
    const tally = {};
    let samples = 0;
    let running = true;
    const client = new pg.Client({ connectionString: opts.postgres });
    const done = (async () => {
      await client.connect();
      try {
        while (running) {
          const rows = (
            await client.query(
              `SELECT state, wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 40) AS q
                 FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
              [db.name],
            )
          ).rows;
          samples++;
          for (const r of rows) {
            if (r.state === 'idle') continue;
            const k = `${r.state}: ${r.wait_event_type ?? 'CPU'}/${r.wait_event ?? '-'}`;
            tally[k] = (tally[k] ?? 0) + 1;
          }
          await new Promise((x) => setTimeout(x, 10));
        }
      } finally {
        await client.end();
      }
    })();
    return async () => {
      running = false;
      await done;
      return { samples, tally };
    };
  };

  const scenario = async (label, nodes, db) => {
    const origins = nodes.map((n) => n.origin);
    // What the nodes and PostgreSQL spend doing nothing (timers, followers, sweepers): 3 s idle.
    const idleBefore = await cpuNow(nodes, db);
    const idleStatements = pgCounts(nodes).statements;
    await new Promise((r) => setTimeout(r, 3000));
    const idleAfter = await cpuNow(nodes, db);
    const idle = {
      nodeCpuMsPerSecond: nodes.map((_, i) => ((idleAfter.nodes[i] - idleBefore.nodes[i]) * 1000) / 3),
      statementsPerSecond: (pgCounts(nodes).statements - idleStatements) / 3,
    };
    process.stderr.write(
      `  ${label} idle: CPU ms per second of each node ${idle.nodeCpuMsPerSecond.map((v) => v.toFixed(1)).join(' + ')}, ${idle.statementsPerSecond.toFixed(1)} statements/s\n`,
    );
    let expect = (await measure(origins, 1.5, `${label}-warmup`)).rate;
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      await settle();
      let before;
      let stopSampling;
      const m = await measure(
        origins,
        SECONDS,
        `${label}-${r}`,
        RATE || undefined,
        async () => {
          before = { ...pgCounts(nodes), commits: await commits(db), cpu: await cpuNow(nodes, db) };
          stopSampling = db ? sampleWaits(db) : undefined;
        },
        expect,
      );
      expect = Math.max(expect, m.rate);
      const waits = await stopSampling?.();
      await settle();
      const after = { ...pgCounts(nodes), commits: await commits(db), cpu: await cpuNow(nodes, db) };
      m.loadAverage = loadavg()[0];
      // CPU per token, in microseconds: each node, PostgreSQL's processes, the load generator.
      m.nodeCpuUsPerToken = nodes.map((_, i) => ((after.cpu.nodes[i] - before.cpu.nodes[i]) * 1e6) / m.ok);
      if (db) {
        const was = new Map(before.cpu.pg);
        let pgCpu = 0;
        for (const [pid, s] of after.cpu.pg)
          if (was.has(pid)) pgCpu += s - was.get(pid);
          else pgCpu += s; // a backend that connected during the round
        m.pgCpuUsPerToken = (pgCpu * 1e6) / m.ok;
      }
      m.generatorCpuUsPerToken = (m.cpuSeconds * 1e6) / m.ok;
      if (m.failed > 0) throw new Error(`${label}: ${m.failed} requests failed; first: ${m.firstError}`);
      if (db) {
        m.statementsPerToken = (after.statements - before.statements) / m.ok;
        m.tripsPerToken = (after.trips - before.trips) / m.ok;
        m.commitsPerToken = (after.commits - before.commits) / m.ok;
        m.tripsByText = Object.fromEntries(
          Object.entries(after.byText)
            .map(([k, v]) => [k, (v - (before.byText[k] ?? 0)) / m.ok])
            .filter(([, v]) => v > 0)
            .sort((a, b) => b[1] - a[1]),
        );
        // Issuance batches: mean size (all nodes, then each node) and mean round trip of the call.
        const batches = (after.byText.writ_issue_batch ?? 0) - (before.byText.writ_issue_batch ?? 0);
        m.batchSize = (after.batchRows - before.batchRows) / batches;
        m.batchSizeByNode = after.perNode.map(
          (a, i) => (a.rows - before.perNode[i].rows) / (a.batches - before.perNode[i].batches),
        );
        m.batchMs =
          ((after.msByText.writ_issue_batch ?? 0) - (before.msByText.writ_issue_batch ?? 0)) / batches;
        m.waits = Object.fromEntries(
          Object.entries(waits.tally)
            .map(([k, v]) => [k, v / waits.samples])
            .sort((a, b) => b[1] - a[1]),
        );
      }
      rounds.push(m);
      const us = (v) => (v === undefined ? '–' : v.toFixed(0));
      process.stderr.write(
        `  ${label} round ${r + 1}: ${m.rate.toFixed(0)} tokens/s, p50 ${m.p50Ms.toFixed(1)} ms, p99 ${m.p99Ms.toFixed(1)} ms${db ? `, per token: ${m.statementsPerToken.toFixed(2)} statements, ${m.tripsPerToken.toFixed(2)} round trips, ${m.commitsPerToken.toFixed(2)} commits` : ''}${m.exhausted ? ' (requests ran out)' : ''}, load ${m.loadAverage.toFixed(1)}\n` +
          `    CPU µs per token: nodes ${m.nodeCpuUsPerToken.map(us).join(' + ')}, PostgreSQL ${us(m.pgCpuUsPerToken)}, generator ${us(m.generatorCpuUsPerToken)}\n` +
          (db
            ? `    issuance batches: mean size ${m.batchSize.toFixed(1)} (by node ${m.batchSizeByNode.map((v) => v.toFixed(1)).join(' / ')}), mean round trip ${m.batchMs.toFixed(1)} ms\n` +
              `    round trips per token: ${Object.entries(m.tripsByText)
                .slice(0, 8)
                .map(([k, v]) => `${v.toFixed(3)} ${JSON.stringify(k.slice(0, 50))}`)
                .join('; ')}\n` +
              `    sessions (mean, not idle): ${Object.entries(m.waits)
                .slice(0, 6)
                .map(([k, v]) => `${k} ${v.toFixed(2)}`)
                .join('; ')}\n`
            : ''),
      );
    }
    const peak = median(rounds.map((m) => m.rate));
    // Half of the peak, paced: the latency a cluster run at half its capacity gives.
    const half = await measure(origins, SECONDS, `${label}-half`, peak / 2);
    if (half.failed > 0)
      throw new Error(`${label} at half: ${half.failed} requests failed; first: ${half.firstError}`);
    process.stderr.write(
      `  ${label} at half of peak (${(peak / 2).toFixed(0)}/s paced): p50 ${half.p50Ms.toFixed(1)} ms, p99 ${half.p99Ms.toFixed(1)} ms\n`,
    );
    const med = (k) => (db ? median(rounds.map((m) => m[k])) : undefined);
    return {
      label,
      nodes: nodes.length,
      tokensPerSecond: peak,
      p50Ms: median(rounds.map((m) => m.p50Ms)),
      p99Ms: median(rounds.map((m) => m.p99Ms)),
      halfP99Ms: half.p99Ms,
      idle,
      statementsPerToken: med('statementsPerToken'),
      tripsPerToken: med('tripsPerToken'),
      commitsPerToken: med('commitsPerToken'),
      nodeCpuUsPerToken: median(rounds.map((m) => m.nodeCpuUsPerToken.reduce((a, b) => a + b, 0))),
      pgCpuUsPerToken: med('pgCpuUsPerToken'),
      rounds,
    };
  };

  const results = {
    when: new Date().toISOString(),
    cores: cpus().length,
    cpu: cpus()[0]?.model,
    node: process.version,
  };
  process.stderr.write(
    `cluster bench: ${results.cores} cores (${results.cpu}), ${CONNECTIONS} connections\n`,
  );

  // 1. One node on the embedded store.
  if (!opts['no-sqlite']) {
    const node = await startNode('sqlite', 'sqlite');
    try {
      results.sqlite1 = await scenario('sqlite, 1 node', [node]);
    } finally {
      await node.stop();
    }
  }
  // The store alone, no HTTP: issuances through the node's group commit (replay check, token record,
  // audit append in one call per batch).
  if (!opts['no-sqlite']) {
    const db = await freshDatabase();
    try {
      results.storeOnly = await storeOnly(db.url);
      for (const r of results.storeOnly)
        process.stderr.write(
          `  postgres store alone, ${r.label}, ${r.concurrency} at once: ${r.perSecond.toFixed(0)} issuances/s\n`,
        );
    } finally {
      await db.drop();
    }
  }
  // 2. One node, then 3. three nodes, on PostgreSQL (a database each).
  for (const n of NODE_COUNTS) {
    const db = await freshDatabase();
    const nodes = [];
    try {
      // The first node migrates the new database; the others find it done.
      nodes.push(await startNode('pg-0', db.url));
      nodes.push(
        ...(await Promise.all(Array.from({ length: n - 1 }, (_, i) => startNode(`pg-${i + 1}`, db.url)))),
      );
      results[`postgres${n}`] = await scenario(`postgres, ${n} node${n > 1 ? 's' : ''}`, nodes, db);
      if (n === 3 && STREAMS > 0)
        results.propagation = await propagation(nodes, STREAMS, REVOCATIONS, verifier, operatorKeyFile);
    } finally {
      await Promise.all(nodes.map((x) => x.stop()));
      await db.drop();
    }
  }

  const per = (v) => (v === undefined ? '–' : v.toFixed(2));
  const row = (r) =>
    `| ${r.label} | ${r.tokensPerSecond.toFixed(0)} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.halfP99Ms.toFixed(1)} | ${per(r.statementsPerToken)} | ${per(r.tripsPerToken)} | ${per(r.commitsPerToken)} | ${r.nodeCpuUsPerToken.toFixed(0)} + ${r.pgCpuUsPerToken === undefined ? '–' : r.pgCpuUsPerToken.toFixed(0)} |`;
  const ratio = (a, b) => (a && b ? (a.tokensPerSecond / b.tokensPerSecond).toFixed(2) : '–');
  const lines = [
    `Issuance, ${CONNECTIONS} connections, ${ROUNDS} rounds of ${SECONDS} s (median), ${results.cores} cores shared by everything:`,
    '| store, nodes | tokens/s | p50 ms | p99 ms | p99 ms at half of peak | statements/token | round trips/token | commits/token | CPU µs/token: nodes + PostgreSQL |',
    '|---|---|---|---|---|---|---|---|---|',
    ...['sqlite1', 'postgres1', 'postgres2', 'postgres3']
      .filter((k) => results[k])
      .map((k) => row(results[k])),
    '',
    `PostgreSQL 1 node ÷ SQLite 1 node: ${ratio(results.postgres1, results.sqlite1)}; ` +
      `2 nodes ÷ 1: ${ratio(results.postgres2, results.postgres1)}; ` +
      `3 nodes ÷ 1: ${ratio(results.postgres3, results.postgres1)}`,
  ];
  if (results.storeOnly)
    lines.push(
      '',
      `The PostgreSQL store alone (issuances through the group commit, no HTTP): ${results.storeOnly
        .map((r) => `${r.perSecond.toFixed(0)}/s with ${r.concurrency} at once on ${r.label}`)
        .join(', ')}`,
    );
  if (results.propagation) {
    const p = results.propagation;
    lines.push(
      '',
      `Revocation propagation, ${p.streams} streams over 3 nodes (${p.perNode.join(' / ')}), ${p.revocations} revocations on node 0:`,
      `p50 ${p.p50Ms.toFixed(1)} ms, p99 ${p.p99Ms.toFixed(1)} ms, max ${p.maxMs.toFixed(1)} ms, missed ${p.missed} (from sending the revocation to the stream reading it)`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  const dir = join(BENCH, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `cluster-${results.when.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stderr.write(`results: ${file}\n`);
  cleanup();
}

/**
 * `streams` event streams (a verifier's DPoP-bound token, a fresh proof each) spread round-robin over
 * the nodes; `revocations` revocations made one after another on node 0; for each stream and each
 * revocation, the time from sending the revocation to the stream reading it.
 */
async function propagation(nodes, streams, revocations, verifier, operatorKeyFile) {
  const { WorkloadClient } = await import(join(ROOT, 'packages/sdk/dist/src/client/index.js'));
  const { createDpopProof } = await import(join(ROOT, 'packages/sdk/dist/src/dpop/index.js'));
  const routed = (origin) => (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    return fetch(url.startsWith(ISSUER) ? origin + url.slice(ISSUER.length) : url, init);
  };
  const wc = new WorkloadClient({
    issuer: ISSUER,
    clientId: verifier.clientId,
    privateJwk: verifier.privateJwk,
    fetch: routed(nodes[0].origin),
  });
  const token = await wc.token({ audience: EVENTS });
  const seen = new Map(); // digest of the revocation value -> arrival times (performance.now())
  const aborts = [];
  const perNode = nodes.map(() => 0);
  const open = async (i) => {
    const node = nodes[i % nodes.length];
    perNode[i % nodes.length]++;
    const abort = new AbortController();
    aborts.push(abort);
    const res = await fetch(`${node.origin}/v1/events?revocations=sha256`, {
      headers: {
        authorization: `DPoP ${token}`,
        dpop: createDpopProof(wc.dpopKey, { method: 'GET', url: EVENTS, accessToken: token }),
      },
      signal: abort.signal,
    });
    if (res.status !== 200) throw new Error(`stream ${i}: HTTP ${res.status} ${await res.text()}`);
    let snapshot;
    const ready = new Promise((r) => {
      snapshot = r;
    });
    (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let cut = buffer.indexOf('\n\n');
        while (cut >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          if (frame.includes('event: snapshot')) snapshot();
          else if (frame.includes('event: revocation')) {
            const data = JSON.parse(frame.slice(frame.indexOf('data: ') + 6));
            const at = performance.now();
            const list = seen.get(data.revocation.value_sha256);
            if (list) list.push(at);
          }
          cut = buffer.indexOf('\n\n');
        }
      }
    })().catch(() => undefined);
    await ready;
  };
  // Open in batches so the nodes' accept queues and the verifier's token endpoint are not flooded.
  for (let i = 0; i < streams; i += 50)
    await Promise.all(Array.from({ length: Math.min(50, streams - i) }, (_, k) => open(i + k)));

  const { adminSession } = await import('./lib/writ-server.mjs');
  const admin = adminSession(nodes[0].origin, operatorKeyFile);
  const latencies = [];
  let missed = 0;
  for (let r = 0; r < revocations; r++) {
    const value = `bench-${r}-${Math.random().toString(36).slice(2)}`;
    // Streams carry the value as its digest.
    const key = revocationDigest(value);
    seen.set(key, []);
    await admin.open(); // a fresh admin session, if needed, outside the timed call
    const t0 = performance.now();
    await admin.revoke({ kind: 'jti', value, reason: 'propagation bench' });
    const deadline = performance.now() + 10_000;
    while (seen.get(key).length < streams && performance.now() < deadline)
      await new Promise((x) => setTimeout(x, 5));
    const arrivals = seen.get(key);
    missed += streams - arrivals.length;
    for (const at of arrivals) latencies.push(at - t0);
    await new Promise((x) => setTimeout(x, 100));
  }
  for (const a of aborts) a.abort();
  const sorted = Float64Array.from(latencies).sort();
  return {
    streams,
    perNode,
    revocations,
    missed,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    maxMs: sorted.length ? sorted[sorted.length - 1] : Number.NaN,
  };
}

/**
 * Issuances per second of the PostgreSQL store by itself, on the path a node's token endpoint takes
 * (`recordIssuance`: the node's group commit, one `writ_issue_batch` call per batch spending the
 * assertion's jti, recording the token and appending its audit event), with 1, 8 and 32 issuances at once
 * on one store, then 32 at once spread over three stores (three nodes' pools and batchers, in this
 * process): what the database does for one node and for three without HTTP, signing or the generator.
 */
async function storeOnly(databaseUrl) {
  const { openPostgresStore } = await import(
    join(ROOT, 'packages/server/dist/src/store/postgres/postgres-store.js')
  );
  const stores = [];
  const now = Date.now();
  const out = [];
  try {
    for (let i = 0; i < 3; i++) stores.push(await openPostgresStore(databaseUrl));
    for (const [label, used, concurrency] of [
      ['1 store', 1, 1],
      ['1 store', 1, 8],
      ['1 store', 1, 32],
      ['3 stores', 3, 32],
    ]) {
      let n = 0;
      const start = performance.now();
      const end = start + 4000;
      await Promise.all(
        Array.from({ length: concurrency }, async (_, w) => {
          const store = stores[w % used];
          while (performance.now() < end) {
            const id = `${label}-${concurrency}-${n++}`;
            await store.recordIssuance({
              consume: [{ scope: 'assertion:bench', id, expiresAt: now + 60_000 }],
              now,
              token: {
                jti: id,
                sub: 'bench',
                clientId: 'bench',
                cls: 'bench',
                aud: AUDIENCE,
                scope: REQUESTED_SCOPE,
                kid: 'bench',
                iat: Math.floor(now / 1000),
                exp: Math.floor(now / 1000) + TOKEN_TTL,
                fingerprint: id,
              },
              audit: { ts: now, type: 'token.issued', outcome: 'success', actor: 'bench', jti: id, data: {} },
            });
          }
        }),
      );
      out.push({ label, concurrency, perSecond: n / ((performance.now() - start) / 1000) });
    }
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
  return out;
}

/** Classes, workloads, the verifier and the operator, as every node applies them at start. */
function writeConfig(dir, clients, verifier, operator) {
  for (const sub of ['classes', 'workloads', 'operators']) mkdirSync(join(dir, sub), { recursive: true });
  const json = (file, v) => writeFileSync(join(dir, file), `${JSON.stringify(v)}\n`);
  // Rate limits out of the way: this measures issuance, not the limiter's refusals. The propagation
  // phase opens its 1,000 streams with one verifier token, past the per-token and per-client caps.
  json('settings.yaml', {
    limits: { client_rate: 1_000_000, client_burst: 1_000_000 },
    events: { max_streams_per_token: 1000, max_streams_per_client: 1000 },
  });
  json('classes/bench.yaml', {
    name: 'bench',
    max_ttl: `${TOKEN_TTL}s`,
    default_ttl: `${TOKEN_TTL}s`,
    audiences: [AUDIENCE],
    scopes: SCOPES,
    binding: 'bearer',
  });
  json('classes/verifier.yaml', {
    name: 'verifier',
    max_ttl: '10m',
    default_ttl: '10m',
    audiences: [EVENTS],
    scopes: ['events:read'],
    default_scopes: ['events:read'],
  });
  for (const [i, c] of clients.entries())
    json(`workloads/client-${i}.yaml`, {
      id: c.clientId,
      owner: 'team-bench',
      environment: 'bench',
      classes: ['bench'],
      jwks: { keys: [c.publicJwk] },
    });
  json('workloads/verifier.yaml', {
    id: verifier.clientId,
    owner: 'team-bench',
    environment: 'bench',
    classes: ['verifier'],
    jwks: { keys: [verifier.publicJwk] },
  });
  json('operators/bench.yaml', { name: 'bench', jwks: { keys: [operator.publicJwk] } });
  return dir;
}

/** User + system CPU seconds of a process from /proc (Linux); NaN when it cannot be read. */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime), in clock ticks of 1/100 s on Linux.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

async function sql(url, text) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}
