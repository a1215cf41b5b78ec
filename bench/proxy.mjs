// The vendor-key proxy against a bare pass-through proxy on the same HTTP client (undici), for issue 15:
// proxied requests/s ÷ bare requests/s (target ≥ 0.7), and the latency the proxy adds at half of its
// peak (target: p50 ≤ 1 ms more than the bare proxy at the same offered rate).
//
// Core 0: the proxy under test, alone — `writ proxy` (the real CLI: SDK verifier following the event
// stream, DPoP proof check, route check, key leased from the server, injection, echo redaction, usage
// reports) or the bare proxy (forwards with the key, checks nothing). Core 1: the Writ server, the fake
// vendor and this driver. Each request carries a DPoP-bound token and a fresh proof (made before the timed
// phase, so the driver's signing does not count), to both proxies alike.
//
// Shapes, per run: many clients (16 connections, closed loop), one busy client (1 connection, closed
// loop), and an open loop at half of the Writ proxy's peak (latency from each request's scheduled time).
// Medians of --runs runs.
//
//   npm run build && npm --prefix bench install && node bench/proxy.mjs
//   node bench/proxy.mjs --runs 5 --seconds 10
//   node bench/proxy.mjs --profile DIR          also a V8 CPU profile of each proxy process, in DIR
//   node bench/proxy.mjs --instructions 1000    instructions per request under callgrind (load-proof)

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { benchClients, median, quantile } from './lib/common.mjs';
import {
  cleanupOnExit,
  pinned,
  pinSelf,
  processCpuSeconds,
  requirePinning,
  runJsonChild,
  stopChild,
  tempDir,
} from './lib/processes.mjs';
import { fmt, loadAverage, machine, printTable, runMain, writeResults } from './lib/report.mjs';
import { adminSession, ROOT, startWritServer, WRIT_CLI, workloadDoc } from './lib/writ-server.mjs';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '6' },
    connections: { type: 'string', default: '16' },
    // Writes a V8 CPU profile of each proxy process (writ and bare) into this directory.
    profile: { type: 'string' },
    // Instead of rates: each proxy under valgrind (callgrind), this many requests counted after as many
    // to warm up; prints instructions per request, which hardly move when the machine is loaded.
    instructions: { type: 'string' },
  },
});
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const VENDOR_AUD = 'https://vendor.bench.writ/payments';
// The cheaper binding on record beside DPoP: an unbound token on a route with `bearer: true` (no proof
// to check per request; the verified-token cache spares the token's signature).
const VENDOR_AUD_BEARER = 'https://vendor.bench.writ/payments-bearer';
const KEY = `sk_bench_${randomBytes(12).toString('hex')}`;
const PATH = '/v1/charges/ch_1';
const INSTRUCTIONS = args.instructions === undefined ? 0 : Number(args.instructions);
const NODE_ARGS = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [];

cleanupOnExit('proxy');
requirePinning();
pinSelf('1');

const sdk = (p) => import(pathToFileURL(join(ROOT, 'packages/sdk/dist/src', p)).href);
const { WorkloadClient } = await sdk('client/index.js');
const { createDpopProof } = await sdk('dpop/index.js');

let serverPid;
let vendorPid;

/** Starts `node bench/lib/proxy-parts.mjs <role>` on `core`; resolves with its port. */
async function part(role, core, config, nodeArgs = [], wrapper = []) {
  const child = pinned(
    core,
    [...nodeArgs, join(ROOT, 'bench/lib/proxy-parts.mjs'), role],
    { stdio: ['pipe', 'pipe', 'inherit'] },
    { wrapper },
  );
  child.stdin.end(JSON.stringify(config));
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(JSON.parse(d.toString()).port));
    child.once('exit', (c) => reject(new Error(`${role} exited ${c}`)));
  });
  return { child, origin: `http://127.0.0.1:${port}` };
}

/** `writ proxy` on `core` for the route `payments`; resolves once it answers /healthz. */
async function writProxy(core, { issuer, configDir, client, keyFile }, wrapper = []) {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = pinned(
    core,
    [
      ...NODE_ARGS,
      WRIT_CLI,
      '--server',
      issuer,
      'proxy',
      '--config',
      configDir,
      '--client-id',
      client.clientId,
      '--key',
      keyFile,
      '--port',
      String(port),
    ],
    { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, NODE_ENV: 'production' } },
    { wrapper },
  );
  const origin = `http://127.0.0.1:${port}`;
  // Up to 2 min plain: on a machine loaded by other work start-up alone can take 20 s and more.
  for (let i = 0; i < (wrapper.length > 0 ? 12_000 : 1200); i++) {
    try {
      if ((await fetch(`${origin}/healthz`)).ok) return { child, origin };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('writ proxy did not become ready');
}

/** Proofs for `n` GETs of `url` with `token`, made now (fresh for the phase that follows). */
function proofs(caller, token, url, n) {
  const now = Math.floor(Date.now() / 1000);
  return Array.from({ length: n }, () =>
    createDpopProof(caller.dpopKey, { method: 'GET', url, accessToken: token, nowSeconds: now }),
  );
}

/**
 * Closed loop over `connections` for `seconds`: requests/s, and the proxy process's CPU share. `shape`:
 * the route, the token, and the caller whose key makes a fresh DPoP proof per request (none: the token
 * is sent as `Bearer`, to a route with `bearer: true`).
 */
async function closedLoop(origin, pid, shape, connections, seconds, expectedRate) {
  const { route, token, caller } = shape;
  const others = { server: serverPid, vendor: vendorPid };
  const url = `${origin}/vendors/${route}${PATH}`;
  const list = caller
    ? proofs(caller, token, url, Math.ceil(expectedRate * seconds * 1.5) + 1000)
    : Array.from({ length: Math.ceil(expectedRate * seconds * 1.5) + 1000 }, () => undefined);
  const pool = new Pool(origin, { connections, pipelining: 1 });
  let next = 0;
  let done = 0;
  let failed = 0;
  const cpu0 = processCpuSeconds(pid);
  const others0 = Object.fromEntries(Object.entries(others).map(([k, p]) => [k, processCpuSeconds(p)]));
  const driver0 = process.cpuUsage();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < until && next < list.length) {
        const proof = list[next++];
        const res = await pool.request({
          path: `/vendors/${route}${PATH}`,
          method: 'GET',
          headers: caller
            ? { authorization: `DPoP ${token}`, dpop: proof }
            : { authorization: `Bearer ${token}` },
        });
        await res.body.text();
        if (res.statusCode === 200) done++;
        else failed++;
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = (processCpuSeconds(pid) - cpu0) / elapsed;
  const driver = process.cpuUsage(driver0);
  // CPU microseconds per request of each process: the proxy's own cost, and what it costs the others
  // (the server takes the proxy's usage reports; it shares core 1 with the vendor and this driver).
  const perRequest = { proxy: (cpu * elapsed * 1e6) / done };
  for (const [k, p] of Object.entries(others))
    perRequest[k] = ((processCpuSeconds(p) - others0[k]) * 1e6) / done;
  perRequest.driver = (driver.user + driver.system) / done;
  await pool.close();
  if (next >= list.length) throw new Error('ran out of proofs: raise the estimate');
  if (failed > 0) throw new Error(`${failed} requests failed`);
  return { rate: done / elapsed, cpu, perRequest };
}

/** Exactly `n` requests over `connections`, proofs made 100 at a time just before they are sent. */
async function countLoop(origin, token, caller, connections, n) {
  const url = `${origin}/vendors/payments${PATH}`;
  for (let sent = 0; sent < n; ) {
    // A pool per 100: under valgrind a connection can sit idle past the proxy's keep-alive timeout.
    const pool = new Pool(origin, {
      connections,
      pipelining: 1,
      headersTimeout: 600_000,
      bodyTimeout: 600_000,
    });
    const list = proofs(caller, token, url, Math.min(100, n - sent));
    let next = 0;
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (next < list.length) {
          const res = await pool.request({
            path: `/vendors/payments${PATH}`,
            method: 'GET',
            headers: { authorization: `DPoP ${token}`, dpop: list[next++] },
          });
          const text = await res.body.text();
          if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
        }
      }),
    );
    sent += list.length;
    await pool.close();
  }
}

/** `callgrind_control -z|-d` on `pid`; `-d` returns the instructions since the last zero, every thread. */
function callgrind(flag, pid, outDir) {
  const before = new Set(readdirSync(outDir));
  const r = spawnSync('callgrind_control', [flag, String(pid)], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0 || !/OK/.test(r.stdout))
    throw new Error(`callgrind_control ${flag}: ${r.stdout}${r.stderr}`);
  if (flag !== '-d') return undefined;
  let all = 0;
  let main = 0;
  for (const f of readdirSync(outDir).filter((x) => !before.has(x))) {
    const total = Number(/^totals:\s*(\d+)/m.exec(readFileSync(join(outDir, f), 'utf8'))?.[1] ?? 0);
    all += total;
    if (/-0*1$/.test(f)) main = total;
  }
  return { all, main };
}

/** Open loop at `rate` for `seconds`: latency quantiles (ms) from each request's scheduled time. */
async function openLoop(origin, token, caller, rate, seconds) {
  const url = `${origin}/vendors/payments${PATH}`;
  const n = Math.floor(rate * seconds);
  const list = proofs(caller, token, url, n);
  const pool = new Pool(origin, { connections: 64, pipelining: 1 });
  const lat = [];
  let failed = 0;
  const t0 = performance.now();
  const pending = [];
  for (let i = 0; i < n; i++) {
    const at = t0 + (i * 1000) / rate;
    const wait = at - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(
      pool
        .request({
          path: `/vendors/payments${PATH}`,
          method: 'GET',
          headers: { authorization: `DPoP ${token}`, dpop: list[i] },
        })
        .then(async (res) => {
          await res.body.text();
          if (res.statusCode !== 200) failed++;
          lat.push(performance.now() - at);
        }),
    );
  }
  await Promise.all(pending);
  await pool.close();
  if (failed > 0) throw new Error(`${failed} requests failed`);
  lat.sort((a, b) => a - b);
  return { p50: quantile(lat, 0.5), p99: quantile(lat, 0.99) };
}

const cpuLine = (c) =>
  Object.entries(c)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(' ');

runMain(async () => {
  const [caller, proxyWorkload, bearerCaller] = benchClients(3);
  const server = await startWritServer({
    core: '1',
    classes: (issuer) => [
      {
        name: 'vendor-call',
        audiences: [VENDOR_AUD],
        scopes: ['payments:charge'],
        default_scopes: ['payments:charge'],
        max_ttl: '1h',
        default_ttl: '1h',
      },
      {
        name: 'vendor-call-bearer',
        binding: 'bearer',
        audiences: [VENDOR_AUD_BEARER],
        scopes: ['payments:charge'],
        default_scopes: ['payments:charge'],
        max_ttl: '1h',
        default_ttl: '1h',
      },
      {
        name: 'vendor-proxy',
        audiences: [`${issuer}/v1/events`, `${issuer}/v1/usage`, `${issuer}/v1/vendor-keys`],
        scopes: ['events:read'],
        default_scopes: ['events:read'],
        max_ttl: '1h',
        default_ttl: '1h',
      },
    ],
    workloads: [
      workloadDoc(caller, ['vendor-call']),
      workloadDoc(bearerCaller, ['vendor-call-bearer']),
      workloadDoc(proxyWorkload, ['vendor-proxy'], { serves: [VENDOR_AUD, VENDOR_AUD_BEARER] }),
    ],
    // A static vendor key is an exception on record (docs/governance.md): leased only while it holds.
    files: {
      'exceptions/payments-key.yaml': {
        id: 'payments-key',
        covers: { kind: 'vendor_key', key: 'payments' },
        owner: 'team-bench',
        justification: 'the benchmark vendor only takes a static key',
        expires: '2099-12-31',
      },
      // An unbound token is an exception too (its class is on record as one).
      'exceptions/bearer-vendor-call.yaml': {
        id: 'bearer-vendor-call',
        covers: { kind: 'bearer_class', class: 'vendor-call-bearer' },
        owner: 'team-bench',
        justification: 'the benchmark measures the proxy without a proof per request',
        expires: '2099-12-31',
      },
    },
    // The driver is one client making thousands of requests a second, each reported by the proxy.
    settings: { limits: { client_rate: 100_000, client_burst: 100_000 } },
    readyMs: 120_000,
  });
  const vendor = await part('vendor', '1', { key: KEY });
  serverPid = server.pid;
  vendorPid = vendor.child.pid;
  const dir = tempDir('writ-bench-proxy-');
  const configDir = join(dir, 'config');
  mkdirSync(join(configDir, 'vendors'), { recursive: true });
  writeFileSync(
    join(configDir, 'vendors', 'payments.yaml'),
    `upstream: { origin: "${vendor.origin}" }\nkey: payments\ninject: { header: { name: Authorization, value: "Bearer {key}" } }\naudience: ${VENDOR_AUD}\nscopes: [payments:charge]\nallow: [{ methods: [GET], paths: ["/v1/charges/*"] }]\n`,
  );
  writeFileSync(
    join(configDir, 'vendors', 'payments-bearer.yaml'),
    `upstream: { origin: "${vendor.origin}" }\nkey: payments\ninject: { header: { name: Authorization, value: "Bearer {key}" } }\naudience: ${VENDOR_AUD_BEARER}\nscopes: [payments:charge]\nbearer: true\nallow: [{ methods: [GET], paths: ["/v1/charges/*"] }]\n`,
  );
  const keyFile = join(dir, 'proxy.jwk');
  writeFileSync(keyFile, JSON.stringify(proxyWorkload.privateJwk), { mode: 0o600 });
  const secretFile = join(dir, 'vendor.key');
  writeFileSync(secretFile, KEY, { mode: 0o600 });
  const admin = adminSession(server.issuer, server.operatorKeyFile);
  await admin.post('/vendor-keys', { name: 'payments', secret: KEY, proxies: [proxyWorkload.clientId] });

  const client = new WorkloadClient({
    issuer: server.issuer,
    clientId: caller.clientId,
    privateJwk: caller.privateJwk,
  });
  const { access_token: token } = await client.requestToken({ audience: VENDOR_AUD });
  const bearerClient = new WorkloadClient({
    issuer: server.issuer,
    clientId: bearerCaller.clientId,
    privateJwk: bearerCaller.privateJwk,
    dpop: false,
  });
  const { access_token: bearerToken } = await bearerClient.requestToken({ audience: VENDOR_AUD_BEARER });
  const dpopShape = { route: 'payments', token, caller: client };
  const bearerShape = { route: 'payments-bearer', token: bearerToken };

  if (INSTRUCTIONS > 0) {
    const counted = {};
    for (const name of ['writ', 'bare']) {
      const outDir = tempDir(`writ-bench-proxy-callgrind-${name}-`);
      const wrapper = [
        'valgrind',
        '--tool=callgrind',
        // V8 rewrites the machine code it generated: valgrind must notice, or it runs stale translations.
        '--smc-check=all-non-file',
        '--separate-threads=yes',
        `--callgrind-out-file=${join(outDir, 'callgrind.out')}`,
      ];
      const t =
        name === 'writ'
          ? await writProxy(
              '0',
              { issuer: server.issuer, configDir, client: proxyWorkload, keyFile },
              wrapper,
            )
          : await part('bare', '0', { upstream: vendor.origin, key: KEY }, [], wrapper);
      await countLoop(t.origin, token, client, 4, INSTRUCTIONS);
      await new Promise((r) => setTimeout(r, 3000));
      callgrind('-z', t.child.pid, outDir);
      await countLoop(t.origin, token, client, 4, INSTRUCTIONS);
      const c = callgrind('-d', t.child.pid, outDir);
      counted[name] = { perRequest: c.all / INSTRUCTIONS, mainPerRequest: c.main / INSTRUCTIONS };
      process.stderr.write(
        `proxy: ${name}: ${fmt(counted[name].perRequest)} instructions per request (main thread ${fmt(counted[name].mainPerRequest)})\n`,
      );
      await stopChild(t.child, 30_000);
    }
    await stopChild(vendor.child);
    await server.stop();
    printTable([
      ['instructions per request', 'writ proxy', 'bare proxy', 'bare ÷ writ'],
      [
        'every thread',
        fmt(counted.writ.perRequest),
        fmt(counted.bare.perRequest),
        fmt(counted.bare.perRequest / counted.writ.perRequest, 2),
      ],
      [
        'main thread',
        fmt(counted.writ.mainPerRequest),
        fmt(counted.bare.mainPerRequest),
        fmt(counted.bare.mainPerRequest / counted.writ.mainPerRequest, 2),
      ],
    ]);
    writeResults('proxy-instructions', { machine: machine(), requests: INSTRUCTIONS, counted });
    return;
  }

  const writ = await writProxy('0', { issuer: server.issuer, configDir, client: proxyWorkload, keyFile });
  const bare = await part('bare', '0', { upstream: vendor.origin, key: KEY }, NODE_ARGS);
  const targets = { writ, bare };
  // Warm both (JIT, connections, the proxy's lease and verified-token cache).
  for (const t of Object.values(targets))
    for (const shape of [dpopShape, bearerShape])
      await closedLoop(t.origin, t.child.pid, shape, CONNECTIONS, 2, 10_000);

  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const load = loadAverage();
    const run = { load };
    for (const [name, t] of Object.entries(targets)) {
      run[name] = {
        many: await closedLoop(t.origin, t.child.pid, dpopShape, CONNECTIONS, SECONDS, 10_000),
        one: await closedLoop(t.origin, t.child.pid, dpopShape, 1, SECONDS, 5_000),
        bearer: await closedLoop(t.origin, t.child.pid, bearerShape, CONNECTIONS, SECONDS, 10_000),
      };
    }
    // One ES256 verification of a fresh proof, alone on the proxies' core (both proxies idle now).
    run.es256 = (await runJsonChild('0', join(ROOT, 'bench/lib/es256-verify.mjs'), {}, 120_000)).us;
    // The best any proxy that checks a fresh DPoP proof per request could reach against the bare one:
    // the bare proxy's CPU per request, plus one verification, and nothing else.
    const bareUs = run.bare.many.perRequest.proxy;
    run.bound = bareUs / (bareUs + run.es256);
    const half = run.writ.many.rate / 2;
    for (const [name, t] of Object.entries(targets))
      run[name].half = await openLoop(t.origin, token, client, half, SECONDS);
    run.halfRate = half;
    runs.push(run);
    process.stderr.write(
      `proxy: run ${r + 1}/${RUNS} (load ${load}): writ ${fmt(run.writ.many.rate)}/s, bare ${fmt(run.bare.many.rate)}/s, ratio ${fmt(run.writ.many.rate / run.bare.many.rate, 2)}; CPU µs/request writ ${cpuLine(run.writ.many.perRequest)}, bare ${cpuLine(run.bare.many.perRequest)}; one ES256 verify ${fmt(run.es256, 1)} µs, crypto bound ${fmt(run.bound, 2)}, writ ÷ bound ${fmt(run.writ.many.rate / run.bare.many.rate / run.bound, 2)}; bearer route: writ ${fmt(run.writ.bearer.rate)}/s, bare ${fmt(run.bare.bearer.rate)}/s, ratio ${fmt(run.writ.bearer.rate / run.bare.bearer.rate, 2)}, CPU µs/request writ ${fmt(run.writ.bearer.perRequest.proxy)} bare ${fmt(run.bare.bearer.perRequest.proxy)}; p50 at ${fmt(half)}/s: ${fmt(run.writ.half.p50, 2)} vs ${fmt(run.bare.half.p50, 2)} ms\n`,
    );
  }
  for (const t of Object.values(targets)) await stopChild(t.child);
  await stopChild(vendor.child);
  await server.stop();

  const m = (f) => median(runs.map(f));
  const result = {
    machine: machine(),
    runs,
    median: {
      many: {
        writ: m((r) => r.writ.many.rate),
        bare: m((r) => r.bare.many.rate),
        ratio: m((r) => r.writ.many.rate / r.bare.many.rate),
      },
      one: {
        writ: m((r) => r.writ.one.rate),
        bare: m((r) => r.bare.one.rate),
        ratio: m((r) => r.writ.one.rate / r.bare.one.rate),
      },
      cpu: { writ: m((r) => r.writ.many.cpu), bare: m((r) => r.bare.many.cpu) },
      es256: m((r) => r.es256),
      bound: m((r) => r.bound),
      ofBound: m((r) => r.writ.many.rate / r.bare.many.rate / r.bound),
      cpuRatio: m((r) => r.bare.many.perRequest.proxy / r.writ.many.perRequest.proxy),
      bearer: {
        writ: m((r) => r.writ.bearer.rate),
        bare: m((r) => r.bare.bearer.rate),
        ratio: m((r) => r.writ.bearer.rate / r.bare.bearer.rate),
        writUs: m((r) => r.writ.bearer.perRequest.proxy),
        bareUs: m((r) => r.bare.bearer.perRequest.proxy),
        cpuRatio: m((r) => r.bare.bearer.perRequest.proxy / r.writ.bearer.perRequest.proxy),
      },
      perRequest: Object.fromEntries(
        ['writ', 'bare'].map((t) => [
          t,
          Object.fromEntries(
            Object.keys(runs[0][t].many.perRequest).map((k) => [k, m((r) => r[t].many.perRequest[k])]),
          ),
        ]),
      ),
      half: {
        rate: m((r) => r.halfRate),
        writP50: m((r) => r.writ.half.p50),
        bareP50: m((r) => r.bare.half.p50),
        addedP50: m((r) => r.writ.half.p50 - r.bare.half.p50),
        writP99: m((r) => r.writ.half.p99),
        bareP99: m((r) => r.bare.half.p99),
      },
    },
  };
  const md = result.median;
  printTable([
    ['shape', 'writ proxy', 'bare proxy', 'writ ÷ bare', 'target'],
    [
      `${CONNECTIONS} connections, req/s`,
      fmt(md.many.writ),
      fmt(md.many.bare),
      fmt(md.many.ratio, 2),
      '≥ 0.70',
    ],
    ['1 connection, req/s', fmt(md.one.writ), fmt(md.one.bare), fmt(md.one.ratio, 2), ''],
    [
      `bearer route, ${CONNECTIONS} conn., req/s`,
      fmt(md.bearer.writ),
      fmt(md.bearer.bare),
      fmt(md.bearer.ratio, 2),
      '',
    ],
    [
      'proxy CPU µs per request: DPoP, bearer route',
      `${fmt(md.perRequest.writ.proxy)}, ${fmt(md.bearer.writUs)}`,
      `${fmt(md.perRequest.bare.proxy)}, ${fmt(md.bearer.bareUs)}`,
      `${fmt(md.cpuRatio, 2)}, ${fmt(md.bearer.cpuRatio, 2)} (by CPU)`,
      '',
    ],
    ['one ES256 verify of a fresh proof (core 0), µs', fmt(md.es256, 1), '', '', ''],
    [
      'crypto bound: bare ÷ (bare + one verify), by CPU',
      '',
      '',
      fmt(md.bound, 2),
      md.bound < 0.7 ? 'below 0.70: the target is out of reach with a fresh proof' : '',
    ],
    ['writ ÷ bare, as a share of the bound', '', '', fmt(md.ofBound, 2), ''],
    ['proxy process CPU (cores), 16 conn.', fmt(md.cpu.writ, 2), fmt(md.cpu.bare, 2), '', ''],
    ...Object.keys(md.perRequest.writ).map((k) => [
      `${k} CPU µs per request, 16 conn.`,
      fmt(md.perRequest.writ[k]),
      fmt(md.perRequest.bare[k]),
      '',
      '',
    ]),
    [
      `p50 at ${fmt(md.half.rate)}/s (half of peak), ms`,
      fmt(md.half.writP50, 2),
      fmt(md.half.bareP50, 2),
      `+${fmt(md.half.addedP50, 2)} ms`,
      '≤ +1 ms',
    ],
    [`p99 at ${fmt(md.half.rate)}/s, ms`, fmt(md.half.writP99, 2), fmt(md.half.bareP99, 2), '', ''],
  ]);
  writeResults('proxy', result);
});
