// Instructions per token at the token endpoint: `writ serve` runs under valgrind (callgrind), a fixed
// number of token requests is sent, and the instructions the server executed for them (every thread,
// JavaScript, V8, node and SQLite; not the kernel) are counted. Unlike tokens per second or CPU time,
// the count hardly moves when other processes load the machine, so two builds can be compared on a busy
// machine: run it once per checkout (`--root`) and compare instructions per token.
//
// The requests are the issuance benchmark's (client_credentials, private_key_jwt ES256 assertions with
// single-use jti, ES256 bearer access tokens, audit on, SQLite), over keep-alive HTTP on loopback. A
// warm-up (JIT, caches, replay table) and a pause for its garbage collection come first; the counters are
// zeroed after them, and dumped after the measured requests. Printed: instructions per token on every
// thread, and on the main thread alone, which is steadier (the other threads are V8's concurrent garbage
// collector and compilers, whose work lands in one window or the next). Two things are counted that are
// not per token: the server's timers (task sweeper, checkpoints), which run as often per second as usual
// while a token takes tens of milliseconds under valgrind (about 1.5M instructions/s, a few percent), and
// an old-generation collection when one falls in the window (more tokens average it out).
//
//   npm run build && npm --prefix bench install
//   node bench/instructions.mjs                              this checkout, 2,000 tokens after 2,000 warm-up
//   node bench/instructions.mjs --root ../other-checkout     another checkout's build (built there)
//   node bench/instructions.mjs --runs 3 --tokens 4000 --connections 8
//   node bench/instructions.mjs --dumps DIR                 keep callgrind's dumps (one file per thread), or
//                                                            the .cpuprofile, in DIR/run-N
//   node bench/instructions.mjs --cpu-prof                   no valgrind: node --cpu-prof over the measured
//                                                            requests, self and inclusive time per function
//
// Every child is ended and every temp directory removed on exit, also on error or Ctrl-C.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { AUDIENCE, benchClients, median, SCOPES, TOKEN_TTL, tokenRequestBodies } from './lib/common.mjs';
import { cleanupOnExit, tempDir } from './lib/processes.mjs';
import { printCpuProfile, readCpuProfile, summarizeCpuProfile } from './lib/profile.mjs';
import { runMain, writeResults } from './lib/report.mjs';
import { logTail, ROOT, startWritServer, workloadDoc, writCli } from './lib/writ-server.mjs';

const { values: opts } = parseArgs({
  options: {
    root: { type: 'string', default: ROOT },
    tokens: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '2000' },
    connections: { type: 'string', default: '8' },
    clients: { type: 'string', default: '64' },
    runs: { type: 'string', default: '1' },
    'settle-seconds': { type: 'string', default: '10' },
    'cpu-prof': { type: 'boolean', default: false },
    dumps: { type: 'string' },
  },
});
const bounded = (name, min, max) => {
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return v;
};
const TOKENS = bounded('tokens', 1, 100_000);
const WARMUP = bounded('warmup', 0, 100_000);
const CONNECTIONS = bounded('connections', 1, 256);
const CLIENTS = bounded('clients', 1, 1000);
const RUNS = bounded('runs', 1, 20);
const SETTLE_SECONDS = bounded('settle-seconds', 0, 120);
const CPU_PROF = opts['cpu-prof'];
const CHECKOUT = resolve(opts.root);
const CLI = writCli(CHECKOUT);
const PATH = '/oauth2/token';
/** Assertions are made this many at a time, just before they are sent: they expire 240 s after. */
const CHUNK = 250;
/** Requests dropped by the server's header timeout (see `issue`) that may be sent again, per phase. */
const MAX_RETRIES = 20;

cleanupOnExit('instructions');

function requireTools() {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` in ${CHECKOUT}`);
  if (!CPU_PROF) {
    for (const tool of ['valgrind', 'callgrind_control']) {
      if (spawnSync(tool, ['--version']).error)
        throw new Error(`${tool} is required (apt-get install valgrind)`);
    }
  }
}

/**
 * Sends `count` token requests on CONNECTIONS connections; each must be answered 200 with a token.
 * Under valgrind on a loaded machine the server can stall past node's header timeout and drop a request
 * as malformed (400, nothing issued, nothing audited): such a request is sent again, with a fresh
 * assertion, at most MAX_RETRIES times in all. Returns how many were sent again.
 */
async function issue(pool, clients, origin, count, prefix) {
  let retried = 0;
  for (let done = 0; done < count; ) {
    const bodies = tokenRequestBodies({
      clients,
      audienceOfAssertion: origin,
      count: Math.min(CHUNK, count - done),
      prefix: `${prefix}-${done}`,
    });
    let next = 0;
    const worker = async () => {
      while (next < bodies.length) {
        const i = next++;
        for (let attempt = 0; ; attempt++) {
          const body =
            attempt === 0
              ? bodies[i]
              : tokenRequestBodies({
                  clients,
                  audienceOfAssertion: origin,
                  count: 1,
                  prefix: `${prefix}-r`,
                })[0];
          const res = await pool.request({
            path: PATH,
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
            body,
          });
          const text = await res.body.text();
          if (res.statusCode === 200 && typeof JSON.parse(text).access_token === 'string') break;
          const timedOut = res.statusCode === 400 && text.includes('malformed HTTP request');
          if (!timedOut || ++retried > MAX_RETRIES)
            throw new Error(`token request: HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, worker));
    done += bodies.length;
  }
  return retried;
}

/** `callgrind_control` on the server: `-z` zeroes the counters, `-d` dumps them to a new file. */
function callgrind(flag, pid) {
  const r = spawnSync('callgrind_control', [flag, String(pid)], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0 || !/OK/.test(r.stdout))
    throw new Error(`callgrind_control ${flag}: ${r.stdout}${r.stderr}`);
}

/**
 * Dumps the counters and returns the instructions counted since they were last zeroed: on every thread,
 * and on the main thread alone (JavaScript, node, SQLite; the other threads are V8's concurrent garbage
 * collection and compilers, and libuv's pool).
 */
function dumpInstructions(pid, outDir) {
  const before = new Set(readdirSync(outDir));
  callgrind('-d', pid);
  const fresh = readdirSync(outDir).filter((f) => !before.has(f));
  if (fresh.length === 0) throw new Error(`no new callgrind dump in ${outDir}`);
  let all = 0;
  let main;
  for (const f of fresh) {
    const text = readFileSync(join(outDir, f), 'utf8');
    const m = /^totals:\s*(\d+)/m.exec(text);
    if (!m) throw new Error(`no totals in ${f}`);
    all += Number(m[1]);
    // One file per thread (--separate-threads=yes), named <out>.<dump>-<thread>; thread 1 is node's main.
    if (/-0*1$/.test(f)) main = Number(m[1]);
  }
  if (main === undefined) throw new Error(`no main-thread dump among ${fresh.join(', ')}`);
  return { all, main };
}

async function run(i) {
  const clients = benchClients(CLIENTS);
  const outDir = opts.dumps ? resolve(opts.dumps, `run-${i + 1}`) : tempDir('writ-callgrind-');
  mkdirSync(outDir, { recursive: true });
  const profDir = CPU_PROF && opts.dumps ? outDir : tempDir('writ-cpuprof-');
  const wrapper = CPU_PROF
    ? []
    : [
        'valgrind',
        '--tool=callgrind',
        // V8 rewrites the machine code it generated: valgrind must notice, or it runs stale translations.
        '--smc-check=all-non-file',
        '--separate-threads=yes',
        `--callgrind-out-file=${join(outDir, 'callgrind.out')}`,
      ];
  const server = await startWritServer({
    core: '0',
    cli: CLI,
    wrapper,
    nodeArgs: CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
    readyMs: CPU_PROF ? 20_000 : 600_000,
    classes: () => [
      {
        name: 'bench',
        description: 'issuance benchmark',
        max_ttl: `${TOKEN_TTL}s`,
        default_ttl: `${TOKEN_TTL}s`,
        audiences: [AUDIENCE],
        scopes: SCOPES,
        binding: 'bearer',
      },
    ],
    workloads: clients.map((c) => workloadDoc(c, ['bench'])),
  });
  const pool = new Pool(server.origin, {
    connections: CONNECTIONS,
    pipelining: 1,
    keepAliveTimeout: 600_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: 600_000,
    bodyTimeout: 600_000,
  });
  try {
    const t0 = Date.now();
    const warmRetried = await issue(pool, clients, server.origin, WARMUP, `w${i}`);
    const warmSeconds = (Date.now() - t0) / 1000;
    if (!CPU_PROF && SETTLE_SECONDS > 0) {
      // Let the warm-up's garbage collection finish (V8 marks and sweeps on other threads after the
      // requests, and collects once more when the process goes idle) before counting starts.
      await new Promise((r) => setTimeout(r, SETTLE_SECONDS * 1000));
    }
    if (!CPU_PROF) callgrind('-z', server.pid);
    const from = process.hrtime.bigint();
    const t1 = Date.now();
    const retried = await issue(pool, clients, server.origin, TOKENS, `m${i}`);
    const seconds = (Date.now() - t1) / 1000;
    const window = [Number(from / 1000n), Number(process.hrtime.bigint() / 1000n)];
    const result = { run: i + 1, tokens: TOKENS, warmup: WARMUP, warmSeconds, seconds, warmRetried, retried };
    if (!CPU_PROF) {
      const counted = dumpInstructions(server.pid, outDir);
      result.instructions = counted.all;
      result.mainThread = counted.main;
      result.perToken = counted.all / TOKENS;
      result.mainPerToken = counted.main / TOKENS;
    }
    await pool.close();
    await server.stop();
    if (CPU_PROF) {
      result.profile = summarizeCpuProfile(readCpuProfile(profDir), CHECKOUT, window);
      result.profileWindow = window;
    }
    return result;
  } catch (err) {
    await pool.close().catch(() => undefined);
    await server.stop();
    throw new Error(`${err.message}\nserver log:\n${logTail(server)}`);
  }
}

const fmt = (n, d = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d }) : 'n/a';

async function main() {
  requireTools();
  const head = spawnSync('git', ['-C', CHECKOUT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const commit = head.stdout.trim() || 'unknown';
  console.log(
    `${CPU_PROF ? 'CPU profile' : 'Instructions (callgrind)'} of writ serve at ${commit}: ` +
      `${fmt(TOKENS)} tokens after ${fmt(WARMUP)} warm-up, ${CONNECTIONS} connections, ${CLIENTS} clients, ` +
      `${RUNS} run(s)`,
  );
  const results = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await run(i);
    results.push(r);
    if (CPU_PROF) {
      console.log(`run ${r.run}: ${fmt(TOKENS / r.seconds)} tokens/s under --cpu-prof; self time:`);
      printCpuProfile(r.profile, { top: 30, inclusive: 30, areas: false });
    } else {
      console.log(
        `run ${r.run}: ${fmt(r.perToken)} instructions/token, ${fmt(r.mainPerToken)} on the main thread ` +
          `(${fmt(TOKENS)} tokens in ${fmt(r.seconds, 1)} s${r.retried ? `; ${r.retried} sent again after a timeout` : ''})`,
      );
    }
  }
  if (!CPU_PROF) {
    const summary = (key) => {
      const v = results.map((r) => r[key]);
      const m = median(v);
      return `${fmt(m)}${RUNS > 1 ? ` (spread ${fmt(((Math.max(...v) - Math.min(...v)) / m) * 100, 1)}%)` : ''}`;
    };
    console.log(
      `\n${commit}: median over ${RUNS} run(s): ${summary('perToken')} instructions/token, ` +
        `${summary('mainPerToken')} on the main thread`,
    );
  }
  writeResults(`instructions-${commit}`, {
    commit,
    tokens: TOKENS,
    warmup: WARMUP,
    connections: CONNECTIONS,
    clients: CLIENTS,
    results,
  });
}

runMain(main);
