// Revocation propagation benchmark (issue 6), one node: `writ serve` pinned to core 0 with 1,000
// verifier event streams open (`GET /v1/events`, each authenticated with a DPoP-bound token of one of
// several verifier workloads and a fresh proof, as the SDK verifier connects), held by load processes
// pinned to core 1. Each trial issues a token, revokes it through the admin API
// (`POST /admin/v1/revocations`) and measures, per stream, the time from the revoke call's HTTP response
// to the arrival of that revocation on the stream. Reported: p50 and p99 over trials of the slowest
// stream (every verifier knows), the per-stream p50/p99 over all trials, and each beside the token TTL.
// Target: p99 of the slowest stream ≤ 100 ms.
//
// The revoking client (this process) and the load processes share core 1 and one clock
// (process.hrtime is CLOCK_MONOTONIC, the same in every process of the machine).
//
//   npm run bench:verify               (from the repository root: builds, then verify.mjs and this)
//   node bench/propagation.mjs --streams 1000 --trials 20 --verifiers 10 --loaders 2
//   node bench/propagation.mjs --backlog 10000   with the server's window of recent events full first
//
// Every loop is bounded in time and count, every address is loopback, every child process is ended and
// every temp directory removed on exit, also on error or Ctrl-C.
import { createPrivateKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WorkloadClient } from '@writ/sdk/client';
import { dpopKeyFrom } from '@writ/sdk/dpop';
import { revocationDigest } from '@writ/sdk/verifier';
import { benchClients, decodeJwt, es256KeyPair, quantile, SCOPES, TOKEN_TTL } from './lib/common.mjs';
import { startLineChild } from './lib/line-child.mjs';
import {
  cleanupOnExit,
  openFiles,
  openFilesLimit,
  pinSelf,
  processCpuSeconds,
  requirePinning,
} from './lib/processes.mjs';
import { fmt, printTable, runMain, writeResults } from './lib/report.mjs';
import {
  adminSession,
  bearerToken,
  logTail,
  startWritServer,
  WRIT_CLI,
  workloadDoc,
} from './lib/writ-server.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const SERVER_CORE = '0';
const LOAD_CORE = '1';
const API = 'https://api.bench.writ';
const TARGET_P99_MS = 100;

const { values: opts } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    trials: { type: 'string', default: process.env.BENCH_TRIALS ?? '20' },
    'warmup-trials': { type: 'string', default: '2' },
    verifiers: { type: 'string', default: '10' },
    loaders: { type: 'string', default: '2' },
    'gap-ms': { type: 'string', default: '300' },
    backlog: { type: 'string', default: '0' },
  },
});
const STREAMS = bounded('streams', 1, 20_000);
const TRIALS = bounded('trials', 1, 500);
const WARMUP_TRIALS = bounded('warmup-trials', 0, 20);
const VERIFIERS = bounded('verifiers', 1, 200);
const LOADERS = bounded('loaders', 1, 8);
const GAP_MS = bounded('gap-ms', 0, 10_000);
const BACKLOG = bounded('backlog', 0, 20_000);
const TRIAL_TIMEOUT_MS = 10_000;

function bounded(name, min, max) {
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return v;
}

cleanupOnExit('bench/propagation');

// ---- the server ----------------------------------------------------------------------------------
const [tokenClient] = benchClients(1);
const verifierClients = benchClients(VERIFIERS).map((c, i) => ({
  ...c,
  clientId: `spiffe://bench.writ/propagation/verifier-${String(i).padStart(3, '0')}`,
  dpopKey: es256KeyPair(),
}));

function classes(issuer) {
  return [
    {
      name: 'bench',
      description: 'the tokens that get revoked',
      max_ttl: `${TOKEN_TTL}s`,
      default_ttl: `${TOKEN_TTL}s`,
      audiences: [API],
      scopes: SCOPES,
      binding: 'bearer',
    },
    {
      // A stream lives as long as its token: long enough for the whole run.
      name: 'verifier',
      description: 'verifiers follow the revocation stream',
      max_ttl: '1h',
      default_ttl: '1h',
      audiences: [`${issuer}/v1/events`],
      scopes: ['events:read'],
      default_scopes: ['events:read'],
      binding: 'dpop',
    },
  ];
}

/** A DPoP-bound events token per verifier workload, as the SDK's WorkloadClient gets it. */
async function streamTokens(server) {
  const eventsUrl = `${server.issuer}/v1/events`;
  const out = [];
  for (const v of verifierClients) {
    const client = new WorkloadClient({
      issuer: server.issuer,
      clientId: v.clientId,
      privateJwk: v.privateJwk,
      dpopKey: dpopKeyFrom(
        createPrivateKey({ key: v.dpopKey.privateJwk, format: 'jwk' }),
        v.dpopKey.publicJwk,
        'ES256',
      ),
    });
    const token = await client.token({ audience: eventsUrl });
    if (decodeJwt(token).payload.cnf?.jkt === undefined)
      throw new Error('the events token is not DPoP-bound');
    out.push(token);
  }
  return { eventsUrl, tokens: out };
}

// ---- load processes: a line protocol over stdin/stdout -------------------------------------------
const startLoader = (index, config) =>
  startLineChild({
    name: `load process ${index}`,
    core: LOAD_CORE,
    script: join(BENCH, 'lib/event-streams.mjs'),
    config,
    cwd: BENCH,
  });

// ---- main ----------------------------------------------------------------------------------------
const nowMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  requirePinning();
  if (!existsSync(WRIT_CLI)) throw new Error(`${WRIT_CLI} is missing: run \`npm run build\` first`);
  // The revoking client belongs with the load, away from the server's core.
  pinSelf(LOAD_CORE);
  const started = Date.now();
  console.log(
    `Revocation propagation benchmark: ${cpus().length} cores (${cpus()[0].model}), node ${process.version}\n` +
      `one Writ node (SQLite) on core ${SERVER_CORE}; ${STREAMS} event streams of ${VERIFIERS} verifier ` +
      `workloads from ${LOADERS} load process(es) on core ${LOAD_CORE}; ${TRIALS} trials ` +
      `(+${WARMUP_TRIALS} warm-up), each revoking one token (TTL ${TOKEN_TTL}s) by jti\n`,
  );
  const server = await startWritServer({
    core: SERVER_CORE,
    classes,
    workloads: [
      workloadDoc(tokenClient, ['bench']),
      ...verifierClients.map((v) => workloadDoc(v, ['verifier'])),
    ],
  });
  const loaders = [];
  try {
    const admin = adminSession(server.issuer, server.operatorKeyFile);
    const limit = openFilesLimit(server.pid);
    if (limit !== undefined && limit < STREAMS + 64)
      console.log(
        `warning: the server may open only ${limit} files (ulimit -n); ${STREAMS} streams need more than that`,
      );

    // Optional: fill the server's in-memory window of recent events (which the fan-out walks once per
    // stream) before the streams open. Enabling an active workload appends an event and changes nothing
    // else: unlike revocations, these do not grow the snapshot every stream starts with.
    const backlogStarted = nowMs();
    for (let i = 0; i < BACKLOG; i++)
      await admin.post(`/workloads/${encodeURIComponent(tokenClient.clientId)}/enable`, {
        reason: 'propagation benchmark: backlog',
      });
    if (BACKLOG > 0)
      console.log(`backlog: ${BACKLOG} events in ${fmt((nowMs() - backlogStarted) / 1000, 1)} s`);

    const { eventsUrl, tokens } = await streamTokens(server);
    const keys = verifierClients.map((v) => v.dpopKey);
    const openStarted = nowMs();
    for (let l = 0; l < LOADERS; l++) {
      // Stream i belongs to verifier workload i mod VERIFIERS.
      const streams = [];
      for (let i = l; i < STREAMS; i += LOADERS) streams.push(i % VERIFIERS);
      loaders.push(
        startLoader(l, {
          origin: server.origin,
          eventsUrl,
          tokens,
          keys,
          streams,
          concurrency: 16,
          openTimeoutMs: 30_000,
        }),
      );
    }
    const opened = await Promise.all(loaders.map((l) => l.next('open', 300_000)));
    const openMs = nowMs() - openStarted;
    const live = opened.reduce((n, o) => n + o.streams, 0);
    const failed = opened.reduce((n, o) => n + o.failed, 0);
    const fds = openFiles(server.pid);
    console.log(
      `opened ${live} of ${STREAMS} streams in ${fmt(openMs / 1000, 1)} s; server: ${fds ?? '?'} open files ` +
        `(limit ${limit ?? '?'})`,
    );
    if (failed > 0)
      throw new Error(
        `${failed} streams could not be opened; first: ${opened.find((o) => o.firstError)?.firstError}\n` +
          logTail(server),
      );

    const trials = [];
    const serverCpuBefore = processCpuSeconds(server.pid);
    for (let t = 0; t < WARMUP_TRIALS + TRIALS; t++) {
      const warm = t < WARMUP_TRIALS;
      const token = await bearerToken(server.issuer, tokenClient, { resource: API, scope: SCOPES[0] });
      const { jti } = decodeJwt(token).payload;
      await admin.open(); // a fresh admin session, if needed, outside the timed call
      // Streams carry the value as its digest (docs/security.md): that is what arrives.
      const marker = revocationDigest(jti);
      for (const l of loaders) l.send({ cmd: 'arm', trial: t, marker, timeoutMs: TRIAL_TIMEOUT_MS });
      await Promise.all(loaders.map((l) => l.next('armed', 10_000)));
      const sent = nowMs();
      await admin.revoke({ kind: 'jti', value: jti, reason: 'propagation benchmark' });
      const answered = nowMs();
      const reports = await Promise.all(loaders.map((l) => l.next('trial', TRIAL_TIMEOUT_MS + 10_000)));
      const times = reports.flatMap((r) => r.times);
      const arrived = times.filter((x) => x !== null);
      const missing = times.length - arrived.length;
      const closed = reports.reduce((n, r) => n + r.closed, 0);
      if (missing > 0 || closed > 0)
        throw new Error(
          `trial ${t}: ${missing} streams did not receive the revocation within ${TRIAL_TIMEOUT_MS} ms ` +
            `(${closed} streams closed)\n${logTail(server)}`,
        );
      const lags = arrived.map((x) => x - answered).sort((a, b) => a - b);
      const trial = {
        warm,
        revokeMs: answered - sent,
        lagsMs: lags,
        maxMs: lags[lags.length - 1],
        minMs: lags[0],
        p50Ms: quantile(lags, 0.5),
        maxFromSendMs: lags[lags.length - 1] + (answered - sent),
      };
      if (!warm) trials.push(trial);
      console.log(
        `${warm ? 'warm-up' : `trial ${String(trials.length).padStart(3)}`}: revoke call ${fmt(trial.revokeMs, 1)} ms; ` +
          `after its response, first stream ${fmt(trial.minMs, 1)} ms, median ${fmt(trial.p50Ms, 1)} ms, ` +
          `all ${lags.length} ${fmt(trial.maxMs, 1)} ms (${fmt(trial.maxFromSendMs, 1)} ms after the call was sent)`,
      );
      await sleep(GAP_MS + Math.floor(Math.random() * GAP_MS));
    }
    const serverCpu = processCpuSeconds(server.pid) - serverCpuBefore;

    // Streams still alive at the end: nothing dropped them during the run.
    for (const l of loaders) l.send({ cmd: 'stop' });
    const stopped = await Promise.all(loaders.map((l) => l.next('stopped', 10_000)));
    const droppedAtEnd = stopped.reduce((n, s) => n + s.closed, 0);

    const sorted = (xs) => [...xs].sort((a, b) => a - b);
    const maxes = sorted(trials.map((t) => t.maxMs));
    const fromSend = sorted(trials.map((t) => t.maxFromSendMs));
    const all = sorted(trials.flatMap((t) => t.lagsMs));
    const ttlMs = TOKEN_TTL * 1000;
    const summary = {
      streams: live,
      trials: trials.length,
      slowestStream: {
        p50Ms: quantile(maxes, 0.5),
        p99Ms: quantile(maxes, 0.99),
        maxMs: maxes[maxes.length - 1],
      },
      slowestFromSend: { p50Ms: quantile(fromSend, 0.5), p99Ms: quantile(fromSend, 0.99) },
      perStream: { p50Ms: quantile(all, 0.5), p99Ms: quantile(all, 0.99), minMs: all[0] },
      revokeCall: { p50Ms: quantile(sorted(trials.map((t) => t.revokeMs)), 0.5) },
      ttlSeconds: TOKEN_TTL,
      serverCpuSeconds: serverCpu,
      loaderCpuMs: stopped.map((s) => s.cpuMs),
      droppedAtEnd,
      openMs,
      serverOpenFiles: fds,
      serverOpenFilesLimit: limit,
      backlog: BACKLOG,
    };
    const met = summary.slowestStream.p99Ms <= TARGET_P99_MS;
    const ofTtl = (ms) => `${((ms / ttlMs) * 100).toPrecision(2)}% of TTL`;
    const table = [
      ['lag after the revoke response', 'p50', 'p99', 'p99 ÷ TTL', 'target', 'met'],
      [
        `all ${live} streams (slowest, per trial)`,
        `${fmt(summary.slowestStream.p50Ms, 1)} ms`,
        `${fmt(summary.slowestStream.p99Ms, 1)} ms`,
        ofTtl(summary.slowestStream.p99Ms),
        `p99 ≤ ${TARGET_P99_MS} ms`,
        met ? 'yes' : 'NO',
      ],
      [
        'each stream (all trials)',
        `${fmt(summary.perStream.p50Ms, 1)} ms`,
        `${fmt(summary.perStream.p99Ms, 1)} ms`,
        ofTtl(summary.perStream.p99Ms),
        '',
        '',
      ],
      [
        'all streams, from the revoke request',
        `${fmt(summary.slowestFromSend.p50Ms, 1)} ms`,
        `${fmt(summary.slowestFromSend.p99Ms, 1)} ms`,
        ofTtl(summary.slowestFromSend.p99Ms),
        '',
        '',
      ],
    ];
    console.log(
      `\n=== Revocation propagation, one node: ${trials.length} trials, ${live} streams, token TTL ${TOKEN_TTL}s ===`,
    );
    printTable(table);
    console.log(
      `revoke call (request → response) p50 ${fmt(summary.revokeCall.p50Ms, 1)} ms; streams dropped during ` +
        `the run: ${droppedAtEnd}; server CPU over the trials ${fmt(serverCpu, 2)} s; load CPU ` +
        `${summary.loaderCpuMs.map((c) => `${fmt(c / 1000, 2)} s`).join(', ')}`,
    );
    console.log(`took ${fmt((Date.now() - started) / 1000)} s`);
    if (droppedAtEnd > 0) throw new Error(`${droppedAtEnd} streams were closed during the run`);

    writeResults('propagation', {
      settings: { STREAMS, TRIALS, WARMUP_TRIALS, VERIFIERS, LOADERS, GAP_MS, BACKLOG, TOKEN_TTL },
      target: { slowestStreamP99Ms: TARGET_P99_MS },
      met,
      summary,
      trials: trials.map(({ lagsMs, ...t }) => ({
        ...t,
        p90Ms: quantile(lagsMs, 0.9),
        p99Ms: quantile(lagsMs, 0.99),
      })),
    });
  } finally {
    await Promise.all(loaders.map((l) => l.stop()));
    await server.stop();
  }
}

runMain(main);
