// Issuance benchmark: Writ's token endpoint (client_credentials, private_key_jwt with ES256 assertions,
// ES256 JWT access tokens, audit on) over keep-alive HTTP on loopback, compared in the same run with
//   - the raw bound: one ES256 verify + one ES256 sign per request with node:crypto on one thread, and
//   - the peer: oidc-provider configured for the same grant, client auth, token format and TTL, and
//   - the HTTP floor (floor-server.mjs): node:http doing only the verify(s) and the sign, no store,
//     no audit — the ceiling of any server on this stack, to read the raw-bound ratio against.
// Every server and the raw bound run pinned to core 0 (`taskset -c 0`); the load generator runs in its
// own process pinned to core 1. Each measurement is repeated for several rounds and the medians reported.
// Two shapes of load per server and round: many clients (--clients, default 64, round-robin over
// --connections) and one busy client (every request from the same workload over
// --one-client-connections, default 16). Writ's per-client rate limit is raised out of the way (the
// limiter still runs on every request) so the one-client shape measures issuance, not 429s.
//
//   npm run bench                      (from the repository root; installs bench/ dependencies first)
//   node bench/issuance.mjs --rounds 5 --seconds 5 --connections 32 --open-seconds 6 [--profile]
//                                      [--one-client-connections 16]
//   node bench/issuance.mjs --dpop     DPoP-bound issuance (RFC 9449, server nonce) against its raw bound,
//                                      two ES256 verifies (assertion, proof) + one sign; Writ only.
//
// Every loop is bounded in time and count, every address is loopback, every child process is ended and
// every temp directory removed on exit, also on error or Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  AUDIENCE,
  benchClients,
  decodeJwt,
  es256KeyPair,
  freePort,
  median,
  SCOPES,
  TOKEN_TTL,
} from './lib/common.mjs';
import { printCpuProfile, readCpuProfile, summarizeCpuProfile } from './lib/profile.mjs';
import { fmt, machine, printTable, runMain, writeResults } from './lib/report.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, '..');
const WRIT_CLI = join(ROOT, 'packages/server/dist/src/cli/main.js');
const SERVER_CORE = '0';
const GENERATOR_CORE = '1';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: process.env.BENCH_ROUNDS ?? '5' },
    seconds: { type: 'string', default: '5' },
    'warmup-seconds': { type: 'string', default: '1.5' },
    connections: { type: 'string', default: '32' },
    'one-client-connections': { type: 'string', default: '16' },
    clients: { type: 'string', default: '64' },
    'open-seconds': { type: 'string', default: '6' },
    sweep: { type: 'string', default: '8,32,128' },
    profile: { type: 'boolean', default: false },
    dpop: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
  },
});
const ROUNDS = bounded('rounds', 1, 20);
const SECONDS = bounded('seconds', 1, 30);
const WARMUP_SECONDS = bounded('warmup-seconds', 0.2, 10);
const CONNECTIONS = bounded('connections', 1, 512);
const ONE_CLIENT_CONNECTIONS = bounded('one-client-connections', 1, 512);
const CLIENTS = bounded('clients', 1, 1000);
const OPEN_SECONDS = bounded('open-seconds', 2, 60);
const DPOP = opts.dpop;
const SWEEP = opts.sweep
  .split(',')
  .filter(Boolean)
  .map((c) => Math.min(512, Math.max(1, Number(c))));

function bounded(name, min, max) {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} must be in [${min}, ${max}]`);
  return v;
}

// ---- processes and temp dirs: tracked, always cleaned up ------------------------------------------
const children = new Set();
const tempDirs = new Set();

function cleanup() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping\n`);
    cleanup();
    process.exit(130);
  });
}

function tempDir(prefix) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

function pinned(core, args, spawnOpts) {
  const child = spawn('taskset', ['-c', core, process.execPath, ...args], spawnOpts);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Runs a pinned child that prints one JSON line; returns it parsed. Bounded by `timeoutMs`. */
async function runJsonChild(core, script, config, timeoutMs) {
  const child = pinned(core, [join(BENCH, script), JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: BENCH,
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await once(child, 'exit');
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${script} failed (code ${code}, signal ${signal}):\n${err.slice(-2000)}`);
  const line = out.trim().split('\n').pop();
  return JSON.parse(line);
}

async function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

async function waitReady(url, child, logFile, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : '';
  throw new Error(`server did not become ready at ${url}:\n${log}`);
}

// ---- the servers ---------------------------------------------------------------------------------
const clients = benchClients(CLIENTS);
const peerSigningKey = es256KeyPair().privateJwk;

/** Writ on a fresh data dir: one class, CLIENTS workloads, defaults otherwise. */
async function startWrit({ profileDir } = {}) {
  const dir = tempDir('writ-bench-');
  const data = join(dir, 'data');
  const init = spawnSync(process.execPath, [WRIT_CLI, '--data-dir', data, 'init'], { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`writ init failed: ${init.stderr}`);
  const config = join(data, 'config');
  writeFileSync(
    join(config, 'classes', 'bench.yaml'),
    [
      'name: bench',
      'description: issuance benchmark',
      `max_ttl: ${TOKEN_TTL}s`,
      `default_ttl: ${TOKEN_TTL}s`,
      `audiences: [${AUDIENCE}]`,
      `scopes: [${SCOPES.join(', ')}]`,
      // Plain run: bearer, like the peer's tokens (one client assertion, no proof). --dpop: bound tokens.
      `binding: ${DPOP ? 'dpop' : 'bearer'}`,
      '',
    ].join('\n'),
  );
  // One busy client sends thousands of requests a second: lift its budget (200/s by default) so the
  // limiter, which still takes from the bucket on every request, never refuses during the run.
  writeFileSync(
    join(config, 'settings.yaml'),
    `${JSON.stringify({ limits: { client_rate: 1_000_000, client_burst: 1_000_000 } })}\n`,
  );
  for (const [i, c] of clients.entries()) {
    const doc = {
      id: c.clientId,
      owner: 'team-bench',
      environment: 'bench',
      classes: ['bench'],
      jwks: { keys: [c.publicJwk] },
    };
    // JSON is YAML.
    writeFileSync(join(config, 'workloads', `client-${i}.yaml`), `${JSON.stringify(doc)}\n`);
  }
  const port = await freePort();
  const logFile = join(dir, 'server.log');
  const log = openSync(logFile, 'a');
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const child = pinned(
    SERVER_CORE,
    [...nodeArgs, WRIT_CLI, '--data-dir', data, 'serve', '--port', String(port)],
    {
      stdio: ['ignore', log, log],
      env: { ...process.env, NODE_ENV: 'production' },
    },
  );
  closeSync(log);
  const origin = `http://127.0.0.1:${port}`;
  await waitReady(`${origin}/readyz`, child, logFile);
  return {
    name: 'writ',
    origin,
    path: '/oauth2/token',
    audienceOfAssertion: origin,
    logFile,
    pid: child.pid,
    stop: () => stopChild(child),
  };
}

/** A benchmark server script of bench/ (one JSON config argument), pinned to the server core. */
async function startScript({ name, script, path, readyPath, config, profileDir }) {
  const dir = tempDir(`${name}-bench-`);
  const port = await freePort();
  const logFile = join(dir, 'server.log');
  const log = openSync(logFile, 'a');
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const child = pinned(SERVER_CORE, [...nodeArgs, join(BENCH, script), JSON.stringify({ port, ...config })], {
    stdio: ['ignore', log, log],
    cwd: BENCH,
    env: { ...process.env, NODE_ENV: 'production' },
  });
  closeSync(log);
  const origin = `http://127.0.0.1:${port}`;
  await waitReady(`${origin}${readyPath}`, child, logFile);
  return {
    name,
    origin,
    path,
    audienceOfAssertion: origin,
    logFile,
    pid: child.pid,
    stop: () => stopChild(child),
  };
}

const peerClients = () => clients.map((c) => ({ clientId: c.clientId, publicJwk: c.publicJwk }));

/** oidc-provider configured for the same grant, auth, token format and TTL. */
function startPeer({ profileDir } = {}) {
  return startScript({
    name: 'oidc-provider',
    script: 'oidc-provider-server.mjs',
    path: '/token',
    readyPath: '/.well-known/openid-configuration',
    config: { clients: peerClients(), signingJwk: peerSigningKey },
    profileDir,
  });
}

/** The HTTP floor (floor-server.mjs): node:http and the crypto alone, no store, no audit. */
function startFloor({ profileDir } = {}) {
  return startScript({
    name: 'floor',
    script: 'floor-server.mjs',
    path: '/token',
    readyPath: '/',
    config: { clients: peerClients(), signingJwk: peerSigningKey, dpop: DPOP },
    profileDir,
  });
}

async function withServer(start, fn) {
  const server = await start();
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

// ---- measurements --------------------------------------------------------------------------------
function rawBound() {
  return runJsonChild(SERVER_CORE, 'raw-bound.mjs', { seconds: 3, warmupSeconds: 0.5, dpop: DPOP }, 60_000);
}

/** Peak throughput, closed loop. `ceiling` (req/s) sizes the pre-built requests: nothing beats it. */
async function peak(server, { connections, seconds, ceiling, only = clients }) {
  const r = await runJsonChild(
    GENERATOR_CORE,
    'loadgen.mjs',
    {
      mode: 'closed',
      dpop: DPOP,
      origin: server.origin,
      path: server.path,
      audienceOfAssertion: server.audienceOfAssertion,
      serverPid: server.pid,
      clients: only,
      connections,
      warmupSeconds: WARMUP_SECONDS,
      warmupRequests: Math.min(6000, Math.ceil(ceiling * WARMUP_SECONDS)),
      seconds,
      maxRequests: Math.ceil(ceiling * seconds),
    },
    (seconds + WARMUP_SECONDS) * 1000 + 120_000,
  );
  checkRun(server, r);
  return r;
}

async function halfPeak(server, rate) {
  const r = await runJsonChild(
    GENERATOR_CORE,
    'loadgen.mjs',
    {
      mode: 'open',
      dpop: DPOP,
      origin: server.origin,
      path: server.path,
      audienceOfAssertion: server.audienceOfAssertion,
      serverPid: server.pid,
      clients,
      connections: 64,
      warmupSeconds: 1,
      seconds: OPEN_SECONDS,
      rate,
    },
    (OPEN_SECONDS + 1) * 1000 + 120_000,
  );
  checkRun(server, r);
  return r;
}

function checkRun(server, r) {
  if (r.failed > 0 || r.warmFailed > 0 || r.aborted) {
    const log = readFileSync(server.logFile, 'utf8').slice(-1500);
    throw new Error(
      `${server.name}: ${r.failed} failed requests (${r.warmFailed} in warm-up)${r.aborted ? `, ${r.aborted}` : ''}; first: ${r.firstError}\n${log}`,
    );
  }
  if (r.mode === 'closed' && r.exhausted) {
    process.stderr.write(`  note: ${server.name} used every pre-built request before the deadline\n`);
  }
}

/** Both servers must have issued the same kind of token: ES256 JWT, one audience, same lifetime. */
const issued = {};
function describeToken(name, token) {
  if (issued[name] || !token) return;
  const { header, payload } = decodeJwt(token);
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  const same =
    header.alg === 'ES256' &&
    aud.includes(AUDIENCE) &&
    payload.exp - payload.iat === TOKEN_TTL &&
    (name !== 'writ' || DPOP === (typeof payload.cnf?.jkt === 'string'));
  if (!same) throw new Error(`${name} issued an unexpected token: ${JSON.stringify({ header, payload })}`);
  issued[name] = { header, claims: Object.keys(payload).sort(), bytes: token.length };
}

function describePeak(name, r) {
  return (
    `${name.padEnd(13)} ${fmt(r.throughput)}/s, p50 ${fmt(r.p50Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms; ` +
    `server CPU ${pct(r.serverCpu)} = ${fmt(r.serverCpuMicrosPerRequest)} µs/request; ` +
    `generator CPU ${pct(r.generatorCpu)}`
  );
}

// ---- main ----------------------------------------------------------------------------------------
const pct = (x) => `${fmt(x * 100)}%`;

const SIDES = DPOP
  ? [
      ['writ', 'Writ', startWrit],
      ['floor', 'HTTP floor', startFloor],
    ]
  : [
      ['writ', 'Writ', startWrit],
      ['peer', 'oidc-provider', startPeer],
      ['floor', 'HTTP floor', startFloor],
    ];

function describeHalf(name, h) {
  return (
    `${name.padEnd(13)} at ${fmt(h.targetRate)}/s (open loop): p50 ${fmt(h.p50Ms, 2)} ms, ` +
    `p90 ${fmt(h.p90Ms, 2)} ms, p99 ${fmt(h.p99Ms, 2)} ms, max ${fmt(h.maxMs, 1)} ms; ` +
    `server CPU ${pct(h.serverCpu)}; generator CPU ${pct(h.generatorCpu)}, send lag ≤ ${fmt(h.maxSendLagMs, 1)} ms`
  );
}

async function main() {
  if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) throw new Error('taskset is required');
  if (cpus().length < 2) throw new Error('the benchmark needs 2 cores (server on core 0, load on core 1)');
  for (const dep of ['oidc-provider', 'undici']) {
    if (!existsSync(join(BENCH, 'node_modules', dep)))
      throw new Error(
        `bench/node_modules/${dep} is missing: run \`npm --prefix bench ci\` (or \`npm run bench\`)`,
      );
  }
  if (!opts['no-build']) {
    const b = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`npm run build failed:\n${b.stdout}\n${b.stderr}`);
  }
  const started = Date.now();
  const peerVersion = JSON.parse(
    readFileSync(join(BENCH, 'node_modules/oidc-provider/package.json'), 'utf8'),
  ).version;
  console.log(
    `Issuance benchmark: ${cpus().length} cores (${cpus()[0].model}), node ${process.version}, ` +
      `oidc-provider ${peerVersion}\n${ROUNDS} rounds; per round and server: ${SECONDS}s closed loop on ` +
      `${CONNECTIONS} keep-alive connections (peak), then ${OPEN_SECONDS}s open loop at half that peak; ` +
      `${CLIENTS} clients, ES256 everywhere, token TTL ${TOKEN_TTL}s`,
  );
  console.log(
    `servers and raw bound pinned to core ${SERVER_CORE}, load generator pinned to core ${GENERATOR_CORE}\n`,
  );

  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) {
    const raw = await rawBound();
    const ceiling = raw.pairsPerSec * 1.3;
    const r = { raw };
    // Alternate the order so a drift of the machine's speed does not favour one side.
    for (const [key, , start] of i % 2 === 0 ? SIDES : [...SIDES].reverse()) {
      r[key] = await withServer(start, async (s) => {
        const p = await peak(s, { connections: CONNECTIONS, seconds: SECONDS, ceiling });
        const half = await halfPeak(s, Math.max(1, Math.round(p.throughput / 2)));
        const one = await peak(s, {
          connections: ONE_CLIENT_CONNECTIONS,
          seconds: SECONDS,
          ceiling,
          only: clients.slice(0, 1),
        });
        return { ...p, half, one: { ...one, sampleToken: undefined } };
      });
    }
    describeToken('writ', r.writ.sampleToken);
    if (!DPOP) describeToken('oidc-provider', r.peer.sampleToken);
    describeToken('floor', r.floor.sampleToken);
    rounds.push(r);
    console.log(
      `round ${i + 1}/${ROUNDS}: raw bound ${fmt(raw.pairsPerSec)} pairs/s (sign ${fmt(raw.signPerSec)}/s, ` +
        `verify ${fmt(raw.verifyPerSec)}/s)\n` +
        SIDES.map(
          ([key, name]) =>
            `  ${describePeak(name, r[key])}\n  ${describeHalf(name, r[key].half)}\n` +
            `  ${describePeak(`${name} (1 client)`, r[key].one)}`,
        ).join('\n'),
    );
  }

  const med = (f) => median(rounds.map(f));
  const medians = {
    raw: med((r) => r.raw.pairsPerSec),
    sign: med((r) => r.raw.signPerSec),
    verify: med((r) => r.raw.verifyPerSec),
    rawMicros: med((r) => 1e6 / r.raw.pairsPerSec),
    rawRatio: med((r) => r.writ.throughput / r.raw.pairsPerSec),
    peerRatio: DPOP ? Number.NaN : med((r) => r.writ.throughput / r.peer.throughput),
    floorRawRatio: med((r) => r.floor.throughput / r.raw.pairsPerSec),
    writFloorRatio: med((r) => r.writ.throughput / r.floor.throughput),
    onePeerRatio: DPOP ? Number.NaN : med((r) => r.writ.one.throughput / r.peer.one.throughput),
    oneFloorRatio: med((r) => r.writ.one.throughput / r.floor.one.throughput),
  };
  for (const [key] of SIDES) {
    medians[key] = {
      throughput: med((r) => r[key].throughput),
      cpuMicrosPerRequest: med((r) => r[key].serverCpuMicrosPerRequest),
      serverCpu: med((r) => r[key].serverCpu),
      halfRate: med((r) => r[key].half.targetRate),
      halfP50Ms: med((r) => r[key].half.p50Ms),
      halfP99Ms: med((r) => r[key].half.p99Ms),
      oneThroughput: med((r) => r[key].one.throughput),
      oneCpuMicrosPerRequest: med((r) => r[key].one.serverCpuMicrosPerRequest),
    };
  }
  const generatorCpuMax = Math.max(...rounds.flatMap((r) => SIDES.map(([key]) => r[key].generatorCpu)));
  const ceiling = medians.raw * 1.3;

  // More (or fewer) connections must not change Writ's peak much: the generator is not the limit.
  console.log(`\nconnection sweep (Writ, one server, ${SECONDS}s each):`);
  const sweep = await withServer(startWrit, async (s) => {
    const out = [];
    for (const c of SWEEP) {
      const r = await peak(s, { connections: c, seconds: SECONDS, ceiling });
      out.push({
        connections: c,
        throughput: r.throughput,
        p50Ms: r.p50Ms,
        serverCpu: r.serverCpu,
        generatorCpu: r.generatorCpu,
      });
      console.log(`  ${String(c).padStart(4)} connections: ${describePeak('writ', r)}`);
    }
    return out;
  });

  let profile;
  if (opts.profile) {
    profile = {};
    for (const [key, name, start] of SIDES) {
      const profileDir = tempDir('bench-prof-');
      const r = await withServer(
        () => start({ profileDir }),
        (s) => peak(s, { connections: CONNECTIONS, seconds: SECONDS, ceiling }),
      );
      const cpuprofile = readCpuProfile(profileDir);
      profile[key] = { throughput: r.throughput, ...summarizeCpuProfile(cpuprofile, ROOT, r.windowMicros) };
      console.log(
        `\n${name} CPU profile (main thread, timed phase only, ${fmt(r.throughput)}/s under --cpu-prof), self time:`,
      );
      printCpuProfile(profile[key], { inclusive: key === 'writ' ? 20 : 0 });
    }
  }

  const w = medians.writ;
  const p = medians.peer;
  const table = [
    ['', 'peak req/s', 'CPU µs/req', 'p50 @ half', 'p99 @ half', 'ratio', 'target', 'met'],
    [
      DPOP ? 'raw bound: 2 ES256 verifies + sign' : 'raw bound: ES256 verify + sign',
      fmt(medians.raw),
      fmt(medians.rawMicros),
      '',
      '',
      '',
      '',
      '',
    ],
    [
      DPOP ? 'Writ DPoP (SQLite, audit)' : 'Writ (SQLite, audit)',
      fmt(w.throughput),
      fmt(w.cpuMicrosPerRequest),
      `${fmt(w.halfP50Ms, 2)} ms`,
      `${fmt(w.halfP99Ms, 2)} ms`,
      `${fmt(medians.rawRatio, 2)} of raw`,
      '≥ 0.5',
      medians.rawRatio >= 0.5 ? 'yes' : 'NO',
    ],
  ];
  if (!DPOP)
    table.push([
      'oidc-provider (memory)',
      fmt(p.throughput),
      fmt(p.cpuMicrosPerRequest),
      `${fmt(p.halfP50Ms, 2)} ms`,
      `${fmt(p.halfP99Ms, 2)} ms`,
      `Writ ${fmt(medians.peerRatio, 2)}×`,
      '≥ 1.5',
      medians.peerRatio >= 1.5 ? 'yes' : 'NO',
    ]);
  const f = medians.floor;
  table.push([
    'HTTP floor (node:http + crypto only)',
    fmt(f.throughput),
    fmt(f.cpuMicrosPerRequest),
    `${fmt(f.halfP50Ms, 2)} ms`,
    `${fmt(f.halfP99Ms, 2)} ms`,
    `${fmt(medians.floorRawRatio, 2)} of raw`,
    '',
    '',
  ]);
  console.log(
    `\n=== Issuance: medians of ${ROUNDS} rounds (ratios: medians of the per-round ratios; ` +
      'CPU: server process, all threads) ===',
  );
  printTable(table);
  const oneTable = [
    [
      `one client, ${ONE_CLIENT_CONNECTIONS} connections`,
      'peak req/s',
      'CPU µs/req',
      'ratio',
      'target',
      'met',
    ],
    ['Writ (SQLite, audit)', fmt(w.oneThroughput), fmt(w.oneCpuMicrosPerRequest), '', '', ''],
  ];
  if (!DPOP)
    oneTable.push([
      'oidc-provider (memory)',
      fmt(p.oneThroughput),
      fmt(p.oneCpuMicrosPerRequest),
      `Writ ${fmt(medians.onePeerRatio, 2)}×`,
      '≥ 1.5',
      medians.onePeerRatio >= 1.5 ? 'yes' : 'NO',
    ]);
  oneTable.push([
    'HTTP floor',
    fmt(f.oneThroughput),
    fmt(f.oneCpuMicrosPerRequest),
    `Writ ${fmt(medians.oneFloorRatio, 2)}`,
    '≥ 0.7',
    medians.oneFloorRatio >= 0.7 ? 'yes' : 'NO',
  ]);
  console.log(`\n=== One busy client: medians of ${ROUNDS} rounds ===`);
  printTable(oneTable);
  console.log(
    `load generator: at most ${pct(generatorCpuMax)} of its core in any peak run; connection sweep ` +
      sweep.map((x) => `${x.connections}c ${fmt(x.throughput)}/s`).join(', '),
  );
  console.log(
    `ratios (medians of per-round ratios): many clients: Writ ÷ oidc-provider ${fmt(medians.peerRatio, 2)}, ` +
      `Writ ÷ HTTP floor ${fmt(medians.writFloorRatio, 2)}; one client: Writ ÷ oidc-provider ` +
      `${fmt(medians.onePeerRatio, 2)}, Writ ÷ HTTP floor ${fmt(medians.oneFloorRatio, 2)} ` +
      '(targets: ≥ 1.5 and ≥ 0.7 in both shapes)',
  );
  console.log(
    `Writ ÷ HTTP floor: ${fmt(medians.writFloorRatio, 2)} (the floor verifies and signs over node:http and ` +
      'does nothing else: no store, replay cache, audit, policy, limits or logs)',
  );
  console.log(`tokens checked: ${JSON.stringify(issued)}`);
  console.log(`took ${fmt((Date.now() - started) / 1000)} s`);

  const strip = (x) => ({
    ...x,
    sampleToken: undefined,
    half: x.half && { ...x.half, sampleToken: undefined },
  });
  writeResults(DPOP ? 'issuance-dpop' : 'issuance', {
    machine: { ...machine(), peerVersion },
    settings: {
      ROUNDS,
      SECONDS,
      WARMUP_SECONDS,
      CONNECTIONS,
      ONE_CLIENT_CONNECTIONS,
      CLIENTS,
      OPEN_SECONDS,
      TOKEN_TTL,
      DPOP,
    },
    medians,
    rounds: rounds.map((r) => ({
      raw: r.raw,
      writ: strip(r.writ),
      peer: r.peer && strip(r.peer),
      floor: strip(r.floor),
    })),
    sweep,
    profile,
    issued,
  });
}

runMain(main);
