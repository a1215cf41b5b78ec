// What each abuser of the soak benchmark (bench/soak.mjs) costs the server, one at a time: `writ serve`
// (SQLite) pinned to core 0 with N revocations in force (the soak ends with about 9,000), and each kind
// of abuse alone for a phase, at the soak's rate, from this process on core 1. Measured per phase: CPU
// time of the server's main thread (the event loop) per second, from /proc, and per operation above the
// quiet server's (the idle streams' share is what a revocation costs beyond the revocations phase);
// and the longest stretch the event loop was blocked (perf_hooks.monitorEventLoopDelay in the server,
// loaded with --import, itself about 20 ms/s of the quiet figure).
// CPU time rather than latency: other work on the machine changes it little. The loop delay does move
// with load; it is printed for its order of magnitude.
//
//   npm run build && node bench/abuse-cost.mjs
//   node bench/abuse-cost.mjs --revocations 9000 --seconds 20 --compare ../writ-before
//
// With `--cpu-prof DIR` this build's server runs under `node --cpu-prof` (sampling every
// `--cpu-prof-interval` µs, default 250) and the profile is written to DIR; for each phase the script
// then prints the functions that took the most self time and the longest holds of the event loop
// (consecutive samples that are not idle) with the Writ functions they spent their time under.
//
//   node bench/abuse-cost.mjs --phases quiet,tasks --cpu-prof /some/empty/dir
//
// With `--compare DIR` (another checkout of Writ, built) the same phases run against a server of that
// build too, and the ratio of main-thread CPU per second is printed for each phase.
//
// Every loop is bounded in time and count, every address is loopback, every child process is ended and
// every temp directory removed on exit, also on error or Ctrl-C.
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { benchClients } from './lib/common.mjs';
import { cleanupOnExit, pinSelf, requirePinning, tempDir, threadCpuSeconds } from './lib/processes.mjs';
import { longHolds, printCpuProfile, readCpuProfile, summarizeCpuProfile } from './lib/profile.mjs';
import {
  eventsToken,
  garbageTokenForm,
  openEventStream,
  seedRevocations,
  soakClasses,
  taskFloodForm,
} from './lib/soak-traffic.mjs';
import { adminSession, ROOT, startWritServer, workloadDoc, writCli } from './lib/writ-server.mjs';

const { values: args } = parseArgs({
  options: {
    revocations: { type: 'string', default: '9000' },
    seconds: { type: 'string', default: '20' },
    compare: { type: 'string' },
    phases: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'cpu-prof-interval': { type: 'string', default: '250' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(`node bench/abuse-cost.mjs [--revocations N] [--seconds S] [--phases a,b] [--compare DIR]
    [--cpu-prof DIR [--cpu-prof-interval US]]
phases: quiet, revocations, revocations + 100 idle streams, reconnects, reconnects + revocations, tasks,
  garbage`);
  process.exit(0);
}
const REVOCATIONS = Number(args.revocations);
const PROF_DIR = args['cpu-prof'] ? resolve(args['cpu-prof']) : undefined;
const PROF_INTERVAL = Number(args['cpu-prof-interval']);
if (!Number.isInteger(PROF_INTERVAL) || PROF_INTERVAL < 50 || PROF_INTERVAL > 10_000)
  throw new Error('--cpu-prof-interval must be 50..10000 (microseconds)');
const SECONDS = Number(args.seconds);
if (!Number.isInteger(REVOCATIONS) || REVOCATIONS < 0 || REVOCATIONS > 100_000)
  throw new Error('--revocations must be an integer 0..100000');
if (!Number.isInteger(SECONDS) || SECONDS < 1 || SECONDS > 600) throw new Error('--seconds must be 1..600');

cleanupOnExit('abuse-cost');
requirePinning();
pinSelf('1');

const [good, ...abusers] = benchClients(6);
/** The lease the task flood asks for (bench/lib/soak-traffic.mjs), as the soak's. */
const TASK_LEASE_SECONDS = 30;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const headers = { 'content-type': 'application/x-www-form-urlencoded' };

/** A server of the build at `root` with the soak's classes and workloads, seeded with revocations. */
async function serverOf(name, root, profileDir) {
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const probeDir = tempDir('writ-loop-probe-');
  const probeFile = join(probeDir, 'loop.json');
  const server = await startWritServer({
    core: '0',
    cli: writCli(root),
    classes: soakClasses,
    workloads: [workloadDoc(good, ['bench']), ...abusers.map((a) => workloadDoc(a, ['events', 'bench']))],
    // Seeding revocations in a hurry would spend the operator's budget; no abuser here comes near it.
    settings: { limits: { client_rate: 100_000, client_burst: 100_000 } },
    // A loaded machine (other work on both cores) can take more than the default 20 s to start one.
    readyMs: 60_000,
    nodeArgs: profileDir
      ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-interval=${PROF_INTERVAL}`]
      : [],
    env: {
      NODE_OPTIONS: `--import=${join(ROOT, 'bench/lib/loop-probe.mjs')}`,
      WRIT_BENCH_LOOP_PROBE: probeFile,
    },
  });
  const admin = adminSession(server.issuer, server.operatorKeyFile);
  await seedRevocations(admin, REVOCATIONS, 'abuse-cost');
  process.stderr.write(`abuse-cost: ${name} (${root}) up with ${REVOCATIONS} revocations\n`);
  /** The longest event-loop delay (ms) since the last call, as the probe in the server reports it. */
  const loopMax = async () => {
    process.kill(server.pid, 'SIGUSR2');
    for (let i = 0; i < 50; i++) {
      await sleep(20);
      try {
        const r = JSON.parse(readFileSync(probeFile, 'utf8'));
        if (r.at > loopMax.last) {
          loopMax.last = r.at;
          return r.maxMs;
        }
      } catch {
        // not written yet
      }
    }
    return Number.NaN;
  };
  loopMax.last = 0;
  return { name, server, admin, loopMax, profileDir, windows: {} };
}

/** The soak's abusers, each a loop until `until` (performance.now()); returns what it did. */
const loops = {
  async revocations(t, until) {
    let n = 0;
    while (performance.now() < until) {
      await t.admin.revoke({ kind: 'jti', value: `phase-${n++}-${'x'.repeat(64)}`, reason: 'abuse-cost' });
      await sleep(50);
    }
    return { ops: n };
  },
  async reconnects(t, until) {
    const token = await eventsToken(t.server.issuer, abusers[0]);
    const statuses = {};
    while (performance.now() < until) {
      const s = openEventStream(t.server.origin, token, { read: true });
      const status = await s.opened;
      statuses[status] = (statuses[status] ?? 0) + 1;
      s.socket.destroy();
      await sleep(50);
    }
    return { statuses };
  },
  async tasks(t, until) {
    const statuses = {};
    let i = 0;
    while (performance.now() < until) {
      const a = abusers[1 + (i++ % (abusers.length - 1))];
      const res = await fetch(`${t.server.origin}/v1/tasks`, {
        method: 'POST',
        headers,
        body: taskFloodForm(a, t.server.issuer, i),
      });
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      await sleep(20);
    }
    return { statuses };
  },
  async garbage(t, until) {
    const body = garbageTokenForm(good.clientId);
    const statuses = {};
    while (performance.now() < until) {
      const res = await fetch(`${t.server.origin}/oauth2/token`, { method: 'POST', headers, body });
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      await sleep(10);
    }
    return { statuses };
  },
};

/**
 * The phases: each abuser alone, and the revocation trickle beside 100 streams that never read (what
 * the idle streams cost is the difference from the trickle alone).
 */
const phases = {
  quiet: [],
  revocations: ['revocations'],
  'revocations + 100 idle streams': ['revocations', 'idle'],
  reconnects: ['reconnects'],
  // As in the soak: revocations stored between the opens, so each open's snapshot has grown since the last.
  'reconnects + revocations': ['revocations', 'reconnects'],
  tasks: ['tasks'],
  garbage: ['garbage'],
};

// `--phases quiet,reconnects` runs only those (quiet is the base the others are read against).
const chosen = args.phases ? args.phases.split(',') : Object.keys(phases);
for (const p of chosen)
  if (!(p in phases)) throw new Error(`unknown phase ${p}: one of ${Object.keys(phases).join(', ')}`);

async function phase(t, parts) {
  const idle = [];
  if (parts.includes('idle')) {
    for (let i = 0; i < 100; i++) {
      const token = await eventsToken(t.server.issuer, abusers[i % abusers.length]);
      const s = openEventStream(t.server.origin, token, { read: false });
      await s.opened;
      idle.push(s);
    }
  }
  await t.loopMax();
  const cpu0 = threadCpuSeconds(t.server.pid, t.server.pid);
  const from = process.hrtime.bigint();
  const at = performance.now();
  const until = at + SECONDS * 1000;
  const did = await Promise.all(parts.filter((p) => p !== 'idle').map((p) => loops[p](t, until)));
  if (parts.length === 0) await sleep(SECONDS * 1000);
  // The tasks' leases (30 s) lapse after the phase: it goes on until the sweeper has closed them all,
  // so a task's cost includes its close (and the next phase does not pay for it).
  if (parts.includes('tasks')) await sleep((TASK_LEASE_SECONDS + 3) * 1000);
  const elapsed = (performance.now() - at) / 1000;
  const cpuMsPerS = ((threadCpuSeconds(t.server.pid, t.server.pid) - cpu0) * 1000) / elapsed;
  // The profile's timestamps are monotonic microseconds, as process.hrtime's.
  const window = [Number(from / 1000n), Number(process.hrtime.bigint() / 1000n)];
  const maxLoopDelayMs = await t.loopMax();
  for (const s of idle) s.socket.destroy();
  await sleep(1000);
  const ops = did.reduce((n, d) => n + (d.ops ?? Object.values(d.statuses).reduce((a, b) => a + b, 0)), 0);
  return {
    window,
    cpu_ms_per_s: round(cpuMsPerS),
    ops_per_s: round(ops / elapsed),
    max_loop_delay_ms: round(maxLoopDelayMs),
    did: Object.assign({}, ...did),
  };
}

const targets = [await serverOf('this build', ROOT, PROF_DIR)];
if (args.compare) targets.push(await serverOf('compared build', resolve(args.compare)));
const result = { revocations_at_start: REVOCATIONS, seconds_per_phase: SECONDS, builds: {} };
for (const t of targets) result.builds[t.name] = {};
for (const name of chosen) {
  const parts = phases[name];
  for (const t of targets) {
    result.builds[t.name][name] = await phase(t, parts);
    process.stderr.write(`abuse-cost: ${t.name}: ${name}: ${JSON.stringify(result.builds[t.name][name])}\n`);
  }
}
// Per operation (a revocation, a reconnect, a task, a garbage request): CPU above the quiet server's.
for (const t of targets) {
  const phasesOf = result.builds[t.name];
  const quiet = phasesOf.quiet?.cpu_ms_per_s ?? 0;
  for (const p of Object.values(phasesOf))
    if (p.ops_per_s > 0) p.ms_per_op_above_quiet = round((p.cpu_ms_per_s - quiet) / p.ops_per_s);
}
if (targets.length === 2)
  result.cpu_ratio_compared_to_this = Object.fromEntries(
    chosen.map((p) => [
      p,
      round(result.builds[targets[1].name][p].cpu_ms_per_s / result.builds[targets[0].name][p].cpu_ms_per_s),
    ]),
  );
for (const t of targets) await t.server.stop();
for (const t of targets) {
  if (!t.profileDir) continue;
  const profile = readCpuProfile(t.profileDir);
  for (const [name, p] of Object.entries(result.builds[t.name])) {
    const summary = summarizeCpuProfile(profile, ROOT, p.window);
    console.log(
      `\n${t.name}: ${name}: CPU profile of the server (${round(summary.totalSeconds)} s sampled), self time:`,
    );
    printCpuProfile(summary, { top: 30, inclusive: 30, indent: '' });
    const holds = longHolds(profile, ROOT, p.window, 5, 12);
    p.loop_holds_over_5_ms = holds.total;
    console.log(`longest holds of the event loop (${holds.total} of 5 ms or more):`);
    for (const h of holds.longest) console.log(`  ${h.ms.toFixed(1)} ms: ${h.under.join(' | ')}`);
  }
}
for (const t of targets) for (const p of Object.values(result.builds[t.name])) delete p.window;
console.log(JSON.stringify(result, null, 2));

function round(x) {
  return Number(x.toFixed(2));
}
