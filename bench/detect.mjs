// Detection benchmark (issue 13), three parts:
//   (a) rule evaluation over ingested usage records, in-process, one core: a real Writ (built modules,
//       embedded store, injected clock) with a fleet of 1,000 workloads (token pools, steady sources,
//       50 with a learned baseline, 1,000 revocations in force) takes reports of 500 records through
//       `ctx.detection.observeUses`, as `POST /v1/usage` hands them on; the built-in rules run on each
//       record. Also `DetectionEngine.observe` alone over the same signals. Target ≥ 100,000 records/s.
//   (b) misuse-to-revocation latency: `writ serve` (SQLite) pinned to core 0, 100 SDK verifiers
//       (`createVerifier`, each its own workload, event stream and `UsageReporter` with
//       flushIntervalMs 250) in driver processes pinned to core 1. Per trial a fresh workload's token is
//       used from its usual network at one verifier; then, at t0, misused at another: a bearer token from
//       a new network (`token-two-networks` revokes it), or a DPoP-bound token presented without its key
//       (`bound-token-without-key`; such a record is sent at once). Latency: t0 until every verifier
//       holds the revocation (watched every millisecond), after which each must refuse the token with
//       `revoked`. Target p99 ≤ 1 s (with 30 trials, p99 is the slowest trial).
//   (c) issuance throughput with detection on while 10,000 usage records/s are ingested ÷ the same with
//       `detection.enabled: false`: bench/issuance.mjs's load generator (closed loop, peak) on core 1
//       beside SDK `UsageReporter`s reporting uses of tokens the server issued for the APIs they serve,
//       a fresh server per side, sides alternating. Target ≥ 0.85.
// The machine is noisy: every part repeats and reports medians, with the load average beside it.
//
//   npm run build && node bench/detect.mjs                 (all three parts, ~10 minutes)
//   node bench/detect.mjs --part a --rounds 5 --records 300000
//   node bench/detect.mjs --part a --compare ../writ-before   also another checkout's engine (built there)
//                                      over the same signals, in alternate slices: this one ÷ that one
//   node bench/detect.mjs --part b --trials 30 --verifiers 100 --drivers 2
//   node bench/detect.mjs --part c --rounds 5 --seconds 5 --usage-rate 10000
//   node bench/detect.mjs --part c --profile          and one more side (on) under --cpu-prof: self and
//                                                      inclusive time per function during the peak
//
// Every loop is bounded in time and count, every address is loopback, every child process is ended and
// every temp directory removed on exit, also on error or Ctrl-C.
import { createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WorkloadClient } from '@writ/sdk/client';
import { dpopKeyFrom } from '@writ/sdk/dpop';
import { AUDIENCE, benchClients, decodeJwt, es256KeyPair, median, quantile, SCOPES } from './lib/common.mjs';
import { startLineChild } from './lib/line-child.mjs';
import {
  cleanupOnExit,
  pinSelf,
  processCpuSeconds,
  requirePinning,
  runJsonChild,
  tempDir,
} from './lib/processes.mjs';
import { summarizeCpuProfile } from './lib/profile.mjs';
import { fleetReporter, usageFleet } from './lib/usage-traffic.mjs';
import {
  adminSession,
  bearerToken,
  logTail,
  ROOT,
  startWritServer,
  WRIT_CLI,
  workloadDoc,
} from './lib/writ-server.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const SERVER_CORE = '0';
const LOAD_CORE = '1';
const TARGETS = { recordsPerSecond: 100_000, latencyP99Ms: 1000, issuanceRatio: 0.85 };

const { values: opts } = parseArgs({
  options: {
    part: { type: 'string', default: 'a,b,c' },
    rounds: { type: 'string', default: process.env.BENCH_ROUNDS ?? '5' },
    // (a)
    workloads: { type: 'string', default: '1000' },
    learned: { type: 'string', default: '50' },
    records: { type: 'string', default: '300000' },
    'warmup-records': { type: 'string', default: '200000' },
    compare: { type: 'string' },
    // (b)
    trials: { type: 'string', default: process.env.BENCH_TRIALS ?? '30' },
    'warmup-trials': { type: 'string', default: '2' },
    verifiers: { type: 'string', default: '100' },
    drivers: { type: 'string', default: '2' },
    'flush-ms': { type: 'string', default: '250' },
    background: { type: 'string', default: '2' },
    'gap-ms': { type: 'string', default: '400' },
    // (c)
    seconds: { type: 'string', default: '5' },
    'usage-rate': { type: 'string', default: '10000' },
    connections: { type: 'string', default: '32' },
    clients: { type: 'string', default: '64' },
    profile: { type: 'boolean', default: false },
  },
});
const PARTS = new Set(opts.part.split(',').map((p) => p.trim()));
const ROUNDS = bounded('rounds', 1, 20);
const WORKLOADS = bounded('workloads', 10, 10_000);
const LEARNED = bounded('learned', 0, WORKLOADS);
const RECORDS = bounded('records', 1000, 2_000_000);
const WARMUP_RECORDS = bounded('warmup-records', 0, 2_000_000);
const TRIALS = bounded('trials', 1, 500);
const WARMUP_TRIALS = bounded('warmup-trials', 0, 20);
const VERIFIERS = bounded('verifiers', 2, 1000);
const DRIVERS = bounded('drivers', 1, 8);
const FLUSH_MS = bounded('flush-ms', 100, 10_000);
const BACKGROUND = bounded('background', 0, 100);
const GAP_MS = bounded('gap-ms', 0, 10_000);
const SECONDS = bounded('seconds', 1, 60);
const USAGE_RATE = bounded('usage-rate', 0, 100_000);
const CONNECTIONS = bounded('connections', 1, 512);
const CLIENTS = bounded('clients', 1, 1000);
const TRIAL_TIMEOUT_MS = 10_000;

function bounded(name, min, max) {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} must be in [${min}, ${max}]`);
  return v;
}

const cleanup = cleanupOnExit('bench/detect');
const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const load = () => loadavg()[0].toFixed(2);
const sorted = (xs) => [...xs].filter(Number.isFinite).sort((a, b) => a - b);

// ---- (a) rule evaluation throughput, in-process -------------------------------------------------
async function partA() {
  const loadAtStart = load();
  console.log(
    `(a) rule evaluation over ingested usage records: ${WORKLOADS} workloads (${LEARNED} learned), ` +
      `${RECORDS} records timed after ${WARMUP_RECORDS} of warm-up, one process pinned to core ` +
      `${SERVER_CORE}; load average ${loadAtStart}`,
  );
  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) {
    const round = {};
    for (const mode of i % 2 === 0 ? ['ingest', 'engine'] : ['engine', 'ingest']) {
      round[mode] = await runJsonChild(
        SERVER_CORE,
        join(BENCH, 'lib/detect-ingest.mjs'),
        {
          mode,
          workloads: WORKLOADS,
          learned: LEARNED,
          warmup: WARMUP_RECORDS,
          records: RECORDS,
          perSecond: 10_000,
          revocations: 1000,
          seed: 13,
          ...(mode === 'engine' && opts.compare ? { compare: resolve(opts.compare) } : {}),
        },
        600_000,
        { cwd: BENCH },
      );
    }
    round.load = load();
    rounds.push(round);
    const { ingest: g, engine: e } = round;
    console.log(
      `  round ${i + 1}/${ROUNDS}: observeUses ${fmt(g.perSecond)} records/s (${fmt(g.microsPerRecord, 2)} µs ` +
        `each; ${fmt(g.perCpuSecond)} per CPU second), engine alone ${fmt(e.perSecond)}/s ` +
        `(${fmt(e.microsPerRecord, 2)} µs); ${g.evaluationsPerRecord} rules a record, ${g.detections} ` +
        `detections, ${g.findings} findings; load ${round.load}` +
        (e.comparedPerSecond ? `; compared build's engine ${fmt(e.comparedPerSecond)}/s` : ''),
    );
  }
  const med = (f) => median(rounds.map(f));
  const summary = {
    loadAtStart,
    ingestPerSecond: med((r) => r.ingest.perSecond),
    ingestPerCpuSecond: med((r) => r.ingest.perCpuSecond),
    ingestMicros: med((r) => r.ingest.microsPerRecord),
    enginePerSecond: med((r) => r.engine.perSecond),
    enginePerCpuSecond: med((r) => r.engine.perCpuSecond),
    engineMicros: med((r) => r.engine.microsPerRecord),
    comparedEnginePerSecond: med((r) => r.engine.comparedPerSecond),
    // This build's engine ÷ the compared one's, slice by slice in one process: steady on a busy machine.
    engineSpeedup: med((r) => r.engine.comparedMicrosPerRecord / r.engine.microsPerRecord),
    evaluationsPerRecord: rounds[0].ingest.evaluationsPerRecord,
    detections: rounds.map((r) => r.ingest.detections),
  };
  summary.ratio = summary.ingestPerSecond / TARGETS.recordsPerSecond;
  return { summary, rounds };
}

// ---- (b) misuse-to-revocation latency -------------------------------------------------------------
const API = 'https://api.bench.writ';
const TOKEN_SCOPE = 'api:call';

async function partB() {
  const loadAtStart = load();
  const perKind = TRIALS + WARMUP_TRIALS;
  const verifierClients = benchClients(VERIFIERS).map((c, i) => ({
    ...c,
    clientId: `spiffe://bench.writ/detect/verifier-${String(i).padStart(3, '0')}`,
  }));
  const rename = (list, kind) =>
    list.map((c, i) => ({
      ...c,
      clientId: `spiffe://bench.writ/detect/${kind}-${String(i).padStart(3, '0')}`,
    }));
  const victims = {
    bearer: rename(benchClients(perKind), 'bearer'),
    dpop: rename(benchClients(perKind), 'dpop'),
  };
  const background = rename(benchClients(20), 'background');
  console.log(
    `\n(b) misuse → every verifier refuses: one Writ (SQLite) on core ${SERVER_CORE}; ${VERIFIERS} SDK ` +
      `verifiers (usage every ${FLUSH_MS} ms, ${BACKGROUND} benign uses/s each) in ${DRIVERS} driver ` +
      `process(es) on core ${LOAD_CORE}; ${TRIALS} trials (+${WARMUP_TRIALS} warm-up) per misuse; ` +
      `load average ${loadAtStart}`,
  );
  const klass = (name, binding, audiences, extra = {}) => ({
    name,
    max_ttl: '30m',
    default_ttl: '30m',
    audiences,
    scopes: [TOKEN_SCOPE],
    default_scopes: [TOKEN_SCOPE],
    binding,
    ...extra,
  });
  const server = await startWritServer({
    core: SERVER_CORE,
    classes: (issuer) => [
      klass('victim-bearer', 'bearer', [API]),
      klass('victim-dpop', 'dpop', [API]),
      {
        name: 'verifier',
        max_ttl: '1h',
        default_ttl: '1h',
        audiences: [`${issuer}/v1/events`, `${issuer}/v1/usage`],
        scopes: ['events:read'],
        default_scopes: ['events:read'],
        binding: 'dpop',
      },
    ],
    workloads: [
      ...verifierClients.map((v) => workloadDoc(v, ['verifier'], { serves: [API] })),
      ...victims.bearer.map((v) => workloadDoc(v, ['victim-bearer'])),
      ...victims.dpop.map((v) => workloadDoc(v, ['victim-dpop'])),
      ...background.map((v) => workloadDoc(v, ['victim-bearer'])),
    ],
    // The trials revoke faster than the default budget of 20 automatic responses a minute for one rule
    // (a guardrail this benchmark is not about).
    settings: { detection: { responses_per_minute: 10_000, rule_responses_per_minute: 10_000 } },
  });
  const drivers = [];
  try {
    const admin = adminSession(server.issuer, server.operatorKeyFile);
    const backgroundTokens = [];
    for (const [i, b] of background.entries())
      backgroundTokens.push({
        token: await bearerToken(server.issuer, b, { resource: API, scope: TOKEN_SCOPE }),
        source: `10.30.${i}.20`,
      });
    // Verifier v is driver v mod DRIVERS, its index there v div DRIVERS.
    const where = (v) => ({ driver: drivers[v % DRIVERS], local: Math.floor(v / DRIVERS) });
    for (let d = 0; d < DRIVERS; d++)
      drivers.push(
        startLineChild({
          name: `verifier driver ${d}`,
          core: LOAD_CORE,
          script: join(BENCH, 'lib/verifier-driver.mjs'),
          config: {
            issuer: server.issuer,
            api: API,
            flushIntervalMs: FLUSH_MS,
            verifiers: verifierClients
              .filter((_, v) => v % DRIVERS === d)
              .map((v) => ({ clientId: v.clientId, privateJwk: v.privateJwk })),
            background: { perSecond: BACKGROUND, tokens: backgroundTokens },
          },
          cwd: BENCH,
        }),
      );
    const ready = await Promise.all(drivers.map((d) => d.next('ready', 120_000)));
    console.log(`  ${VERIFIERS} verifiers ready in ${fmt(Math.max(...ready.map((r) => r.ms)) / 1000, 1)} s`);

    const trials = { bearer: [], dpop: [] };
    const serverCpu0 = processCpuSeconds(server.pid);
    for (let t = 0; t < 2 * perKind; t++) {
      const kind = t % 2 === 0 ? 'bearer' : 'dpop';
      const n = Math.floor(t / 2);
      const warm = n < WARMUP_TRIALS;
      const trial = await oneTrial({
        server,
        admin,
        kind,
        victim: victims[kind][n],
        drivers,
        where,
        verifierId: (v) => verifierClients[v].clientId,
        n,
      });
      if (!warm) trials[kind].push(trial);
      console.log(
        `  ${warm ? 'warm-up' : `${kind} ${String(trials[kind].length).padStart(3)}`}: ` +
          `every verifier refuses after ${fmt(trial.lastMs)} ms (report stored ${fmt(trial.reportMs)} ms, ` +
          `revocation stored ${fmt(trial.revokedMs)} ms, first verifier ${fmt(trial.firstMs)} ms; finding ` +
          `recorded ${fmt(trial.findingMs)} ms)`,
      );
      await sleep(GAP_MS + Math.floor(Math.random() * GAP_MS));
    }
    const serverCpu = processCpuSeconds(server.pid) - serverCpu0;
    for (const d of drivers) d.send({ cmd: 'stop' });
    const stopped = await Promise.all(drivers.map((d) => d.next('stopped', 20_000)));
    const usage = stopped.reduce(
      (s, x) => {
        for (const k of Object.keys(s)) s[k] += x.usage[k] ?? 0;
        return s;
      },
      { sent: 0, refused: 0, dropped: 0, failures: 0 },
    );
    const summary = { loadAtStart, loadAtEnd: load(), serverCpuSeconds: serverCpu, usage, kinds: {} };
    for (const kind of ['bearer', 'dpop']) {
      const list = trials[kind];
      const last = sorted(list.map((x) => x.lastMs));
      const med = (f) => median(list.map(f));
      summary.kinds[kind] = {
        trials: list.length,
        p50Ms: quantile(last, 0.5),
        p99Ms: quantile(last, 0.99),
        maxMs: last[last.length - 1],
        reportMs: med((x) => x.reportMs),
        findingMs: med((x) => x.findingMs),
        revokedMs: med((x) => x.revokedMs),
        firstMs: med((x) => x.firstMs),
        medianVerifierMs: med((x) => x.medianMs),
      };
      summary.kinds[kind].ratio = summary.kinds[kind].p99Ms / TARGETS.latencyP99Ms;
    }
    console.log(
      `  usage reports over the trials: ${usage.sent} records taken, ${usage.refused} refused, ` +
        `${usage.dropped} dropped, ${usage.failures} failed reports; background uses ` +
        `${stopped.reduce((n, s) => n + s.backgroundUses, 0)} (${stopped.reduce((n, s) => n + s.backgroundRefused, 0)} ` +
        `refused); server CPU ${fmt(serverCpu, 1)} s; driver CPU ` +
        `${stopped.map((s) => `${fmt(s.cpuMs / 1000, 1)} s`).join(', ')}`,
    );
    return { summary, trials };
  } finally {
    await Promise.all(drivers.map((d) => d.stop()));
    await server.stop();
  }
}

/** A fresh DPoP key for a victim, as a JWK pair (sent to the drivers) and the SDK's key. */
function holderKeys() {
  const pair = es256KeyPair();
  return {
    pair,
    key: dpopKeyFrom(createPrivateKey({ key: pair.privateJwk, format: 'jwk' }), pair.publicJwk, 'ES256'),
  };
}

async function oneTrial({ server, admin, kind, victim, drivers, where, verifierId, n }) {
  const usual = `10.40.${n % 250}.7`;
  let token;
  let dpopKey;
  if (kind === 'bearer')
    token = await bearerToken(server.issuer, victim, { resource: API, scope: TOKEN_SCOPE });
  else {
    const keys = holderKeys();
    dpopKey = keys.pair;
    const client = new WorkloadClient({
      issuer: server.issuer,
      clientId: victim.clientId,
      privateJwk: victim.privateJwk,
      dpopKey: keys.key,
    });
    token = await client.token({ audience: API });
  }
  const { jti, cnf } = decodeJwt(token).payload;
  if ((kind === 'dpop') !== (cnf?.jkt !== undefined)) throw new Error(`${kind} token has the wrong binding`);
  const a = Math.floor(Math.random() * VERIFIERS);
  const b = (a + 1 + Math.floor(Math.random() * (VERIFIERS - 1))) % VERIFIERS;
  const holderWay = kind === 'dpop' ? 'dpop' : 'bearer';

  // The holder's own uses, reported and taken before the misuse.
  const A = where(a);
  A.driver.send({
    cmd: 'use',
    verifier: A.local,
    token,
    dpopKey,
    present: holderWay,
    source: usual,
    count: 3,
  });
  const own = await A.driver.next('used', 10_000);
  if (own.decision !== 'allow') throw new Error(`the holder's own use was refused: ${own.reason}`);
  A.driver.send({ cmd: 'flush', verifier: A.local });
  await A.driver.next('flushed', 10_000);
  await admin.open();

  for (const d of drivers) d.send({ cmd: 'arm', trial: n, timeoutMs: TRIAL_TIMEOUT_MS });
  await Promise.all(drivers.map((d) => d.next('armed', 10_000)));
  // The misuse: a copy of the bearer token from a network the holder never used; the bound token
  // without its key (as a bearer token) from the holder's network, so only the theft rule fires.
  const B = where(b);
  B.driver.send({
    cmd: 'use',
    verifier: B.local,
    token,
    present: 'bearer',
    source: kind === 'bearer' ? `198.51.100.${(n % 250) + 1}` : usual,
    count: 1,
  });
  const misuse = await B.driver.next('used', 10_000);
  // A bound token as a bearer token: refused, reported with the `key_missing` signal.
  const expected = kind === 'bearer' ? 'allowed' : 'dpop_bound_as_bearer';
  if (misuse.reason !== expected) throw new Error(`the misuse came out ${misuse.reason}, not ${expected}`);
  const t0 = misuse.at;
  const reports = await Promise.all(drivers.map((d) => d.next('trial', TRIAL_TIMEOUT_MS + 10_000)));
  const times = reports.flatMap((r) => r.times);
  const missing = times.filter((x) => x === null).length;
  if (missing > 0)
    throw new Error(
      `${kind} trial ${n}: ${missing} of ${times.length} verifiers did not hear a revocation within ` +
        `${TRIAL_TIMEOUT_MS} ms\n${logTail(server)}`,
    );
  for (const d of drivers) d.send({ cmd: 'confirm', token, dpopKey, present: holderWay, source: usual });
  const confirmed = (await Promise.all(drivers.map((d) => d.next('confirmed', 20_000)))).flatMap(
    (c) => c.reasons,
  );
  const notRevoked = confirmed.filter((r) => r !== 'revoked');
  if (notRevoked.length > 0)
    throw new Error(
      `${kind} trial ${n}: ${notRevoked.length} verifiers did not refuse as revoked: ${notRevoked[0]}`,
    );

  // Where the time went, from the audit log (server clock, ms; same machine, same clock).
  const { events } = await admin.get(`/audit?jti=${encodeURIComponent(jti)}&since=${t0 - 1000}`);
  const raised = events.find((e) => e.type === 'detection.raised');
  const revoked = events.find((e) => e.type === 'revocation.created');
  const rule = kind === 'bearer' ? 'token-two-networks' : 'bound-token-without-key';
  if (!raised || raised.data.rule !== rule || !revoked)
    throw new Error(
      `${kind} trial ${n}: expected ${rule} to revoke the token; audit: ${JSON.stringify(events)}`,
    );
  const reporter = encodeURIComponent(verifierId(b));
  const reportsOfB = (
    await admin.get(`/audit?workload=${reporter}&type=usage.reported&since=${t0 - 1000}&limit=100`)
  ).events.filter((e) => e.ts <= raised.ts);
  const arrived = reportsOfB.length > 0 ? reportsOfB[reportsOfB.length - 1].ts : Number.NaN;
  const lags = sorted(times.map((x) => x - t0));
  return {
    jti,
    lastMs: lags[lags.length - 1],
    firstMs: lags[0],
    medianMs: quantile(lags, 0.5),
    reportMs: arrived - t0,
    findingMs: raised.ts - t0,
    revokedMs: revoked.ts - t0,
  };
}

// ---- (c) issuance throughput with detection on ÷ off, under usage load ---------------------------
async function partC() {
  const loadAtStart = load();
  const issuanceClients = benchClients(CLIENTS);
  const fleet = usageFleet({ workloads: 50, apis: 2, seed: 17 });
  const fleetClients = fleet.workloads.map((w) => ({ ...es256KeyPair(), clientId: w.id }));
  // Two replicas of each API's verifier (one workload, a key each) report its uses.
  const reporterClients = fleet.apis.flatMap((api) =>
    [0, 1].map(() => ({ ...es256KeyPair(), clientId: fleetReporter(api), api })),
  );
  const reporterDocs = fleet.apis.map((api) => {
    const replicas = reporterClients.filter((r) => r.api === api);
    return {
      ...workloadDoc(replicas[0], ['reporter'], { serves: [api] }),
      jwks: { keys: replicas.map((r) => r.publicJwk) },
    };
  });
  console.log(
    `\n(c) issuance with detection on ÷ off while ${USAGE_RATE} usage records/s are reported: ` +
      `${ROUNDS} rounds, a fresh server per side (core ${SERVER_CORE}); per side ${SECONDS} s closed loop ` +
      `on ${CONNECTIONS} connections from bench/loadgen.mjs and ${reporterClients.length} UsageReporters ` +
      `(core ${LOAD_CORE}); load average ${loadAtStart}`,
  );
  const side = async (enabled, profileDir) => {
    const server = await startWritServer({
      core: SERVER_CORE,
      nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
      classes: (issuer) => [
        {
          name: 'bench',
          max_ttl: '300s',
          default_ttl: '300s',
          audiences: [AUDIENCE],
          scopes: SCOPES,
          binding: 'bearer',
        },
        {
          name: 'fleet',
          max_ttl: '30m',
          default_ttl: '30m',
          audiences: fleet.apis,
          scopes: ['fleet:call'],
          default_scopes: ['fleet:call'],
          binding: 'bearer',
        },
        {
          name: 'reporter',
          max_ttl: '1h',
          default_ttl: '1h',
          audiences: [`${issuer}/v1/usage`, `${issuer}/v1/events`],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
          binding: 'dpop',
        },
      ],
      workloads: [
        ...issuanceClients.map((c) => workloadDoc(c, ['bench'])),
        ...fleetClients.map((c) => workloadDoc(c, ['fleet'])),
        ...reporterDocs,
      ],
      settings: { detection: { enabled } },
    });
    let usageLoad;
    try {
      // Tokens the fleet holds: one per (workload, pod, API), issued by this server.
      const tokens = {};
      for (const s of fleet.slots()) {
        const c = fleetClients[s.workload.index];
        const token = await bearerToken(server.issuer, c, { resource: s.api, scope: 'fleet:call' });
        tokens[`${s.workload.index}/${s.pod}/${s.api}`] = decodeJwt(token).payload.jti;
      }
      usageLoad = startLineChild({
        name: 'usage load',
        core: LOAD_CORE,
        script: join(BENCH, 'lib/usage-load.mjs'),
        config: {
          issuer: server.issuer,
          perSecond: USAGE_RATE,
          flushIntervalMs: FLUSH_MS,
          fleet: { workloads: 50, apis: 2, seed: 17 },
          reporters: reporterClients.map((r) => ({
            clientId: r.clientId,
            privateJwk: r.privateJwk,
            api: r.api,
          })),
          tokens,
        },
        cwd: BENCH,
      });
      await usageLoad.next('ready', 30_000);
      // Usage alone first: what ingesting it costs the server, per record.
      await sleep(2000);
      const mark = async () => {
        usageLoad.send({ cmd: 'mark' });
        return usageLoad.next('mark', 10_000);
      };
      const m0 = await mark();
      const cpu0 = processCpuSeconds(server.pid);
      await sleep(3000);
      const m1 = await mark();
      const usageAlone = {
        recordsPerSecond: ((m1.sent - m0.sent) * 1000) / (m1.at - m0.at),
        serverCpu: (processCpuSeconds(server.pid) - cpu0) / ((m1.at - m0.at) / 1000),
      };
      usageAlone.serverMicrosPerRecord =
        (usageAlone.serverCpu * 1e6) / Math.max(1, usageAlone.recordsPerSecond);
      const peak = await runJsonChild(
        LOAD_CORE,
        join(BENCH, 'loadgen.mjs'),
        {
          mode: 'closed',
          dpop: false,
          origin: server.origin,
          path: '/oauth2/token',
          audienceOfAssertion: server.issuer,
          serverPid: server.pid,
          clients: issuanceClients,
          connections: CONNECTIONS,
          warmupSeconds: 1.5,
          warmupRequests: 6000,
          seconds: SECONDS,
          maxRequests: 10_000 * SECONDS,
        },
        (SECONDS + 2) * 1000 + 120_000,
        { cwd: BENCH },
      );
      const m2 = await mark();
      if (peak.failed > 0 || peak.warmFailed > 0)
        throw new Error(
          `issuance: ${peak.failed} failed requests; first: ${peak.firstError}\n${logTail(server)}`,
        );
      const detections = await adminSession(server.issuer, server.operatorKeyFile).get('/detections');
      usageLoad.send({ cmd: 'stop' });
      const stopped = await usageLoad.next('stopped', 10_000);
      return {
        enabled,
        throughput: peak.throughput,
        serverCpuMicrosPerRequest: peak.serverCpuMicrosPerRequest,
        p50Ms: peak.p50Ms,
        p99Ms: peak.p99Ms,
        generatorCpu: peak.generatorCpu,
        usageAlone,
        // Over the whole load generator run (its warm-up and request building included).
        usageDuringPeak: {
          recordsPerSecond: ((m2.sent - m1.sent) * 1000) / (m2.at - m1.at),
          dropped: m2.dropped - m1.dropped,
          refused: m2.refused - m1.refused,
          failures: m2.failures - m1.failures,
        },
        usageTotal: stopped,
        detectionStats: detections.stats,
        windowMicros: peak.windowMicros,
      };
    } finally {
      await usageLoad?.stop();
      await server.stop();
    }
  };
  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) {
    const r = { load: load() };
    for (const enabled of i % 2 === 0 ? [true, false] : [false, true])
      r[enabled ? 'on' : 'off'] = await side(enabled);
    r.ratio = r.on.throughput / r.off.throughput;
    rounds.push(r);
    const describe = (s) =>
      `${fmt(s.throughput)} tokens/s (${fmt(s.serverCpuMicrosPerRequest)} µs CPU each), usage ` +
      `${fmt(s.usageDuringPeak.recordsPerSecond)} records/s taken meanwhile (${s.usageDuringPeak.dropped} dropped); ` +
      `usage alone ${fmt(s.usageAlone.recordsPerSecond)} records/s at ${fmt(s.usageAlone.serverCpu * 100)}% ` +
      `server CPU = ${fmt(s.usageAlone.serverMicrosPerRecord, 1)} µs/record`;
    console.log(
      `  round ${i + 1}/${ROUNDS} (load ${r.load}): ratio ${fmt(r.ratio, 3)}\n    on:  ${describe(r.on)}; ` +
        `${r.on.detectionStats.signals} signals evaluated\n    off: ${describe(r.off)}; ` +
        `${r.off.detectionStats.signals} signals evaluated`,
    );
  }
  const med = (f) => median(rounds.map(f));
  const summary = {
    loadAtStart,
    loadAtEnd: load(),
    ratio: med((r) => r.ratio),
    on: med((r) => r.on.throughput),
    off: med((r) => r.off.throughput),
    usageOn: med((r) => r.on.usageDuringPeak.recordsPerSecond),
    usageOff: med((r) => r.off.usageDuringPeak.recordsPerSecond),
    usageMicrosOn: med((r) => r.on.usageAlone.serverMicrosPerRecord),
    usageMicrosOff: med((r) => r.off.usageAlone.serverMicrosPerRecord),
  };
  if (opts.profile) summary.profile = await profileSide(side);
  return { summary, rounds };
}

/** One more side with detection on, under `node --cpu-prof`: where the server's time goes during the peak. */
async function profileSide(side) {
  const profileDir = tempDir('writ-detect-prof-');
  const s = await side(true, profileDir);
  const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('no CPU profile was written');
  const profile = summarizeCpuProfile(
    JSON.parse(readFileSync(join(profileDir, file), 'utf8')),
    ROOT,
    s.windowMicros,
  );
  console.log(
    `\n  CPU profile of the server (detection on, main thread, the issuance peak with usage beside it; ` +
      `${fmt(s.throughput)} tokens/s under --cpu-prof), self time:`,
  );
  for (const row of profile.top.slice(0, 25))
    console.log(`  ${fmt(row.percent, 1).padStart(5)}%  ${row.name}  ${row.where}`);
  console.log('  inclusive time of Writ functions:');
  for (const row of profile.inclusive.slice(0, 25))
    console.log(`  ${fmt(row.percent, 1).padStart(5)}%  ${row.fn}`);
  console.log('  by area:');
  for (const row of profile.areas) console.log(`  ${fmt(row.percent, 1).padStart(5)}%  ${row.area}`);
  return profile;
}

// ---- main ----------------------------------------------------------------------------------------
async function main() {
  requirePinning();
  if (!existsSync(WRIT_CLI)) throw new Error(`${WRIT_CLI} is missing: run \`npm run build\` first`);
  // The script itself drives trials: it belongs with the load, away from the server's core.
  pinSelf(LOAD_CORE);
  const started = Date.now();
  console.log(
    `Detection benchmark: ${cpus().length} cores (${cpus()[0].model}), node ${process.version}, ` +
      `load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}\n`,
  );
  const results = {};
  if (PARTS.has('a')) results.a = await partA();
  if (PARTS.has('b')) results.b = await partB();
  if (PARTS.has('c')) results.c = await partC();

  const table = [['', 'figure', '÷ target', 'target', 'met', 'load avg']];
  if (results.a) {
    const a = results.a.summary;
    table.push([
      '(a) records/s through observeUses (built-in rules)',
      `${fmt(a.ingestPerSecond)}/s (${fmt(a.ingestMicros, 2)} µs)`,
      fmt(a.ratio, 2),
      '≥ 100,000/s',
      a.ratio >= 1 ? 'yes' : 'NO',
      a.loadAtStart,
    ]);
    table.push([
      '    DetectionEngine.observe alone',
      `${fmt(a.enginePerSecond)}/s (${fmt(a.engineMicros, 2)} µs)`,
      fmt(a.enginePerSecond / TARGETS.recordsPerSecond, 2),
      '',
      '',
      '',
    ]);
    if (Number.isFinite(a.engineSpeedup))
      table.push([
        `    this build's engine ÷ ${opts.compare}'s`,
        `${fmt(a.engineSpeedup, 2)}× as fast (${fmt(a.comparedEnginePerSecond)}/s there)`,
        '',
        '',
        '',
        '',
      ]);
  }
  if (results.b) {
    for (const [kind, label] of [
      ['bearer', '(b) bearer copy from a new network → all refuse'],
      ['dpop', '(b) DPoP token without its key → all refuse'],
    ]) {
      const k = results.b.summary.kinds[kind];
      table.push([
        label,
        `p50 ${fmt(k.p50Ms)} ms, p99 ${fmt(k.p99Ms)} ms, max ${fmt(k.maxMs)} ms`,
        fmt(k.ratio, 2),
        'p99 ≤ 1 s',
        k.p99Ms <= TARGETS.latencyP99Ms ? 'yes' : 'NO',
        results.b.summary.loadAtStart,
      ]);
      table.push([
        '    median breakdown from the misuse',
        `report stored ${fmt(k.reportMs)}, revocation stored ${fmt(k.revokedMs)}, first verifier ` +
          `${fmt(k.firstMs)}, median verifier ${fmt(k.medianVerifierMs)} ms`,
        '',
        '',
        '',
        '',
      ]);
    }
  }
  if (results.c) {
    const c = results.c.summary;
    table.push([
      `(c) issuance, detection on ÷ off, ${USAGE_RATE} usage records/s`,
      `${fmt(c.on)} ÷ ${fmt(c.off)} tokens/s`,
      fmt(c.ratio / TARGETS.issuanceRatio, 2),
      '≥ 0.85',
      c.ratio >= TARGETS.issuanceRatio ? `yes (${fmt(c.ratio, 3)})` : `NO (${fmt(c.ratio, 3)})`,
      c.loadAtStart,
    ]);
    table.push([
      '    usage taken during the peak (on / off)',
      `${fmt(c.usageOn)} / ${fmt(c.usageOff)} records/s; server CPU per record alone ` +
        `${fmt(c.usageMicrosOn, 1)} / ${fmt(c.usageMicrosOff, 1)} µs`,
      '',
      '',
      '',
      '',
    ]);
  }
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
  console.log(
    `\n=== Detection: medians (${ROUNDS} rounds for (a) and (c), ${TRIALS} trials per misuse for (b)) ===`,
  );
  for (const r of table) console.log(r.map((cell, i) => cell.padEnd(widths[i])).join('  '));
  console.log(`took ${fmt((Date.now() - started) / 1000)} s`);

  const resultsDir = join(BENCH, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `detect-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        machine: { cores: cpus().length, model: cpus()[0].model, node: process.version },
        settings: {
          ROUNDS,
          WORKLOADS,
          LEARNED,
          RECORDS,
          WARMUP_RECORDS,
          TRIALS,
          WARMUP_TRIALS,
          VERIFIERS,
          DRIVERS,
          FLUSH_MS,
          BACKGROUND,
          SECONDS,
          USAGE_RATE,
          CONNECTIONS,
          CLIENTS,
        },
        targets: TARGETS,
        results,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`results: ${file}`);
}

main().then(
  () => {
    cleanup();
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`bench failed: ${err?.stack ?? err}\n`);
    cleanup();
    process.exit(1);
  },
);
