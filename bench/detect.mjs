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
//   npm run build && node bench/detect.mjs                 (all three parts, about 5 minutes)
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
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from './lib/common.mjs';
import { issuanceUnderUsage } from './lib/detect-issuance.mjs';
import { misuseLatency } from './lib/detect-latency.mjs';
import { cleanupOnExit, pinSelf, requirePinning, runJsonChild } from './lib/processes.mjs';
import { fmt, loadAverage, printTable, runMain, writeResults } from './lib/report.mjs';
import { WRIT_CLI } from './lib/writ-server.mjs';

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

function bounded(name, min, max) {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} must be in [${min}, ${max}]`);
  return v;
}

cleanupOnExit('bench/detect');

// ---- (a) rule evaluation throughput, in-process -------------------------------------------------
async function partA() {
  const loadAtStart = loadAverage();
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
    round.load = loadAverage();
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
  if (PARTS.has('b'))
    results.b = await misuseLatency({
      serverCore: SERVER_CORE,
      loadCore: LOAD_CORE,
      trials: TRIALS,
      warmupTrials: WARMUP_TRIALS,
      verifiers: VERIFIERS,
      drivers: DRIVERS,
      flushMs: FLUSH_MS,
      background: BACKGROUND,
      gapMs: GAP_MS,
    });
  if (PARTS.has('c'))
    results.c = await issuanceUnderUsage({
      serverCore: SERVER_CORE,
      loadCore: LOAD_CORE,
      rounds: ROUNDS,
      seconds: SECONDS,
      usageRate: USAGE_RATE,
      connections: CONNECTIONS,
      clients: CLIENTS,
      flushMs: FLUSH_MS,
      profile: opts.profile,
    });

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
  console.log(
    `\n=== Detection: medians (${ROUNDS} rounds for (a) and (c), ${TRIALS} trials per misuse for (b)) ===`,
  );
  printTable(table);
  console.log(`took ${fmt((Date.now() - started) / 1000)} s`);

  writeResults('detect', {
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
  });
}

runMain(main);
