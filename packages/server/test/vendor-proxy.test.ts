import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { WorkloadClient } from '@writ/sdk/client';
import { FileVendorKeys } from '../src/vendor/file-keys.js';
import { createVendorProxy, type ProxyOutcome } from '../src/vendor/proxy.js';
import { loadVendorRoutes } from '../src/vendor/route.js';
import { hasOpenssl, makeCa, makeLocalhostServer } from './helpers/certificates.js';
import { classDoc, workloadDoc } from './helpers/dpop.js';
import { testKey } from './helpers/harness.js';
import { rawRequest } from './helpers/raw-request.js';
import {
  closeNow,
  expectKeyNotReturned,
  listenLocal,
  routeProbe,
  writeVendorConfig,
} from './helpers/vendor-proxy.js';
import { API, startVerifierWorld, type VerifierWorld, workloadClient } from './helpers/verifier.js';

// The vendor-key proxy between a workload and a fake HTTPS vendor (its own test CA) that takes only a
// static key. Every refusal must happen before anything reaches the vendor: the vendor counts requests.
// The key must never come back, even from a vendor that echoes request headers.

const CLIENT = 'spiffe://test.writ/vendor/caller';
const BEARER_CLIENT = 'spiffe://test.writ/vendor/legacy';
const OTHER_API = 'https://other-vendor.test';
const KEY_1 = 'vk_live_0123456789abcdefOLD';
const KEY_2 = 'vk_live_fedcba9876543210NEW';

interface Vendor {
  origin: string;
  seen: { method: string; url: string; headers: IncomingHttpHeaders }[];
  accepted: Set<string>;
  close(): Promise<void>;
}

async function startVendor(cert: { key: string; pem: string }): Promise<Vendor> {
  const seen: Vendor['seen'] = [];
  const accepted = new Set<string>();
  const server: HttpsServer = createHttpsServer({ key: cert.key, cert: cert.pem }, (req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    const auth = String(req.headers['authorization'] ?? '');
    if (!accepted.has(auth.replace(/^Bearer /, ''))) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"bad key"}');
      return;
    }
    const path = req.url!.split('?')[0];
    if (path === '/v1/slow') return; // never answers
    if (path === '/v1/redirect-away') {
      res.writeHead(302, { location: 'https://evil.example/steal' }).end();
      return;
    }
    if (path === '/v1/redirect-home') {
      res.writeHead(302, { location: '/v1/charges/ch_2' }).end();
      return;
    }
    if (path === '/v1/split' || path === '/v1/split-sized') {
      // The key quoted across two writes a moment apart: the proxy sees it in two chunks.
      const quoted = Buffer.from(`{"you_sent":"${auth}","more":"${'m'.repeat(3000)}"}`);
      const cut = quoted.indexOf(auth) + 12;
      res.writeHead(200, {
        'content-type': 'application/json',
        ...(path === '/v1/split-sized' ? { 'content-length': quoted.length } : {}),
      });
      res.write(quoted.subarray(0, cut));
      setTimeout(() => res.end(quoted.subarray(cut)), 20);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // An echo service: it quotes the request, headers and all, as some vendors' debug endpoints do.
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-echo-authorization': auth,
        'x-vendor-request-id': 'req_1',
      });
      res.end(
        JSON.stringify({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() }),
      );
    });
  });
  const port = await listenLocal(server);
  return { origin: `https://127.0.0.1:${port}`, seen, accepted, close: () => closeNow(server) };
}

describe('vendor-key proxy', { skip: hasOpenssl() ? false : 'needs the openssl CLI for the test CA' }, () => {
  const clientKey = testKey();
  const bearerKey = testKey('EdDSA');
  let w: VerifierWorld;
  let client: WorkloadClient;
  let vendor: Vendor;
  let proxy: Server;
  let origin: string;
  let keysDir: string;
  const outcomes: ProxyOutcome[] = [];

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-vendor-'));
    const ca = makeCa(dir, 'vendor-ca');
    vendor = await startVendor(makeLocalhostServer(dir, 'vendor', ca));
    vendor.accepted.add(KEY_1);
    w = await startVerifierWorld({
      docs: () => [
        classDoc({
          name: 'vp-api',
          audiences: [API],
          scopes: ['payments:charge'],
          default_scopes: ['payments:charge'],
        }),
        classDoc({
          name: 'vp-other',
          audiences: [OTHER_API],
          scopes: ['payments:charge'],
          default_scopes: ['payments:charge'],
        }),
        classDoc({
          name: 'vp-bearer',
          binding: 'bearer',
          audiences: [API],
          scopes: ['payments:charge'],
          default_scopes: ['payments:charge'],
        }),
        workloadDoc(CLIENT, clientKey, ['vp-api', 'vp-other']),
        workloadDoc(BEARER_CLIENT, bearerKey, ['vp-bearer']),
      ],
    });
    client = workloadClient(w.issuer, CLIENT, clientKey, { nowMs: w.clock.now });

    const config = writeVendorConfig(
      join(dir, 'config'),
      {
        payments: [
          'upstream:',
          `  origin: ${vendor.origin}`,
          '  ca_file: vendor-ca.pem',
          '  timeout: 1s',
          'key: payments',
          'inject:',
          '  header: { name: Authorization, value: "Bearer {key}" }',
          `audience: ${API}`,
          'scopes: [payments:charge]',
          'allow:',
          '  - methods: [GET, POST]',
          '    paths: [/v1/charges, /v1/charges/*, /v1/echo, /v1/split, /v1/split-sized, /v1/slow, /v1/redirect-away, /v1/redirect-home]',
          'limits: { request_body: 1KiB }',
          'strip_response_headers: [x-vendor-request-id]',
        ].join('\n'),
      },
      { file: 'vendor-ca.pem', pem: ca.pem },
    );
    keysDir = join(dir, 'keys');
    mkdirSync(keysDir, { mode: 0o700 });
    writeFileSync(join(keysDir, 'payments'), `${KEY_1}\n`, { mode: 0o600 });

    proxy = createServer((req, res) => handler(req, res));
    origin = `http://127.0.0.1:${await listenLocal(proxy)}`;
    const handler = createVendorProxy({
      routes: loadVendorRoutes(config),
      verifiers: new Map([['payments', w.verifier]]),
      keys: new FileVendorKeys(keysDir),
      publicUrl: origin,
      onRequest: (o) => outcomes.push(o),
    });
  });
  after(async () => {
    await closeNow(proxy);
    await vendor.close();
    await w.close();
  });

  const probe = routeProbe({
    route: 'payments',
    audience: API,
    origin: () => origin,
    seen: () => vendor.seen,
    client: () => client,
    nowMs: () => w.clock.now(),
  });
  const { url, reached, presenting } = probe;

  it('passes a DPoP-bound token through with the key injected and the token removed', async () => {
    let res!: Response;
    const n = await reached(async () => {
      res = await client.fetch(url('/v1/charges/ch_1?expand=x'), { audience: API });
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(n, 1);
    const got = vendor.seen.at(-1)!;
    assert.equal(got.headers['authorization'], `Bearer ${KEY_1}`);
    assert.equal(got.headers['dpop'], undefined, 'the Writ proof does not reach the vendor');
    assert.equal(got.url, '/v1/charges/ch_1?expand=x');
    assert.equal(res.headers.get('x-vendor-request-id'), null, 'a stripped header is not passed back');
  });

  it('never returns the key, even from a vendor that echoes the request', async () => {
    const res = await client.fetch(url('/v1/echo'), { audience: API, method: 'POST', body: 'hello' });
    await expectKeyNotReturned(res, KEY_1, 'x-echo-authorization');
    assert.ok(outcomes.some((o) => o.redacted >= 2));
  });

  it('never returns the key split across body chunks, with and without a content-length', async () => {
    for (const path of ['/v1/split', '/v1/split-sized']) {
      const res = await client.fetch(url(path), { audience: API });
      assert.equal(res.status, 200, path);
      const text = await res.text();
      assert.ok(!text.includes(KEY_1), `${path}: the key is not in the body`);
      assert.ok(text.includes(`"you_sent":"Bearer ${'*'.repeat(KEY_1.length)}"`), `${path}: ${text}`);
      assert.ok(text.endsWith(`${'m'.repeat(3000)}"}`), `${path}: the rest of the body follows`);
      assert.equal(outcomes.at(-1)?.redacted, 1, path);
    }
  });

  it('refuses before the vendor: no token, a token for another vendor, a bearer-presented DPoP token, a bearer token', async () => {
    assert.equal(await reached(async () => assert.equal((await fetch(url('/v1/charges'))).status, 401)), 0);
    const other = await client.fetch(url('/v1/charges'), { audience: OTHER_API });
    assert.equal(other.status, 401);
    const t = (await client.requestToken({ audience: API })).access_token;
    const n = await reached(async () => {
      const r = await fetch(url('/v1/charges'), { headers: { authorization: `Bearer ${t}` } });
      assert.equal(r.status, 401, 'a DPoP-bound token without its proof');
    });
    assert.equal(n, 0);
    await probe.expectBearerTokenRefused(w.h, {
      clientId: BEARER_CLIENT,
      key: bearerKey,
      path: '/v1/charges',
    });
    assert.equal(vendor.seen.filter((s) => s.headers['authorization'] === undefined).length, 0);
  });

  it('refuses a revoked token before the vendor', async () => {
    await probe.expectRevokedRefused({
      path: '/v1/charges',
      revoke: async (jti) => {
        const before = w.verifier.status().revocations;
        const r = await w.h.admin('POST', '/revocations', { kind: 'jti', value: jti, reason: 'test' });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        while (w.verifier.status().revocations <= before) await new Promise((r) => setTimeout(r, 10));
      },
    });
  });

  it('refuses a method or path the route does not allow, and paths that could escape it', async () => {
    const n = await reached(async () => {
      const del = await client.fetch(url('/v1/charges/ch_1'), { audience: API, method: 'DELETE' });
      assert.equal(del.status, 403);
      assert.match(
        ((await del.json()) as { error_description: string }).error_description,
        /DELETE .* not allowed.*allowed: GET\|POST/,
      );
      assert.equal((await client.fetch(url('/v1/refunds'), { audience: API })).status, 403);
      for (const p of [
        '/v1/charges/../refunds',
        '/v1/charges/%2e%2e/refunds',
        '/v1/charges%2Fx',
        '/v1//charges',
        '/v1/charges/a%5cb',
      ]) {
        const r = await rawRequest(origin, 'GET', `/vendors/payments${p}`, []);
        assert.equal(r.status, 400, p);
      }
    });
    assert.equal(n, 0);
  });

  it('refuses an oversized body, and strips hop-by-hop and injected-name headers from what it forwards', async () => {
    const big = await client.fetch(url('/v1/echo'), {
      audience: API,
      method: 'POST',
      body: 'x'.repeat(2048),
    });
    assert.equal(big.status, 413);
    const t = (await client.requestToken({ audience: API })).access_token;
    const auth = await presenting(t, 'GET', url('/v1/echo'));
    // fetch will not send Connection: a raw request (whose own Connection: close lists the header too).
    const res = await rawRequest(origin, 'GET', '/vendors/payments/v1/echo', [
      ['authorization', auth.authorization],
      ['dpop', auth.dpop],
      ['connection', 'x-secret-hop'],
      ['x-secret-hop', '1'],
      ['proxy-authorization', 'p'],
      ['cookie', 'c=1'],
      ['x-keep', 'yes'],
    ]);
    assert.equal(res.status, 200);
    const h = vendor.seen.at(-1)!.headers;
    assert.equal(h['x-secret-hop'], undefined);
    assert.equal(h['proxy-authorization'], undefined);
    assert.equal(h['cookie'], undefined);
    assert.equal(h['x-keep'], 'yes');
    assert.equal(h['authorization'], `Bearer ${KEY_1}`, 'the caller cannot choose the credential');
  });

  it('refuses CR/LF header injection before anything is forwarded', async () => {
    const n = await reached(async () => {
      const r = await rawRequest(origin, 'GET', '/vendors/payments/v1/charges', [
        ['x-a', 'b\r\nauthorization: Bearer stolen'],
      ]);
      assert.equal(r.status, 401, 'the injected line is not a credential');
      const bare = await rawRequest(origin, 'GET', '/vendors/payments/v1/charges', [['x-a', 'b\rc']]);
      assert.equal(bare.status, 400, 'a lone CR in a header value is a malformed request');
    });
    assert.equal(n, 0);
  });

  it('answers 504 for a slow vendor and does not follow a redirect to another host', async () => {
    const slow = await client.fetch(url('/v1/slow'), { audience: API });
    assert.equal(slow.status, 504);
    const away = await client.fetch(url('/v1/redirect-away'), { audience: API, redirect: 'manual' });
    assert.equal(away.status, 502);
    assert.equal(away.headers.get('location'), null);
    const home = await client.fetch(url('/v1/redirect-home'), { audience: API, redirect: 'manual' });
    assert.equal(home.status, 302);
    assert.equal(home.headers.get('location'), `${origin}/vendors/payments/v1/charges/ch_2`);
  });

  it('keeps working through a rotation with overlap, and never sends the old key after it', async () => {
    vendor.accepted.add(KEY_2); // the vendor takes both while the rotation overlaps
    renameSync(join(keysDir, 'payments'), join(keysDir, 'payments.previous'));
    writeFileSync(join(keysDir, 'payments'), `${KEY_2}\n`, { mode: 0o600 });
    const during = await client.fetch(url('/v1/echo'), { audience: API });
    assert.equal(during.status, 200);
    const text = await during.text();
    assert.ok(!text.includes(KEY_2) && !text.includes(KEY_1));
    rmSync(join(keysDir, 'payments.previous'));
    vendor.accepted.delete(KEY_1);
    const start = vendor.seen.length;
    for (let i = 0; i < 3; i++)
      assert.equal((await client.fetch(url('/v1/charges'), { audience: API })).status, 200);
    const sent = vendor.seen.slice(start).map((s) => s.headers['authorization']);
    assert.deepEqual(sent, [`Bearer ${KEY_2}`, `Bearer ${KEY_2}`, `Bearer ${KEY_2}`]);
  });

  it('refuses a key file others can read, rather than send it', async () => {
    chmodSync(join(keysDir, 'payments'), 0o644);
    const n = await reached(async () => {
      const r = await client.fetch(url('/v1/charges'), { audience: API });
      assert.equal(r.status, 503);
    });
    chmodSync(join(keysDir, 'payments'), 0o600);
    assert.equal(n, 0);
    assert.equal(readFileSync(join(keysDir, 'payments'), 'utf8').trim(), KEY_2);
  });
});
