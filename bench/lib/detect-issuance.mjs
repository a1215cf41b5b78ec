// Part (c) of bench/detect.mjs: issuance throughput with detection on ÷ off while usage is reported.
// Per side a fresh `writ serve` (SQLite) on the server core, `detection.enabled` true or false; on the
// load core, SDK UsageReporters (lib/usage-load.mjs) report the simulated fleet's uses of tokens this
// server issued, at a fixed rate, and bench/issuance.mjs's load generator (loadgen.mjs) measures the
// token endpoint's peak beside them. Sides alternate from round to round.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AUDIENCE, benchClients, decodeJwt, es256KeyPair, median, SCOPES } from './common.mjs';
import { startLineChild } from './line-child.mjs';
import { processCpuSeconds, runJsonChild, tempDir } from './processes.mjs';
import { printCpuProfile, readCpuProfile, summarizeCpuProfile } from './profile.mjs';
import { fmt, loadAverage } from './report.mjs';
import { fleetReporter, slotKey, usageFleet } from './usage-traffic.mjs';
import { adminSession, bearerToken, logTail, ROOT, startWritServer, workloadDoc } from './writ-server.mjs';

const BENCH = dirname(dirname(fileURLToPath(import.meta.url)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** The fleet whose uses are reported: the usage load builds the same one from this. */
const FLEET = { workloads: 50, apis: 2, seed: 17 };

/**
 * Runs the rounds: `o` = { serverCore, loadCore, rounds, seconds, usageRate, connections, clients,
 * flushMs, profile }. Returns { summary, rounds }.
 */
export async function issuanceUnderUsage(o) {
  const { serverCore, loadCore, rounds: roundCount, seconds, usageRate, connections, flushMs } = o;
  const loadAtStart = loadAverage();
  const issuanceClients = benchClients(o.clients);
  const fleet = usageFleet(FLEET);
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
    `\n(c) issuance with detection on ÷ off while ${usageRate} usage records/s are reported: ` +
      `${roundCount} rounds, a fresh server per side (core ${serverCore}); per side ${seconds} s closed loop ` +
      `on ${connections} connections from bench/loadgen.mjs and ${reporterClients.length} UsageReporters ` +
      `(core ${loadCore}); load average ${loadAtStart}`,
  );
  const side = async (enabled, profileDir) => {
    const server = await startWritServer({
      core: serverCore,
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
        tokens[slotKey(s.workload, s.pod, s.api)] = decodeJwt(token).payload.jti;
      }
      usageLoad = startLineChild({
        name: 'usage load',
        core: loadCore,
        script: join(BENCH, 'lib/usage-load.mjs'),
        config: {
          issuer: server.issuer,
          perSecond: usageRate,
          flushIntervalMs: flushMs,
          fleet: FLEET,
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
        loadCore,
        join(BENCH, 'loadgen.mjs'),
        {
          mode: 'closed',
          dpop: false,
          origin: server.origin,
          path: '/oauth2/token',
          audienceOfAssertion: server.issuer,
          serverPid: server.pid,
          clients: issuanceClients,
          connections,
          warmupSeconds: 1.5,
          warmupRequests: 6000,
          seconds,
          maxRequests: 10_000 * seconds,
        },
        (seconds + 2) * 1000 + 120_000,
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
        serverCpu: peak.serverCpu,
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
  for (let i = 0; i < roundCount; i++) {
    const r = { load: loadAverage() };
    for (const enabled of i % 2 === 0 ? [true, false] : [false, true])
      r[enabled ? 'on' : 'off'] = await side(enabled);
    r.ratio = r.on.throughput / r.off.throughput;
    rounds.push(r);
    const describe = (s) =>
      `${fmt(s.throughput)} tokens/s (server CPU ${fmt(s.serverCpu * 100)}%, ${fmt(s.serverCpuMicrosPerRequest)} µs a token), usage ` +
      `${fmt(s.usageDuringPeak.recordsPerSecond)} records/s taken meanwhile (${s.usageDuringPeak.dropped} dropped); ` +
      `usage alone ${fmt(s.usageAlone.recordsPerSecond)} records/s at ${fmt(s.usageAlone.serverCpu * 100)}% ` +
      `server CPU = ${fmt(s.usageAlone.serverMicrosPerRecord, 1)} µs/record`;
    console.log(
      `  round ${i + 1}/${roundCount} (load ${r.load}): ratio ${fmt(r.ratio, 3)}\n    on:  ${describe(r.on)}; ` +
        `${r.on.detectionStats.signals} signals evaluated\n    off: ${describe(r.off)}; ` +
        `${r.off.detectionStats.signals} signals evaluated`,
    );
  }
  const med = (f) => median(rounds.map(f));
  const summary = {
    loadAtStart,
    loadAtEnd: loadAverage(),
    ratio: med((r) => r.ratio),
    on: med((r) => r.on.throughput),
    off: med((r) => r.off.throughput),
    usageOn: med((r) => r.on.usageDuringPeak.recordsPerSecond),
    usageOff: med((r) => r.off.usageDuringPeak.recordsPerSecond),
    usageMicrosOn: med((r) => r.on.usageAlone.serverMicrosPerRecord),
    usageMicrosOff: med((r) => r.off.usageAlone.serverMicrosPerRecord),
  };
  if (o.profile) summary.profile = await profileSide(side);
  return { summary, rounds };
}

/** One more side with detection on, under `node --cpu-prof`: where the server's time goes during the peak. */
async function profileSide(side) {
  const profileDir = tempDir('writ-detect-prof-');
  const s = await side(true, profileDir);
  const profile = summarizeCpuProfile(readCpuProfile(profileDir), ROOT, s.windowMicros);
  console.log(
    `\n  CPU profile of the server (detection on, main thread, the issuance peak with usage beside it; ` +
      `${fmt(s.throughput)} tokens/s under --cpu-prof), self time:`,
  );
  printCpuProfile(profile, { indent: '  ' });
  return profile;
}
