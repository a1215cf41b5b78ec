import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { WorkloadClient } from '@writ/sdk/client';
import pino from 'pino';
import { loadVendorRoutes } from '../src/vendor/route.js';
import { hasOpenssl, makeCa, makeLocalhostServer } from './helpers/certificates.js';
import { classDoc, workloadDoc } from './helpers/dpop.js';
import { type Harness, startHarness, testKey } from './helpers/harness.js';
import { applyPolicies } from './helpers/policy.js';
import { rawRequest } from './helpers/raw-request.js';
import {
  addVendorKey,
  closeNow,
  expectKeyNotReturned,
  listenLocal,
  routeProbe,
  vendorKeyException,
  writeVendorConfig,
} from './helpers/vendor-proxy.js';
import { eventually, workloadClient } from './helpers/verifier.js';

// The vendor-key proxy inside `writ serve` (setting vendor_proxy.workload): the same proxy as `writ
// proxy`, on the server's own listener at <issuer>/vendors/NAME/, checked against the server's own
// keys, revocations and registry. A fake HTTPS vendor (its own test CA) takes only the static key and
// counts requests: every refusal must come before it. The key must never come back, nor reach the
// server's log or audit.

const CLIENT = 'spiffe://test.writ/serve-proxy/caller';
const BEARER_CLIENT = 'spiffe://test.writ/serve-proxy/legacy';
const PROXY = 'spiffe://test.writ/serve-proxy/gateway';
const API = 'https://serve-proxy.test/payments';
const OTHER_API = 'https://serve-proxy.test/mail';
const KEY = 'sk_live_serve_7c1e4b9a2d8f3e6a5b0c';

interface Vendor {
  origin: string;
  seen: { method: string; url: string; authorization: string | undefined; dpop: string | undefined }[];
  server: HttpsServer;
}

async function startVendor(cert: { key: string; pem: string }): Promise<Vendor> {
  const seen: Vendor['seen'] = [];
  const server = createHttpsServer({ key: cert.key, cert: cert.pem }, (req, res) => {
    seen.push({
      method: req.method!,
      url: req.url!,
      authorization: req.headers.authorization,
      dpop: req.headers.dpop as string | undefined,
    });
    if (req.headers.authorization !== `Bearer ${KEY}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"bad key"}');
      return;
    }
    // An echo service: it quotes the request headers back, the key among them.
    res.writeHead(200, { 'content-type': 'application/json', 'x-echo': String(req.headers.authorization) });
    res.end(JSON.stringify({ path: req.url, headers: req.headers }));
  });
  return { origin: `https://127.0.0.1:${await listenLocal(server)}`, seen, server };
}

describe('the vendor-key proxy inside writ serve', { skip: hasOpenssl() ? false : 'needs openssl' }, () => {
  const clientKey = testKey();
  const bearerKey = testKey('EdDSA');
  const proxyKey = testKey();
  let h: Harness;
  let vendor: Vendor;
  let client: WorkloadClient;
  let log = '';

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-serve-proxy-'));
    const ca = makeCa(dir, 'ca');
    vendor = await startVendor(makeLocalhostServer(dir, 'vendor', ca));
    const config = writeVendorConfig(
      join(dir, 'config'),
      {
        payments: [
          `upstream: { origin: "${vendor.origin}", ca_file: ca.pem, timeout: 5s }`,
          'key: payments',
          'inject: { header: { name: Authorization, value: "Bearer {key}" } }',
          `audience: ${API}`,
          'scopes: [payments:read]',
          'allow: [{ methods: [GET, POST], paths: ["/v1/charges", "/v1/charges/*", "/v1/echo"] }]',
        ].join('\n'),
      },
      { file: 'ca.pem', pem: ca.pem },
    );
    const capture = new Writable({
      write(chunk, _e, done) {
        log += chunk.toString();
        done();
      },
    });
    h = await startHarness({
      listen: true,
      settings: { 'vendor_proxy.workload': PROXY },
      vendorRoutes: loadVendorRoutes(config),
      logger: pino({ level: 'debug' }, capture),
      extraDocs: [
        classDoc({
          name: 'sp-caller',
          audiences: [API, OTHER_API],
          scopes: ['payments:read'],
          default_scopes: ['payments:read'],
        }),
        classDoc({
          name: 'sp-bearer',
          binding: 'bearer',
          audiences: [API],
          scopes: ['payments:read'],
          default_scopes: ['payments:read'],
        }),
        workloadDoc(CLIENT, clientKey, ['sp-caller']),
        workloadDoc(BEARER_CLIENT, bearerKey, ['sp-bearer']),
        classDoc({ name: 'sp-gateway', audiences: [OTHER_API], scopes: ['x'], default_scopes: ['x'] }),
        workloadDoc(PROXY, proxyKey, ['sp-gateway'], { serves: [API] }),
        vendorKeyException('serve-payments-key', 'payments'),
      ],
    });
    await addVendorKey(h, 'payments', KEY, [PROXY]);
    client = workloadClient(h.issuer, CLIENT, clientKey);
  });
  after(async () => {
    await closeNow(vendor.server);
    await h.close();
  });

  const probe = routeProbe({
    route: 'payments',
    audience: API,
    origin: () => h.issuer,
    seen: () => vendor.seen,
    client: () => client,
    nowMs: () => Date.now(),
  });
  const { url, reached, presenting } = probe;

  it('publishes its routes at the server and passes a DPoP-bound token through with the key injected', async () => {
    const meta = (await (await fetch(`${h.issuer}/.well-known/writ-proxy`)).json()) as { routes: unknown[] };
    assert.deepEqual(meta.routes, [{ name: 'payments', audience: API, scopes: ['payments:read'] }]);
    let res!: Response;
    const n = await reached(async () => {
      res = await client.fetch(url('/v1/charges/ch_1?expand=x'), { audience: API });
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(n, 1);
    const got = vendor.seen.at(-1)!;
    assert.equal(got.authorization, `Bearer ${KEY}`);
    assert.equal(got.dpop, undefined, 'the Writ proof does not reach the vendor');
    assert.equal(got.url, '/v1/charges/ch_1?expand=x');
    // The server's own endpoints are served as before on the same listener.
    assert.equal((await fetch(`${h.issuer}/.well-known/jwks.json`)).status, 200);
  });

  it('never returns the key, even from a vendor that echoes the request', async () => {
    const res = await client.fetch(url('/v1/echo'), { audience: API, method: 'POST', body: 'hi' });
    await expectKeyNotReturned(res, KEY, 'x-echo');
  });

  it('refuses before the vendor: no token, another vendor, a bearer-presented DPoP token, a bearer token, a method or path not allowed', async () => {
    const n = await reached(async () => {
      const none = await fetch(url('/v1/charges'));
      assert.equal(none.status, 401);
      assert.match(none.headers.get('www-authenticate') ?? '', /DPoP/);
      assert.equal((await client.fetch(url('/v1/charges'), { audience: OTHER_API })).status, 401);
      const t = (await client.requestToken({ audience: API })).access_token;
      const asBearer = await fetch(url('/v1/charges'), { headers: { authorization: `Bearer ${t}` } });
      assert.equal(asBearer.status, 401, 'a DPoP-bound token presented as Bearer');
      await probe.expectBearerTokenRefused(h, {
        clientId: BEARER_CLIENT,
        key: bearerKey,
        path: '/v1/charges',
      });
      const del = await client.fetch(url('/v1/charges/ch_1'), { audience: API, method: 'DELETE' });
      assert.equal(del.status, 403);
      assert.equal((await client.fetch(url('/v1/refunds'), { audience: API })).status, 403);
      for (const p of ['/v1/charges/../refunds', '/v1/charges%2Fx', '/v1//charges'])
        assert.equal((await rawRequest(h.issuer, 'GET', `/vendors/payments${p}`)).status, 400, p);
      assert.equal((await client.fetch(`${h.issuer}/vendors/nope/v1/x`, { audience: API })).status, 404);
    });
    assert.equal(n, 0);
  });

  it('refuses a revoked token before the vendor, at once', async () => {
    await probe.expectRevokedRefused({
      path: '/v1/charges',
      revoke: async (jti) => {
        const r = await h.admin('POST', '/revocations', { kind: 'jti', value: jti, reason: 'test' });
        assert.equal(r.status, 201, JSON.stringify(r.body));
      },
    });
  });

  it('refuses a replayed DPoP proof before the vendor', async () => {
    const t = (await client.requestToken({ audience: API })).access_token;
    const headers = await presenting(t, 'GET', url('/v1/charges'));
    assert.equal((await fetch(url('/v1/charges'), { headers })).status, 200);
    const n = await reached(async () => {
      assert.equal((await fetch(url('/v1/charges'), { headers })).status, 401);
    });
    assert.equal(n, 0);
  });

  it('audits refusals, reports uses as its workload, and the key is in no log or audit event', async () => {
    const expected = ['vendor_route', 'dpop_bound_as_bearer', 'vendor_path', 'vendor_no_route', 'revoked'];
    // Audited once each answer is sent.
    const refused = await eventually('the refusals in the audit log', async () => {
      const events = await h.auditEvents('vendor_proxy.refused');
      const reasons = new Set(events.map((e) => e.data['reason']));
      return expected.every((r) => reasons.has(r)) ? events : undefined;
    });
    const route = refused.find((e) => e.data['reason'] === 'vendor_route')!;
    assert.equal(route.actor, CLIENT, 'a refusal after the token verified names its client');
    assert.equal(refused.find((e) => e.data['reason'] === 'dpop_bound_as_bearer')!.actor, 'anonymous');
    const reports = await eventually('usage reports of the proxied uses', async () => {
      const events = await h.auditEvents('usage.reported');
      const sum = (k: string) => events.reduce((n, e) => n + Number(e.data[k] ?? 0), 0);
      return sum('records') >= 6 && sum('denied') >= 2 ? events : undefined;
    });
    assert.ok(reports.every((e) => e.actor === PROXY));
    const leased = await h.auditEvents('vendor_key.leased');
    assert.ok(leased.some((e) => e.actor === PROXY));
    const all = JSON.stringify(await h.auditEvents());
    assert.ok(!all.includes(KEY), 'the key is in no audit event');
    assert.ok(log.length > 0, 'the log was captured');
    assert.ok(!log.includes(KEY), 'the key is in no log line');
  });

  it('sends nothing once the key no longer lists the proxy workload', async () => {
    const rotated = await h.admin('POST', '/vendor-keys/payments/rotate', {
      secret: `${KEY}_next`,
      overlap: 60,
      proxies: [CLIENT],
    });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    await eventually('the proxy to drop the key it held', async () => {
      const n = await reached(async () => {
        const r = await client.fetch(url('/v1/charges'), { audience: API });
        if (r.status !== 503) throw new Error(`status ${r.status}`);
      });
      return n === 0 ? true : undefined;
    });
  });
});

describe('the vendor-key proxy inside writ serve, with vendor_proxy.policy', {
  skip: hasOpenssl() ? false : 'needs openssl',
}, () => {
  const clientKey = testKey();
  const proxyKey = testKey();
  let h: Harness;
  let vendor: Vendor;
  let client: WorkloadClient;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-serve-proxy-policy-'));
    const ca = makeCa(dir, 'ca');
    vendor = await startVendor(makeLocalhostServer(dir, 'vendor', ca));
    writeVendorConfig(
      dir,
      {
        payments: `upstream: { origin: "${vendor.origin}", ca_file: ca.pem }\nkey: payments\ninject: { header: { name: Authorization, value: "Bearer {key}" } }\naudience: ${API}\nallow: [{ methods: [GET, POST], paths: ["/v1/charges"] }]\n`,
      },
      { file: 'ca.pem', pem: ca.pem },
    );
    const docs = [
      classDoc({
        name: 'sp-caller',
        audiences: [API],
        scopes: ['payments:read'],
        default_scopes: ['payments:read'],
      }),
      workloadDoc(CLIENT, clientKey, ['sp-caller']),
      workloadDoc(PROXY, proxyKey, ['sp-caller'], { serves: [API] }),
      vendorKeyException('serve-payments-key', 'payments'),
    ];
    h = await startHarness({
      listen: true,
      settings: { 'vendor_proxy.workload': PROXY, 'vendor_proxy.policy': true },
      vendorRoutes: loadVendorRoutes(dir),
      extraDocs: docs,
    });
    // Reads of the payments API are permitted; nothing permits a write.
    const applied = await applyPolicies(
      h,
      {
        files: [
          {
            file: 'policies/vendor.cedar',
            text: `@id("tokens")\npermit(principal is Workload, action in Action::"token", resource);\n@id("reads")\npermit(principal is Workload, action == Action::"read", resource == Api::"${API}");\n`,
          },
        ],
      },
      docs,
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    await addVendorKey(h, 'payments', KEY, [PROXY]);
    client = workloadClient(h.issuer, CLIENT, clientKey);
  });
  after(async () => {
    await closeNow(vendor.server);
    await h.close();
  });

  it('lets through what policy permits and refuses what it does not, before the vendor', async () => {
    const url = `${h.issuer}/vendors/payments/v1/charges`;
    assert.equal((await client.fetch(url, { audience: API })).status, 200);
    const before = vendor.seen.length;
    const write = await client.fetch(url, { audience: API, method: 'POST', body: 'x' });
    assert.equal(write.status, 403);
    assert.equal(((await write.json()) as { error: string }).error, 'insufficient_scope');
    assert.equal(vendor.seen.length, before, 'the refused write did not reach the vendor');
    // Audited once the answer is sent.
    await eventually('the policy refusal in the audit log', async () =>
      (await h.auditEvents('vendor_proxy.refused')).some(
        (e) => e.data['reason'] === 'policy_denied' && e.actor === CLIENT,
      )
        ? true
        : undefined,
    );
  });
});

describe('vendor_proxy.workload at start', () => {
  it('refuses to start when the workload does not serve a route audience', async () => {
    const dir = writeVendorConfig(mkdtempSync(join(tmpdir(), 'writ-serve-proxy-bad-')), {
      mail: `upstream: { origin: "https://127.0.0.1:1" }\nkey: mail\ninject: { header: { name: X-Key, value: "{key}" } }\naudience: ${OTHER_API}\nallow: [{ methods: [GET], paths: ["/**"] }]\n`,
    });
    await assert.rejects(
      startHarness({
        settings: { 'vendor_proxy.workload': PROXY },
        vendorRoutes: loadVendorRoutes(dir),
        extraDocs: [
          classDoc({ name: 'sp-gateway', audiences: [API], scopes: ['x'], default_scopes: ['x'] }),
          workloadDoc(PROXY, testKey(), ['sp-gateway'], { serves: [API] }),
        ],
      }),
      /vendor_proxy\.workload: the workload must serve each route's audience/,
    );
  });
});
