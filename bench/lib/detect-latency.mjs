// Part (b) of bench/detect.mjs: misuse-to-revocation latency. `writ serve` (SQLite) on the server core;
// SDK verifiers (lib/verifier-driver.mjs: each its own workload, event stream and UsageReporter) in
// driver processes on the load core. Per trial a fresh workload's token is used from its usual network
// at one verifier, its report taken; then, at t0, misused at another: a bearer copy from a new network
// (`token-two-networks`), or a DPoP-bound token presented without its key (`bound-token-without-key`;
// such a record is sent at once). Measured: t0 until every verifier holds the revocation (watched every
// millisecond); then each must refuse the token as `revoked`. The audit log gives the breakdown.
import { createPrivateKey } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkloadClient } from '@writ/sdk/client';
import { dpopKeyFrom } from '@writ/sdk/dpop';
import { benchClients, decodeJwt, es256KeyPair, median, quantile } from './common.mjs';
import { startLineChild } from './line-child.mjs';
import { processCpuSeconds } from './processes.mjs';
import { fmt, loadAverage } from './report.mjs';
import { adminSession, bearerToken, logTail, startWritServer, workloadDoc } from './writ-server.mjs';

const BENCH = dirname(dirname(fileURLToPath(import.meta.url)));
const TARGET_P99_MS = 1000;
const TRIAL_TIMEOUT_MS = 10_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sorted = (xs) => [...xs].filter(Number.isFinite).sort((a, b) => a - b);

const API = 'https://api.bench.writ';
const TOKEN_SCOPE = 'api:call';

/**
 * Runs the trials: `o` = { serverCore, loadCore, trials, warmupTrials, verifiers, drivers, flushMs,
 * background, gapMs }. Returns { summary, trials }.
 */
export async function misuseLatency(o) {
  const { serverCore, loadCore, trials: trialCount, warmupTrials, verifiers: verifierCount } = o;
  const { drivers: driverCount, flushMs, background: backgroundRate, gapMs } = o;
  const loadAtStart = loadAverage();
  const perKind = trialCount + warmupTrials;
  const rename = (list, kind) =>
    list.map((c, i) => ({
      ...c,
      clientId: `spiffe://bench.writ/detect/${kind}-${String(i).padStart(3, '0')}`,
    }));
  const verifierClients = rename(benchClients(verifierCount), 'verifier');
  const victims = {
    bearer: rename(benchClients(perKind), 'bearer'),
    dpop: rename(benchClients(perKind), 'dpop'),
  };
  const background = rename(benchClients(20), 'background');
  console.log(
    `\n(b) misuse → every verifier refuses: one Writ (SQLite) on core ${serverCore}; ${verifierCount} SDK ` +
      `verifiers (usage every ${flushMs} ms, ${backgroundRate} benign uses/s each) in ${driverCount} driver ` +
      `process(es) on core ${loadCore}; ${trialCount} trials (+${warmupTrials} warm-up) per misuse; ` +
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
    core: serverCore,
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
    // Verifier v is driver v mod driverCount, its index there v div driverCount.
    const where = (v) => ({ driver: drivers[v % driverCount], local: Math.floor(v / driverCount) });
    for (let d = 0; d < driverCount; d++)
      drivers.push(
        startLineChild({
          name: `verifier driver ${d}`,
          core: loadCore,
          script: join(BENCH, 'lib/verifier-driver.mjs'),
          config: {
            issuer: server.issuer,
            api: API,
            flushIntervalMs: flushMs,
            verifiers: verifierClients
              .filter((_, v) => v % driverCount === d)
              .map((v) => ({ clientId: v.clientId, privateJwk: v.privateJwk })),
            background: { perSecond: backgroundRate, tokens: backgroundTokens },
          },
          cwd: BENCH,
        }),
      );
    const ready = await Promise.all(drivers.map((d) => d.next('ready', 120_000)));
    console.log(
      `  ${verifierCount} verifiers ready in ${fmt(Math.max(...ready.map((r) => r.ms)) / 1000, 1)} s`,
    );

    const trials = { bearer: [], dpop: [] };
    const serverCpu0 = processCpuSeconds(server.pid);
    for (let t = 0; t < 2 * perKind; t++) {
      const kind = t % 2 === 0 ? 'bearer' : 'dpop';
      const n = Math.floor(t / 2);
      const warm = n < warmupTrials;
      const trial = await oneTrial({
        server,
        admin,
        kind,
        victim: victims[kind][n],
        drivers,
        where,
        verifierId: (v) => verifierClients[v].clientId,
        verifierCount,
        n,
      });
      if (!warm) trials[kind].push(trial);
      console.log(
        `  ${warm ? 'warm-up' : `${kind} ${String(trials[kind].length).padStart(3)}`}: ` +
          `every verifier refuses after ${fmt(trial.lastMs)} ms (report stored ${fmt(trial.reportMs)} ms, ` +
          `revocation stored ${fmt(trial.revokedMs)} ms, first verifier ${fmt(trial.firstMs)} ms; finding ` +
          `recorded ${fmt(trial.findingMs)} ms)`,
      );
      await sleep(gapMs + Math.floor(Math.random() * gapMs));
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
    const summary = { loadAtStart, loadAtEnd: loadAverage(), serverCpuSeconds: serverCpu, usage, kinds: {} };
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
      summary.kinds[kind].ratio = summary.kinds[kind].p99Ms / TARGET_P99_MS;
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

/** One trial: the holder's own uses, the misuse at t0, then when each verifier held the revocation. */
async function oneTrial({ server, admin, kind, victim, drivers, where, verifierId, verifierCount, n }) {
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
  const a = Math.floor(Math.random() * verifierCount);
  const b = (a + 1 + Math.floor(Math.random() * (verifierCount - 1))) % verifierCount;
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
  ).events.filter((e) => e.ts <= revoked.ts);
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
