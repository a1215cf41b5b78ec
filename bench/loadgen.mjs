// Load generator for the issuance benchmark: a separate process (pinned to its own core by the caller)
// sending token requests over keep-alive HTTP/1.1 connections (undici Pool) to a loopback server.
//
// Every request carries its own pre-generated client assertion (single use: unique jti), built before
// the timed phase so that signing them does not compete with sending. Two modes:
//   closed: `connections` workers, each sends its next request when the previous one is answered;
//           measures peak throughput. Bounded by `seconds` and by the number of pre-built requests.
//   open:   requests are sent at a fixed `rate` for `seconds`, whatever the answers do; latency is
//           measured from each request's scheduled send time (no coordinated omission).
// Prints one JSON line with the results.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { childConfig, quantile, tokenRequestBodies } from './lib/common.mjs';

const cfg = childConfig();
const { origin, path, audienceOfAssertion, clients } = cfg;
if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(origin)) {
  throw new Error(`loadgen: refusing non-loopback target ${origin}`);
}
const MAX_IN_FLIGHT = 20_000;

const pool = new Pool(origin, {
  connections: cfg.connections,
  pipelining: 1,
  keepAliveTimeout: 60_000,
  keepAliveMaxTimeout: 60_000,
});
const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };

/** CPU seconds used so far by the server process (all its threads), from /proc; undefined elsewhere. */
function serverCpuSeconds() {
  if (!cfg.serverPid) return undefined;
  try {
    const stat = readFileSync(`/proc/${cfg.serverPid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS = 100;

const stats = { ok: 0, failed: 0, firstError: undefined, sampleToken: undefined };

async function send(item) {
  try {
    const res = await pool.request(
      typeof item === 'string'
        ? { origin, path, method: 'POST', headers, body: item }
        : { origin, path, method: 'POST', headers: { ...headers, dpop: item.dpop }, body: item.body },
    );
    const text = await res.body.text();
    if (res.statusCode === 200) {
      stats.ok++;
      if (stats.sampleToken === undefined) stats.sampleToken = JSON.parse(text).access_token;
      return true;
    }
    stats.failed++;
    stats.firstError ??= `HTTP ${res.statusCode}: ${text.slice(0, 300)}`;
  } catch (err) {
    stats.failed++;
    stats.firstError ??= String(err?.message ?? err);
  }
  return false;
}

/** Closed loop over `bodies` for at most `seconds`. Returns throughput and generator CPU use. */
async function closedLoop(bodies, seconds, record) {
  const latencies = record ? new Float64Array(bodies.length) : undefined;
  let next = 0;
  let done = 0;
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const server0 = serverCpuSeconds();
  const hrStart = process.hrtime.bigint();
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const worker = async () => {
    while (next < bodies.length && performance.now() < deadline) {
      const body = bodies[next++];
      const t0 = performance.now();
      if ((await send(body)) && latencies) latencies[done++] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: cfg.connections }, worker));
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const serverCpu = serverCpuSeconds() - server0;
  const sorted = latencies ? latencies.subarray(0, done).sort() : new Float64Array(0);
  return {
    serverCpu: serverCpu / elapsed,
    serverCpuMicrosPerRequest: (serverCpu / next) * 1e6,
    sent: next,
    seconds: elapsed,
    exhausted: next >= bodies.length,
    // Monotonic microseconds (the clock of V8 CPU profiles): the timed window, for the profile summary.
    windowMicros: [Number(hrStart / 1000n), Number(process.hrtime.bigint() / 1000n)],
    generatorCpu: (cpu.user + cpu.system) / 1e6 / elapsed,
    generatorEventLoopUtilization: elu.utilization,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
  };
}

/** Open loop: request i is due at start + i / rate. Latency counts from the due time. */
function openLoop(bodies, rate) {
  return new Promise((resolve) => {
    const n = bodies.length;
    const latencies = new Float64Array(n);
    let recorded = 0;
    let sent = 0;
    let answered = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    let lateMs = 0;
    let aborted;
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    const server0 = serverCpuSeconds();
    const start = performance.now() + 5;
    const interval = 1000 / rate;
    const finish = () => {
      const elapsed = (performance.now() - start) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const elu = performance.eventLoopUtilization(elu0);
      const sorted = latencies.subarray(0, recorded).sort();
      resolve({
        serverCpu: (serverCpuSeconds() - server0) / elapsed,
        targetRate: rate,
        sent,
        answeredOk: recorded,
        achievedRate: answered / elapsed,
        seconds: elapsed,
        maxInFlight,
        maxSendLagMs: lateMs,
        aborted,
        generatorCpu: (cpu.user + cpu.system) / 1e6 / elapsed,
        generatorEventLoopUtilization: elu.utilization,
        p50Ms: quantile(sorted, 0.5),
        p90Ms: quantile(sorted, 0.9),
        p99Ms: quantile(sorted, 0.99),
        maxMs: sorted.length ? sorted[sorted.length - 1] : Number.NaN,
      });
    };
    const fire = (i, due) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      send(bodies[i]).then((ok) => {
        inFlight--;
        answered++;
        if (ok) latencies[recorded++] = performance.now() - due;
        if (answered === sent && (sent === n || aborted)) finish();
      });
    };
    const tick = () => {
      const now = performance.now();
      while (sent < n && start + sent * interval <= now) {
        if (inFlight >= MAX_IN_FLIGHT) {
          aborted = `more than ${MAX_IN_FLIGHT} requests in flight: the server does not keep up`;
          break;
        }
        const due = start + sent * interval;
        lateMs = Math.max(lateMs, now - due);
        fire(sent++, due);
      }
      if (sent < n && !aborted) setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
      else if (answered === sent) finish();
    };
    setTimeout(tick, 5);
  });
}

/**
 * DPoP: the server's current nonce, asked for the RFC 9449 §8 way (a proof without one is answered with
 * `use_dpop_nonce` and a `DPoP-Nonce` header). Every pre-built proof then carries it.
 */
async function dpopOptions() {
  if (!cfg.dpop) return undefined;
  const htu = `${origin}${path}`;
  const [probe] = tokenRequestBodies({
    clients,
    audienceOfAssertion,
    count: 1,
    prefix: 'nonce',
    dpop: { htu },
  });
  const res = await pool.request({
    origin,
    path,
    method: 'POST',
    headers: { ...headers, dpop: probe.dpop },
    body: probe.body,
  });
  const text = await res.body.text();
  if (res.statusCode === 200) return { htu };
  const nonce = res.headers['dpop-nonce'];
  if (res.statusCode !== 400 || typeof nonce !== 'string')
    throw new Error(`loadgen: no DPoP nonce from the server (HTTP ${res.statusCode}: ${text.slice(0, 200)})`);
  return { htu, nonce };
}
const dpop = await dpopOptions();

const pregenStart = performance.now();
let result;
if (cfg.mode === 'closed') {
  // Warm-up first (JIT, connections), then size the timed phase from the warm-up rate: 2.5× that rate
  // for the whole phase, never more than `maxRequests` (the caller's ceiling, above the raw bound). If the
  // server outruns it anyway, the phase ends early and the result says so (`exhausted`): the rate stays
  // right, since it is measured over the time actually run.
  const warm = tokenRequestBodies({
    clients,
    audienceOfAssertion,
    count: cfg.warmupRequests,
    prefix: 'warm',
    dpop,
  });
  let pregenSeconds = (performance.now() - pregenStart) / 1000;
  const w = await closedLoop(warm, cfg.warmupSeconds, false);
  const warmFailed = stats.failed;
  const warmRate = stats.ok / w.seconds;
  stats.ok = 0;
  const count = Math.min(cfg.maxRequests, Math.max(2000, Math.ceil(2.5 * warmRate * cfg.seconds)));
  const t0 = performance.now();
  const bodies = tokenRequestBodies({ clients, audienceOfAssertion, count, prefix: 'peak', dpop });
  pregenSeconds += (performance.now() - t0) / 1000;
  const r = await closedLoop(bodies, cfg.seconds, true);
  result = { mode: 'closed', connections: cfg.connections, pregenSeconds, warmFailed, warmRate, ...r };
  result.ok = stats.ok;
  result.failed = stats.failed - warmFailed;
  result.throughput = stats.ok / r.seconds;
} else {
  const count = Math.max(1, Math.round(cfg.rate * cfg.seconds));
  const warm = tokenRequestBodies({
    clients,
    audienceOfAssertion,
    count: Math.round(cfg.rate * cfg.warmupSeconds),
    prefix: 'warm',
    dpop,
  });
  const bodies = tokenRequestBodies({ clients, audienceOfAssertion, count, prefix: 'open', dpop });
  const pregenSeconds = (performance.now() - pregenStart) / 1000;
  await openLoop(warm, cfg.rate);
  const warmFailed = stats.failed;
  const r = await openLoop(bodies, cfg.rate);
  result = { mode: 'open', connections: cfg.connections, pregenSeconds, warmFailed, ...r };
  result.failed = stats.failed - warmFailed;
}
result.firstError = stats.firstError;
result.sampleToken = stats.sampleToken;
await pool.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
