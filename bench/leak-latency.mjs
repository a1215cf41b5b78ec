// Leak report → verifier refusal latency (issue 17): `writ serve` (SQLite) pinned to core 0 with GitHub's
// secret scanning partner keys published by a stand-in key server in this process (loopback, as
// `leaks.github_keys_url`), and N SDK verifiers (`createVerifier`, each its own workload and event
// stream; lib/verifier-driver.mjs) in driver processes pinned to core 1. Per trial a fresh workload's
// live bearer token is reported to `POST /v1/leaks/github` in a report signed as GitHub signs (ECDSA
// P-256 over the body, DER, base64). Measured from just before the report is sent (t0) until every
// verifier holds the revocation (each watched every millisecond); then each must refuse the token as
// `revoked`, and the answer must label it `true_positive`. Trials alternate with the same measure for a
// plain operator revocation (`POST /admin/v1/revocations` of a live token's `jti`), the path a leak ends
// in: leak ÷ plain, in one run, says what the partner report adds on this (shared, noisy) machine.
// Reported per run: p50 and p99 over trials of the slowest verifier, for both, and the median time to
// the answer; over runs (each a fresh server and fresh verifiers): the medians of those, and p50/p99
// over every trial of every run pooled (with the count: p99 of n trials is the ⌈0.99·n⌉-th fastest, so
// it is the slowest trial below 100 trials). Target p99 ≤ 250 ms.
//
// A time box (--max-minutes, default 10): once it is spent no new trial or run starts, and the figures
// say how many trials they cover. Server start (60 s), verifier start (120 s), each HTTP call of a trial
// (15 s) and each trial (10 s) have timeouts of their own, so nothing waits without end; progress is
// printed every 10 trials, and each run says how long its server start, verifier start and trials took.
//
//   npm run build && node bench/leak-latency.mjs     # 3 runs of 100 trials (300 pooled): a few minutes quiet
//   node bench/leak-latency.mjs --runs 3 --trials 40 --verifiers 20 --drivers 1 --max-minutes 10
//
// Every loop is bounded in time and count, every address is loopback, every child process is ended and
// every temp directory removed on exit, also on error or Ctrl-C.
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchClients, decodeJwt, median, quantile } from './lib/common.mjs';
import { startLineChild } from './lib/line-child.mjs';
import { cleanupOnExit, pinSelf, processCpuSeconds, requirePinning } from './lib/processes.mjs';
import { fmt, loadAverage, printTable, runMain, writeResults } from './lib/report.mjs';
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
const TOKEN_SCOPE = 'api:call';
const TARGET_P99_MS = 250;
const TRIAL_TIMEOUT_MS = 10_000;
/** One HTTP call of a trial (token, report, revocation): past this the trial fails, naming the call. */
const CALL_TIMEOUT_MS = 15_000;

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: process.env.BENCH_ROUNDS ?? '3' },
    trials: { type: 'string', default: process.env.BENCH_TRIALS ?? '100' },
    'warmup-trials': { type: 'string', default: '3' },
    verifiers: { type: 'string', default: '20' },
    drivers: { type: 'string', default: '1' },
    'gap-ms': { type: 'string', default: '100' },
    'max-minutes': { type: 'string', default: '10' },
  },
});
const RUNS = bounded('runs', 1, 20);
const TRIALS = bounded('trials', 1, 500);
const WARMUP_TRIALS = bounded('warmup-trials', 0, 20);
const VERIFIERS = bounded('verifiers', 1, 1000);
const DRIVERS = bounded('drivers', 1, 8);
const GAP_MS = bounded('gap-ms', 0, 10_000);
const MAX_MINUTES = bounded('max-minutes', 1, 120);
const deadline = Date.now() + MAX_MINUTES * 60_000;
const timeLeft = () => deadline - Date.now();

function bounded(name, min, max) {
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return v;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sorted = (xs) => [...xs].filter(Number.isFinite).sort((a, b) => a - b);

cleanupOnExit('bench/leak-latency');

/** GitHub's stand-in: one P-256 key, published as https://api.github.com/meta/public_keys/secret_scanning is. */
async function startKeyServer() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const id = createHash('sha256').update(pem).digest('hex');
  const body = JSON.stringify({ public_keys: [{ key_identifier: id, key: pem, is_current: true }] });
  let fetches = 0;
  const server = createServer((req, res) => {
    fetches++;
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/meta/public_keys/secret_scanning`,
    fetches: () => fetches,
    headers: (report) => ({
      'github-public-key-identifier': id,
      'github-public-key-signature': sign('sha256', Buffer.from(report), {
        key: privateKey,
        dsaEncoding: 'der',
      }).toString('base64'),
    }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

async function oneRun(run) {
  const loadAtStart = loadAverage();
  const phases = { serverStartS: 0, verifiersReadyS: 0, trialsS: 0 };
  const startedAt = Date.now();
  const perRun = TRIALS + WARMUP_TRIALS;
  const rename = (list, kind) =>
    list.map((c, i) => ({
      ...c,
      clientId: `spiffe://bench.writ/leaks/${kind}-${String(i).padStart(3, '0')}`,
    }));
  const verifierClients = rename(benchClients(VERIFIERS), 'verifier');
  // A fresh workload per trial: each leak raises its workload's risk, which policy may read at issuance.
  const victims = rename(benchClients(2 * perRun), 'victim');
  const keys = await startKeyServer();
  const server = await startWritServer({
    core: SERVER_CORE,
    classes: (issuer) => [
      {
        name: 'victim',
        max_ttl: '30m',
        default_ttl: '30m',
        audiences: [API],
        scopes: [TOKEN_SCOPE],
        default_scopes: [TOKEN_SCOPE],
        binding: 'bearer',
      },
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
      ...victims.map((v) => workloadDoc(v, ['victim'])),
    ],
    settings: { leaks: { github_keys_url: keys.url } },
    // The machine is shared: a server starting beside other work may take a while.
    readyMs: 60_000,
  });
  phases.serverStartS = (Date.now() - startedAt) / 1000;
  const drivers = [];
  try {
    for (let d = 0; d < DRIVERS; d++)
      drivers.push(
        startLineChild({
          name: `verifier driver ${d}`,
          core: LOAD_CORE,
          script: join(BENCH, 'lib/verifier-driver.mjs'),
          config: {
            issuer: server.issuer,
            api: API,
            flushIntervalMs: 1000,
            verifiers: verifierClients
              .filter((_, v) => v % DRIVERS === d)
              .map((v) => ({ clientId: v.clientId, privateJwk: v.privateJwk })),
            background: { perSecond: 0, tokens: [] },
          },
          cwd: BENCH,
        }),
      );
    const ready = await Promise.all(drivers.map((d) => d.next('ready', 120_000)));
    phases.verifiersReadyS = (Date.now() - startedAt) / 1000 - phases.serverStartS;
    console.log(
      `run ${run + 1}/${RUNS}: ${VERIFIERS} verifiers ready in ` +
        `${fmt(Math.max(...ready.map((r) => r.ms)) / 1000, 1)} s; load average ${loadAtStart}`,
    );
    const admin = adminSession(server.issuer, server.operatorKeyFile);
    const trials = { leak: [], plain: [] };
    const serverCpu0 = processCpuSeconds(server.pid);
    const trialsAt = Date.now();
    let cut = false;
    for (let n = 0; n < perRun; n++) {
      // The time box: no trial starts once it is spent (the next runs then start none either).
      if (timeLeft() <= 0) {
        cut = true;
        break;
      }
      if (n > 0 && n % 10 === 0)
        console.log(
          `  ${n}/${perRun} trials in ${fmt((Date.now() - trialsAt) / 1000, 1)} s; ` +
            `${fmt(timeLeft() / 60_000, 1)} min of the time box left; load ${loadAverage()}`,
        );
      // Alternating which goes first, so neither always follows the other's gap.
      for (const kind of n % 2 === 0 ? ['leak', 'plain'] : ['plain', 'leak']) {
        const victim = victims[2 * n + (kind === 'leak' ? 0 : 1)];
        const trial = await oneTrial({ server, keys, admin, kind, victim, drivers, n });
        if (n >= WARMUP_TRIALS) trials[kind].push(trial);
        await sleep(GAP_MS + Math.floor(Math.random() * GAP_MS));
      }
    }
    const serverCpu = processCpuSeconds(server.pid) - serverCpu0;
    phases.trialsS = (Date.now() - trialsAt) / 1000;
    const figures = (list) => {
      const last = sorted(list.map((t) => t.lastMs));
      return {
        trials: list.length,
        p50Ms: quantile(last, 0.5),
        p99Ms: quantile(last, 0.99),
        maxMs: last[last.length - 1],
        answerMs: median(list.map((t) => t.answerMs)),
        firstMs: median(list.map((t) => t.firstMs)),
      };
    };
    const summary = {
      leak: figures(trials.leak),
      plain: figures(trials.plain),
      serverCpuSeconds: serverCpu,
      phases,
      cutByTimeBox: cut,
      keyFetches: keys.fetches(),
      loadAtStart,
      loadAtEnd: loadAverage(),
    };
    summary.p50Ratio = summary.leak.p50Ms / summary.plain.p50Ms;
    summary.p99Ratio = summary.leak.p99Ms / summary.plain.p99Ms;
    const { leak, plain } = summary;
    console.log(
      `  leak report: every verifier refuses after p50 ${fmt(leak.p50Ms)} ms, p99 ${fmt(leak.p99Ms)} ms ` +
        `(answer ${fmt(leak.answerMs)} ms); plain revocation: p50 ${fmt(plain.p50Ms)} ms, p99 ` +
        `${fmt(plain.p99Ms)} ms (answer ${fmt(plain.answerMs)} ms); leak ÷ plain p50 ` +
        `${fmt(summary.p50Ratio, 2)}, p99 ${fmt(summary.p99Ratio, 2)}; partner keys fetched ` +
        `${summary.keyFetches}×; server CPU ${fmt(serverCpu, 1)} s; load ${summary.loadAtEnd}`,
    );
    console.log(
      `  ${leak.trials} leak and ${plain.trials} plain trials${cut ? ' (cut by the time box)' : ''}; ` +
        `server start ${fmt(phases.serverStartS, 1)} s, verifiers ready ${fmt(phases.verifiersReadyS, 1)} s, ` +
        `trials ${fmt(phases.trialsS, 1)} s`,
    );
    return { summary, trials };
  } finally {
    await Promise.all(drivers.map((d) => d.stop()));
    await server.stop();
    await keys.close();
  }
}

/**
 * One trial: a live token reported as leaked (`kind` leak) or revoked by an operator (`plain`) at t0;
 * when each verifier held its revocation; each then refuses it.
 */
async function oneTrial({ server, keys, admin, kind, victim, drivers, n }) {
  const token = await withTimeout(
    bearerToken(server.issuer, victim, { resource: API, scope: TOKEN_SCOPE }),
    `trial ${n}: the victim's token request`,
  );
  const { jti } = decodeJwt(token).payload;
  const report = JSON.stringify([
    {
      token,
      type: 'writ_access_token',
      url: `https://github.com/bench/repo/blob/${n}/ci.env`,
      source: 'content',
    },
  ]);
  const headers = { 'content-type': 'application/json', ...keys.headers(report) };
  // The admin session is opened (or renewed) outside the timed call.
  if (kind === 'plain') await withTimeout(admin.open(), `trial ${n}: the admin session`);
  for (const d of drivers) d.send({ cmd: 'arm', trial: n, timeoutMs: TRIAL_TIMEOUT_MS });
  await Promise.all(drivers.map((d) => d.next('armed', 10_000)));
  const t0 = Date.now();
  if (kind === 'leak') {
    const res = await fetch(`${server.issuer}/v1/leaks/github`, {
      method: 'POST',
      headers,
      body: report,
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
    const answer = await res.json();
    if (res.status !== 200 || answer[0]?.label !== 'true_positive')
      throw new Error(
        `trial ${n}: the report was answered ${res.status} ${JSON.stringify(answer).slice(0, 300)}`,
      );
  } else
    await withTimeout(
      admin.revoke({ kind: 'jti', value: jti, reason: 'bench' }),
      `trial ${n}: the operator's revocation`,
    );
  const answered = Date.now();
  const times = (await Promise.all(drivers.map((d) => d.next('trial', TRIAL_TIMEOUT_MS + 10_000)))).flatMap(
    (r) => r.times,
  );
  const missing = times.filter((x) => x === null).length;
  if (missing > 0)
    throw new Error(
      `${kind} trial ${n}: ${missing} of ${times.length} verifiers did not hear the revocation of ${jti} ` +
        `within ${TRIAL_TIMEOUT_MS} ms\n${logTail(server)}`,
    );
  for (const d of drivers) d.send({ cmd: 'confirm', token, present: 'bearer', source: '10.9.9.9' });
  const reasons = (await Promise.all(drivers.map((d) => d.next('confirmed', 20_000)))).flatMap(
    (c) => c.reasons,
  );
  const notRevoked = reasons.filter((r) => r !== 'revoked');
  if (notRevoked.length > 0)
    throw new Error(
      `${kind} trial ${n}: ${notRevoked.length} verifiers did not refuse as revoked: ${notRevoked[0]}`,
    );
  const lags = sorted(times.map((x) => x - t0));
  return { jti, lastMs: lags[lags.length - 1], firstMs: lags[0], answerMs: answered - t0 };
}

/** `promise`, or a rejection naming `what` after CALL_TIMEOUT_MS: a stalled call ends the script, not hangs it. */
function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} took more than ${CALL_TIMEOUT_MS} ms`)),
        CALL_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

async function main() {
  requirePinning();
  if (!existsSync(WRIT_CLI)) throw new Error(`${WRIT_CLI} is missing: run \`npm run build\` first`);
  pinSelf(LOAD_CORE);
  console.log(
    `Leak report → verifier refusal: ${cpus().length} cores (${cpus()[0].model}), node ${process.version}, ` +
      `load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}; writ serve on core ${SERVER_CORE}, ${VERIFIERS} SDK verifiers in ${DRIVERS} ` +
      `driver(s) and this script on core ${LOAD_CORE}; ${RUNS} runs of ${TRIALS} trials (+${WARMUP_TRIALS} warm-up); ` +
      `time box ${MAX_MINUTES} min\n`,
  );
  const runs = [];
  // A run starts only when the time box leaves room for its start-up and some trials; one the box cut
  // before its first trial counts for nothing.
  let setupMs = 0;
  for (let r = 0; r < RUNS && (r === 0 || timeLeft() > setupMs + 20_000); r++) {
    const run = await oneRun(r);
    setupMs = (run.summary.phases.serverStartS + run.summary.phases.verifiersReadyS) * 1000;
    if (run.trials.leak.length > 0) runs.push(run);
  }
  // Every trial of every run, pooled: the p99 over more reports than one run has.
  const pooled = (kind) => sorted(runs.flatMap((x) => x.trials[kind].map((t) => t.lastMs)));
  const leakAll = pooled('leak');
  const plainAll = pooled('plain');
  if (runs.length === 0)
    throw new Error(`the ${MAX_MINUTES}-minute time box was spent before any trial: raise --max-minutes`);
  const med = (f) => median(runs.map((x) => f(x.summary)));
  const summary = {
    runs: runs.length,
    runsAsked: RUNS,
    verifiers: VERIFIERS,
    trialsPerRun: TRIALS,
    leakTrials: leakAll.length,
    plainTrials: plainAll.length,
    cutByTimeBox: runs.length < RUNS || runs.some((x) => x.summary.cutByTimeBox),
    pooledP50Ms: quantile(leakAll, 0.5),
    pooledP99Ms: quantile(leakAll, 0.99),
    pooledPlainP99Ms: quantile(plainAll, 0.99),
    p50Ms: med((s) => s.leak.p50Ms),
    p99Ms: med((s) => s.leak.p99Ms),
    answerMs: med((s) => s.leak.answerMs),
    firstMs: med((s) => s.leak.firstMs),
    plainP50Ms: med((s) => s.plain.p50Ms),
    plainP99Ms: med((s) => s.plain.p99Ms),
    p50Ratio: med((s) => s.p50Ratio),
    p99Ratio: med((s) => s.p99Ratio),
  };
  summary.p99OverTarget = summary.p99Ms / TARGET_P99_MS;
  const each = (f) => runs.map((x) => fmt(f(x.summary), 2)).join(', ');
  console.log('');
  printTable([
    ['figure (median of runs)', 'value', 'target', 'per run'],
    ['leak report → every verifier refuses, p50', `${fmt(summary.p50Ms)} ms`, '', each((s) => s.leak.p50Ms)],
    [
      'leak report → every verifier refuses, p99',
      `${fmt(summary.p99Ms)} ms`,
      `≤ ${TARGET_P99_MS} ms (${fmt(summary.p99OverTarget, 2)} of it)`,
      each((s) => s.leak.p99Ms),
    ],
    [
      `leak → every verifier, p99 of all ${leakAll.length} trials pooled`,
      `${fmt(summary.pooledP99Ms)} ms`,
      `≤ ${TARGET_P99_MS} ms`,
      '',
    ],
    ['leak report → answer, median', `${fmt(summary.answerMs)} ms`, '', each((s) => s.leak.answerMs)],
    [
      'plain revocation → every verifier, p50',
      `${fmt(summary.plainP50Ms)} ms`,
      '',
      each((s) => s.plain.p50Ms),
    ],
    [
      'plain revocation → every verifier, p99',
      `${fmt(summary.plainP99Ms)} ms`,
      '',
      each((s) => s.plain.p99Ms),
    ],
    ['leak ÷ plain, p50 (same run)', fmt(summary.p50Ratio, 2), '', each((s) => s.p50Ratio)],
    ['leak ÷ plain, p99 (same run)', fmt(summary.p99Ratio, 2), '', each((s) => s.p99Ratio)],
  ]);
  if (summary.cutByTimeBox)
    console.log(
      `\nThe ${MAX_MINUTES}-minute time box cut the script: ${runs.length} of ${RUNS} runs with trials, ` +
        `${leakAll.length} leak trials in all (--max-minutes to allow more).`,
    );
  writeResults('leak-latency', { summary, runs, targets: { p99Ms: TARGET_P99_MS } });
}

runMain(main);
