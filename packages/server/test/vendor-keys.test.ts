import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { WorkloadClient } from '@writ/sdk/client';
import pino from 'pino';
import { LeasedVendorKeys } from '../src/vendor/leased-keys.js';
import { createVendorProxy } from '../src/vendor/proxy.js';
import { loadVendorRoutes } from '../src/vendor/route.js';
import { VENDOR_KEYS_PATH, vendorKeysAudience } from '../src/vendor/routes.js';
import { hasOpenssl, makeCa, makeLocalhostServer } from './helpers/certificates.js';
import { type OperatorCli, operatorCli } from './helpers/cli.js';
import { classDoc, workloadDoc } from './helpers/dpop.js';
import { testKey } from './helpers/harness.js';
import { closeNow, listenLocal, vendorKeyException, writeVendorConfig } from './helpers/vendor-proxy.js';
import { API, startVerifierWorld, type VerifierWorld, workloadClient } from './helpers/verifier.js';

// Vendor keys kept by the server, sealed, leased only by the proxies each key lists, and injected by
// the proxy: the whole path with a real server, the real CLI, a real proxy and an HTTPS fake vendor.
// The key must never show in an answer, the audit log, the server's log or the store file.

const CALLER = 'spiffe://test.writ/vendor/caller';
const PROXY = 'spiffe://test.writ/vendor/proxy';
const STRANGER = 'spiffe://test.writ/vendor/stranger';
const KEY_1 = 'sk_live_4f6b0a9d2c1e8b7a5d3f0c2e';
const KEY_2 = 'sk_live_9e8d7c6b5a4f3e2d1c0b9a8f';

describe('vendor keys: sealed, leased by proxies, injected', {
  skip: hasOpenssl() ? false : 'needs openssl',
}, () => {
  const callerKey = testKey();
  const proxyKey = testKey();
  const strangerKey = testKey();
  const logLines: string[] = [];
  let w: VerifierWorld;
  let ops: OperatorCli;
  let caller: WorkloadClient;
  let vendorServer: HttpsServer;
  const seen: IncomingHttpHeaders[] = [];
  const accepted = new Set([KEY_1]);
  let proxy: Server;
  let origin: string;
  let dir: string;
  const answers: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-vendor-keys-'));
    const ca = makeCa(dir, 'vendor-ca');
    const cert = makeLocalhostServer(dir, 'vendor', ca);
    vendorServer = createHttpsServer({ key: cert.key, cert: cert.pem }, (req, res) => {
      seen.push(req.headers);
      const ok = accepted.has(String(req.headers['authorization']).replace('Bearer ', ''));
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok, echo: req.headers }));
    });
    const vendorOrigin = `https://127.0.0.1:${await listenLocal(vendorServer)}`;

    const sink = new Writable({
      write(chunk, _e, done) {
        logLines.push(chunk.toString());
        done();
      },
    });
    w = await startVerifierWorld({
      logger: pino({ level: 'debug' }, sink),
      docs: (issuer) => [
        classDoc({
          name: 'vk-call',
          audiences: [API],
          scopes: ['payments:charge'],
          default_scopes: ['payments:charge'],
        }),
        classDoc({
          name: 'vk-lease',
          audiences: [vendorKeysAudience(issuer)],
          scopes: ['vendor-keys:lease'],
          default_scopes: ['vendor-keys:lease'],
        }),
        workloadDoc(CALLER, callerKey, ['vk-call']),
        workloadDoc(PROXY, proxyKey, ['vk-lease']),
        workloadDoc(STRANGER, strangerKey, ['vk-lease']),
        vendorKeyException('payments-key', 'payments', '2099-12-31'),
        vendorKeyException('mail-key', 'mail', '2020-01-31'),
      ],
    });
    ops = operatorCli(w.h);
    caller = workloadClient(w.issuer, CALLER, callerKey, { nowMs: w.clock.now });

    const config = writeVendorConfig(
      join(dir, 'config'),
      {
        payments: `upstream: { origin: "${vendorOrigin}", ca_file: ca.pem }\nkey: payments\ninject: { header: { name: Authorization, value: "Bearer {key}" } }\naudience: ${API}\nallow: [{ methods: [GET, POST], paths: ["/v1/**"] }]\n`,
      },
      { file: 'ca.pem', pem: ca.pem },
    );
    proxy = createServer((req, res) => handler(req, res));
    origin = `http://127.0.0.1:${await listenLocal(proxy)}`;
    const handler = createVendorProxy({
      routes: loadVendorRoutes(config),
      verifiers: new Map([['payments', w.verifier]]),
      keys: new LeasedVendorKeys({
        issuer: w.issuer,
        client: workloadClient(w.issuer, PROXY, proxyKey, { nowMs: w.clock.now }),
        now: w.clock.now,
      }),
      publicUrl: origin,
    });
  });
  after(async () => {
    await closeNow(proxy);
    await closeNow(vendorServer);
    await w.close();
  });

  const call = async (path = '/v1/charges') => {
    const res = await caller.fetch(`${origin}/vendors/payments${path}`, { audience: API });
    answers.push(JSON.stringify([...res.headers]), await res.clone().text());
    return res;
  };
  const keyFile = (name: string, secret: string) => {
    const f = join(dir, name);
    writeFileSync(f, `${secret}\n`, { mode: 0o600 });
    return f;
  };
  // The CLI signs with the real clock: the server's (fake) clock is brought up to it first. Every
  // call comes before the test moves the clock ahead.
  const cli = async (args: string[]) => {
    w.clock.set(Math.max(w.clock.now(), Date.now()));
    const r = await ops(args);
    answers.push(r.stdout, r.stderr);
    return r;
  };

  it('an operator adds a key from a file; the answer names its version and fingerprint, never the key', async () => {
    const r = await cli([
      'vendor-keys',
      'add',
      'payments',
      '--from-file',
      keyFile('k1', KEY_1),
      '--proxy',
      PROXY,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /payments\s+v1\s+[0-9a-f]{16}\s+proxies: spiffe:\/\/test\.writ\/vendor\/proxy/);
    const again = await cli(['vendor-keys', 'add', 'payments', '--from-file', keyFile('k1b', KEY_2)]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /exists: rotate it instead/);
    const onCommandLine = await cli(['vendor-keys', 'add', 'other']);
    assert.notEqual(onCommandLine.code, 0);
    assert.match(onCommandLine.stderr, /exactly one of --from-file FILE or --from-stdin/);
    const typo = await cli([
      'vendor-keys',
      'add',
      'other',
      '--from-file',
      keyFile('k1c', KEY_2),
      '--proxy',
      `${PROXY}x`,
    ]);
    assert.notEqual(typo.code, 0);
    assert.match(
      typo.stderr,
      /proxies must be registered workloads; not registered: "spiffe:\/\/test\.writ\/vendor\/proxyx"/,
    );
    const weak = await cli([
      'vendor-keys',
      'add',
      'other',
      '--from-file',
      keyFile('weak', 'has space in it'),
    ]);
    assert.notEqual(weak.code, 0);
    assert.match(weak.stderr, /visible ASCII/);
  });

  it('a workload calls the vendor through the proxy with its Writ token; the proxy leased the key', async () => {
    const res = await call();
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(seen.at(-1)!['authorization'], `Bearer ${KEY_1}`);
    assert.ok(!(await res.text()).includes(KEY_1), 'the echoed key is overwritten');
    const leases = await w.h.auditEvents('vendor_key.leased');
    assert.equal(leases.at(-1)?.actor, PROXY);
  });

  it('only a proxy the key lists may lease it, with an ephemeral public key, and with a token', async () => {
    const stranger = workloadClient(w.issuer, STRANGER, strangerKey, { nowMs: w.clock.now });
    const url = `${w.issuer}${VENDOR_KEYS_PATH}/lease`;
    const lease = (c: WorkloadClient, body: unknown) =>
      c.fetch(url, {
        audience: vendorKeysAudience(w.issuer),
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const jwk = {
      kty: 'EC',
      crv: 'P-256',
      x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
      y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
    };
    const denied = await lease(stranger, { name: 'payments', jwk });
    assert.equal(denied.status, 403);
    const body = (await denied.json()) as { error_description: string };
    answers.push(JSON.stringify(body));
    assert.match(body.error_description, /may not lease vendor key payments/);
    const unknown = await lease(stranger, { name: 'nothing-here', jwk });
    assert.equal(unknown.status, 403, 'a missing key answers as a forbidden one: no probing of names');
    const proxyClient = workloadClient(w.issuer, PROXY, proxyKey, { nowMs: w.clock.now });
    const privateKey = await lease(proxyClient, {
      name: 'payments',
      jwk: { ...jwk, d: 'jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI' },
    });
    assert.equal(privateKey.status, 400);
    const noToken = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'payments', jwk }),
    });
    assert.equal(noToken.status, 401);
    const refused = await w.h.auditEvents('vendor_keys.refused');
    assert.ok(refused.some((e) => e.data['reason'] === 'vendor_key_not_granted'));
    assert.ok(refused.some((e) => e.data['reason'] === 'vendor_key_lease_key'));
  });

  it('a key is leased only while an exception covers it, and the refusal names the exception', async () => {
    const proxyClient = workloadClient(w.issuer, PROXY, proxyKey, { nowMs: w.clock.now });
    const lease = async (name: string) => {
      const r = await w.h.admin('POST', '/vendor-keys', {
        name,
        secret: `sk_live_${name}_0123456789`,
        proxies: [PROXY],
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const keys = new LeasedVendorKeys({ issuer: w.issuer, client: proxyClient, now: w.clock.now });
      return keys.current(name).then(
        () => 'leased',
        (err: Error) => err.message,
      );
    };
    assert.match(
      await lease('mail'),
      /403.*exception "mail-key" \(vendor key mail, owner team-payments\) expired at 2020-01-31/,
    );
    assert.match(await lease('sms'), /403.*no exception in exceptions\/ covers it/);
    const refused = await w.h.auditEvents('vendor_keys.refused');
    assert.ok(refused.some((e) => e.data['reason'] === 'exception_expired'));
    assert.ok(refused.some((e) => e.data['reason'] === 'vendor_key_exception_missing'));
  });

  // Before the rotation test: it moves the server's clock 62 s past real time, and the CLI's DPoP
  // proofs carry real time (refused past dpop.iat_window).
  it('writ scan names a leaked copy of a vendor key Writ holds, by hash, without printing it', async () => {
    // A key of a shape the secret rules know (a GitHub token the proxy injects for a CI vendor).
    const github = `ghp_${'k3Q9'.repeat(9)}`;
    const added = await w.h.admin('POST', '/vendor-keys', {
      name: 'github',
      secret: github,
      proxies: [PROXY],
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    const leaked = join(dir, 'leaked.env');
    writeFileSync(leaked, `GITHUB_TOKEN=${github}\nOTHER_TOKEN=ghp_${'Zx81'.repeat(9)}\n`);
    w.clock.set(Math.max(w.clock.now(), Date.now()));
    const r = await cli(['scan', '--format', 'json', leaked]);
    assert.equal(r.code, 1, `scan: exit ${r.code}, stderr: ${r.stderr}`);
    const found = JSON.parse(r.stdout) as { findings: { type: string; line: number; ours?: string }[] };
    assert.deepEqual(
      found.findings.filter((f) => f.type === 'secret').map((f) => [f.line, f.ours]),
      [
        [1, 'vendor key github (v1)'],
        [2, undefined],
      ],
      r.stdout,
    );
    assert.ok(!r.stdout.includes(github), 'the scan does not print the key it found');
  });

  it('a rotation with overlap keeps requests succeeding; after it the old key is never sent', async () => {
    accepted.add(KEY_2);
    const r = await cli([
      'vendor-keys',
      'rotate',
      'payments',
      '--from-file',
      keyFile('k2', KEY_2),
      '--overlap',
      '60s',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /v2 .*overlapping: v1 until/);
    for (let i = 0; i < 3; i++) assert.equal((await call()).status, 200);
    w.clock.advance(31_000); // past the proxy's lease: it leases again and sends the new key
    assert.equal((await call('/v1/echo')).status, 200);
    assert.equal(seen.at(-1)!['authorization'], `Bearer ${KEY_2}`);
    w.clock.advance(31_000); // past the overlap: the vendor takes only the new key now
    accepted.delete(KEY_1);
    const from = seen.length;
    for (let i = 0; i < 3; i++) assert.equal((await call()).status, 200);
    assert.deepEqual(
      seen.slice(from).map((h) => h['authorization']),
      Array(3).fill(`Bearer ${KEY_2}`),
    );
    const shown = await w.h.admin('GET', '/vendor-keys/payments');
    answers.push(JSON.stringify(shown.body));
    assert.equal(shown.body['version'], 2);
    assert.deepEqual(shown.body['overlapping'], [], 'the replaced version is gone after its overlap');
  });

  it('a rotation shorter than one lease is refused with what would pass', async () => {
    const r = await w.h.admin('POST', '/vendor-keys/payments/rotate', {
      secret: 'sk_live_another_one_here',
      overlap: 5,
    });
    answers.push(JSON.stringify(r.body));
    assert.equal(r.status, 400);
    assert.match(String(r.body['error_description']), /overlap: .*30/);
  });

  it('the key is in no answer, no audit event, no server log line and not in the store file', async () => {
    const events = JSON.stringify(await w.h.auditEvents());
    // The rows as anyone with the database sees them (sealed bytes as text), and the SQLite files whole.
    const rows = await w.h.attackerSql('SELECT * FROM vendor_keys');
    assert.equal(
      rows.filter((r) => r['name'] === 'payments').length,
      1,
      'the replaced version was deleted after its overlap',
    );
    const store =
      rows
        .map((r) => Object.values(r).map((v) => (Buffer.isBuffer(v) ? v.toString('latin1') : String(v))))
        .join('') +
      readdirSync(w.h.dir)
        .filter((f) => f.startsWith('writ.db'))
        .map((f) => readFileSync(join(w.h.dir, f)).toString('latin1'))
        .join('');
    for (const key of [KEY_1, KEY_2]) {
      assert.ok(!answers.join('\n').includes(key), 'an answer holds the key');
      assert.ok(!events.includes(key), 'an audit event holds the key');
      assert.ok(!logLines.join('').includes(key), 'a log line holds the key');
      assert.ok(!store.includes(key), 'the store holds the key in the clear');
    }
    assert.ok(logLines.length > 0 && answers.length > 10, 'there was something to look through');
  });

  it('a lease is renewed in the background before it ends; past its end a failed renewal sends nothing', async () => {
    // Last: it moves the clock ahead, past what the CLI's real-clock assertions would be taken at.
    const proxyClient = workloadClient(w.issuer, PROXY, proxyKey, { nowMs: w.clock.now });
    let leases = 0;
    let down = false;
    const keys = new LeasedVendorKeys({
      issuer: w.issuer,
      client: {
        fetch: (url, init) => {
          leases++;
          return down ? Promise.reject(new Error('server down')) : proxyClient.fetch(url, init);
        },
      },
      now: w.clock.now,
    });
    const first = await keys.current('payments');
    assert.equal(leases, 1);
    w.clock.advance(25_000); // into the last fifth of the 30 s lease
    down = true;
    assert.equal(await keys.current('payments'), first, 'the lease in hand serves while it is renewed');
    for (let i = 0; i < 1000 && leases < 2; i++) await new Promise((r) => setImmediate(r));
    assert.equal(leases, 2, 'the renewal was asked for');
    assert.equal(await keys.current('payments'), first);
    assert.equal(leases, 2, 'a failed renewal is asked again a second later at the soonest, not per request');
    w.clock.advance(6_000); // past the end of the lease: fail closed
    await assert.rejects(keys.current('payments'), /server down/);
  });
});
