import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { WorkloadClient } from '@writ/sdk/client';
import { createDpopProof, generateDpopKey } from '@writ/sdk/dpop';
import {
  DpopNonces,
  type Verifier,
  type WritMiddlewareOptions,
  writExpress,
  writFastify,
  writFastifyPlugin,
  writHono,
  writNodeHttp,
} from '@writ/sdk/verifier';
import type { AccessTokenClaims } from '@writ/sdk/wire';
import { GrantType } from '@writ/sdk/wire';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { classDoc, clientAuth, decodeClaims, httpForm, workloadDoc } from './helpers/dpop.js';
import { testKey } from './helpers/harness.js';
import { type RawAnswer, rawRequest } from './helpers/raw-request.js';
import {
  API,
  eventually,
  startVerifierWorld,
  type VerifierWorld,
  workloadClient,
} from './helpers/verifier.js';

declare module 'fastify' {
  interface FastifyRequest {
    writ: AccessTokenClaims | null;
  }
}

// The verifier middleware for node:http, Express, Fastify and Hono, all run through one case suite over
// real HTTP against a verifier that follows a real Writ. An accepted request reaches the handler with
// its claims; a refused one gets its status and RFC 6750 §3 / RFC 9449 §7.1 challenge, and the handler
// never runs.

const CLIENT = 'spiffe://test.writ/middleware/client';
const LEGACY = 'spiffe://test.writ/middleware/legacy';

/** The routes every app mounts: path prefix, which verifier, which options. */
interface RouteSpec {
  name: 'reports' | 'admin' | 'strict' | 'nonce';
  verifier: Verifier;
  options: WritMiddlewareOptions;
}

interface App {
  /** The public URL of a route's resource `id`. */
  url(route: RouteSpec['name'], id: string): string;
  /** Handler invocations so far. */
  calls(): number;
  close(): Promise<void>;
}

/**
 * Builds an app listening on 127.0.0.1, its routes made for its own origin (the middleware's
 * `baseUrl`). Express and Fastify trust proxy headers, as behind a gateway: even then the request's
 * Host and X-Forwarded-* headers must not decide which URL a DPoP proof is checked against.
 */
type AppFactory = (routes: (origin: string) => RouteSpec[]) => Promise<App>;

const listen = async (server: Server): Promise<number> => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
};
const closeServer = (server: Server) =>
  new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });

const body = (claims: AccessTokenClaims) => ({ sub: claims.sub, jti: claims.jti, scope: claims.scope });

const FRAMEWORKS: [string, AppFactory][] = [
  [
    'node:http',
    async (routes) => {
      let calls = 0;
      let auth = new Map<string, ReturnType<typeof writNodeHttp>>();
      const server = createServer(async (req, res) => {
        const name = req.url?.split('/')[1] as RouteSpec['name'];
        const claims = await auth.get(name)!(req, res);
        if (!claims) return;
        calls++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body(claims)));
      });
      const port = await listen(server);
      const origin = `http://127.0.0.1:${port}`;
      auth = new Map(routes(origin).map((r) => [r.name, writNodeHttp(r.verifier, r.options)]));
      return {
        url: (route, id) => `${origin}/${route}/${id}`,
        calls: () => calls,
        close: () => closeServer(server),
      };
    },
  ],
  [
    'Express (mounted under /api, trust proxy on)',
    async (routes) => {
      let calls = 0;
      const app = express();
      app.set('trust proxy', true);
      const server = createServer(app);
      const port = await listen(server);
      const origin = `http://127.0.0.1:${port}`;
      const router = express.Router();
      for (const r of routes(origin))
        router.get(`/${r.name}/:id`, writExpress(r.verifier, r.options), (_req, res) => {
          calls++;
          res.json(body(res.locals['writ'] as AccessTokenClaims));
        });
      app.use('/api', router);
      return {
        url: (route, id) => `${origin}/api/${route}/${id}`,
        calls: () => calls,
        close: () => closeServer(server),
      };
    },
  ],
  [
    'Fastify (plugin per route scope, trustProxy on)',
    async (routes) => {
      let calls = 0;
      // The server listens first, so the routes know their origin; Fastify serves on it.
      let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
      const server = createServer((req, res) => handle(req, res));
      const port = await listen(server);
      const origin = `http://127.0.0.1:${port}`;
      const app = Fastify({
        trustProxy: true,
        serverFactory: (h) => {
          handle = h;
          return server;
        },
      });
      for (const r of routes(origin))
        app.register(async (scope) => {
          await scope.register(writFastifyPlugin, { verifier: r.verifier, ...r.options });
          scope.get(`/${r.name}/:id`, async (req) => {
            calls++;
            return body(req.writ!);
          });
        });
      await app.ready();
      return {
        url: (route, id) => `${origin}/${route}/${id}`,
        calls: () => calls,
        close: async () => {
          await closeServer(server);
          await app.close();
        },
      };
    },
  ],
  [
    'Hono (behind a node:http bridge)',
    async (routes) => {
      let calls = 0;
      const app = new Hono();
      const server = createServer((req, res) => void bridge(app.fetch, req, res));
      const port = await listen(server);
      const origin = `http://127.0.0.1:${port}`;
      for (const r of routes(origin)) {
        app.use(`/${r.name}/*`, writHono(r.verifier, r.options));
        app.get(`/${r.name}/:id`, (c) => {
          calls++;
          return c.json(body((c as unknown as { get(k: string): AccessTokenClaims }).get('writ')));
        });
      }
      return {
        url: (route, id) => `${origin}/${route}/${id}`,
        calls: () => calls,
        close: () => closeServer(server),
      };
    },
  ],
];

/** Serves a fetch-style handler on node:http: every header line kept, as an adapter does. */
async function bridge(
  handle: (r: Request) => Response | Promise<Response>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const headers = new Headers();
  for (const [k, values] of Object.entries(req.headersDistinct))
    for (const v of values ?? []) headers.append(k, v);
  const response = await handle(
    new Request(`http://${req.headers.host}${req.url}`, { method: req.method!, headers }),
  );
  const out: Record<string, string[]> = {};
  response.headers.forEach((v, k) => {
    out[k] = k === 'www-authenticate' ? [...(out[k] ?? []), ...splitChallenges(v)] : [...(out[k] ?? []), v];
  });
  res.writeHead(response.status, out);
  res.end(Buffer.from(await response.arrayBuffer()));
}

/** Fetch joins header lines with ", "; challenges start with a scheme name after such a join. */
const splitChallenges = (v: string): string[] => v.split(/, (?=(?:DPoP|Bearer)\b)/);

/** The challenges of a response, one per scheme. */
function challenges(res: Response): Map<string, string> {
  const all = splitChallenges(res.headers.get('www-authenticate') ?? '').filter((c) => c !== '');
  return new Map(all.map((c) => [c.split(' ')[0]!, c]));
}

/**
 * A GET over a raw socket, for what fetch would not send: two DPoP header lines (fetch joins them), a
 * Host header of the caller's choosing (`host`).
 */
function rawGet(url: string, headers: [string, string][], host?: string): Promise<RawAnswer> {
  const u = new URL(url);
  return rawRequest(u.origin, 'GET', `${u.pathname}${u.search}`, headers, host);
}

describe('verifier middleware', () => {
  const clientKey = testKey();
  const legacyKey = testKey('EdDSA');
  let w: VerifierWorld;
  let client: WorkloadClient;
  let routes: (origin: string) => RouteSpec[];

  before(async () => {
    w = await startVerifierWorld({
      docs: () => [
        classDoc({
          name: 'mw-api',
          audiences: [API],
          scopes: ['reports:read', 'reports:write'],
          default_scopes: ['reports:read'],
        }),
        classDoc({
          name: 'mw-legacy',
          binding: 'bearer',
          audiences: [API],
          scopes: ['reports:read'],
          default_scopes: ['reports:read'],
        }),
        workloadDoc(CLIENT, clientKey, ['mw-api']),
        workloadDoc(LEGACY, legacyKey, ['mw-legacy']),
      ],
    });
    client = workloadClient(w.issuer, CLIENT, clientKey, { nowMs: w.clock.now });
    const nonceVerifier = await w.spawnVerifier({ dpopNonces: new DpopNonces({ now: w.clock.now }) });
    routes = (baseUrl) => [
      { name: 'reports', verifier: w.verifier, options: { baseUrl, realm: 'reports' } },
      { name: 'admin', verifier: w.verifier, options: { baseUrl, scopes: ['reports:write'] } },
      { name: 'strict', verifier: w.verifier, options: { baseUrl, bearer: false, algs: ['ES256'] } },
      { name: 'nonce', verifier: nonceVerifier, options: { baseUrl } },
    ];
  });
  after(() => w.close());

  const nowS = () => Math.floor(w.clock.now() / 1000);
  const token = async (c: WorkloadClient = client, scope?: string) =>
    (await c.requestToken({ audience: API, ...(scope ? { scope } : {}) })).access_token;
  /** A bearer token (no cnf): the legacy workload asks without a DPoP proof. */
  const bearerToken = async () => {
    const r = await httpForm(`${w.issuer}/oauth2/token`, {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(w.h, LEGACY, legacyKey),
      resource: API,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['token_type'], 'Bearer');
    return r.body['access_token'] as string;
  };
  const proof = (t: string, url: string, key = client.dpopKey, method = 'GET') =>
    createDpopProof(key, { method, url, accessToken: t, nowSeconds: nowS() });

  for (const [framework, factory] of FRAMEWORKS) {
    describe(framework, () => {
      let app: App;
      before(async () => {
        app = await factory(routes);
      });
      after(() => app.close());

      /** Sends a request and checks that the handler ran exactly when the request was accepted. */
      const send = async (url: string, headers: Record<string, string>): Promise<Response> => {
        const before = app.calls();
        const res = await fetch(url, { headers });
        assert.equal(app.calls() - before, res.status === 200 ? 1 : 0, `handler calls for ${res.status}`);
        return res;
      };

      it('accepts a DPoP-bound token with its proof: the handler gets the claims', async () => {
        const url = `${app.url('reports', '7')}?page=2`;
        const before = app.calls();
        const res = await client.fetch(url, { audience: API });
        assert.equal(res.status, 200, await res.clone().text());
        const got = (await res.json()) as Record<string, unknown>;
        assert.equal(got['sub'], CLIENT);
        assert.equal(got['scope'], 'reports:read');
        assert.equal(app.calls(), before + 1);
      });

      it('accepts a token of a bearer class sent as Bearer, only where Bearer is allowed', async () => {
        const t = await bearerToken();
        assert.equal((await send(app.url('reports', '1'), { authorization: `Bearer ${t}` })).status, 200);
        const strict = await send(app.url('strict', '1'), { authorization: `Bearer ${t}` });
        assert.equal(strict.status, 401);
        assert.match(
          strict.headers.get('www-authenticate')!,
          /^DPoP error="invalid_token", error_description="[^"]+", algs="ES256"$/,
        );
      });

      it('no credentials: 401 with a DPoP challenge (algs) and a Bearer one, no error code', async () => {
        const res = await send(app.url('reports', '1'), {});
        assert.equal(res.status, 401);
        const c = challenges(res);
        assert.equal(c.get('DPoP'), 'DPoP realm="reports", algs="ES256 EdDSA ES384 PS256"');
        assert.equal(c.get('Bearer'), 'Bearer realm="reports"');
      });

      it('a malformed Authorization header: 400 invalid_request', async () => {
        const res = await send(app.url('reports', '1'), { authorization: 'Basic dXNlcjpwYXNz' });
        assert.equal(res.status, 400);
        assert.match(challenges(res).get('DPoP')!, /error="invalid_request", error_description="[^"]+"/);
        assert.equal(((await res.json()) as Record<string, unknown>)['error'], 'invalid_request');
      });

      it('a DPoP-bound token sent as Bearer: 401 invalid_token in the DPoP challenge, no token in the answer', async () => {
        const t = await token();
        const res = await send(app.url('reports', '1'), { authorization: `Bearer ${t}` });
        assert.equal(res.status, 401);
        const c = challenges(res);
        assert.match(
          c.get('DPoP')!,
          /^DPoP realm="reports", error="invalid_token", error_description="[^"]+", algs="ES256 EdDSA ES384 PS256"$/,
        );
        assert.equal(c.get('Bearer'), 'Bearer realm="reports"');
        const text = `${res.headers.get('www-authenticate')} ${await res.text()}`;
        assert.equal(text.includes(t.split('.')[1]!), false, 'no token content echoed');
      });

      it('a proof by another key, and a proof for another URL: 401 invalid_dpop_proof', async () => {
        const t = await token();
        const url = app.url('reports', '1');
        for (const dpop of [proof(t, url, generateDpopKey()), proof(t, app.url('reports', '2'))]) {
          const res = await send(url, { authorization: `DPoP ${t}`, dpop });
          assert.equal(res.status, 401);
          assert.match(challenges(res).get('DPoP')!, /error="invalid_dpop_proof"/);
        }
      });

      it('two DPoP header lines: 401 invalid_dpop_proof, even when each proof is valid', async () => {
        const t = await token();
        const url = app.url('reports', '3');
        const before = app.calls();
        const r = await rawGet(url, [
          ['Authorization', `DPoP ${t}`],
          ['DPoP', proof(t, url)],
          ['DPoP', proof(t, url)],
        ]);
        assert.equal(r.status, 401, r.head);
        assert.match(r.head, /www-authenticate: DPoP realm="reports", error="invalid_dpop_proof"/i);
        assert.equal(app.calls(), before);
        // Two proofs joined on one line (as fetch would send two) are two as well.
        const joined = await rawGet(url, [
          ['Authorization', `DPoP ${t}`],
          ['DPoP', `${proof(t, url)}, ${proof(t, url)}`],
        ]);
        assert.equal(joined.status, 401, joined.head);
        assert.match(joined.head, /www-authenticate: DPoP realm="reports", error="invalid_dpop_proof"/i);
        assert.equal(app.calls(), before);
        // One of them alone is fine.
        const ok = await rawGet(url, [
          ['Authorization', `DPoP ${t}`],
          ['DPoP', proof(t, url)],
        ]);
        assert.equal(ok.status, 200, ok.head);
      });

      it('a proof made for another site is refused, whatever Host and X-Forwarded-* the request claims', async () => {
        const t = await token();
        const real = app.url('reports', '5');
        const path = new URL(real).pathname;
        const attempts: { proofFor: string; host?: string; headers: [string, string][] }[] = [
          // The Host header names the attacker's site; so does the proof.
          { proofFor: `http://evil.example${path}`, host: 'evil.example', headers: [] },
          // Forwarded headers, which Express and Fastify here believe (trust proxy).
          {
            proofFor: `https://evil.example${path}`,
            headers: [
              ['X-Forwarded-Host', 'evil.example'],
              ['X-Forwarded-Proto', 'https'],
            ],
          },
        ];
        const before = app.calls();
        for (const a of attempts) {
          const r = await rawGet(
            real,
            [['Authorization', `DPoP ${t}`], ['DPoP', proof(t, a.proofFor)], ...a.headers],
            a.host,
          );
          assert.equal(r.status, 401, `${a.proofFor}: ${r.head}`);
          assert.match(r.head, /www-authenticate: DPoP realm="reports", error="invalid_dpop_proof"/i);
        }
        assert.equal(app.calls(), before, 'no handler ran');
        // A proof for this API's own URL passes, whatever the headers say.
        const ok = await rawGet(
          real,
          [
            ['Authorization', `DPoP ${t}`],
            ['DPoP', proof(t, real)],
            ['X-Forwarded-Host', 'evil.example'],
          ],
          'evil.example',
        );
        assert.equal(ok.status, 200, ok.head);
      });

      it('a token without a required scope: 403 insufficient_scope naming the scope; with it, 200', async () => {
        const url = app.url('admin', '1');
        const t = await token();
        const res = await send(url, { authorization: `DPoP ${t}`, dpop: proof(t, url) });
        assert.equal(res.status, 403);
        assert.match(
          challenges(res).get('DPoP')!,
          /error="insufficient_scope", error_description="[^"]+", scope="reports:write"/,
        );
        const writer = await token(client, 'reports:read reports:write');
        const ok = await send(url, { authorization: `DPoP ${writer}`, dpop: proof(writer, url) });
        assert.equal(ok.status, 200);
      });

      it('a revoked token: 401 invalid_token once the revocation has reached the verifier', async () => {
        const t = await token();
        const url = app.url('reports', '4');
        assert.equal((await send(url, { authorization: `DPoP ${t}`, dpop: proof(t, url) })).status, 200);
        const r = await w.h.admin('POST', '/revocations', { kind: 'jti', value: decodeClaims(t)['jti'] });
        assert.equal(r.status, 201);
        const res = await eventually('the revocation to reach the verifier', async () => {
          const x = await send(url, { authorization: `DPoP ${t}`, dpop: proof(t, url) });
          return x.status === 200 ? undefined : x;
        });
        assert.equal(res.status, 401);
        assert.match(challenges(res).get('DPoP')!, /error="invalid_token"/);
      });

      it('bearer: false: one DPoP challenge only, with the configured algs', async () => {
        const res = await send(app.url('strict', '1'), {});
        assert.equal(res.status, 401);
        assert.equal(res.headers.get('www-authenticate'), 'DPoP algs="ES256"');
        const t = await token();
        const url = app.url('strict', '2');
        assert.equal((await send(url, { authorization: `DPoP ${t}`, dpop: proof(t, url) })).status, 200);
      });

      it('a verifier that requires DPoP nonces: 401 use_dpop_nonce with DPoP-Nonce; the client retries with it', async () => {
        const t = await token();
        const url = app.url('nonce', '1');
        const first = await send(url, { authorization: `DPoP ${t}`, dpop: proof(t, url) });
        assert.equal(first.status, 401);
        assert.match(challenges(first).get('DPoP')!, /error="use_dpop_nonce"/);
        const nonce = first.headers.get('dpop-nonce');
        assert.ok(nonce);
        const second = await send(url, {
          authorization: `DPoP ${t}`,
          dpop: createDpopProof(client.dpopKey, {
            method: 'GET',
            url,
            accessToken: t,
            nonce,
            nowSeconds: nowS(),
          }),
        });
        assert.equal(second.status, 200);
        // WorkloadClient.fetch does that dance by itself.
        const viaClient = await client.fetch(app.url('nonce', '2'), { audience: API });
        assert.equal(viaClient.status, 200);
      });
    });
  }

  it('enforces scopes even with a verifier that does not run the `check` it is given', async () => {
    const unchecked: Verifier = {
      ...w.verifier,
      verify: ({ check: _ignored, ...req }) => w.verifier.verify(req),
    };
    let auth: ReturnType<typeof writNodeHttp> | undefined;
    let calls = 0;
    const server = createServer(async (req, res) => {
      if (!(await auth!(req, res))) return;
      calls++;
      res.end('{}');
    });
    const port = await listen(server);
    auth = writNodeHttp(unchecked, { baseUrl: `http://127.0.0.1:${port}`, scopes: ['reports:write'] });
    try {
      const url = `http://127.0.0.1:${port}/admin/1`;
      const t = await token();
      const res = await fetch(url, { headers: { authorization: `DPoP ${t}`, dpop: proof(t, url) } });
      assert.equal(res.status, 403);
      assert.equal(calls, 0);
    } finally {
      await closeServer(server);
    }
  });

  it('every middleware refuses to be built without a usable baseUrl (TypeError naming it)', async () => {
    const makers: [string, (o: unknown) => unknown][] = [
      ['writNodeHttp', (o) => writNodeHttp(w.verifier, o as WritMiddlewareOptions)],
      ['writExpress', (o) => writExpress(w.verifier, o as WritMiddlewareOptions)],
      ['writFastify', (o) => writFastify(w.verifier, o as WritMiddlewareOptions)],
      ['writHono', (o) => writHono(w.verifier, o as WritMiddlewareOptions)],
    ];
    const bad = [
      undefined,
      {},
      { scopes: ['reports:read'] },
      { baseUrl: '' },
      { baseUrl: [] },
      { baseUrl: '/reports' },
      { baseUrl: 'api.example.com' },
      { baseUrl: 'ftp://api.example.com' },
      { baseUrl: 'https://user:pass@api.example.com' },
      { baseUrl: 'https://api.example.com/?tenant=a' },
      { baseUrl: ['https://api.example.com', 42] },
    ];
    for (const [name, make] of makers)
      for (const o of bad)
        assert.throws(
          () => make(o),
          (e: unknown) => e instanceof TypeError && /baseUrl/.test(e.message),
          `${name} with ${JSON.stringify(o)}`,
        );
    // The Fastify plugin: registration fails, so the app does not start.
    const app = Fastify();
    app.register(writFastifyPlugin, { verifier: w.verifier } as unknown as WritMiddlewareOptions & {
      verifier: Verifier;
    });
    await assert.rejects(async () => {
      await app.ready();
    }, /baseUrl/);
    await app.close().catch(() => {});
  });

  it('several base URLs: the Host header picks one of them, never another', async () => {
    let auth: ReturnType<typeof writNodeHttp> | undefined;
    let calls = 0;
    const server = createServer(async (req, res) => {
      if (!(await auth!(req, res))) return;
      calls++;
      res.end('{}');
    });
    const port = await listen(server);
    const origin = `http://127.0.0.1:${port}`;
    auth = writNodeHttp(w.verifier, { baseUrl: [origin, 'https://reports.example.test/v1'] });
    try {
      const t = await token();
      const send = (proofFor: string, host: string) =>
        rawGet(
          `${origin}/r/1`,
          [
            ['Authorization', `DPoP ${t}`],
            ['DPoP', proof(t, proofFor)],
          ],
          host,
        );
      // Named by its other name (as a gateway that keeps Host would send it): that URL, prefix included.
      assert.equal((await send('https://reports.example.test/v1/r/1', 'reports.example.test')).status, 200);
      assert.equal(
        (await send('https://reports.example.test:443/v1/r/1', 'reports.example.test:443')).status,
        200,
      );
      // A Host that names neither: the first base URL, not the request's word.
      assert.equal((await send('http://evil.example/r/1', 'evil.example')).status, 401);
      assert.equal((await send(`${origin}/r/1`, 'evil.example')).status, 200);
      assert.equal(calls, 3);
    } finally {
      await closeServer(server);
    }
  });

  it('writFastify is a preHandler hook on its own, too', async () => {
    const app = Fastify();
    app.decorateRequest('writ', null);
    app.addHook('preHandler', writFastify(w.verifier, { baseUrl: 'http://localhost' }));
    let calls = 0;
    app.get('/x', async (req) => {
      calls++;
      return { sub: req.writ?.sub };
    });
    try {
      const refused = await app.inject({ method: 'GET', url: '/x' });
      assert.equal(refused.statusCode, 401);
      assert.equal(calls, 0);
      const t = await token();
      const url = 'http://localhost:80/x';
      const ok = await app.inject({
        method: 'GET',
        url: '/x',
        headers: { host: 'localhost:80', authorization: `DPoP ${t}`, dpop: proof(t, url) },
      });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.equal(JSON.parse(ok.body)['sub'], CLIENT);
      assert.equal(calls, 1);
    } finally {
      await app.close();
    }
  });
});
