// What opening an event stream costs the server with many revocations in force (issue 20): `writ serve`
// (SQLite) pinned to core 0, seeded with N revocations through the admin API, then opened and dropped
// from this process (pinned to core 1) K times in a row per run, as the soak benchmark's reconnect loop
// does: `GET /v1/events?revocations=sha256&snapshot=paged` without `Last-Event-ID`, so every open needs
// a snapshot. Two ways of dropping: after the response head (`head`, the reconnect abuser) and after
// the closing `snapshot` event (`snapshot`, a new verifier that takes the whole set).
//
// Measured: CPU time of the server's main thread (the event loop: everything it spends there blocks
// every other request) per open, from /proc, less what the idle server spends in the same time. CPU time,
// not latency, so other work on the machine changes it little. Median of the runs.
//
// With `--compare DIR` (another checkout of Writ, built, e.g. the commit before a change) the same runs
// go to a server of that build too, alternating with this one, and the ratio of the medians is printed.
//
//   npm run build && node bench/stream-open.mjs
//   node bench/stream-open.mjs --revocations 9000 --opens 100 --runs 5 --compare ../writ-before
//
// Every loop is bounded in count, every address is loopback, every child process is ended and every
// temp directory removed on exit, also on error or Ctrl-C.
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { benchClients, median } from './lib/common.mjs';
import { cleanupOnExit, pinSelf, requirePinning, threadCpu } from './lib/processes.mjs';
import { eventStreamRequest, eventsClass, eventsToken, seedRevocations } from './lib/soak-traffic.mjs';
import { adminSession, ROOT, startWritServer, workloadDoc, writCli } from './lib/writ-server.mjs';

const { values: args } = parseArgs({
  options: {
    revocations: { type: 'string', default: '9000' },
    opens: { type: 'string', default: '100' },
    runs: { type: 'string', default: '5' },
    compare: { type: 'string' },
  },
});
const bounded = (name, min, max) => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer ${min}..${max}`);
  return n;
};
const REVOCATIONS = bounded('revocations', 0, 100_000);
const OPENS = bounded('opens', 1, 10_000);
const RUNS = bounded('runs', 1, 100);
const MODES = ['head', 'snapshot'];

cleanupOnExit('stream-open');
requirePinning();
pinSelf('1');

const [verifier] = benchClients(1);

/** A server of the build at `root`, seeded with REVOCATIONS revocations, and a stream token for it. */
async function serverOf(name, root) {
  const server = await startWritServer({
    core: '0',
    cli: writCli(root),
    classes: (issuer) => [eventsClass(issuer)],
    workloads: [workloadDoc(verifier, ['events'])],
    // Opens in a row: the next may arrive before the server has seen the last one close.
    settings: {
      events: { max_streams_per_token: 1000, max_streams_per_client: 1000 },
      limits: { client_rate: 100_000, client_burst: 100_000 },
    },
  });
  await seedRevocations(adminSession(server.issuer, server.operatorKeyFile), REVOCATIONS, 'stream-open');
  const token = await eventsToken(server.issuer, verifier);
  process.stderr.write(`stream-open: ${name} (${root}) up with ${REVOCATIONS} revocations\n`);
  return { name, server, token };
}

/** One open: resolves when `until` is seen (the response head, or the closing snapshot event). */
function openOnce(origin, token, mode) {
  const url = new URL(origin);
  const socket = connect(Number(url.port), '127.0.0.1');
  socket.setEncoding('utf8');
  return new Promise((done, fail) => {
    let got = '';
    let status = 0;
    const finish = (err) => {
      socket.destroy();
      if (err) fail(err);
      else done();
    };
    socket.on('error', finish);
    socket.on('close', () => finish(new Error(`stream closed early (HTTP ${status})`)));
    socket.on('data', (chunk) => {
      got += chunk;
      if (status === 0) {
        const end = got.indexOf('\r\n\r\n');
        if (end < 0) return;
        status = Number(got.slice(9, 12));
        if (status !== 200) return finish(new Error(`HTTP ${status}: ${got.slice(end + 4, end + 300)}`));
        if (mode === 'head') return finish();
        got = got.slice(end + 4);
      }
      // The closing event of a paged snapshot; only the tail can hold the start of a new line.
      if (got.includes('\nevent: snapshot\n')) return finish();
      got = got.slice(-32);
    });
    socket.write(eventStreamRequest(origin, token));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Main-thread CPU ms per open for one run of OPENS opens, less the idle server's rate over the same time:
 * { total, system } (system: the kernel's part, mostly the socket writes).
 */
async function run(target, mode) {
  const { pid, origin } = target.server;
  const idle0 = threadCpu(pid, pid);
  const idleAt = performance.now();
  await sleep(500);
  const idle1 = threadCpu(pid, pid);
  const idleMs = performance.now() - idleAt;
  const at = performance.now();
  for (let i = 0; i < OPENS; i++) await openOnce(origin, target.token, mode);
  const elapsed = performance.now() - at;
  const end = threadCpu(pid, pid);
  const perOpen = (k) =>
    ((end[k] - idle1[k]) * 1000 - ((idle1[k] - idle0[k]) * 1000 * elapsed) / idleMs) / OPENS;
  return { total: perOpen('total'), system: perOpen('system') };
}

const targets = [await serverOf('this build', ROOT)];
if (args.compare) targets.push(await serverOf('compared build', resolve(args.compare)));
// One warm-up run each, then the measured runs, alternating builds so both see the same machine.
for (const t of targets) for (const mode of MODES) await run(t, mode);
const perOpen = new Map(targets.map((t) => [t, { head: [], snapshot: [] }]));
for (let r = 0; r < RUNS; r++) {
  for (const mode of MODES) {
    for (const t of targets) perOpen.get(t)[mode].push(await run(t, mode));
  }
  process.stderr.write(`stream-open: run ${r + 1}/${RUNS} done\n`);
}
const medianOf = (t, m, k = 'total') => median(perOpen.get(t)[m].map((x) => x[k]));
const result = {
  revocations: REVOCATIONS,
  opens_per_run: OPENS,
  runs: RUNS,
  measure: 'server main-thread CPU ms per stream open (/proc), idle rate subtracted; median of runs',
  builds: Object.fromEntries(
    targets.map((t) => [
      t.name,
      Object.fromEntries(
        MODES.map((m) => [
          m,
          {
            median_ms: round(medianOf(t, m)),
            of_which_system_ms: round(medianOf(t, m, 'system')),
            runs_ms: perOpen.get(t)[m].map((x) => round(x.total)),
          },
        ]),
      ),
    ]),
  ),
};
if (targets.length === 2)
  result.ratio_compared_to_this = Object.fromEntries(
    MODES.map((m) => [m, round(medianOf(targets[1], m) / medianOf(targets[0], m))]),
  );
console.log(JSON.stringify(result, null, 2));
for (const t of targets) await t.server.stop();

function round(x) {
  return Number(x.toFixed(2));
}
