// `writ scan` throughput (issue 17): MB/s on one core over a generated corpus, for our scan (Writ
// tokens found and verified, secretlint's recommended preset, the client-secret rule, hashing against
// held secrets) and for the rule preset alone over the same files read the same way. Runs alternate,
// and which goes first alternates too, so both see the same machine load and page cache; the figure is
// the median of each, and ours ÷ preset (target ≥ 0.8). One process, one JavaScript thread: one core.
// Both run with secretlint's profiler switched off (the scan does it when loaded, see src/scan/find.ts):
// left on, it slows every file down by the number of files before it, for both alike.
//
// The corpus: `--mb` MB of text files of about 100 KB (log lines, JSON, source-like lines), with a
// Writ token (signed by a key made here, in Writ's header form) about every 200 KB, half of them
// truncated, and a vendor secret about every 400 KB, so both paths find and report things.
//
//   node bench/scan.mjs [--mb 200] [--runs 3] [--dist packages/server/dist]
//
// The corpus is written to a temporary directory, removed on exit.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { median } from './lib/common.mjs';
import { fmt, loadAverage, printTable, runMain, writeResults } from './lib/report.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, '..');

const { values: opts } = parseArgs({
  options: {
    mb: { type: 'string', default: '200' },
    runs: { type: 'string', default: '3' },
    dist: { type: 'string', default: join(ROOT, 'packages/server/dist') },
    /** Run one side alone (to profile it: node --cpu-prof bench/scan.mjs --only ours). */
    only: { type: 'string' },
  },
});
const MB = bounded('mb', 1, 2000);
const RUNS = bounded('runs', 1, 20);
const FILE_BYTES = 100 * 1024;
const ONLY = opts.only;
if (ONLY !== undefined && ONLY !== 'ours' && ONLY !== 'preset')
  throw new Error('--only must be ours or preset');

function bounded(name, min, max) {
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return v;
}

const dist = resolve(opts.dist);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { scan } = await load('src/scan/scan.js');
const { fileInputs } = await load('src/scan/sources.js');
const { HeldSecrets } = await load('src/scan/held-secrets.js');
// The preset alone, resolved from the server package as the scan resolves it.
const serverRequire = (await import('node:module')).createRequire(join(dist, '..', 'package.json'));
const { lintSource } = await import(pathToFileURL(serverRequire.resolve('@secretlint/core')).href);
const { creator: preset } = await import(
  pathToFileURL(serverRequire.resolve('@secretlint/secretlint-rule-preset-recommend')).href
);
const { importPublicJwk, jwkThumbprint } = await import(
  pathToFileURL(join(ROOT, 'packages/sdk/dist/src/jose/index.js')).href
);

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const rand = (n) => Array.from(randomBytes(n), (b) => ALNUM[b % ALNUM.length]).join('');

/** A key in Writ's form and tokens it signs, as the server would. */
function writSigner() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const kid = `writ-${jwkThumbprint(jwk)}`;
  const header = Buffer.from(JSON.stringify({ typ: 'at+jwt', kid, alg: 'ES256' })).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return {
    key: importPublicJwk({ ...jwk, kid, alg: 'ES256' }),
    token(i) {
      const claims = {
        iss: 'https://writ.bench',
        sub: 'spiffe://bench.writ/scan/job',
        aud: 'https://api.bench.writ',
        client_id: 'spiffe://bench.writ/scan/job',
        scope: 'bench:read',
        iat: now,
        nbf: now,
        exp: now + 300,
        jti: `bench-${i}-${rand(8)}`,
        cls: 'bench',
      };
      const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    },
  };
}

/** Lines a repository or a log holds, none of them a secret. */
function fillerLines(n) {
  const words = Array.from({ length: 400 }, () => rand(3 + (randomBytes(1)[0] % 9)).toLowerCase());
  const pick = () => words[randomBytes(2).readUInt16BE(0) % words.length];
  const lines = [];
  for (let i = 0; i < n; i++) {
    switch (i % 4) {
      case 0:
        lines.push(
          `2026-12-07T02:${String(i % 60).padStart(2, '0')}:00Z INFO ${pick()} ${pick()} request_id=${rand(16)} took=${i % 997}ms`,
        );
        break;
      case 1:
        lines.push(
          JSON.stringify({ level: 'debug', msg: `${pick()} ${pick()} ${pick()}`, user: pick(), n: i }),
        );
        break;
      case 2:
        lines.push(`  const ${pick()} = await ${pick()}.${pick()}(${pick()}, { ${pick()}: ${i} });`);
        break;
      default:
        lines.push(`# ${pick()} ${pick()} ${pick()} ${pick()} ${pick()} ${pick()} ${pick()}`);
    }
  }
  return lines;
}

function writeCorpus(dir, signer) {
  const filler = fillerLines(5000);
  let written = 0;
  let file = 0;
  let tokens = 0;
  let secrets = 0;
  while (written < MB * 1024 * 1024) {
    const lines = [];
    let size = 0;
    while (size < FILE_BYTES) {
      const l = filler[randomBytes(2).readUInt16BE(0) % filler.length];
      lines.push(l);
      size += l.length + 1;
    }
    if (file % 2 === 0) {
      const t = signer.token(tokens++);
      lines.splice(lines.length >> 1, 0, `curl -H "Authorization: DPoP ${tokens % 2 ? t : t.slice(0, 150)}"`);
    }
    if (file % 4 === 0) {
      lines.splice(lines.length >> 2, 0, `GITHUB_TOKEN=ghp_${rand(36)}`);
      secrets++;
    }
    const text = `${lines.join('\n')}\n`;
    const sub = join(dir, `d${Math.floor(file / 200)}`);
    if (file % 200 === 0) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${file}.log`), text);
    written += Buffer.byteLength(text);
    file++;
  }
  return { bytes: written, files: file, tokens, secrets };
}

/**
 * A full garbage collection before each timed pass, so a pass is not charged for what was left before
 * it: the corpus writer's 200 MB of strings (without this, whichever pass came first after writing the
 * corpus, always ours in run 1, ran 10-20% slower than in the later runs), or the other side's garbage.
 * It changes nothing either side does.
 */
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc');

/**
 * Wall time and this process's CPU time since `start`/`cpu`. The machine is shared: CPU time is what one
 * core spent on the scan, whatever else ran; wall time is printed beside it.
 */
function elapsed(start, cpu) {
  const used = process.cpuUsage(cpu);
  return {
    seconds: Number(process.hrtime.bigint() - start) / 1e9,
    cpuSeconds: (used.user + used.system) / 1e6,
  };
}

async function runOurs(dir, signer, held, secrets = true) {
  const skipped = { tooLarge: 0, binary: 0, unreadable: 0 };
  collectGarbage();
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const { findings, stats } = await scan(
    fileInputs([dir], 10 * 1024 * 1024, skipped),
    { keys: [signer.key], held, revoke: false, secrets, nowMs: Date.now() },
    skipped,
  );
  return { ...elapsed(start, cpu), bytes: stats.bytes, findings: findings.length };
}

async function runPreset(dir) {
  // The same walk and reads as ours (fileInputs), then secretlint alone on each file's text.
  const skipped = { tooLarge: 0, binary: 0, unreadable: 0 };
  const config = { rules: [{ id: '@secretlint/secretlint-rule-preset-recommend', rule: preset }] };
  let bytes = 0;
  let findings = 0;
  collectGarbage();
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  for await (const input of fileInputs([dir], 10 * 1024 * 1024, skipped)) {
    bytes += input.data.length;
    const r = await lintSource({
      source: { filePath: input.where.path, content: input.data.toString('utf8'), contentType: 'text' },
      options: { config, maskSecrets: false },
    });
    findings += r.messages.length;
  }
  return { ...elapsed(start, cpu), bytes, findings };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'writ-bench-scan-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const signer = writSigner();
  const corpus = writeCorpus(dir, signer);
  console.log(
    `corpus: ${fmt(corpus.bytes / 1048576, 1)} MB in ${corpus.files} files, ${corpus.tokens} Writ tokens (half truncated), ${corpus.secrets} GitHub tokens`,
  );
  const held = await HeldSecrets.load([]);
  // One warm-up pass of each over a slice of the files, so both run with compiled code and a warm cache.
  await runOurs(join(dir, 'd0'), signer, held);
  await runPreset(join(dir, 'd0'));
  if (ONLY !== undefined) {
    const r = ONLY === 'ours' ? await runOurs(dir, signer, held) : await runPreset(dir);
    console.log(`${ONLY} alone: ${fmt(r.bytes / 1048576 / r.cpuSeconds, 2)} MB per CPU-second`);
    return;
  }
  const ours = [];
  const alone = [];
  const ratios = [];
  const tokensOnly = [];
  const presetCpu = [];
  for (let i = 0; i < RUNS; i++) {
    let o;
    let p;
    if (i % 2 === 0) {
      o = await runOurs(dir, signer, held);
      p = await runPreset(dir);
    } else {
      p = await runPreset(dir);
      o = await runOurs(dir, signer, held);
    }
    const mbsO = o.bytes / 1048576 / o.cpuSeconds;
    const mbsP = p.bytes / 1048576 / p.cpuSeconds;
    ours.push(mbsO);
    alone.push(mbsP);
    ratios.push(mbsO / mbsP);
    // What ours adds, alone: the same walk and reads with Writ tokens only (no rule set).
    const t = await runOurs(dir, signer, held, false);
    tokensOnly.push(t.cpuSeconds);
    presetCpu.push(p.cpuSeconds);
    console.log(
      `run ${i + 1}: ours ${fmt(mbsO, 2)} MB per CPU-second (${fmt(o.bytes / 1048576 / o.seconds, 2)} MB/s wall, ${o.findings} findings), preset alone ${fmt(mbsP, 2)} (${fmt(p.bytes / 1048576 / p.seconds, 2)} wall, ${p.findings} findings), ratio ${fmt(mbsO / mbsP, 3)}; Writ tokens only ${fmt(t.cpuSeconds, 2)} CPU-s (${t.findings} findings)  load ${loadAverage()}`,
    );
  }
  const result = {
    oursMBps: median(ours),
    presetMBps: median(alone),
    ratio: median(ours) / median(alone),
    ratioPerRunMedian: median(ratios),
    tokensOnlyCpuSeconds: median(tokensOnly),
    // Ours is the preset plus the token path; the token path measured alone still holds the walk and
    // the reads both share, so preset ÷ (preset + token path) is a floor under ours ÷ preset that
    // the machine's noise cannot move much.
    ratioFloor: median(presetCpu) / (median(presetCpu) + median(tokensOnly)),
  };
  printTable([
    ['figure', 'value'],
    ['writ scan, MB per CPU-second (median)', fmt(result.oursMBps, 2)],
    ['preset alone, MB per CPU-second (median)', fmt(result.presetMBps, 2)],
    ['ours ÷ preset (target ≥ 0.8)', fmt(result.ratio, 3)],
    ['median of per-run ratios', fmt(result.ratioPerRunMedian, 3)],
    ['Writ tokens only (same walk, no rule set), CPU-s (median)', fmt(result.tokensOnlyCpuSeconds, 2)],
    ['preset alone, CPU-s (median)', fmt(median(presetCpu), 2)],
    ['floor of ours ÷ preset: preset ÷ (preset + tokens only)', fmt(result.ratioFloor, 3)],
  ]);
  writeResults('scan', {
    options: { mb: MB, runs: RUNS },
    corpus,
    runs: { ours, alone, ratios, tokensOnly, presetCpu },
    result,
  });
}

runMain(main);
