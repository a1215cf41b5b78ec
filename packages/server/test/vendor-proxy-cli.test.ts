import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { vendorKeysAudience } from '../src/vendor/routes.js';
import { hasOpenssl, makeCa, makeLocalhostServer } from './helpers/certificates.js';
import { runWrit, WRIT_MAIN } from './helpers/cli.js';
import { classDoc, workloadDoc } from './helpers/dpop.js';
import { freePort, type Harness, privateJwk, startHarness, testKey } from './helpers/harness.js';
import {
  addVendorKey,
  closeNow,
  listenLocal,
  vendorKeyException,
  writeVendorConfig,
} from './helpers/vendor-proxy.js';
import { eventually } from './helpers/verifier.js';

// The vendor-key proxy as a user runs it: `writ proxy` as its own process (a sidecar), and a job run
// with `writ exec --via-proxy`, which gets a local URL for the vendor and nothing else. The job prints
// its whole environment; the vendor key must not be in it, nor in anything the job saw.

const JOB = 'spiffe://test.writ/vendor-cli/job';
const PROXY = 'spiffe://test.writ/vendor-cli/proxy';
const VENDOR_AUD = 'https://vendor-cli.test/payments';
const KEY = 'sk_live_cli_5e2b9c7a1d3f8e6b4a0c';

describe('writ proxy and writ exec --via-proxy', { skip: hasOpenssl() ? false : 'needs openssl' }, () => {
  const jobKey = testKey();
  const proxyKey = testKey();
  let h: Harness;
  let vendor: HttpsServer;
  let proxy: ChildProcess;
  let proxyUrl: string;
  let dir: string;
  const seen: (string | undefined)[] = [];
  let proxyOutput = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-vendor-cli-'));
    const ca = makeCa(dir, 'ca');
    const cert = makeLocalhostServer(dir, 'vendor', ca);
    vendor = createHttpsServer({ key: cert.key, cert: cert.pem }, (req, res) => {
      seen.push(req.headers.authorization);
      const ok = req.headers.authorization === `Token ${KEY}`;
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok, path: req.url, echo: req.headers }));
    });
    const vendorOrigin = `https://127.0.0.1:${await listenLocal(vendor)}`;
    const serverPort = await freePort();
    const issuer = `http://127.0.0.1:${serverPort}`;
    h = await startHarness({
      listen: true,
      settings: { 'listen.port': serverPort },
      extraDocs: [
        classDoc({
          name: 'vc-job',
          audiences: [VENDOR_AUD],
          scopes: ['payments:read'],
          default_scopes: ['payments:read'],
        }),
        classDoc({
          name: 'vc-proxy',
          audiences: [`${issuer}/v1/events`, `${issuer}/v1/usage`, vendorKeysAudience(issuer)],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
        }),
        workloadDoc(JOB, jobKey, ['vc-job']),
        workloadDoc(PROXY, proxyKey, ['vc-proxy'], { serves: [VENDOR_AUD] }),
        vendorKeyException('payments-vendor-key', 'payments'),
      ],
    });
    await addVendorKey(h, 'payments', KEY, [PROXY]);

    const config = writeVendorConfig(
      join(dir, 'config'),
      {
        payments: `upstream: { origin: "${vendorOrigin}", ca_file: ca.pem }\nkey: payments\ninject: { header: { name: Authorization, value: "Token {key}" } }\naudience: ${VENDOR_AUD}\nscopes: [payments:read]\nallow: [{ methods: [GET], paths: ["/v1/balance"] }]\n`,
      },
      { file: 'ca.pem', pem: ca.pem },
    );
    const proxyKeyFile = join(dir, 'proxy.jwk');
    writeFileSync(proxyKeyFile, JSON.stringify(privateJwk(proxyKey)), { mode: 0o600 });
    const port = await freePort();
    proxyUrl = `http://127.0.0.1:${port}`;
    proxy = spawn(
      process.execPath,
      [
        WRIT_MAIN,
        '--server',
        h.issuer,
        'proxy',
        '--config',
        config,
        '--client-id',
        PROXY,
        '--key',
        proxyKeyFile,
        '--port',
        String(port),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    await new Promise<void>((resolve, reject) => {
      const onData = (c: Buffer) => {
        proxyOutput += c.toString();
        if (proxyOutput.includes('writ proxy: ')) resolve();
      };
      proxy.stderr!.on('data', onData);
      proxy.stdout!.on('data', onData);
      proxy.once('exit', (code) => reject(new Error(`writ proxy exited ${code}: ${proxyOutput}`)));
    });
  });
  after(async () => {
    proxy?.kill('SIGTERM');
    await closeNow(vendor);
    await h.close();
  });

  /** `writ exec --via-proxy ROUTE -- node -e SCRIPT` as the job workload. */
  const execViaProxy = (route: string, script: string) =>
    runWrit(WRIT_MAIN, [
      ...['--server', h.issuer, 'exec', '--client-id', JOB, '--key', join(dir, 'job.jwk')],
      ...['--audience', VENDOR_AUD, '--via-proxy', route, '--proxy-url', proxyUrl],
      ...['--', process.execPath, '-e', script],
    ]);

  it('publishes its routes (no secrets) and refuses a request without a token', async () => {
    const meta = (await (await fetch(`${proxyUrl}/.well-known/writ-proxy`)).json()) as { routes: unknown[] };
    assert.deepEqual(meta.routes, [{ name: 'payments', audience: VENDOR_AUD, scopes: ['payments:read'] }]);
    const before = seen.length;
    const bare = await fetch(`${proxyUrl}/vendors/payments/v1/balance`);
    assert.equal(bare.status, 401);
    assert.match(bare.headers.get('www-authenticate') ?? '', /DPoP/);
    assert.equal(seen.length, before);
    const metrics = await (await fetch(`${proxyUrl}/metrics`)).text();
    assert.match(metrics, /writ_proxy_requests_total\{route="payments",status="401",reason="token"\} [1-9]/);
  });

  it('a job run with --via-proxy reaches the vendor by a local URL and never holds the key', async () => {
    writeFileSync(join(dir, 'job.jwk'), JSON.stringify(privateJwk(jobKey)), { mode: 0o600 });
    const out = join(dir, 'job-out');
    const script = [
      "const fs = require('node:fs');",
      `const out = ${JSON.stringify(out)};`,
      'fs.writeFileSync(out + ".env", JSON.stringify(process.env));',
      '(async () => {',
      '  const base = process.env.WRIT_VENDOR_PAYMENTS_URL;',
      '  const ok = await fetch(base + "/v1/balance");',
      '  const denied = await fetch(base + "/v1/payouts");',
      '  fs.writeFileSync(out + ".json", JSON.stringify({ base, ok: ok.status, body: await ok.text(), denied: denied.status }));',
      '})();',
    ].join('\n');
    const r = await execViaProxy('payments', script);
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as {
      base: string;
      ok: number;
      body: string;
      denied: number;
    };
    assert.match(got.base, /^http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]{24}\/payments$/);
    assert.equal(got.ok, 200, got.body);
    assert.equal(got.denied, 403, 'the route allows GET /v1/balance only');
    assert.equal(seen.at(-1), `Token ${KEY}`, 'the proxy injected the key');
    const env = readFileSync(`${out}.env`, 'utf8');
    for (const text of [env, got.body, r.stderr, r.stdout, proxyOutput])
      assert.ok(!text.includes(KEY), 'the key showed up where the job or its logs could see it');
    assert.ok(got.body.includes('*'.repeat(KEY.length)), 'the echoed key was overwritten');
    // The upstream time of the proxied request is in the histogram (cumulative buckets up to +Inf).
    const metrics = await (await fetch(`${proxyUrl}/metrics`)).text();
    assert.match(metrics, /# TYPE writ_proxy_upstream_seconds histogram/);
    const count = /writ_proxy_upstream_seconds_count\{route="payments"\} (\d+)/.exec(metrics)?.[1];
    assert.ok(Number(count) >= 1, metrics);
    assert.match(
      metrics,
      new RegExp(`writ_proxy_upstream_seconds_bucket\\{le="\\+Inf",route="payments"\\} ${count}\n`),
    );
    assert.match(metrics, /writ_proxy_upstream_seconds_sum\{route="payments"\} [0-9.e-]+\n/);
    // The proxy reports both uses like any verifier: the refused one as denied.
    const reports = await eventually("the proxy's usage report with the refused use", async () => {
      const events = await h.auditEvents('usage.reported');
      const sum = (k: string) => events.reduce((n, e) => n + Number(e.data[k] ?? 0), 0);
      return sum('records') >= 2 && sum('denied') >= 1 ? events : undefined;
    });
    assert.ok(reports.every((e) => e.actor === PROXY));
  });

  it('--via-proxy with a route the proxy does not have says which it has, and runs nothing', async () => {
    const marker = join(dir, 'should-not-exist');
    const r = await execViaProxy('mail', `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x')`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no route mail \(it has: payments\)/);
    assert.throws(() => readFileSync(marker));
  });
});
