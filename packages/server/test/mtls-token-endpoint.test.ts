import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER } from '@writ/sdk/wire';
import { writeRefusalSummaries } from '../src/audit/refusal.js';
import { fakeClock } from '../src/clock.js';
import {
  hasOpenssl,
  makeCa,
  makeLeaf,
  makeLocalhostServer,
  type TestCertificate,
  x5tS256,
} from './helpers/certificates.js';
import { classDoc, count, decodeClaims, introspect, lastEvent, rawDoc } from './helpers/dpop.js';
import { AUDIENCE, freePort, type Harness, startHarness, testKey } from './helpers/harness.js';
import { bearerGet, type HttpsReply, httpsJson } from './helpers/https.js';

const API = 'https://api.mtls.test';
const SVID = 'spiffe://test.writ/mtls/svid';
const OTHER_SVID = 'spiffe://test.writ/mtls/other';
const SELF_SIGNED = 'spiffe://test.writ/mtls/self-signed';
const BY_DN = 'spiffe://test.writ/mtls/by-dn';
const PROXY = '10.20.30.40';
const DAY = 86_400_000;

/** POST a form over real HTTPS, presenting `client` as the TLS client certificate (or none). */
function httpsForm(
  port: number,
  serverCa: TestCertificate,
  form: Record<string, string>,
  client?: TestCertificate,
  headers: Record<string, string> = {},
  path = '/oauth2/token',
): Promise<HttpsReply> {
  const body = new URLSearchParams(form).toString();
  return httpsJson(
    {
      host: '127.0.0.1',
      port,
      path,
      method: 'POST',
      ca: serverCa.pem,
      ...(client ? { cert: client.pem, key: client.key } : {}),
      agent: false,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'content-length': String(Buffer.byteLength(body)),
        ...headers,
      },
    },
    body,
  );
}

describe('mTLS client authentication and certificate-bound tokens (RFC 8705)', {
  skip: hasOpenssl() ? false : 'the openssl CLI is not installed',
}, () => {
  const clock = fakeClock(Date.now());
  // Set once the certificates exist: openssl dates them from the moment it makes them.
  let start = clock.now();
  const svidKey = testKey();
  let dir: string;
  let h: Harness;
  let port: number;
  const c = {} as Record<
    | 'serverCa'
    | 'server'
    | 'spiffeCa'
    | 'corpCa'
    | 'evilCa'
    | 'svid'
    | 'otherSvid'
    | 'evilSvid'
    | 'noEku'
    | 'selfSigned'
    | 'unregistered'
    | 'byDn',
    TestCertificate
  >;
  const form = (clientId: string, extra: Record<string, string> = {}) => ({
    grant_type: 'client_credentials',
    client_id: clientId,
    resource: API,
    ...extra,
  });
  const send = (clientId: string, cert?: TestCertificate, headers: Record<string, string> = {}) =>
    httpsForm(port, c.serverCa, form(clientId), cert, headers);

  /** Asserts a refusal: the status and error, a `token.refused` event with `reason`, nothing issued. */
  const refused = async (
    r: () => Promise<HttpsReply>,
    reason: string,
    o: { status?: number; error?: string } = {},
  ) => {
    const issuedBefore = await count(h, 'token.issued');
    const storedBefore = await storedTokens();
    const refusedBefore = await count(h, 'token.refused');
    const reply = await r();
    // A repeat of a kind of refusal this window is in its summary row: written when the window ends.
    await writeRefusalSummaries(h.writ.ctx, true);
    assert.equal(reply.status, o.status ?? 401, JSON.stringify(reply.body));
    assert.equal(reply.body['error'], o.error ?? 'invalid_client');
    assert.equal(reply.body['access_token'], undefined);
    assert.equal(await count(h, 'token.issued'), issuedBefore, 'nothing issued');
    assert.equal(await storedTokens(), storedBefore, 'no token recorded in the store');
    assert.equal(await count(h, 'token.refused'), refusedBefore + 1, 'the refusal is audited');
    const ev = await lastEvent(h, 'token.refused');
    assert.equal(ev.outcome, 'refused');
    assert.equal(ev.data['reason'], reason);
    return ev;
  };

  /** Token records in the harness's store, counted through a connection of its own. */
  const storedTokens = (): Promise<number> => h.countRows('tokens');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-mtls-'));
    c.serverCa = makeCa(dir, 'server-ca');
    c.server = makeLocalhostServer(dir, 'server', c.serverCa);
    c.spiffeCa = makeCa(dir, 'spiffe-ca', '/O=SPIFFE/CN=test.writ');
    c.corpCa = makeCa(dir, 'corp-ca', '/O=Writ Test/CN=Corp CA');
    c.evilCa = makeCa(dir, 'evil-ca', '/O=SPIFFE/CN=test.writ');
    c.svid = makeLeaf(dir, 'svid', c.spiffeCa, { subject: '/O=SPIFFE', san: `URI:${SVID}` });
    c.otherSvid = makeLeaf(dir, 'other-svid', c.spiffeCa, { subject: '/O=SPIFFE', san: `URI:${OTHER_SVID}` });
    c.evilSvid = makeLeaf(dir, 'evil-svid', c.evilCa, { subject: '/O=SPIFFE', san: `URI:${SVID}` });
    c.noEku = makeLeaf(dir, 'no-eku', c.spiffeCa, {
      subject: '/O=SPIFFE',
      san: `URI:${SVID}`,
      eku: 'serverAuth',
    });
    c.selfSigned = makeLeaf(dir, 'self-signed', undefined, { subject: '/CN=self-signed client' });
    c.unregistered = makeLeaf(dir, 'unregistered', undefined, { subject: '/CN=self-signed client' });
    c.byDn = makeLeaf(dir, 'by-dn', c.corpCa, { subject: '/O=Writ Test/OU=Reports, Exports/CN=exporter' });
    start = Date.now() + 60_000;
    clock.set(start);
    port = await freePort();
    h = await startHarness({
      clock,
      listen: true,
      settings: {
        'listen.port': port,
        'tls.cert_file': c.server.certFile,
        'tls.key_file': c.server.keyFile,
        'tls.spiffe_bundles': [`test.writ=${c.spiffeCa.certFile}`],
        'tls.client_ca_files': [c.corpCa.certFile],
        'tls.forwarded_cert_header': 'x-ssl-client-cert',
        'tls.trusted_proxies': [`${PROXY}/32`],
      },
      extraDocs: [
        classDoc({
          name: 'api-mtls',
          // Writ's own Shared Signals API too: a Writ endpoint checks the binding as any resource server.
          audiences: [API, `https://127.0.0.1:${port}/ssf`],
          scopes: ['api:read'],
          default_scopes: ['api:read'],
          binding: 'mtls',
        }),
        rawDoc('workload', {
          id: SVID,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['api-mtls'],
          tls_client_auth: { x509_svid: true },
          jwks: { keys: [svidKey.publicJwk] },
        }),
        rawDoc('workload', {
          id: OTHER_SVID,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['api-mtls'],
          tls_client_auth: { x509_svid: true },
        }),
        rawDoc('workload', {
          id: SELF_SIGNED,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['api-mtls'],
          self_signed_certificates: [c.selfSigned.pem],
        }),
        rawDoc('workload', {
          id: BY_DN,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['api-mtls'],
          tls_client_auth: { subject_dn: 'CN=exporter,OU=Reports\\, Exports,O=Writ Test' },
        }),
      ],
    });
  });
  after(async () => {
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS and announces the methods and certificate-bound tokens (RFC 8414, RFC 8705 §3.3)', async () => {
    assert.ok(h.issuer.startsWith('https://'), h.issuer);
    const res = await h.writ.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    const meta = JSON.parse(res.body) as Record<string, unknown>;
    const methods = meta['token_endpoint_auth_methods_supported'] as string[];
    assert.ok(methods.includes('tls_client_auth'));
    assert.ok(methods.includes('self_signed_tls_client_auth'));
    assert.ok(methods.includes('private_key_jwt'));
    assert.equal(meta['tls_client_certificate_bound_access_tokens'], true);
  });

  it('issues a certificate-bound token to a SPIFFE X.509-SVID (tls_client_auth)', async () => {
    const r = await send(SVID, c.svid);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['token_type'], 'Bearer');
    const claims = decodeClaims(r.body['access_token'] as string);
    assert.equal(claims['sub'], SVID);
    assert.deepEqual(claims['cnf'], { 'x5t#S256': x5tS256(c.svid.pem) });
    const ev = await lastEvent(h, 'token.issued');
    assert.equal(ev.jti, claims['jti']);
    assert.equal((await h.store.getToken(claims['jti'] as string))?.sub, SVID);
    assert.equal(ev.data['auth_method'], 'tls_client_auth');
    assert.equal(ev.data['binding'], 'mtls');
    assert.equal(ev.data['x5t'], x5tS256(c.svid.pem));
    const intro = await introspect(h, r.body['access_token'] as string);
    assert.equal(intro['active'], true);
    assert.equal(intro['token_type'], 'Bearer');
    assert.deepEqual(intro['cnf'], { 'x5t#S256': x5tS256(c.svid.pem) });
  });

  it('exchanges a certificate-bound token only for a client presenting its certificate (RFC 8693)', async () => {
    const subject = (await send(SVID, c.svid)).body['access_token'] as string;
    const exchange = {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: subject,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    };
    const r = await httpsForm(port, c.serverCa, { ...exchange, client_id: SVID }, c.svid);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(decodeClaims(r.body['access_token'] as string)['cnf'], {
      'x5t#S256': x5tS256(c.svid.pem),
    });
    await refused(
      () =>
        httpsForm(port, c.serverCa, {
          ...exchange,
          client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
          client_assertion: h.assertion({ clientId: SVID, key: svidKey }),
        }),
      'mtls_binding_required',
      { error: 'unauthorized_client', status: 400 },
    );
  });

  it('authenticates introspection callers by certificate too (RFC 7662 with RFC 8705)', async () => {
    const issued = await send(SVID, c.svid);
    const token = issued.body['access_token'] as string;
    const r = await httpsForm(port, c.serverCa, { client_id: SVID, token }, c.svid, {}, '/oauth2/introspect');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['active'], true);
    assert.deepEqual(r.body['cnf'], { 'x5t#S256': x5tS256(c.svid.pem) });
    assert.equal((await lastEvent(h, 'token.introspected')).actor, SVID);
    const bad = await httpsForm(
      port,
      c.serverCa,
      { client_id: SVID, token },
      c.evilSvid,
      {},
      '/oauth2/introspect',
    );
    assert.equal(bad.status, 401);
    assert.equal(bad.body['error'], 'invalid_client');
    assert.equal((await lastEvent(h, 'introspection.refused')).data['reason'], 'certificate_untrusted');
  });

  it('issues to a registered self-signed certificate (self_signed_tls_client_auth)', async () => {
    const r = await send(SELF_SIGNED, c.selfSigned);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const claims = decodeClaims(r.body['access_token'] as string);
    assert.deepEqual(claims['cnf'], { 'x5t#S256': x5tS256(c.selfSigned.pem) });
    assert.equal((await lastEvent(h, 'token.issued')).data['auth_method'], 'self_signed_tls_client_auth');
  });

  it('issues to a CA-issued certificate matching the registered subject DN (RFC 4514)', async () => {
    const r = await send(BY_DN, c.byDn);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(decodeClaims(r.body['access_token'] as string)['cnf'], {
      'x5t#S256': x5tS256(c.byDn.pem),
    });
  });

  it('still serves clients without a certificate (private_key_jwt, bearer class)', async () => {
    const r = await httpsForm(port, c.serverCa, {
      grant_type: 'client_credentials',
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: h.assertion(),
      resource: AUDIENCE,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(decodeClaims(r.body['access_token'] as string)['cnf'], undefined);
  });

  it('refuses a certificate from a CA that is not configured, though TLS let it in', async () => {
    await refused(() => send(SVID, c.evilSvid), 'certificate_untrusted');
  });

  it('refuses a CA certificate used for a workload matched by subject DN (wrong CA for the rule)', async () => {
    // The SVID CA vouches for SPIFFE IDs of its own trust domain only, not for subject DN rules.
    await refused(() => send(BY_DN, c.svid), 'certificate_untrusted');
  });

  it('refuses an expired certificate and one not yet valid, judged by the injected clock', async () => {
    clock.set(start + 2 * DAY);
    try {
      await refused(() => send(SVID, c.svid), 'certificate_expired');
    } finally {
      clock.set(start);
    }
    clock.set(start - DAY);
    try {
      await refused(() => send(SVID, c.svid), 'certificate_not_yet_valid');
    } finally {
      clock.set(start);
    }
  });

  it('refuses a certificate without the clientAuth extended key usage', async () => {
    await refused(() => send(SVID, c.noEku), 'certificate_eku');
  });

  it('refuses an X.509-SVID whose URI SAN is another workload', async () => {
    const ev = await refused(() => send(SVID, c.otherSvid), 'certificate_identity_mismatch');
    assert.deepEqual(ev.data['presented_uri_san'], [OTHER_SVID]);
    assert.equal(ev.actor, 'anonymous', 'a certificate that did not authenticate proves no identity');
    assert.equal(ev.data['claimed_client_id'], SVID);
  });

  it('a certificate-bound token is accepted at a Writ endpoint only over a connection with its certificate (RFC 8705 §3)', async () => {
    const ssf = `${h.issuer}/ssf`;
    assert.equal(ssf, `https://127.0.0.1:${port}/ssf`);
    const r = await httpsForm(port, c.serverCa, form(SVID, { resource: ssf }), c.svid);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const token = r.body['access_token'] as string;
    const held = await bearerGet(port, c.serverCa, '/ssf/stream', token, c.svid);
    assert.equal(held.status, 200, JSON.stringify(held.body));
    for (const [cert, reason] of [
      [c.otherSvid, 'mtls_certificate_mismatch'],
      [undefined, 'mtls_certificate_missing'],
    ] as const) {
      const stolen = await bearerGet(port, c.serverCa, '/ssf/stream', token, cert);
      assert.equal(stolen.status, 401, JSON.stringify(stolen.body));
      assert.equal(stolen.body['error'], 'invalid_token');
      assert.equal((await lastEvent(h, 'ssf.refused')).data['reason'], reason);
    }
  });

  it('refuses a self-signed certificate the workload did not register', async () => {
    await refused(() => send(SELF_SIGNED, c.unregistered), 'certificate_not_registered');
  });

  it('refuses a certificate-bound class to a client that did not authenticate with its certificate', async () => {
    await refused(
      () =>
        httpsForm(port, c.serverCa, {
          ...form(SVID),
          client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
          client_assertion: h.assertion({ clientId: SVID, key: svidKey }),
        }),
      'mtls_binding_required',
      { error: 'unauthorized_client', status: 400 },
    );
  });

  it('refuses a certificate without client_id, and a request with neither certificate nor credential', async () => {
    await refused(
      () => httpsForm(port, c.serverCa, { grant_type: 'client_credentials', resource: API }, c.svid),
      'mtls_client_id_required',
    );
    await refused(() => send(SVID), 'no_client_auth');
  });

  describe('behind a TLS-terminating proxy', () => {
    const forwarded = (clientId: string, cert: TestCertificate, remoteAddress: string) =>
      h.writ.app
        .inject({
          method: 'POST',
          url: '/oauth2/token',
          remoteAddress,
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            'x-ssl-client-cert': encodeURIComponent(cert.pem),
          },
          payload: new URLSearchParams(form(clientId)).toString(),
        })
        .then((res) => ({ status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> }));

    it('honours the forwarded certificate from a listed proxy address', async () => {
      const r = await forwarded(SVID, c.svid, PROXY);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(decodeClaims(r.body['access_token'] as string)['cnf'], {
        'x5t#S256': x5tS256(c.svid.pem),
      });
    });

    it('ignores the same header from any other address and refuses the request, saying why', async () => {
      const ev = await refused(
        () => forwarded(SVID, c.svid, '10.20.30.41'),
        'forwarded_certificate_untrusted_source',
      );
      assert.equal(ev.data['ip'], '10.20.30.41');
    });

    it('ignores a spoofed header on a direct TLS connection too: the handshake certificate decides', async () => {
      // A client with the OTHER SVID sends a header claiming the SVID of SVID: the header is not believed.
      await refused(
        () => send(SVID, c.otherSvid, { 'x-ssl-client-cert': encodeURIComponent(c.svid.pem) }),
        'certificate_identity_mismatch',
      );
    });

    it('refuses a forwarded certificate that is not a certificate', async () => {
      const res = await h.writ.app.inject({
        method: 'POST',
        url: '/oauth2/token',
        remoteAddress: PROXY,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-ssl-client-cert': 'not%20a%20cert',
        },
        payload: new URLSearchParams(form(SVID)).toString(),
      });
      assert.equal(res.statusCode, 401);
      assert.equal((await lastEvent(h, 'token.refused')).data['reason'], 'forwarded_certificate_malformed');
    });
  });
});
