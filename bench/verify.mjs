// Verification benchmark (issue 6): the SDK verifier (createVerifier) on one core against the raw ES256
// bound on the same core, in the same run:
//   (a) bearer verification with the revocation check (an unbound token, signature checked every time)
//       ÷ one raw ES256 verify of a token of the same size                                  target ≥ 0.8
//   (b) repeat presentation of the same token, answered from the verified-token cache
//       ÷ one raw ES256 verify                                                              target ≥ 10
//   (c) DPoP-bound request verification (token + a fresh pre-generated proof per request)
//       ÷ two raw ES256 verifies (token and proof)                                          target ≥ 0.7
// The verifiers are real: a Writ server (pinned to core 1, idle while a round is timed) issues the
// tokens and serves the JWKS and the revocation stream, which carries a non-empty revocation set. Each
// round is one child pinned to core 0 (`taskset -c 0`) that times every scenario for a fixed duration,
// in an order that alternates between rounds; ratios are per round, the table shows their medians.
//
//   npm run bench:verify               (from the repository root: builds, then this and propagation.mjs)
//   node bench/verify.mjs --rounds 5 --seconds 3 --warmup-seconds 0.5 --tokens 8 --revocations 100
//   node bench/verify.mjs --profile    then one more round under --cpu-prof: where the verifier's time goes
//
// Every loop is bounded in time and count, every address is loopback, every child process is ended and
// every temp directory removed on exit, also on error or Ctrl-C.
import { createPrivateKey, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WorkloadClient } from '@writ/sdk/client';
import { dpopKeyFrom } from '@writ/sdk/dpop';
import { benchClients, decodeJwt, es256KeyPair, median, SCOPES, TOKEN_TTL } from './lib/common.mjs';
import { cleanupOnExit, requirePinning, runJsonChild, tempDir } from './lib/processes.mjs';
import { printCpuProfile, readCpuProfile, summarizeCpuProfile } from './lib/profile.mjs';
import { fmt, printTable, runMain, writeResults } from './lib/report.mjs';
import {
  adminSession,
  bearerToken,
  logTail,
  ROOT,
  startWritServer,
  WRIT_CLI,
  workloadDoc,
} from './lib/writ-server.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const MEASURE_CORE = '0';
const SERVER_CORE = '1';
const API = 'https://api.bench.writ';
const RESOURCE_URL = `${API}/reports/2026?format=json`;

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: process.env.BENCH_ROUNDS ?? '5' },
    seconds: { type: 'string', default: '3' },
    'warmup-seconds': { type: 'string', default: '0.5' },
    tokens: { type: 'string', default: '8' },
    revocations: { type: 'string', default: '100' },
    profile: { type: 'boolean', default: false },
  },
});
const ROUNDS = bounded('rounds', 1, 20);
const SECONDS = bounded('seconds', 0.5, 30);
const WARMUP_SECONDS = bounded('warmup-seconds', 0.1, 10);
const TOKENS = bounded('tokens', 2, 64);
const REVOCATIONS = bounded('revocations', 1, 10_000);

function bounded(name, min, max) {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} must be in [${min}, ${max}]`);
  return v;
}

cleanupOnExit('bench/verify');

const TARGETS = {
  bearer: { bound: 'rawVerify', target: 0.8 },
  cached: { bound: 'rawVerify', target: 10 },
  dpop: { bound: 'rawPair', target: 0.7 },
};
const SCENARIOS = ['rawVerify', 'bearer', 'cached', 'rawPair', 'dpop'];

// ---- the server ----------------------------------------------------------------------------------
const [bearerClient, dpopClient, verifierClient] = benchClients(3).map((c, i) => ({
  ...c,
  clientId: `spiffe://bench.writ/verify/${['bearer-client', 'dpop-client', 'verifier'][i]}`,
}));
const dpopKey = es256KeyPair();

function classes(issuer) {
  const common = { max_ttl: `${TOKEN_TTL}s`, default_ttl: `${TOKEN_TTL}s`, scopes: SCOPES };
  return [
    {
      name: 'bench-bearer',
      description: 'unbound tokens for (a) and (b)',
      audiences: [API],
      binding: 'bearer',
      ...common,
    },
    {
      name: 'bench-dpop',
      description: 'DPoP-bound tokens for (c)',
      audiences: [API],
      binding: 'dpop',
      ...common,
    },
    {
      name: 'verifier',
      description: 'the verifier follows the revocation stream',
      audiences: [`${issuer}/v1/events`],
      binding: 'dpop',
      max_ttl: '1h',
      default_ttl: '1h',
      scopes: ['events:read'],
      default_scopes: ['events:read'],
    },
  ];
}

/**
 * Revocations in force that match none of the benchmark's tokens but sit in every kind a lookup walks:
 * `REVOCATIONS` token ids, and a subject, a client and a class of someone else.
 */
async function revokeOthers(admin) {
  const other = 'spiffe://bench.writ/verify/someone-else';
  const jobs = [
    { kind: 'sub', value: other },
    { kind: 'client_id', value: other },
    { kind: 'cls', value: 'some-other-class' },
  ];
  for (let i = 0; i < REVOCATIONS; i++)
    jobs.push({ kind: 'jti', value: randomBytes(16).toString('base64url') });
  for (const j of jobs) await admin.revoke({ ...j, reason: 'verify benchmark: not one of its tokens' });
  return jobs.length;
}

async function issueTokens(server) {
  const holder = new WorkloadClient({
    issuer: server.issuer,
    clientId: dpopClient.clientId,
    privateJwk: dpopClient.privateJwk,
    dpopKey: dpopKeyFrom(
      createPrivateKey({ key: dpopKey.privateJwk, format: 'jwk' }),
      dpopKey.publicJwk,
      'ES256',
    ),
  });
  const bearerTokens = [];
  const dpopTokens = [];
  for (let i = 0; i < TOKENS; i++) {
    bearerTokens.push(await bearerToken(server.issuer, bearerClient, { resource: API, scope: SCOPES[0] }));
    dpopTokens.push((await holder.requestToken({ audience: API, scope: SCOPES[0] })).access_token);
  }
  const b = decodeJwt(bearerTokens[0]).payload;
  const d = decodeJwt(dpopTokens[0]).payload;
  if (b.cnf !== undefined || b.cls !== 'bench-bearer')
    throw new Error(`unexpected bearer token ${JSON.stringify(b)}`);
  if (d.cnf?.jkt === undefined || d.cls !== 'bench-dpop')
    throw new Error(`unexpected bound token ${JSON.stringify(d)}`);
  return { bearerTokens, dpopTokens };
}

/** One round: a child pinned to MEASURE_CORE times every scenario, in `order`. */
async function runRound(server, order, nodeArgs = []) {
  // Fresh tokens each round, so a long run never presents one near its expiry.
  const tokens = await issueTokens(server);
  const r = await runJsonChild(
    MEASURE_CORE,
    join(BENCH, 'lib/verify-round.mjs'),
    {
      issuer: server.issuer,
      audience: API,
      url: RESOURCE_URL,
      seconds: SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      order,
      verifierClient: { clientId: verifierClient.clientId, privateJwk: verifierClient.privateJwk },
      dpopKey,
      ...tokens,
    },
    (order.length * (SECONDS + WARMUP_SECONDS) + 60) * 1000,
    { cwd: BENCH, nodeArgs },
  ).catch((err) => {
    throw new Error(`${err.message}\nserver log:\n${logTail(server)}`);
  });
  return { ...r, order };
}

/** --profile: one more round of the verifier's scenarios under --cpu-prof; self time per timed phase. */
async function profileRound(server) {
  const dir = tempDir('verify-prof-');
  const order = ['bearer', 'cached', 'dpop'];
  const r = await runRound(server, order, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  const cpuprofile = readCpuProfile(dir);
  const out = {};
  for (const name of order) {
    const p = summarizeCpuProfile(cpuprofile, ROOT, r.results[name].windowMicros);
    out[name] = { perSec: r.results[name].perSec, ...p };
    console.log(
      `\n${name}: CPU profile of the timed phase (${fmt(r.results[name].perSec)}/s under --cpu-prof), self time:`,
    );
    printCpuProfile(p, { top: 15, inclusive: 10, areas: false });
  }
  return out;
}

// ---- main ----------------------------------------------------------------------------------------

async function main() {
  requirePinning();
  if (!existsSync(WRIT_CLI)) throw new Error(`${WRIT_CLI} is missing: run \`npm run build\` first`);
  const started = Date.now();
  console.log(
    `Verification benchmark: ${cpus().length} cores (${cpus()[0].model}), node ${process.version}\n` +
      `${ROUNDS} rounds; per round each scenario ${WARMUP_SECONDS}s warm-up + ${SECONDS}s timed, all on core ` +
      `${MEASURE_CORE} (taskset); Writ on core ${SERVER_CORE}; ${TOKENS} tokens per kind, ES256, ` +
      `TTL ${TOKEN_TTL}s\n`,
  );
  const server = await startWritServer({
    core: SERVER_CORE,
    classes,
    workloads: [
      workloadDoc(bearerClient, ['bench-bearer']),
      workloadDoc(dpopClient, ['bench-dpop']),
      workloadDoc(verifierClient, ['verifier']),
    ],
  });
  const rounds = [];
  let revoked;
  let checked;
  let profile;
  try {
    const admin = adminSession(server.issuer, server.operatorKeyFile);
    revoked = await revokeOthers(admin);
    for (let i = 0; i < ROUNDS; i++) {
      const r = await runRound(server, i % 2 === 0 ? SCENARIOS : [...SCENARIOS].reverse());
      if (r.revocations !== revoked)
        throw new Error(`verifier holds ${r.revocations} revocations, not ${revoked}`);
      checked ??= { bytes: r.bytes, bound: r.bound };
      const x = r.results;
      const ratios = Object.fromEntries(
        Object.entries(TARGETS).map(([k, t]) => [k, x[k].perSec / x[t.bound].perSec]),
      );
      rounds.push({ order: r.order, results: x, ratios });
      console.log(
        `round ${i + 1}/${ROUNDS}: raw verify ${fmt(x.rawVerify.perSec)}/s, 2 verifies ${fmt(x.rawPair.perSec)}/s; ` +
          `bearer ${fmt(x.bearer.perSec)}/s (${fmt(ratios.bearer, 2)}), cached ${fmt(x.cached.perSec)}/s ` +
          `(${fmt(ratios.cached, 1)}), DPoP ${fmt(x.dpop.perSec)}/s (${fmt(ratios.dpop, 2)})` +
          (x.dpop.exhausted ? ` [DPoP used all ${x.dpop.proofs} pre-made proofs before the deadline]` : ''),
      );
    }
    if (opts.profile) profile = await profileRound(server);
  } finally {
    await server.stop();
  }

  const med = (f) => median(rounds.map(f));
  const medians = {
    perSec: Object.fromEntries(SCENARIOS.map((s) => [s, med((r) => r.results[s].perSec)])),
    ratios: Object.fromEntries(Object.keys(TARGETS).map((k) => [k, med((r) => r.ratios[k])])),
  };
  const micros = (s) => 1e6 / medians.perSec[s];
  const row = (label, s, k, fmtRatio) => {
    const ratio = k ? medians.ratios[k] : Number.NaN;
    return [
      label,
      fmt(medians.perSec[s]),
      fmt(micros(s), 2),
      k ? fmtRatio(ratio) : '',
      k ? `≥ ${TARGETS[k].target}` : '',
      k ? (ratio >= TARGETS[k].target ? 'yes' : 'NO') : '',
    ];
  };
  const table = [
    ['', 'per second', 'µs each', 'ratio', 'target', 'met'],
    row('raw: 1 ES256 verify (KeyObject)', 'rawVerify'),
    row('(a) bearer verify() + revocation check', 'bearer', 'bearer', (r) => `${fmt(r, 2)} of raw`),
    row('(b) same token again (cache)', 'cached', 'cached', (r) => `${fmt(r, 1)}× raw`),
    row('raw: 2 ES256 verifies', 'rawPair'),
    row('(c) DPoP-bound verify() (token + proof)', 'dpop', 'dpop', (r) => `${fmt(r, 2)} of raw`),
  ];
  console.log(
    `\n=== Verification on one core: medians of ${ROUNDS} rounds (ratios: medians of the per-round ratios) ===`,
  );
  printTable(table);
  console.log(
    `revocations in force at the verifier: ${revoked}; token bytes: bearer ${checked.bytes.bearer}, ` +
      `bound ${checked.bytes.dpop}, proof ${checked.bytes.proof}`,
  );
  console.log(`took ${fmt((Date.now() - started) / 1000)} s`);

  writeResults('verify', {
    settings: {
      ROUNDS,
      SECONDS,
      WARMUP_SECONDS,
      TOKENS,
      REVOCATIONS,
      TOKEN_TTL,
      MEASURE_CORE,
      SERVER_CORE,
    },
    targets: TARGETS,
    medians,
    met: Object.fromEntries(Object.entries(TARGETS).map(([k, t]) => [k, medians.ratios[k] >= t.target])),
    revocations: revoked,
    checked,
    rounds,
    profile,
  });
}

runMain(main);
