// `writ govern verify` cost (issue 14 item 3): the proof over a store of `--tokens` issuances, against
// `writ audit verify` (the chain walk alone) on the same store, in the same run. The store is written
// straight through the Store port (the fast path): a config.applied event recording the class rules,
// then per token a token.issued event and its token record, one accepted use kind per `--use-every`
// tokens, and one jti revocation per `--revoke-every` tokens. Then per run, alternating so neither
// always goes first: verifyAuditChain and proveGovernance over the whole chain.
//
// Reported per run: each one's time, events per second, and proof ÷ chain walk; then the medians. The
// ratio is what the proof adds to the hashing every verification pays; the events per second depend on
// the machine and its load (printed beside them).
//
//   npm run build && node bench/govern-verify.mjs [--tokens 100000] [--runs 3] [--use-every 5] [--revoke-every 50]
//
// Every loop is bounded; the temp directory is removed on exit.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from './lib/common.mjs';
import { fmt, loadAverage, printTable, runMain, writeResults } from './lib/report.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  options: {
    tokens: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '3' },
    'use-every': { type: 'string', default: '5' },
    'revoke-every': { type: 'string', default: '50' },
  },
});
function bounded(name, min, max) {
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return v;
}
const TOKENS = bounded('tokens', 1000, 2_000_000);
const RUNS = bounded('runs', 1, 20);
const USE_EVERY = bounded('use-every', 1, 1000);
const REVOKE_EVERY = bounded('revoke-every', 1, 100_000);

const dist = join(ROOT, 'packages/server/dist');
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { openSqliteStore } = await load('src/store/sqlite/sqlite-store.js');
const { proveGovernance } = await load('src/governance/runtime-proof.js');
const { verifyAuditChain } = await load('src/audit/verify.js');

const SUB = 'spiffe://bench.writ/govern/job';
const AUD = 'https://api.bench.writ';
const T0 = Date.UTC(2026, 0, 1);

/** Writes the store: the class rules, the issuances with their records, the uses and the revocations. */
async function fill(store) {
  const rules = {
    'bench-read': {
      max_ttl: 900,
      renewal_max_lifetime: 3600,
      binding: 'dpop',
      audiences: [AUD],
      scopes: ['r'],
    },
  };
  await store.appendAudit({
    ts: T0,
    type: 'config.applied',
    outcome: 'success',
    actor: 'operator:bench',
    data: { changes: [{ op: 'add', kind: 'class', name: 'bench-read' }], class_rules: rules },
  });
  const uses = [];
  for (let b = 0; b < TOKENS; b += 1000) {
    await store.transaction(async (tx) => {
      const drafts = [];
      for (let i = b; i < Math.min(TOKENS, b + 1000); i++) {
        const ts = T0 + i * 1000;
        const iat = Math.floor(ts / 1000);
        const jti = `jti-${i}`;
        drafts.push({
          ts,
          type: 'token.issued',
          outcome: 'success',
          actor: SUB,
          subject: SUB,
          jti,
          data: {
            grant_type: 'client_credentials',
            auth_method: 'private_key_jwt',
            cls: 'bench-read',
            aud: AUD,
            scope: 'r',
            iat,
            exp: iat + 300,
            kid: 'k1',
            fingerprint: 'f',
            binding: 'dpop',
            ip: '10.0.0.1',
          },
        });
        if (i % REVOKE_EVERY === 0)
          drafts.push({
            ts: ts + 500,
            type: 'revocation.created',
            outcome: 'success',
            actor: 'operator:bench',
            jti,
            data: { seq: i + 1, kind: 'jti', value: jti, issued_before: null, reason: 'bench' },
          });
        await tx.recordToken({
          jti,
          sub: SUB,
          clientId: SUB,
          cls: 'bench-read',
          aud: AUD,
          scope: 'r',
          kid: 'k1',
          iat,
          exp: iat + 300,
          fingerprint: 'f',
        });
        if (i % USE_EVERY === 0)
          uses.push({
            jti,
            sub: SUB,
            tid: null,
            operation: 'GET /r',
            source: '10.0.0.2',
            decision: 'allow',
            reason: '',
            reporter: 'spiffe://bench.writ/api',
            userAgent: null,
            count: 3,
            firstSeen: ts + 100,
            lastSeen: ts + 400,
          });
      }
      await tx.appendAuditBatch(drafts);
    });
  }
  for (let i = 0; i < uses.length; i += 1000) await store.addUsage(uses.slice(i, i + 1000));
  return uses.length;
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-govern-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore({ path: join(dir, 'writ.db') });
  const useKinds = await fill(store);
  const head = await store.auditHead();
  const until = T0 + TOKENS * 1000 + 60_000;
  const prove = () =>
    proveGovernance(store, {
      since: T0 - 1,
      until,
      head,
      signed: false,
      propagationMs: 15_000,
      expiryLeewayMs: 5_000,
      maxLifetime: 86_400,
    });
  const time = async (fn) => {
    const start = process.hrtime.bigint();
    const r = await fn();
    return { r, ms: Number(process.hrtime.bigint() - start) / 1e6 };
  };
  const rows = [['run', 'events', 'proof ms', 'proof events/s', 'chain walk ms', 'proof ÷ walk', 'load']];
  const runs = [];
  for (let run = 0; run < RUNS; run++) {
    const order = run % 2 === 0 ? ['walk', 'proof'] : ['proof', 'walk'];
    const got = {};
    for (const what of order) got[what] = await time(what === 'walk' ? () => verifyAuditChain(store) : prove);
    if (!got.walk.r.ok || got.proof.r.result !== 'held')
      throw new Error(
        `the bench store must verify and hold: ${JSON.stringify(got.proof.r.findings.slice(0, 3))}`,
      );
    const events = got.proof.r.chain.events;
    const r = {
      events,
      proofMs: got.proof.ms,
      walkMs: got.walk.ms,
      ratio: got.proof.ms / got.walk.ms,
      load: Number(loadAverage()),
    };
    runs.push(r);
    rows.push([
      String(run + 1),
      String(events),
      fmt(r.proofMs),
      fmt((events / r.proofMs) * 1000),
      fmt(r.walkMs),
      fmt(r.ratio, 2),
      fmt(r.load, 2),
    ]);
  }
  const med = (k) => median(runs.map((r) => r[k]));
  rows.push([
    'median',
    String(runs[0].events),
    fmt(med('proofMs')),
    fmt((runs[0].events / med('proofMs')) * 1000),
    fmt(med('walkMs')),
    fmt(med('ratio'), 2),
    '',
  ]);
  console.log(
    `govern verify over ${TOKENS} issuances, ${useKinds} accepted use kinds, one revocation per ${REVOKE_EVERY} tokens (SQLite)`,
  );
  printTable(rows);
  writeResults('govern-verify', {
    tokens: TOKENS,
    useKinds,
    runs,
    median: { proofMs: med('proofMs'), walkMs: med('walkMs'), ratio: med('ratio') },
  });
  await store.close();
}

runMain(main);
