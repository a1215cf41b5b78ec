import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import { validateConfig } from '../src/config/config-dir.js';
import { ConfigError } from '../src/errors.js';
import { certificateThumbprint } from '../src/mtls/certificate.js';
import { reloadTls } from '../src/mtls/reload.js';
import { parseDistinguishedName, sameName } from '../src/mtls/x509-extensions.js';
import { parseForwardedCertificate } from '../src/request/client-certificate.js';
import {
  hasOpenssl,
  makeCa,
  makeIntermediate,
  makeLeaf,
  makeLocalhostServer,
  type TestCertificate,
  x5tS256,
} from './helpers/certificates.js';
import { classDoc, count, decodeClaims, lastEvent, rawDoc } from './helpers/dpop.js';
import { freePort, type Harness, startHarness, testKey } from './helpers/harness.js';
import { type HttpsReply, httpsJson } from './helpers/https.js';

const API = 'https://api.mtls-rules.test';
const CHAINED = 'spiffe://test.writ/mtls/chained';
const FOREIGN = 'spiffe://other.writ/mtls/foreign';
const BY_DNS = 'spiffe://test.writ/mtls/by-dns';
const BY_IP = 'spiffe://test.writ/mtls/by-ip';

function post(
  port: number,
  ca: TestCertificate,
  form: Record<string, string>,
  client?: { cert: string; key: string },
): Promise<HttpsReply> {
  return httpsJson(
    {
      host: '127.0.0.1',
      port,
      path: '/oauth2/token',
      method: 'POST',
      ca: ca.pem,
      agent: false,
      ...(client ?? {}),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    },
    new URLSearchParams(form).toString(),
  );
}

describe('mTLS rules: chains, SAN rules, key usage, trust domains', {
  skip: hasOpenssl() ? false : 'the openssl CLI is not installed',
}, () => {
  const clock = fakeClock(Date.now());
  const jwtKey = testKey();
  let dir: string;
  let h: Harness;
  let port: number;
  let serverCa: TestCertificate;
  const certs: Record<string, TestCertificate> = {};
  const as = (c: TestCertificate, chain: TestCertificate[] = []) => ({
    cert: [c.pem, ...chain.map((x) => x.pem)].join(''),
    key: c.key,
  });
  const tokenFor = (
    clientId: string,
    client?: { cert: string; key: string },
    extra: Record<string, string> = {},
  ) =>
    post(
      port,
      serverCa,
      { grant_type: 'client_credentials', client_id: clientId, resource: API, ...extra },
      client,
    );
  const refusedWith = async (
    r: () => ReturnType<typeof tokenFor>,
    reason: string,
    error = 'invalid_client',
  ) => {
    const issued = await count(h, 'token.issued');
    const reply = await r();
    assert.equal(reply.body['error'], error, JSON.stringify(reply.body));
    assert.equal(await count(h, 'token.issued'), issued);
    assert.equal((await lastEvent(h, 'token.refused')).data['reason'], reason);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-mtls-rules-'));
    serverCa = makeCa(dir, 'server-ca');
    const server = makeLocalhostServer(dir, 'server', serverCa);
    const root = makeCa(dir, 'spiffe-root', '/O=SPIFFE/CN=test.writ root');
    const otherRoot = makeCa(dir, 'other-root', '/O=SPIFFE/CN=other.writ root');
    certs['root'] = root;
    certs['otherRoot'] = otherRoot;
    const corp = makeCa(dir, 'corp', '/O=Corp/CN=Corp CA');
    certs['intermediate'] = makeIntermediate(dir, 'spiffe-intermediate', root);
    certs['chained'] = makeLeaf(dir, 'chained', certs['intermediate'], {
      subject: '/O=SPIFFE',
      san: `URI:${CHAINED}`,
    });
    // Signed by test.writ's CA but naming a workload of other.writ.
    certs['foreign'] = makeLeaf(dir, 'foreign', root, { subject: '/O=SPIFFE', san: `URI:${FOREIGN}` });
    certs['dns'] = makeLeaf(dir, 'dns', corp, { san: 'DNS:exporter.reports.internal' });
    certs['otherDns'] = makeLeaf(dir, 'other-dns', corp, { san: 'DNS:billing.internal' });
    certs['ip'] = makeLeaf(dir, 'ip', corp, { san: 'IP:0:0:0:0:0:0:0:1' });
    certs['isCa'] = makeLeaf(dir, 'is-ca', corp, {
      san: 'DNS:exporter.reports.internal',
      basicConstraints: 'critical,CA:TRUE',
      keyUsage: 'critical,digitalSignature,keyCertSign',
    });
    certs['noSign'] = makeLeaf(dir, 'no-sign', corp, {
      san: 'DNS:exporter.reports.internal',
      keyUsage: 'critical,keyEncipherment',
    });
    certs['noEkuAtAll'] = makeLeaf(dir, 'no-eku-at-all', corp, {
      san: 'DNS:exporter.reports.internal',
      eku: null,
    });
    clock.set(Date.now() + 60_000);
    port = await freePort();
    const workload = (id: string, tls: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      rawDoc('workload', {
        id,
        owner: 'team-mtls',
        environment: 'prod',
        classes: ['api-mtls'],
        tls_client_auth: tls,
        ...extra,
      });
    h = await startHarness({
      clock,
      listen: true,
      settings: {
        'listen.port': port,
        'tls.cert_file': server.certFile,
        'tls.key_file': server.keyFile,
        'tls.spiffe_bundles': [`test.writ=${root.certFile}`, `other.writ=${otherRoot.certFile}`],
        'tls.client_ca_files': [corp.certFile],
      },
      extraDocs: [
        classDoc({
          name: 'api-mtls',
          audiences: [API],
          scopes: ['api:read'],
          default_scopes: ['api:read'],
          binding: 'mtls',
        }),
        workload(CHAINED, { x509_svid: true }, { jwks: { keys: [jwtKey.publicJwk] } }),
        workload(FOREIGN, { x509_svid: true }),
        workload(BY_DNS, { san_dns: 'Exporter.Reports.Internal' }),
        workload(BY_IP, { san_ip: '::1' }),
      ],
    });
  });
  after(async () => {
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('follows a chain through an intermediate the client sends, to the trust bundle', async () => {
    const r = await tokenFor(CHAINED, as(certs['chained']!, [certs['intermediate']!]));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(decodeClaims(r.body['access_token'] as string)['cnf'], {
      'x5t#S256': x5tS256(certs['chained']!.pem),
    });
  });

  it('refuses the same leaf without its intermediate', async () => {
    await refusedWith(() => tokenFor(CHAINED, as(certs['chained']!)), 'certificate_untrusted');
  });

  it("refuses an SVID signed by another trust domain's CA", async () => {
    await refusedWith(() => tokenFor(FOREIGN, as(certs['foreign']!)), 'certificate_untrusted');
  });

  it('matches san_dns case-insensitively and san_ip in any spelling', async () => {
    assert.equal((await tokenFor(BY_DNS, as(certs['dns']!))).status, 200);
    assert.equal((await tokenFor(BY_IP, as(certs['ip']!))).status, 200);
    await refusedWith(() => tokenFor(BY_DNS, as(certs['otherDns']!)), 'certificate_identity_mismatch');
  });

  it('refuses a CA certificate, one without digitalSignature, and a CA-issued one without any EKU', async () => {
    await refusedWith(() => tokenFor(BY_DNS, as(certs['isCa']!)), 'certificate_is_ca');
    await refusedWith(() => tokenFor(BY_DNS, as(certs['noSign']!)), 'certificate_key_usage');
    await refusedWith(() => tokenFor(BY_DNS, as(certs['noEkuAtAll']!)), 'certificate_eku');
  });

  it('uses exactly one method: with a client assertion the certificate is not the credential', async () => {
    // private_key_jwt authenticates; the certificate is then no client authentication, so a class
    // that binds to the authenticating certificate refuses.
    await refusedWith(
      () =>
        tokenFor(CHAINED, as(certs['chained']!, [certs['intermediate']!]), {
          client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
          client_assertion: h.assertion({ clientId: CHAINED, key: jwtKey }),
        }),
      'mtls_binding_required',
      'unauthorized_client',
    );
  });

  it('validates registrations: one rule, a rule for mtls classes, a readable DN', () => {
    const base = [classDoc({ name: 'c', audiences: [API], scopes: ['s'], binding: 'mtls' })];
    const w = (extra: Record<string, unknown>) =>
      rawDoc('workload', {
        id: 'spiffe://test.writ/x',
        owner: 'o',
        environment: 'prod',
        classes: ['c'],
        ...extra,
      });
    assert.throws(
      () => validateConfig([...base, w({ tls_client_auth: { x509_svid: true, san_dns: 'a' } })]),
      (e: unknown) => e instanceof ConfigError && /exactly one/.test(e.message),
    );
    assert.throws(
      () => validateConfig([...base, w({ jwks: { keys: [jwtKey.publicJwk] } })]),
      (e: unknown) => e instanceof ConfigError && /client certificate/.test(e.message),
    );
    assert.throws(
      () => validateConfig([...base, w({ tls_client_auth: { subject_dn: 'no equals sign' } })]),
      (e: unknown) => e instanceof ConfigError && /RFC 4514/.test(e.message),
    );
    const ok = validateConfig([...base, w({ self_signed_certificates: [certs['dns']!.pem] })]);
    assert.deepEqual(ok.workloads[0]!.tlsCertificates, [x5tS256(certs['dns']!.pem)]);
  });

  it('reloads rotated trust bundles; a bundle that does not load leaves the old one in force', async () => {
    const server = h.writ.app.server as unknown as import('node:https').Server;
    // other.writ rotates to a CA that did sign the foreign SVID.
    writeFileSync(certs['otherRoot']!.certFile, certs['root']!.pem);
    assert.equal(await reloadTls(h.writ.ctx, server), true);
    assert.deepEqual((await lastEvent(h, 'tls.reloaded')).data['spiffe_trust_domains'], [
      'other.writ',
      'test.writ',
    ]);
    assert.equal((await tokenFor(FOREIGN, as(certs['foreign']!))).status, 200);
    writeFileSync(certs['otherRoot']!.certFile, 'not a bundle');
    assert.equal(await reloadTls(h.writ.ctx, server), false);
    assert.match(String((await lastEvent(h, 'tls.reload_failed')).data['reason']), /no certificate/);
    assert.equal((await tokenFor(FOREIGN, as(certs['foreign']!))).status, 200);
  });

  it('reads forwarded certificates as proxies send them', () => {
    const pem = certs['dns']!.pem;
    const want = x5tS256(pem);
    const leaf = (v: string) => {
      const c = parseForwardedCertificate(v);
      return c ? certificateThumbprint(c.leaf) : undefined;
    };
    assert.equal(leaf(encodeURIComponent(pem)), want, 'URL-encoded PEM (nginx $ssl_client_escaped_cert)');
    assert.equal(leaf(pem.replace(/\n/g, ' ')), want, 'PEM with its line breaks as spaces');
    assert.equal(leaf(certs['dns']!.x509.raw.toString('base64')), want, 'base64 DER');
    const xfcc = (p: string) => `By=spiffe://test.writ/proxy;Hash=00;Cert="${encodeURIComponent(p)}";URI=`;
    assert.equal(leaf(`${xfcc(certs['ip']!.pem)},${xfcc(pem)}`), want, 'Envoy XFCC: the last element');
    const chain = parseForwardedCertificate(
      encodeURIComponent(certs['chained']!.pem + certs['intermediate']!.pem),
    );
    assert.equal(chain?.intermediates.length, 1);
    for (const junk of [
      '',
      'garbage',
      '%E0%A4%A',
      'Cert="x"',
      '-----BEGIN CERTIFICATE-----AAAA-----END CERTIFICATE-----',
    ])
      assert.equal(parseForwardedCertificate(junk), undefined, junk);
  });

  it('parses RFC 4514 names: order, escapes, multi-valued RDNs, hex pairs', () => {
    const dn = parseDistinguishedName('CN=a\\,b+UID=7,O=Example\\2C Inc,C=SE');
    assert.deepEqual(dn, [['C=SE'], ['O=Example, Inc'], ['CN=a,b', 'UID=7']]);
    assert.ok(sameName(dn!, parseDistinguishedName('uid=7+cn=a\\,b, o=Example\\, Inc, c=SE')!));
    assert.equal(sameName(dn!, parseDistinguishedName('CN=a\\,b+UID=7,O=Example,C=SE')!), false);
  });
});
