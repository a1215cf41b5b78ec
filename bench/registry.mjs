// Registry scale (issue 19): a config directory of 100,000 workloads.
//
// One run measures, on the embedded SQLite store:
//   - start-up, cold: a fresh store, every file read, validated and applied (the first apply);
//   - start-up, warm: a restart on that store, the directory unchanged;
//   - a one-workload `writ apply` through the real CLI (one file changed);
//   - issuance with 100,000 workloads ÷ issuance with 10 (the same client, one run, alternating rounds).
// Start-up is `writ serve` spawned until /readyz answers 200. Medians of `--runs` (3) each.
//
// Keys: generating 100,000 key pairs would take minutes, so the workloads share `--keys` (200) public
// keys, round-robin; each workload is still its own YAML document in its own file, with its own id,
// owner and key set, and is validated, stored and loaded like any other.
//
//   node bench/registry.mjs [--workloads 100000] [--runs 3] [--keys 200] [--seconds 3]
//
// Start-up is also reported in CPU seconds of the server process (user + system, all threads, from
// /proc at readiness), and the apply in CPU seconds of the CLI and of the server while it answered:
// a loaded machine inflates those far less than wall time.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { AUDIENCE, es256KeyPair, freePort, median, SCOPES, tokenRequestBodies } from './lib/common.mjs';
import {
  cleanupOnExit,
  endedChildrenCpuSeconds,
  processCpuSeconds,
  stopChild,
  tempDir,
  waitReady,
} from './lib/processes.mjs';
import { fmt, loadAverage } from './lib/report.mjs';
import { WRIT_CLI } from './lib/writ-server.mjs';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(
    'node bench/registry.mjs [--workloads 100000] [--runs 3] [--keys 200] [--seconds 3]\n' +
      '  start-up (cold, warm; wall and CPU seconds), one-workload writ apply, issuance ratio\n',
  );
  process.exit(0);
}
const arg = (name, d) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const WORKLOADS = arg('workloads', 100_000);
const RUNS = arg('runs', 3);
const KEYS = arg('keys', 200);
const SECONDS = arg('seconds', 3);
cleanupOnExit('registry');

const keys = Array.from({ length: KEYS }, () => es256KeyPair());
const client = { clientId: 'spiffe://bench.writ/registry/client', ...keys[0] };

/** A data directory with `n` workloads (plus the bench client), each a YAML file of its own. */
function dataDir(n) {
  const dir = tempDir('writ-registry-');
  const data = join(dir, 'data');
  const init = spawnSync(process.execPath, [WRIT_CLI, '--data-dir', data, 'init'], { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`writ init failed: ${init.stderr}`);
  const config = join(data, 'config');
  writeFileSync(
    join(config, 'classes', 'bench.yaml'),
    `name: bench\nmax_ttl: 300s\naudiences: [${AUDIENCE}]\nscopes: [${SCOPES.join(', ')}]\nbinding: bearer\n`,
  );
  writeFileSync(
    join(config, 'settings.yaml'),
    'limits:\n  client_rate: 1000000\n  client_burst: 1000000\n  config_documents: 250000\n',
  );
  writeFileSync(
    join(config, 'workloads', 'client.yaml'),
    workloadYaml(client.clientId, 'team-bench', client.publicJwk),
  );
  for (let i = 0; i < n; i++)
    writeFileSync(
      join(config, 'workloads', `w-${String(i).padStart(6, '0')}.yaml`),
      workloadYaml(
        `spiffe://bench.writ/ns/team-${i % 500}/sa/w-${i}`,
        `team-${i % 500}`,
        keys[i % KEYS].publicJwk,
      ),
    );
  return { data, config };
}

function workloadYaml(id, owner, jwk) {
  const { kty, crv, x, y, kid } = jwk;
  return [
    `id: ${id}`,
    `owner: ${owner}`,
    'environment: prod',
    'classes: [bench]',
    'attributes:',
    '  tier: 2',
    'jwks:',
    '  keys:',
    `    - { kty: ${kty}, crv: ${crv}, kid: ${kid}, x: ${x}, y: ${y} }`,
    '',
  ].join('\n');
}

/** Starts `writ serve` on `data`; resolves with the time to /readyz and the running server. */
async function serve(data, port) {
  const logFile = join(data, '..', `serve-${port}-${Date.now()}.log`);
  const { openSync, closeSync } = await import('node:fs');
  const log = openSync(logFile, 'a');
  const t0 = performance.now();
  const child = spawn(process.execPath, [WRIT_CLI, '--data-dir', data, 'serve', '--port', String(port)], {
    stdio: ['ignore', log, log],
    env: { ...process.env, NODE_ENV: 'production', WRIT_LOG_LEVEL: 'warn' },
  });
  closeSync(log);
  await waitReady(`http://127.0.0.1:${port}/readyz`, child, logFile, 600_000, 100);
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, cpu: processCpuSeconds(child.pid), child, origin: `http://127.0.0.1:${port}` };
}

/** Issued tokens per second for `seconds`, 16 connections, the bench client's pre-built requests. */
async function issuance(origin) {
  const bodies = tokenRequestBodies({
    clients: [client],
    audienceOfAssertion: origin,
    count: 60_000,
    prefix: `r${Date.now()}`,
  });
  const pool = new Pool(origin, { connections: 16 });
  let next = 0;
  let ok = 0;
  const end = performance.now() + SECONDS * 1000;
  const worker = async () => {
    while (performance.now() < end && next < bodies.length) {
      const body = bodies[next++];
      const res = await pool.request({
        path: '/oauth2/token',
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
      await res.body.text();
      if (res.statusCode === 200) ok++;
      else throw new Error(`token request refused: HTTP ${res.statusCode}`);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, worker));
  const rate = ok / ((performance.now() - t0) / 1000);
  await pool.close();
  return rate;
}

const load = { start: loadAverage() };
process.stdout.write(`writing ${WORKLOADS} workloads (load ${load.start})...\n`);
const big = dataDir(WORKLOADS);
const small = dataDir(10);
const port = await freePort();
const cold = [];
const warm = [];
const cpu = { cold: [], warm: [] };
for (let r = 0; r < RUNS; r++) {
  rmSync(join(big.data, 'writ.db'), { force: true });
  // A cold start is a new store: its audit anchor goes with it (a kept anchor ahead of an empty store
  // is what truncation looks like, and the server rightly refuses to start on it).
  for (const f of ['writ.db-wal', 'writ.db-shm', 'audit-anchor.json'])
    rmSync(join(big.data, f), { force: true });
  const c = await serve(big.data, port);
  cold.push(c.seconds);
  cpu.cold.push(c.cpu);
  await stopChild(c.child);
  const w = await serve(big.data, port);
  warm.push(w.seconds);
  cpu.warm.push(w.cpu);
  await stopChild(w.child);
  process.stdout.write(
    `run ${r + 1}: cold ${fmt(c.seconds, 2)} s (CPU ${fmt(c.cpu, 2)} s), warm ${fmt(w.seconds, 2)} s (CPU ${fmt(w.cpu, 2)} s)\n`,
  );
}

// The server stays up for the apply and issuance rounds.
const server = await serve(big.data, port);
const applies = [];
/** CPU seconds of each apply: the CLI process, and the server while it answered. */
const applyCpu = { cli: [], server: [] };
const cliArgs = ['--server', server.origin, '--data-dir', big.data, 'apply', big.config];
for (let r = 0; r < RUNS; r++) {
  writeFileSync(
    join(big.config, 'workloads', 'w-000000.yaml'),
    workloadYaml('spiffe://bench.writ/ns/team-0/sa/w-0', `team-moved-${r}`, keys[0].publicJwk),
  );
  const cpu0 = { cli: endedChildrenCpuSeconds(), server: processCpuSeconds(server.child.pid) };
  const t0 = performance.now();
  const out = spawnSync(process.execPath, [WRIT_CLI, ...cliArgs], { encoding: 'utf8' });
  applies.push((performance.now() - t0) / 1000);
  applyCpu.cli.push(endedChildrenCpuSeconds() - cpu0.cli);
  applyCpu.server.push(processCpuSeconds(server.child.pid) - cpu0.server);
  if (out.status !== 0 || !/applied 1 change/.test(out.stdout))
    throw new Error(`writ apply: ${out.status} ${out.stdout} ${out.stderr}`);
}

const smallServer = await serve(small.data, await freePort());
const rates = { big: [], small: [] };
for (let r = 0; r < RUNS; r++) {
  rates.small.push(await issuance(smallServer.origin));
  rates.big.push(await issuance(server.origin));
}
await stopChild(server.child);
await stopChild(smallServer.child);
load.end = loadAverage();

const m = {
  workloads: WORKLOADS,
  coldStartSeconds: median(cold),
  warmStartSeconds: median(warm),
  coldStartCpuSeconds: median(cpu.cold),
  warmStartCpuSeconds: median(cpu.warm),
  oneWorkloadApplySeconds: median(applies),
  oneWorkloadApplyCpuSeconds: median(applyCpu.cli.map((c, i) => c + applyCpu.server[i])),
  issuanceBig: median(rates.big),
  issuanceSmall: median(rates.small),
};
m.issuanceRatio = m.issuanceBig / m.issuanceSmall;
const rows = [
  ['start-up, cold (first apply)', `${fmt(m.coldStartSeconds, 2)} s`, '≤ 10 s', m.coldStartSeconds <= 10],
  ['start-up, warm (unchanged)', `${fmt(m.warmStartSeconds, 2)} s`, '≤ 10 s', m.warmStartSeconds <= 10],
  ['start-up, cold, CPU', `${fmt(m.coldStartCpuSeconds, 2)} s`, '≤ 10 s', m.coldStartCpuSeconds <= 10],
  ['start-up, warm, CPU', `${fmt(m.warmStartCpuSeconds, 2)} s`, '≤ 10 s', m.warmStartCpuSeconds <= 10],
  [
    'one-workload writ apply (CLI)',
    `${fmt(m.oneWorkloadApplySeconds, 2)} s`,
    '≤ 1 s',
    m.oneWorkloadApplySeconds <= 1,
  ],
  [
    'one-workload apply, CPU (CLI + server)',
    `${fmt(m.oneWorkloadApplyCpuSeconds, 2)} s`,
    '≤ 1 s',
    m.oneWorkloadApplyCpuSeconds <= 1,
  ],
  [
    `issuance ${WORKLOADS} ÷ 10 workloads`,
    `${fmt(m.issuanceRatio, 2)} (${fmt(m.issuanceBig)} ÷ ${fmt(m.issuanceSmall)} /s)`,
    '≥ 0.9',
    m.issuanceRatio >= 0.9,
  ],
];
process.stdout.write(
  `\nregistry of ${WORKLOADS} workloads, medians of ${RUNS} (load average ${load.start} → ${load.end})\n`,
);
for (const [what, value, target, met] of rows)
  process.stdout.write(
    `${what.padEnd(40)} ${value.padEnd(28)} target ${target.padEnd(8)} ${met ? 'met' : 'NOT met'}\n`,
  );
mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
writeFileSync(
  join(import.meta.dirname, 'results', 'registry.json'),
  `${JSON.stringify({ ...m, cold, warm, cpu, applies, applyCpu, rates, load }, null, 2)}\n`,
);
