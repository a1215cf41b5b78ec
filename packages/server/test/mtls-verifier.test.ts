import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  certificateThumbprint,
  type PresentedRequest,
  type Verifier,
  writExpress,
  writFastify,
  writHono,
  writNodeHttp,
} from '@writ/sdk/verifier';
import type { AccessTokenClaims } from '@writ/sdk/wire';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import {
  hasOpenssl,
  makeCa,
  makeLeaf,
  makeLocalhostServer,
  type TestCertificate,
  x5tS256,
} from './helpers/certificates.js';
import { classDoc, decodeClaims, rawDoc } from './helpers/dpop.js';
import { bearerGet } from './helpers/https.js';
import { API, outcome, startVerifierWorld, type VerifierWorld } from './helpers/verifier.js';

const HOLDER = 'spiffe://test.writ/mtls/holder';

type Tls = { cert: string; key: string; requestCert: true; rejectUnauthorized: false };
type Running = { port: number; close: () => Promise<void> };

async function listening(server: Server): Promise<Running> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One resource server per framework, each over HTTPS asking for client certificates: GET /reports. */
const FRAMEWORKS: [string, (v: Verifier, tls: Tls) => Promise<Running>][] = [
  [
    'node:http',
    (v, tls) => {
      const auth = writNodeHttp(v, { baseUrl: API });
      return listening(
        createServer(tls, async (req, res) => {
          const claims = await auth(req, res);
          if (!claims) return;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ sub: claims.sub }));
        }),
      );
    },
  ],
  [
    'Express',
    (v, tls) => {
      const app = express();
      app.get('/reports', writExpress(v, { baseUrl: API }), (_req, res) => {
        res.json({ sub: (res.locals['writ'] as AccessTokenClaims).sub });
      });
      return listening(createServer(tls, app));
    },
  ],
  [
    'Fastify',
    async (v, tls) => {
      const app = Fastify({ https: tls });
      app.decorateRequest('writ', null);
      app.addHook('preHandler', writFastify(v, { baseUrl: API }));
      app.get('/reports', async (req) => ({ sub: (req as unknown as { writ: AccessTokenClaims }).writ.sub }));
      await app.listen({ port: 0, host: '127.0.0.1' });
      return {
        port: (app.server.address() as { port: number }).port,
        close: async () => {
          app.server.closeAllConnections();
          await app.close();
        },
      };
    },
  ],
  [
    'Hono (a node bridge passing env.incoming, as @hono/node-server does)',
    (v, tls) => {
      const app = new Hono();
      app.use('/reports', writHono(v, { baseUrl: API }));
      app.get('/reports', (c) =>
        c.json({ sub: (c as unknown as { get(k: string): AccessTokenClaims }).get('writ').sub }),
      );
      return listening(
        createServer(tls, async (req, res) => {
          const headers = new Headers();
          for (const [k, values] of Object.entries(req.headersDistinct))
            for (const x of values ?? []) headers.append(k, x);
          const response = await app.fetch(
            new Request(`https://${req.headers.host}${req.url}`, { method: req.method!, headers }),
            { incoming: req },
          );
          res.writeHead(response.status, Object.fromEntries(response.headers));
          res.end(Buffer.from(await response.arrayBuffer()));
        }),
      );
    },
  ],
];

/** GET /reports over real HTTPS to the resource server, presenting `client` as TLS client certificate (or none). */
const get = (port: number, ca: TestCertificate, token: string, client?: TestCertificate) =>
  bearerGet(port, ca, '/reports', token, client);

describe('verifier: certificate-bound tokens (RFC 8705 §3)', {
  skip: hasOpenssl() ? false : 'the openssl CLI is not installed',
}, () => {
  let dir: string;
  let w: VerifierWorld;
  let holder: TestCertificate;
  let stranger: TestCertificate;
  let serverCa: TestCertificate;
  let token: string;
  let apiTls: Tls;
  const presenting = (cert: PresentedRequest['clientCertificate']): PresentedRequest => ({
    authorization: `Bearer ${token}`,
    dpop: [],
    method: 'GET',
    url: `${API}/reports`,
    ...(cert !== undefined ? { clientCertificate: cert } : {}),
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-mtls-verifier-'));
    holder = makeLeaf(dir, 'holder', undefined, { subject: '/CN=holder' });
    stranger = makeLeaf(dir, 'stranger', undefined, { subject: '/CN=holder' });
    serverCa = makeCa(dir, 'api-ca');
    const apiCert = makeLocalhostServer(dir, 'api', serverCa);
    // Writ behind a TLS-terminating proxy on this host: the certificate comes in a header.
    w = await startVerifierWorld({
      settings: { 'tls.forwarded_cert_header': 'x-ssl-client-cert', 'tls.trusted_proxies': ['127.0.0.1'] },
      docs: () => [
        classDoc({
          name: 'api-mtls',
          audiences: [API],
          scopes: ['reports:read'],
          default_scopes: ['reports:read'],
          binding: 'mtls',
        }),
        rawDoc('workload', {
          id: HOLDER,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['api-mtls'],
          self_signed_certificates: [holder.pem],
        }),
      ],
    });
    const r = await w.h.post(
      '/oauth2/token',
      { grant_type: 'client_credentials', client_id: HOLDER, resource: API },
      { 'x-ssl-client-cert': encodeURIComponent(holder.pem) },
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    token = r.body['access_token'] as string;
    assert.deepEqual(decodeClaims(token)['cnf'], { 'x5t#S256': x5tS256(holder.pem) });
    apiTls = { cert: apiCert.pem, key: apiCert.key, requestCert: true, rejectUnauthorized: false };
  });
  after(async () => {
    await w?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('accepts the token with the certificate it is bound to, as PEM, DER or X509Certificate', async () => {
    assert.equal(certificateThumbprint(holder.pem), x5tS256(holder.pem));
    for (const cert of [holder.pem, new X509Certificate(holder.pem).raw, new X509Certificate(holder.pem)]) {
      assert.match(await outcome(w.verifier, presenting(cert)), /^ok:/);
    }
  });

  it('refuses it without a certificate, and with another certificate', async () => {
    assert.equal(await outcome(w.verifier, presenting(undefined)), 'mtls_certificate_missing');
    assert.equal(await outcome(w.verifier, presenting(stranger.pem)), 'mtls_certificate_mismatch');
  });

  for (const [name, start] of FRAMEWORKS) {
    it(`${name} middleware takes the certificate from the TLS connection`, async () => {
      const api = await start(w.verifier, apiTls);
      try {
        const ok = await get(api.port, serverCa, token, holder);
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        assert.equal(ok.body['sub'], HOLDER);
        const other = await get(api.port, serverCa, token, stranger);
        assert.equal(other.status, 401);
        assert.equal(other.body['error'], 'invalid_token');
        assert.match(String(other.body['error_description']), /another client certificate/);
        const none = await get(api.port, serverCa, token);
        assert.equal(none.status, 401);
        assert.equal(none.body['error'], 'invalid_token');
        assert.match(String(none.body['error_description']), /present it over mutual TLS/);
      } finally {
        await api.close();
      }
    });
  }
});
