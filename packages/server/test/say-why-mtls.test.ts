import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fakeClock } from '../src/clock.js';
import { hasOpenssl, makeCa, makeLeaf, type TestCertificate } from './helpers/certificates.js';
import { classDoc, clientAuth, injectForm, rawDoc } from './helpers/dpop.js';
import { type Harness, type Reply, startHarness, testKey } from './helpers/harness.js';
import { type ExpectedRefusal, expectRefusal } from './helpers/refusals.js';
import { assertCovers, type SayWhyRow } from './helpers/say-why.js';

/**
 * Issue 21 item 1, for client certificates (RFC 8705): what the certificate itself is (validity, key
 * usage, extended key usage) is said precisely, to anyone; what the registry decides (no such client, no
 * certificate registered, not its CA, not its name) is one answer, so a certificate holder cannot learn
 * which client ids exist or how they authenticate.
 */

const API = 'https://api.say-why-mtls.test';
const BY_DNS = 'spiffe://test.writ/say-why/by-dns';
const SELF = 'spiffe://test.writ/say-why/self';
const NO_BUNDLE = 'spiffe://nobundle.writ/say-why/svid';
const MIXED = 'spiffe://test.writ/say-why/mixed';
const NOBODY = 'spiffe://test.writ/nobody/here';
const HEADER = 'x-client-cert';
const DAY = 86_400_000;

interface Row extends SayWhyRow {
  send: () => Promise<Reply>;
  expect: ExpectedRefusal & { description: RegExp };
}

describe('say why: client certificates', {
  skip: hasOpenssl() ? false : 'the openssl CLI is not installed',
}, () => {
  // Set once the certificates exist: openssl dates them from the second it makes them.
  let start = Date.now();
  const clock = fakeClock(start);
  const mixedKey = testKey();
  let dir: string;
  let h: Harness;
  const certs: Record<string, TestCertificate> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-say-why-mtls-'));
    const corp = makeCa(dir, 'corp', '/O=Corp/CN=Corp CA');
    const dns = 'DNS:exporter.internal';
    certs['good'] = makeLeaf(dir, 'good', corp, { san: dns });
    certs['otherName'] = makeLeaf(dir, 'other-name', corp, { san: 'DNS:billing.internal' });
    certs['isCa'] = makeLeaf(dir, 'is-ca', corp, {
      san: dns,
      basicConstraints: 'critical,CA:TRUE',
      keyUsage: 'critical,digitalSignature,keyCertSign',
    });
    certs['serverOnly'] = makeLeaf(dir, 'server-only', corp, { san: dns, eku: 'serverAuth' });
    certs['noSign'] = makeLeaf(dir, 'no-sign', corp, { san: dns, keyUsage: 'critical,keyEncipherment' });
    certs['self'] = makeLeaf(dir, 'self', undefined);
    certs['stranger'] = makeLeaf(dir, 'stranger', undefined);
    start = Date.now() + 1000;
    clock.set(start);
    h = await startHarness({
      clock,
      settings: {
        'limits.source_burst': 10_000,
        'tls.client_ca_files': [corp.certFile],
        'tls.forwarded_cert_header': HEADER,
        'tls.trusted_proxies': ['127.0.0.1'],
      },
      extraDocs: [
        classDoc({
          name: 'api-mtls',
          audiences: [API],
          scopes: ['api:read'],
          default_scopes: ['api:read'],
          binding: 'mtls',
        }),
        rawDoc('workload', {
          id: BY_DNS,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['api-mtls'],
          tls_client_auth: { san_dns: 'exporter.internal' },
        }),
        rawDoc('workload', {
          id: SELF,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['api-mtls'],
          self_signed_certificates: [certs['self'].pem],
        }),
        rawDoc('workload', {
          id: NO_BUNDLE,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['api-mtls'],
          tls_client_auth: { x509_svid: true },
        }),
        rawDoc('workload', {
          id: MIXED,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['api-mtls'],
          jwks: { keys: [mixedKey.publicJwk] },
          tls_client_auth: { san_dns: 'exporter.internal' },
        }),
      ],
    });
  });
  after(async () => {
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A token request for `clientId` (none: no client_id) whose certificate a trusted proxy forwards. */
  const withCertificate = (clientId: string | undefined, cert: TestCertificate | string[]) =>
    injectForm(
      h,
      '/oauth2/token',
      { grant_type: 'client_credentials', resource: API, ...(clientId ? { client_id: clientId } : {}) },
      { [HEADER]: Array.isArray(cert) ? cert : encodeURIComponent(cert.pem) },
    );
  /** At a moment the clock is moved to, then put back. */
  const at = async (ms: number, send: () => Promise<Reply>): Promise<Reply> => {
    clock.set(ms);
    try {
      return await send();
    } finally {
      clock.set(start);
    }
  };
  const refused = (reason: SayWhyRow['reason'], description: RegExp) => ({
    status: 401,
    error: 'invalid_client',
    reason,
    description,
  });
  /** The one answer to a certificate the registry does not take for this client_id. */
  const NOT_THIS_CLIENT =
    /^client certificate authentication failed: the certificate is not one registered for this client_id, does not chain to a CA trusted for it, or does not name it as its registration requires$/;

  const rows: Row[] = [
    {
      reason: 'mtls_client_id_required',
      what: 'a certificate without client_id',
      send: () => withCertificate(undefined, certs['good']!),
      expect: refused(
        'mtls_client_id_required',
        /^client certificate authentication needs the client_id parameter/,
      ),
    },
    {
      reason: 'unknown_client',
      what: 'a good certificate for a client id nobody registered',
      send: () => withCertificate(NOBODY, certs['good']!),
      expect: refused('unknown_client', NOT_THIS_CLIENT),
    },
    {
      reason: 'mtls_not_registered',
      what: 'a workload that registered no certificate authentication',
      send: () => withCertificate('spiffe://test.writ/reports/exporter', certs['good']!),
      expect: refused('mtls_not_registered', NOT_THIS_CLIENT),
    },
    {
      reason: 'certificate_not_registered',
      what: 'another self-signed certificate than the one registered',
      send: () => withCertificate(SELF, certs['stranger']!),
      expect: refused('certificate_not_registered', NOT_THIS_CLIENT),
    },
    {
      reason: 'certificate_untrusted',
      what: 'a self-signed certificate for a workload matched by CA and name',
      send: () => withCertificate(BY_DNS, certs['stranger']!),
      expect: refused('certificate_untrusted', NOT_THIS_CLIENT),
    },
    {
      reason: 'no_trusted_ca',
      what: 'an SVID rule for a trust domain with no bundle',
      send: () => withCertificate(NO_BUNDLE, certs['good']!),
      expect: refused('no_trusted_ca', NOT_THIS_CLIENT),
    },
    {
      reason: 'certificate_is_ca',
      what: 'a CA certificate as a client certificate',
      send: () => withCertificate(BY_DNS, certs['isCa']!),
      expect: refused('certificate_is_ca', NOT_THIS_CLIENT),
    },
    {
      reason: 'certificate_identity_mismatch',
      what: "another workload's name",
      send: () => withCertificate(BY_DNS, certs['otherName']!),
      expect: refused('certificate_identity_mismatch', NOT_THIS_CLIENT),
    },
    {
      reason: 'certificate_eku',
      what: 'a server certificate',
      send: () => withCertificate(NOBODY, certs['serverOnly']!),
      expect: refused(
        'certificate_eku',
        /^client certificate extended key usage does not include clientAuth$/,
      ),
    },
    {
      reason: 'certificate_key_usage',
      what: 'a certificate whose key may not sign',
      send: () => withCertificate(NOBODY, certs['noSign']!),
      expect: refused(
        'certificate_key_usage',
        /^client certificate key usage does not include digitalSignature$/,
      ),
    },
    {
      reason: 'certificate_expired',
      what: 'a certificate past its notAfter',
      send: () => at(start + 2 * DAY, () => withCertificate(BY_DNS, certs['good']!)),
      expect: refused('certificate_expired', /^client certificate expired at \d{4}-\d\d-\d\dT[\d:.]+Z$/),
    },
    {
      reason: 'certificate_not_yet_valid',
      what: 'a certificate before its notBefore',
      send: () => at(start - DAY, () => withCertificate(BY_DNS, certs['good']!)),
      expect: refused(
        'certificate_not_yet_valid',
        /^client certificate is not valid until \d{4}-\d\d-\d\dT[\d:.]+Z$/,
      ),
    },
    {
      reason: 'forwarded_certificate_repeated',
      what: 'the forwarded certificate header twice',
      send: () => {
        const pem = encodeURIComponent(certs['good']!.pem);
        return withCertificate(BY_DNS, [pem, pem]);
      },
      expect: refused(
        'forwarded_certificate_repeated',
        /^client authentication is required: the forwarded client certificate header was sent more than once$/,
      ),
    },
    {
      reason: 'forwarded_certificate_malformed',
      what: 'a forwarded certificate header that is no certificate',
      send: () => withCertificate(BY_DNS, ['garbage!']),
      expect: refused(
        'forwarded_certificate_malformed',
        /^client authentication is required: the forwarded client certificate header cannot be parsed$/,
      ),
    },
    {
      reason: 'forwarded_certificate_untrusted_source',
      what: 'the forwarded certificate header from an address that is no proxy',
      send: async () => {
        const res = await h.writ.app.inject({
          method: 'POST',
          url: '/oauth2/token',
          remoteAddress: '192.0.2.7',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            [HEADER]: encodeURIComponent(certs['good']!.pem),
          },
          payload: new URLSearchParams({
            grant_type: 'client_credentials',
            client_id: BY_DNS,
            resource: API,
          }).toString(),
        });
        return {
          status: res.statusCode,
          body: JSON.parse(res.body) as Record<string, unknown>,
          headers: res.headers,
        };
      },
      expect: refused(
        'forwarded_certificate_untrusted_source',
        /^client authentication is required: a forwarded client certificate header came from an address tls\.trusted_proxies does not list, so it was ignored$/,
      ),
    },
    {
      reason: 'mtls_binding_required',
      what: 'an assertion for a class that binds to a certificate',
      send: () =>
        injectForm(h, '/oauth2/token', {
          grant_type: 'client_credentials',
          resource: API,
          ...clientAuth(h, MIXED, mixedKey),
        }),
      expect: {
        status: 400,
        error: 'unauthorized_client',
        reason: 'mtls_binding_required',
        description:
          /^class api-mtls binds tokens to a client certificate: authenticate with tls_client_auth or self_signed_tls_client_auth$/,
      },
    },
  ];

  it('has a row for every reason of client certificates', () => {
    assertCovers('mtls', rows);
  });

  for (const row of rows) {
    it(`${row.reason}: ${row.what}`, async () => {
      await expectRefusal(h, row.send, row.expect);
    });
  }

  it('a good certificate passes (the refusals above are not blanket)', async () => {
    const r = await withCertificate(BY_DNS, certs['good']!);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const own = await withCertificate(SELF, certs['self']!);
    assert.equal(own.status, 200, JSON.stringify(own.body));
  });

  it('answers alike whether the client id exists or how it authenticates', async () => {
    const answers = await Promise.all(
      [NOBODY, 'spiffe://test.writ/reports/exporter', SELF, BY_DNS, NO_BUNDLE].map((id) =>
        withCertificate(id, certs['stranger']!),
      ),
    );
    for (const r of answers) assert.deepEqual(r.body, answers[0]!.body);
  });
});
