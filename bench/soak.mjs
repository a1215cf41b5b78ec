// Soak benchmark (issue 20): `writ serve` (embedded store) pinned to core 0 under mixed traffic for a
// long run. Well-behaved clients — token requests at a fixed rate (open loop: latency from each request's
// scheduled send time) and verifiers that read their event streams — run first alone (the baseline
// phase), then beside abusers (the abuse phase), in a separate process pinned to core 1:
//   - streams that never read, as many as the server lets each abusive workload hold;
//   - reconnect loops: open the stream, take the head, drop it, again;
//   - task floods: open tasks with a lease and never renew them;
//   - garbage token requests carrying a victim's (the well-behaved client's) client_id;
//   - a trickle of revocations through the admin API, so every stream has events to carry.
// Reported: the well-behaved p50/p99 of each phase and their ratio (target: abuse p99 ≤ 2 × baseline
// p99), the server's peak resident memory in each phase (the bound is documented in
// docs/benchmarks.md), whether it stayed up, and what the abusers got (accepted, refused, dropped).
//
//   npm run build && node bench/soak.mjs                    (10 min of abuse after 2 min of baseline)
//   node bench/soak.mjs --baseline 60 --abuse 120 --rate 100
//
// Every loop is bounded in time and count, every address is loopback, every child process is ended and
// every temp directory removed on exit, also on error or Ctrl-C.
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { benchClients, quantile, tokenRequestBodies } from './lib/common.mjs';
import { cleanupOnExit, pinSelf, requirePinning, tempDir } from './lib/processes.mjs';
import { blameWindows, longHolds, readCpuProfile } from './lib/profile.mjs';
import {
  eventsToken,
  garbageTokenForm,
  openEventStream,
  soakClasses,
  taskFloodForm,
} from './lib/soak-traffic.mjs';
import { adminSession, logTail, ROOT, startWritServer, workloadDoc } from './lib/writ-server.mjs';

const { values: args } = parseArgs({
  options: {
    baseline: { type: 'string', default: '120' },
    abuse: { type: 'string', default: '600' },
    rate: { type: 'string', default: '50' },
    'idle-streams': { type: 'string', default: '100' },
    'node-args': { type: 'string', default: '' },
    probe: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'cpu-prof-interval': { type: 'string', default: '500' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(`node bench/soak.mjs [--baseline S] [--abuse S] [--rate N] [--idle-streams N]
  --baseline S       seconds of well-behaved traffic alone (default 120)
  --abuse S          seconds of the same beside the abusers (default 600; e.g. --baseline 30 --abuse 60
                     for a short look at the direction, not a figure against the target)
  --rate N           well-behaved token requests per second (default 50)
  --idle-streams N   streams that never read (default 100)
  --node-args='A B'  node options for the server process (e.g. a V8 heap setting, to measure it)
  --probe            the server reports its event-loop delay and garbage collections per phase
                     (bench/lib/loop-probe.mjs: a 1 ms timer in the server, so off for the figures)
  --cpu-prof DIR     the server runs under --cpu-prof (every --cpu-prof-interval µs, default 500); then
                     the script prints what the server ran while the slowest 1% of the well-behaved
                     requests of each phase waited, and the longest holds of its event loop`);
  process.exit(0);
}
const BASELINE_S = Number(args.baseline);
const ABUSE_S = Number(args.abuse);
const RATE = Number(args.rate);
const IDLE_STREAMS = Number(args['idle-streams']);
const PROF_DIR = args['cpu-prof'] ? resolve(args['cpu-prof']) : undefined;
const PROF_INTERVAL = Number(args['cpu-prof-interval']);
const NODE_ARGS = args['node-args'].split(' ').filter(Boolean);

cleanupOnExit('soak');
requirePinning();
pinSelf('1');

const [good, ...abusers] = benchClients(6);
const readers = benchClients(2).map((c, i) => ({ ...c, clientId: `${c.clientId}-reader-${i}` }));
if (PROF_DIR) mkdirSync(PROF_DIR, { recursive: true });
const probeFile = args.probe ? join(tempDir('writ-soak-probe-'), 'loop.json') : undefined;
const server = await startWritServer({
  core: '0',
  classes: soakClasses,
  workloads: [
    workloadDoc(good, ['bench']),
    ...readers.map((r) => workloadDoc(r, ['events'])),
    ...abusers.map((a) => workloadDoc(a, ['events', 'bench'])),
  ],
  // The machine may be shared: a server starting beside other work may take a while.
  readyMs: 60_000,
  nodeArgs: [
    ...NODE_ARGS,
    ...(PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`, `--cpu-prof-interval=${PROF_INTERVAL}`] : []),
  ],
  env: probeFile
    ? {
        NODE_OPTIONS: `--import=${join(ROOT, 'bench/lib/loop-probe.mjs')}`,
        WRIT_BENCH_LOOP_PROBE: probeFile,
      }
    : {},
});
/** What the probe in the server saw since the last call (event-loop delay, collections), or undefined. */
async function probe() {
  if (!probeFile) return undefined;
  const before = Date.now();
  process.kill(server.pid, 'SIGUSR2');
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 20));
    try {
      const r = JSON.parse(readFileSync(probeFile, 'utf8'));
      if (r.at >= before) return r;
    } catch {
      // not written yet
    }
  }
  return undefined;
}
/** Monotonic microseconds (the clock of the server's CPU profile) at performance.now() `ms`. */
const hrOffsetUs = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;
const monoUs = (ms) => hrOffsetUs + ms * 1000;
const { issuer, origin } = server;
const admin = adminSession(issuer, server.operatorKeyFile);

/** Resident memory of the server (MiB), from /proc. */
const rssMiB = async () => {
  const { readFileSync } = await import('node:fs');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
};

// ---- well-behaved traffic -------------------------------------------------------------------------
const pool = new Pool(origin, { connections: 8, keepAliveTimeout: 60_000 });
const headers = { 'content-type': 'application/x-www-form-urlencoded' };

/** Token requests at RATE per second for `seconds`; latencies (ms) of the answered ones. */
async function wellBehaved(seconds, label) {
  const count = Math.ceil(RATE * seconds);
  // Assertions live 240 s: requests are made 5 s ahead, in small batches (a few ms of signing each, which
  // counts against the latency of the requests due meanwhile), so none expires before it is sent.
  const perBatch = RATE * 5;
  let bodies = [];
  let batchStart = 0;
  const body = (i) => {
    if (i >= batchStart + bodies.length) {
      batchStart = i;
      bodies = tokenRequestBodies({
        clients: [good],
        audienceOfAssertion: issuer,
        count: Math.min(perBatch, count - i),
        prefix: `${label}-${i}`,
      });
    }
    return bodies[i - batchStart];
  };
  const latencies = [];
  /** [scheduled, answered] of each answered request, monotonic µs, for the profile. */
  const windows = [];
  let failed = 0;
  let firstError;
  const start = performance.now();
  const inFlight = new Set();
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const p = pool
      .request({ path: '/oauth2/token', method: 'POST', headers, body: body(i) })
      .then(async (res) => {
        const text = await res.body.text();
        if (res.statusCode === 200) {
          const done = performance.now();
          latencies.push(done - due);
          windows.push([monoUs(due), monoUs(done)]);
        } else {
          failed++;
          firstError ??= `HTTP ${res.statusCode} ${text.slice(0, 200)}`;
        }
      })
      .catch((err) => {
        failed++;
        firstError ??= String(err);
      });
    inFlight.add(p);
    p.finally(() => inFlight.delete(p));
  }
  await Promise.all(inFlight);
  const sorted = [...latencies].sort((a, b) => a - b);
  const p99 = quantile(sorted, 0.99);
  return {
    slowest: windows.filter((_, i) => latencies[i] >= p99),
    span: [monoUs(start), monoUs(performance.now())],
    ok: latencies.length,
    failed,
    firstError,
    p50: quantile(sorted, 0.5),
    p99,
  };
}

const goodStreams = await Promise.all(
  readers.map(async (r) => openEventStream(origin, await eventsToken(issuer, r), { read: true })),
);

// ---- abusers ---------------------------------------------------------------------------------------
const abuse = {
  idleOpened: 0,
  idleRefused: 0,
  reconnects: 0,
  reconnectRefused: 0,
  tasksOpened: 0,
  tasksRefused: 0,
  garbage: 0,
  garbageStatus: {},
  revocations: 0,
};

async function abusePhase(seconds) {
  const until = performance.now() + seconds * 1000;
  const idle = [];
  // Non-reading streams, spread over the abusive workloads, a fresh token every few streams.
  for (let i = 0; i < IDLE_STREAMS && performance.now() < until; i++) {
    const a = abusers[i % abusers.length];
    const s = openEventStream(origin, await eventsToken(issuer, a), { read: false });
    const status = await s.opened;
    if (status === 200) abuse.idleOpened++;
    else abuse.idleRefused++;
    idle.push(s);
  }
  const loops = [
    // Reconnect storm: open, take the head, drop; bounded to 20 per second.
    (async () => {
      const token = await eventsToken(issuer, abusers[0]);
      while (performance.now() < until) {
        const s = openEventStream(origin, token, { read: true });
        const status = await s.opened;
        if (status === 200) abuse.reconnects++;
        else abuse.reconnectRefused++;
        s.socket.destroy();
        await new Promise((r) => setTimeout(r, 50));
      }
    })(),
    // Task flood: leased tasks never renewed, 50 per second.
    (async () => {
      let i = 0;
      while (performance.now() < until) {
        const a = abusers[1 + (i++ % (abusers.length - 1))];
        const body = taskFloodForm(a, issuer, i);
        const res = await pool.request({ path: '/v1/tasks', method: 'POST', headers, body });
        await res.body.text();
        if (res.statusCode === 201 || res.statusCode === 200) abuse.tasksOpened++;
        else abuse.tasksRefused++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
    // Garbage with the victim's client_id: 100 per second.
    (async () => {
      const body = garbageTokenForm(good.clientId);
      while (performance.now() < until) {
        const res = await pool.request({ path: '/oauth2/token', method: 'POST', headers, body });
        await res.body.text();
        abuse.garbage++;
        abuse.garbageStatus[res.statusCode] = (abuse.garbageStatus[res.statusCode] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 10));
      }
    })(),
    // Revocations, so every stream has events to carry: 20 per second.
    (async () => {
      let i = 0;
      while (performance.now() < until) {
        await admin.revoke({ kind: 'jti', value: `soak-${i++}-${'x'.repeat(64)}`, reason: 'soak' });
        abuse.revocations++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })(),
  ];
  await Promise.all(loops);
  for (const s of idle) s.socket.destroy();
}

/** Samples the server's memory every second until `stop` resolves; returns the peak (MiB). */
async function peakMemory(stop) {
  let peak = await rssMiB();
  let done = false;
  stop.then(() => {
    done = true;
  });
  while (!done) {
    peak = Math.max(peak, await rssMiB());
    await new Promise((r) => setTimeout(r, 1000));
  }
  return peak;
}

const rssStart = await rssMiB();
await probe();
process.stderr.write(`soak: baseline ${BASELINE_S}s at ${RATE}/s\n`);
const baselineRun = wellBehaved(BASELINE_S, 'baseline');
const baselinePeak = await peakMemory(baselineRun);
const baseline = await baselineRun;
const baselineProbe = await probe();

process.stderr.write(`soak: abuse ${ABUSE_S}s at ${RATE}/s beside the abusers\n`);
const abusedRun = Promise.all([wellBehaved(ABUSE_S, 'abuse'), abusePhase(ABUSE_S)]);
const abusePeak = await peakMemory(abusedRun);
const [abused] = await abusedRun;
const abuseProbe = await probe();

const ready = await fetch(`${origin}/readyz`)
  .then((r) => r.status)
  .catch(() => 0);
const readersAlive = goodStreams.filter((s) => !s.closed).length;
const phaseWindows = { baseline: [baseline.span, baseline.slowest], abuse: [abused.span, abused.slowest] };
for (const r of [baseline, abused]) {
  delete r.slowest;
  delete r.span;
}
const result = {
  phases: { baseline_s: BASELINE_S, abuse_s: ABUSE_S, rate_per_s: RATE },
  well_behaved: {
    baseline,
    abuse: abused,
    p99_ratio: Number((abused.p99 / baseline.p99).toFixed(2)),
  },
  server: {
    up_at_end: ready === 200,
    rss_start_mib: Math.round(rssStart),
    rss_peak_baseline_mib: Math.round(baselinePeak),
    rss_peak_abuse_mib: Math.round(abusePeak),
    rss_end_mib: Math.round(await rssMiB()),
  },
  readers: { open_at_end: readersAlive, events_read: goodStreams.map((s) => s.events) },
  abusers: abuse,
  ...(probeFile ? { probe: { baseline: baselineProbe, abuse: abuseProbe } } : {}),
};
console.log(JSON.stringify(result, null, 2));
if (ready !== 200) {
  process.stderr.write(logTail(server));
  process.exitCode = 1;
}
await pool.close();
await server.stop(PROF_DIR ? 120_000 : undefined);
if (PROF_DIR) {
  const profile = readCpuProfile(PROF_DIR);
  const row = (r) => `  ${r.ms.toFixed(1).padStart(8)} ms ${r.percent.toFixed(1).padStart(5)}%  ${r.what}`;
  for (const [name, [span, slowest]] of Object.entries(phaseWindows)) {
    const b = blameWindows(profile, ROOT, slowest, 25);
    console.log(
      `\n${name}: the server while the slowest 1% (${slowest.length}) waited, ${b.totalMs.toFixed(0)} ms sampled; by callback:`,
    );
    for (const r of b.byCallback) console.log(row(r));
    console.log('by leaf function:');
    for (const r of b.byLeaf) console.log(row(r));
    const holds = longHolds(profile, ROOT, span, 5, 15);
    console.log(`${name}: longest holds of the event loop (${holds.total} of 5 ms or more):`);
    for (const h of holds.longest) console.log(`  ${h.ms.toFixed(1)} ms: ${h.under.join(' | ')}`);
  }
}
