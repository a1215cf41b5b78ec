// Part (a) of bench/detect.mjs, one run in one process pinned to one core: detection over ingested
// usage records, in-process, with the built server. A real Writ (createWrit, embedded SQLite store,
// injected clock) holds the fleet's workloads; the records reach its detector the way `POST /v1/usage`
// hands them on once a report is stored: `ctx.detection.observeUses(reporter, uses)`, one report of up
// to 500 records at a time, so each record becomes a signal there (network, user agent kind, Writ's
// revocation set) and the built-in rules run on it. Between reports the event loop turns, so findings
// are handled and baselines written behind, as in the server.
//
// mode 'ingest': times observeUses over the records (the whole path).
// mode 'engine': builds the same signals through observeUses with the engine's evaluation held back,
//   then times `DetectionEngine.observe` alone over them, on a fresh engine with the same rules,
//   settings and history.
//
// Config (argv JSON): { mode, workloads, learned, warmup, records, perSecond, revocations, seed }
// Prints one JSON line.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { childConfig, es256KeyPair } from './common.mjs';
import { usageFleet } from './usage-traffic.mjs';
import { ROOT } from './writ-server.mjs';

const cfg = childConfig();
const load = (p) => import(pathToFileURL(join(ROOT, 'packages/server/dist/src', p)).href);
const { createWrit } = await load('writ.js');
const { resolveSettings } = await load('config/settings.js');
const { validateConfig } = await load('config/config-dir.js');
const { kekFromBytes } = await load('keys/kek.js');
const { openSqliteStore } = await load('store/sqlite/sqlite-store.js');
const { fakeClock } = await load('clock.js');
const { DetectionEngine } = await load('detection/engine.js');
const { engineSettings } = await load('detection/detector.js');

const REPORT_RECORDS = 500;
const REPORT_INTERVAL_MS = 250;
/** A weekday morning, UTC: the learned workloads' history runs the two days before it. */
const T0 = Date.UTC(2026, 11, 2, 9, 0, 0);
const HISTORY_MS = 48 * 3_600_000;

const fleet = usageFleet({ workloads: cfg.workloads, seed: cfg.seed });
const dir = mkdtempSync(join(tmpdir(), 'writ-bench-detect-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const settings = resolveSettings(undefined, {}, { 'log.level': 'silent' });
const docs = [
  {
    kind: 'class',
    file: 'classes/fleet.yaml',
    index: 0,
    doc: { name: 'fleet', max_ttl: '5m', audiences: fleet.apis, scopes: ['fleet:call'], binding: 'bearer' },
  },
  ...fleet.workloads.map((w, index) => ({
    kind: 'workload',
    file: 'workloads/fleet.yaml',
    index,
    doc: {
      id: w.id,
      owner: 'team-bench',
      environment: w.environment,
      classes: ['fleet'],
      jwks: { keys: [es256KeyPair().publicJwk] },
    },
  })),
];
const clock = fakeClock(T0 - HISTORY_MS);
const writ = await createWrit({
  settings,
  store: openSqliteStore({ path: join(dir, 'writ.db') }),
  kek: kekFromBytes(randomBytes(32), 'bench'),
  clock,
  config: validateConfig(docs, settings.tokens.maxLifetime, settings.issuer),
});
const { ctx } = writ;
const detector = ctx.detection;

// Revocations in force, as a server that has been running holds them: revoked tokens (none of the
// fleet's) and a few workloads' older tokens.
for (let i = 0; i < cfg.revocations; i++) {
  const byWorkload = i % 100 === 99;
  ctx.revocations.apply({
    seq: i + 1,
    kind: byWorkload ? 'sub' : 'jti',
    value: byWorkload
      ? fleet.workloads[i % fleet.workloads.length].id
      : randomBytes(16).toString('base64url'),
    issued_before: byWorkload ? Math.floor((T0 - HISTORY_MS) / 1000) : null,
    created_at: T0 - HISTORY_MS,
    reason: 'bench',
    expires_at: T0 + 86_400_000,
  });
}

/**
 * The uses as verifiers would report them: each reporter (one per API) sends what it buffered every
 * 250 ms, or at once when 500 are waiting. Returns reports in the order they are sent.
 */
function reports(uses, count) {
  const out = [];
  const open = new Map();
  const send = (reporter, o) => {
    out.push({ reporter, uses: o.uses, now: o.uses[o.uses.length - 1].use.time });
    open.delete(reporter);
  };
  for (let i = 0; i < count; i++) {
    const { value } = uses.next();
    const { reporter, use, token } = value;
    let o = open.get(reporter);
    if (o && use.time - o.since >= REPORT_INTERVAL_MS) {
      send(reporter, o);
      o = undefined;
    }
    if (!o) {
      o = { since: use.time, uses: [] };
      open.set(reporter, o);
    }
    o.uses.push({ use, token });
    if (o.uses.length >= REPORT_RECORDS) send(reporter, o);
  }
  for (const [reporter, o] of open) send(reporter, o);
  return out;
}

const learned = fleet.workloads.slice(0, cfg.learned);
// 1,200 uses each over the two days: past the learning period and the learning events.
const history = reports(
  fleet.uses({
    start: T0 - HISTORY_MS,
    perSecond: (cfg.learned * 1200) / (HISTORY_MS / 1000),
    from: learned,
  }),
  cfg.learned * 1200,
);
const live = fleet.uses({ start: T0, perSecond: cfg.perSecond });
const warmup = reports(live, cfg.warmup);
const measured = reports(live, cfg.records);

const turn = () => new Promise((r) => setImmediate(r));
// Garbage collections, by kind: how much of a timed run they take.
const collections = [];
new PerformanceObserver((list) => collections.push(...list.getEntries())).observe({ entryTypes: ['gc'] });
const GC_KINDS = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weak' };

/** Times `fn`: wall and CPU (this process, all threads) milliseconds, and the window for a profile. */
async function timed(fn) {
  const cpu0 = process.cpuUsage();
  const p0 = performance.now();
  const t0 = process.hrtime.bigint();
  await fn();
  const t1 = process.hrtime.bigint();
  const p1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  await new Promise((r) => setTimeout(r, 50));
  const gcMs = {};
  for (const e of collections)
    if (e.startTime >= p0 && e.startTime <= p1) {
      const kind = GC_KINDS[e.detail?.kind] ?? 'other';
      gcMs[kind] = (gcMs[kind] ?? 0) + e.duration;
    }
  return {
    ms: Number(t1 - t0) / 1e6,
    cpuMs: (cpu.user + cpu.system) / 1000,
    gcMs,
    // Monotonic microseconds, the clock of V8 CPU profiles (summarizeCpuProfile's window).
    windowMicros: [Number(t0 / 1000n), Number(t1 / 1000n)],
  };
}

/** Sends reports through the detector as the usage route does, one report per turn of the event loop. */
async function ingest(list) {
  for (const r of list) {
    clock.set(Math.max(clock.now(), r.now));
    detector.observeUses(r.reporter, r.uses);
    await turn();
  }
  await detector.settled();
}

/** Throughput figures of a timed run over `n` records. */
const rates = (n, t) => ({
  records: n,
  seconds: t.ms / 1000,
  perSecond: n / (t.ms / 1000),
  perCpuSecond: n / (t.cpuMs / 1000),
  microsPerRecord: (t.ms * 1000) / n,
  cpuMicrosPerRecord: (t.cpuMs * 1000) / n,
  gcShare: Object.values(t.gcMs).reduce((x, y) => x + y, 0) / t.ms,
  gcMs: t.gcMs,
  windowMicros: t.windowMicros,
});

const records = (list) => list.reduce((n, r) => n + r.uses.length, 0);
const stats = () => ({ ...detector.engine.stats });
let result;
if (cfg.mode === 'ingest') {
  await ingest(history);
  await ingest(warmup);
  const before = stats();
  const heap0 = process.memoryUsage().heapUsed;
  const t = await timed(() => ingest(measured));
  const after = stats();
  const n = records(measured);
  const findings = await ctx.store.listFindings({ limit: 1000 });
  result = {
    mode: 'ingest',
    ...rates(n, t),
    evaluationsPerRecord: (after.evaluations - before.evaluations) / n,
    detections: after.detections - before.detections,
    findings: findings.length,
    findingsByRule: countBy(findings, (f) => `${f.rule}:${f.outcome}`),
    heapGrowthMiB: (process.memoryUsage().heapUsed - heap0) / 2 ** 20,
    simulatedSeconds: (measured.at(-1).now - measured[0].now) / 1000,
  };
} else {
  // The same signals the detector builds, captured instead of evaluated.
  const signals = [];
  const evaluate = detector.engine.observe;
  detector.engine.observe = (s) => {
    signals.push(s);
    return [];
  };
  await ingest(history);
  await ingest(warmup);
  const warm = signals.length;
  await ingest(measured);
  detector.engine.observe = evaluate;
  // Built as the detector builds its engine.
  const engineOf = (Engine) =>
    new Engine(engineSettings(ctx), detector.rules(), {
      environment: (w) => ctx.registry.workload(w)?.environment ?? '',
    });
  const engine = engineOf(DetectionEngine);
  for (let i = 0; i < warm; i++) engine.observe(signals[i]);
  const before = { ...engine.stats };
  const n = signals.length - warm;
  if (!cfg.compare) {
    const t = await timed(async () => {
      for (let i = warm; i < signals.length; i++) engine.observe(signals[i]);
    });
    result = { mode: 'engine', ...rates(n, t) };
  } else {
    // Another build's engine (its engine.js and baseline.js, this build's rules) over the same signals,
    // in alternate slices of 5,000, so both see the same noise of a busy machine.
    const { DetectionEngine: Compared } = await import(
      pathToFileURL(join(cfg.compare, 'packages/server/dist/src/detection/engine.js')).href
    );
    const compared = engineOf(Compared);
    for (let i = 0; i < warm; i++) compared.observe(signals[i]);
    let ours = 0n;
    let theirs = 0n;
    for (let from = warm; from < signals.length; from += 5000) {
      const to = Math.min(signals.length, from + 5000);
      // Each goes first every other slice.
      const [first, second] = (from / 5000) % 2 < 1 ? [engine, compared] : [compared, engine];
      const t0 = process.hrtime.bigint();
      for (let i = from; i < to; i++) first.observe(signals[i]);
      const t1 = process.hrtime.bigint();
      for (let i = from; i < to; i++) second.observe(signals[i]);
      const t2 = process.hrtime.bigint();
      ours += first === engine ? t1 - t0 : t2 - t1;
      theirs += first === engine ? t2 - t1 : t1 - t0;
    }
    result = {
      mode: 'engine',
      records: n,
      perSecond: n / (Number(ours) / 1e9),
      microsPerRecord: Number(ours) / 1e3 / n,
      comparedPerSecond: n / (Number(theirs) / 1e9),
      comparedMicrosPerRecord: Number(theirs) / 1e3 / n,
      comparedDetections: compared.stats.detections - before.detections,
    };
  }
  result.evaluationsPerRecord = (engine.stats.evaluations - before.evaluations) / n;
  result.detections = engine.stats.detections - before.detections;
}
await writ.close();
process.stdout.write(`${JSON.stringify(result)}\n`);

function countBy(xs, key) {
  const out = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}
