import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign, webcrypto } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createDpopProof, type DpopKey, generateDpopKey } from '@writ/sdk/dpop';
import {
  type BindingCheck,
  checkHolderBinding,
  type PresentedRequest,
  presentedToken,
  ReplayCache,
  RequestRefusal,
  verifyAccessTokenJwt,
} from '@writ/sdk/verifier';
import type { AccessTokenClaims } from '@writ/sdk/wire';
import * as oauth from 'oauth4webapi';
import { fakeClock } from '../src/clock.js';
import {
  b64json,
  classDoc,
  clientAuth,
  count,
  decodeClaims,
  dpopTokenRequest,
  httpForm,
  injectForm,
  introspect,
  lastEvent,
  nowSeconds,
  type ProofParts,
  proofParts,
  serverKeys,
  serverNonce,
  signProof,
  workloadDoc,
} from './helpers/dpop.js';
import { freePort, type Harness, startHarness, testKey } from './helpers/harness.js';

const ISSUER = 'https://writ.test';
const TOKEN_URL = `${ISSUER}/oauth2/token`;
const API = 'https://api.dpop.test';
const CLIENT = 'spiffe://test.writ/dpop/client';

/** A class with no `binding` (so the default, dpop) and a workload allowed to use it. */
function dpopDocs(issuer: string, clientKey: ReturnType<typeof testKey>) {
  return [
    classDoc({
      name: 'api-dpop',
      audiences: [API, `${issuer}/v1/events`],
      scopes: ['api:read', 'api:write'],
      default_scopes: ['api:read'],
    }),
    workloadDoc(CLIENT, clientKey, ['api-dpop']),
  ];
}

describe('DPoP at the token endpoint (RFC 9449 §4.3, §5, §8)', () => {
  const clock = fakeClock(Date.UTC(2026, 2, 1, 12));
  const clientKey = testKey();
  const holder = generateDpopKey();
  let h: Harness;
  const form =
    (extra: Record<string, string> = {}) =>
    () => ({
      grant_type: 'client_credentials',
      ...clientAuth(h, CLIENT, clientKey),
      resource: API,
      ...extra,
    });
  const nonce = () => serverNonce(h, CLIENT, clientKey, API);
  const proof = async (mutate?: (p: ProofParts) => void, key: DpopKey = holder, htu = TOKEN_URL) => {
    const p = proofParts(key, { htu, iat: nowSeconds(h), nonce: await nonce() });
    mutate?.(p);
    return signProof(key, p);
  };
  const send = (dpop: string | string[] | undefined, extra: Record<string, string> = {}) =>
    injectForm(h, '/oauth2/token', form(extra)(), dpop === undefined ? {} : { dpop });

  before(async () => {
    h = await startHarness({
      clock,
      settings: { issuer: ISSUER, 'tasks.sweep_interval': 60 },
      extraDocs: dpopDocs(ISSUER, clientKey),
    });
  });
  after(() => h.close());

  it('a class without `binding` is a dpop class', async () => {
    const r = await h.admin('GET', '/classes/api-dpop');
    assert.equal(r.body['binding'], 'dpop');
  });

  it('asks for a nonce first, then issues a DPoP token bound to the proof key (cnf.jkt)', async () => {
    const first = await send(signProof(holder, proofParts(holder, { htu: TOKEN_URL, iat: nowSeconds(h) })));
    assert.equal(first.status, 400);
    assert.equal(first.body['error'], 'use_dpop_nonce');
    const fresh = first.headers['dpop-nonce'];
    assert.equal(typeof fresh, 'string');

    const r = await send(
      signProof(holder, proofParts(holder, { htu: TOKEN_URL, iat: nowSeconds(h), nonce: fresh as string })),
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['token_type'], 'DPoP');
    assert.equal(typeof r.headers['dpop-nonce'], 'string');
    const claims = decodeClaims(r.body['access_token'] as string);
    assert.deepEqual(claims['cnf'], { jkt: holder.jkt });
    const issued = await lastEvent(h, 'token.issued');
    assert.equal(issued.jti, claims['jti']);
    assert.equal(issued.data['binding'], 'dpop');
  });

  it('refuses a dpop-class request that carries no proof, and issues nothing', async () => {
    const before = await count(h, 'token.issued');
    const r = await send(undefined);
    assert.equal(r.status, 400);
    assert.equal(r.body['error'], 'invalid_dpop_proof');
    assert.equal(r.body['access_token'], undefined);
    assert.equal(await count(h, 'token.issued'), before);
    assert.equal((await lastEvent(h, 'token.refused')).data['reason'], 'dpop_single_header');
  });

  // Each case breaks one part of a proof that the "accepts" test below shows is otherwise valid; the
  // audit names the §4.3 check that refused it.
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cases: Array<{
    name: string;
    dpop: () => Promise<string | string[]>;
    check: string;
    error?: string;
  }> = [
    {
      name: '1 two DPoP header fields',
      dpop: async () => [await proof(), await proof()],
      check: 'single_header',
    },
    { name: '2 not a JWT', dpop: async () => 'not-a-jwt', check: 'well_formed' },
    {
      name: '2 two JWTs in one field',
      dpop: async () => `${await proof()}, ${await proof()}`,
      check: 'well_formed',
    },
    ...(['jti', 'htm', 'htu', 'iat'] as const).map((claim) => ({
      name: `3 no ${claim}`,
      dpop: () => proof((p) => delete p.claims[claim]),
      check: 'required_claims',
    })),
    { name: '3 no jwk', dpop: () => proof((p) => delete p.header['jwk']), check: 'required_claims' },
    {
      name: '4 typ JWT',
      dpop: () =>
        proof((p) => {
          p.header['typ'] = 'JWT';
        }),
      check: 'typ',
    },
    { name: '4 no typ', dpop: () => proof((p) => delete p.header['typ']), check: 'typ' },
    {
      name: '5 alg none',
      dpop: async () => {
        const p = proofParts(holder, { htu: TOKEN_URL, iat: nowSeconds(h), nonce: await nonce() });
        p.header['alg'] = 'none';
        return `${b64json(p.header)}.${b64json(p.claims)}.AAAA`;
      },
      check: 'alg',
    },
    {
      name: '5 alg HS256',
      dpop: async () => {
        const p = proofParts(holder, { htu: TOKEN_URL, iat: nowSeconds(h), nonce: await nonce() });
        p.header['alg'] = 'HS256';
        const input = `${b64json(p.header)}.${b64json(p.claims)}`;
        return `${input}.${createHmac('sha256', 'k').update(input).digest('base64url')}`;
      },
      check: 'alg',
    },
    {
      name: '5 alg RS256 (asymmetric, validly signed, not in dpop.algorithms)',
      dpop: async () => {
        const p = proofParts(holder, { htu: TOKEN_URL, iat: nowSeconds(h), nonce: await nonce() });
        p.header = { typ: 'dpop+jwt', alg: 'RS256', jwk: rsa.publicKey.export({ format: 'jwk' }) };
        const input = `${b64json(p.header)}.${b64json(p.claims)}`;
        return `${input}.${sign('sha256', Buffer.from(input), rsa.privateKey).toString('base64url')}`;
      },
      check: 'alg',
    },
    {
      name: '6 bad signature',
      dpop: () =>
        proof((p) => {
          p.header['jwk'] = generateDpopKey().publicJwk;
        }),
      check: 'signature',
    },
    {
      name: '7 private key in jwk',
      dpop: () =>
        proof((p) => {
          p.header['jwk'] = holder.privateKey.export({ format: 'jwk' });
        }),
      check: 'private_key',
    },
    {
      name: '8 htm GET',
      dpop: () =>
        proof((p) => {
          p.claims['htm'] = 'GET';
        }),
      check: 'htm',
    },
    {
      name: '9 htu of another endpoint',
      dpop: () => proof(undefined, holder, `${ISSUER}/oauth2/revoke`),
      check: 'htu',
    },
    {
      name: '9 htu of another host',
      dpop: () => proof(undefined, holder, 'https://evil.test/oauth2/token'),
      check: 'htu',
    },
    {
      name: '9 htu with http',
      dpop: () => proof(undefined, holder, 'http://writ.test/oauth2/token'),
      check: 'htu',
    },
    {
      name: '10 no nonce',
      dpop: () => proof((p) => delete p.claims['nonce']),
      check: 'nonce',
      error: 'use_dpop_nonce',
    },
    {
      name: '10 made-up nonce',
      dpop: () =>
        proof((p) => {
          p.claims['nonce'] = 'abc.def';
        }),
      check: 'nonce',
      error: 'use_dpop_nonce',
    },
    {
      name: '11 iat too old',
      dpop: () =>
        proof((p) => {
          p.claims['iat'] = nowSeconds(h) - 61;
        }),
      check: 'iat',
    },
    {
      name: '11 iat in the future',
      dpop: () =>
        proof((p) => {
          p.claims['iat'] = nowSeconds(h) + 61;
        }),
      check: 'iat',
    },
  ];
  for (const c of cases) {
    it(`refuses check ${c.name} with ${c.error ?? 'invalid_dpop_proof'} and issues nothing`, async () => {
      const dpop = await c.dpop();
      // A nonce challenge is audited as what it is (nothing failed); every other check as a refusal.
      const type = c.error === 'use_dpop_nonce' ? 'token.challenged' : 'token.refused';
      const issued = await count(h, 'token.issued');
      const refusals = await count(h, type);
      const r = await send(dpop);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body['error'], c.error ?? 'invalid_dpop_proof');
      assert.equal(typeof r.headers['dpop-nonce'], 'string', 'every DPoP refusal carries a fresh nonce');
      assert.equal(await count(h, 'token.issued'), issued);
      assert.equal(await count(h, type), refusals + 1);
      assert.equal((await lastEvent(h, type)).data['reason'], `dpop_${c.check}`);
    });
  }

  it('sees two DPoP header lines as two (not one joined value) and says so', async () => {
    const r = await send([await proof(), await proof()]);
    assert.equal(r.body['error_description'], 'exactly one DPoP header is required; the request has 2');
  });

  it('accepts htu equal but for query and fragment, scheme/host case and the default port', async () => {
    for (const htu of [
      `${TOKEN_URL}?x=1#frag`,
      'HTTPS://WRIT.TEST/oauth2/token',
      'https://Writ.Test:443/oauth2/token',
      TOKEN_URL,
    ]) {
      const key = generateDpopKey();
      const r = await send(await proof(undefined, key, htu));
      assert.equal(r.status, 200, `${htu}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(decodeClaims(r.body['access_token'] as string)['cnf'], { jkt: key.jkt });
    }
  });

  it('refuses a replayed proof jti: one proof, one token', async () => {
    const p = await proof();
    const issued = await count(h, 'token.issued');
    const first = await send(p);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const second = await send(p);
    assert.equal(second.status, 400);
    assert.equal(second.body['error'], 'invalid_dpop_proof');
    assert.equal((await lastEvent(h, 'token.refused')).data['reason'], 'dpop_replay');
    assert.equal(await count(h, 'token.issued'), issued + 1);
  });

  it('refuses a nonce that has gone stale and hands out a new one that works', async () => {
    const old = await nonce();
    clock.advance((h.settings.dpop.nonceLifetime * 2 + 1) * 1000);
    const stale = signProof(holder, proofParts(holder, { htu: TOKEN_URL, iat: nowSeconds(h), nonce: old }));
    const r = await send(stale);
    assert.equal(r.status, 400);
    assert.equal(r.body['error'], 'use_dpop_nonce');
    const fresh = r.headers['dpop-nonce'] as string;
    assert.notEqual(fresh, old);
    const retry = await send(
      signProof(holder, proofParts(holder, { htu: TOKEN_URL, iat: nowSeconds(h), nonce: fresh })),
    );
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
  });

  it('flags bearer classes: listed in metadata, audited with binding bearer, issued as Bearer', async () => {
    const meta = await h.writ.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    const m = JSON.parse(meta.body) as Record<string, unknown>;
    assert.deepEqual(m['writ_bearer_token_classes'], ['billing-write', 'legacy-cron', 'reports-read']);
    assert.ok((m['dpop_signing_alg_values_supported'] as string[]).includes('ES256'));
    const r = await h.requestToken();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['token_type'], 'Bearer');
    assert.equal(decodeClaims(r.body['access_token'] as string)['cnf'], undefined);
    const issued = await lastEvent(h, 'token.issued');
    assert.equal(issued.data['binding'], 'bearer');
    assert.equal(issued.data['cls'], 'reports-read');
  });

  describe('a DPoP-bound token at a resource server', () => {
    let token: string;
    const check = (): BindingCheck => {
      const cache = new ReplayCache();
      return {
        algorithms: ['ES256', 'EdDSA'],
        nowSeconds: nowSeconds(h),
        iatWindow: 60,
        consumeJti: (k, exp) => cache.consume(k, exp, nowSeconds(h)),
      };
    };
    const request = (authorization: string, dpop: string[]): PresentedRequest => ({
      authorization,
      dpop,
      method: 'GET',
      url: `${API}/reports`,
    });
    const proofBy = (key: DpopKey, t = token) =>
      createDpopProof(key, {
        method: 'GET',
        url: `${API}/reports`,
        accessToken: t,
        nowSeconds: nowSeconds(h),
      });
    const refusedWith = async (p: Promise<void>, reason: string) =>
      assert.rejects(p, (err: unknown) => err instanceof RequestRefusal && err.reason === reason);

    before(async () => {
      const r = await dpopTokenRequest(h, form(), holder);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      token = r.body['access_token'] as string;
    });

    it('local verification (server JWKS): refuses it as Bearer and with another key, accepts its holder', async () => {
      const { claims } = verifyAccessTokenJwt(token, {
        keys: await serverKeys(h),
        issuer: ISSUER,
        audience: API,
        nowSeconds: nowSeconds(h),
        leeway: 5,
        maxBytes: 8192,
      });
      assert.equal(claims.cnf?.jkt, holder.jkt);
      const bearer = `Bearer ${token}`;
      await refusedWith(
        checkHolderBinding(request(bearer, [proofBy(holder)]), presentedToken(bearer), claims, check()),
        'dpop_bound_as_bearer',
      );
      const dpop = `DPoP ${token}`;
      await refusedWith(
        checkHolderBinding(
          request(dpop, [proofBy(generateDpopKey())]),
          presentedToken(dpop),
          claims,
          check(),
        ),
        'dpop_jkt',
      );
      await refusedWith(
        checkHolderBinding(
          request(dpop, [proofBy(holder, `${token}x`)]),
          presentedToken(dpop),
          claims,
          check(),
        ),
        'dpop_ath',
      );
      await checkHolderBinding(request(dpop, [proofBy(holder)]), presentedToken(dpop), claims, check());
    });

    it('introspection-based verification: active DPoP token with cnf; Bearer and another key refused', async () => {
      const body = await introspect(h, token);
      assert.equal(body['active'], true);
      assert.equal(body['token_type'], 'DPoP');
      assert.deepEqual(body['cnf'], { jkt: holder.jkt });
      const claims = body as unknown as AccessTokenClaims;
      const bearer = `Bearer ${token}`;
      await refusedWith(
        checkHolderBinding(request(bearer, [proofBy(holder)]), presentedToken(bearer), claims, check()),
        'dpop_bound_as_bearer',
      );
      const dpop = `DPoP ${token}`;
      await refusedWith(
        checkHolderBinding(
          request(dpop, [proofBy(generateDpopKey())]),
          presentedToken(dpop),
          claims,
          check(),
        ),
        'dpop_jkt',
      );
      await checkHolderBinding(request(dpop, [proofBy(holder)]), presentedToken(dpop), claims, check());
    });

    it("the server's own resource endpoint (/v1/events) refuses Bearer, another key, and a wrong ath", async () => {
      const events = `${ISSUER}/v1/events`;
      const r = await dpopTokenRequest(h, form({ resource: events }), holder);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const t = r.body['access_token'] as string;
      const get = async (authorization: string, dpop?: string) => {
        const res = await h.writ.app.inject({
          method: 'GET',
          url: '/v1/events',
          headers: { authorization, ...(dpop ? { dpop } : {}) },
        });
        return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
      };
      const p = (key: DpopKey, tok = t) =>
        createDpopProof(key, { method: 'GET', url: events, accessToken: tok, nowSeconds: nowSeconds(h) });
      for (const [authorization, dpop, error, reason] of [
        [`Bearer ${t}`, p(holder), 'invalid_token', 'dpop_bound_as_bearer'],
        [`DPoP ${t}`, p(generateDpopKey()), 'invalid_dpop_proof', 'dpop_jkt'],
        [`DPoP ${t}`, p(holder, token), 'invalid_dpop_proof', 'dpop_ath'],
        [`DPoP ${t}`, undefined, 'invalid_dpop_proof', 'dpop_single_header'],
      ] as const) {
        const res = await get(authorization, dpop);
        assert.equal(res.status, 401, reason);
        assert.equal(res.body['error'], error, reason);
        assert.equal((await lastEvent(h, 'events.refused')).data['reason'], reason);
      }
    });
  });
});

describe('DPoP over real HTTP', () => {
  const clientKey = testKey();
  let h: Harness;
  let port: number;
  let issuer: string;
  let drain: Promise<void> | undefined;

  before(async () => {
    port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    h = await startHarness({
      listen: true,
      settings: { 'listen.port': port },
      extraDocs: dpopDocs(issuer, clientKey),
    });
  });
  after(async () => {
    await h.close();
    await drain;
  });

  it('oauth4webapi gets a DPoP-bound token with private_key_jwt, following use_dpop_nonce', async () => {
    const issuerUrl = new URL(issuer);
    const as = await oauth.processDiscoveryResponse(
      issuerUrl,
      await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true }),
    );
    const client: oauth.Client = { client_id: CLIENT };
    const signingKey = await webcrypto.subtle.importKey(
      'jwk',
      clientKey.privateKey.export({ format: 'jwk' }),
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['sign'],
    );
    const clientAuthentication = oauth.PrivateKeyJwt({ key: signingKey, kid: clientKey.kid });
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const params = { resource: API, scope: 'api:read api:write' };
    const grant = () =>
      oauth.clientCredentialsGrantRequest(as, client, clientAuthentication, params, {
        DPoP,
        [oauth.allowInsecureRequests]: true,
      });

    // As the library documents: a use_dpop_nonce error is retried once; the handle now holds the nonce.
    let nonceErrors = 0;
    let result: oauth.TokenEndpointResponse | undefined;
    for (let attempt = 0; attempt < 2 && !result; attempt++) {
      try {
        result = await oauth.processClientCredentialsResponse(as, client, await grant());
      } catch (err) {
        if (!oauth.isDPoPNonceError(err)) throw err;
        nonceErrors++;
      }
    }
    assert.equal(nonceErrors, 1, 'the server asked for a nonce once');
    assert.ok(result);
    assert.equal(result.token_type, 'dpop');
    assert.equal(result.scope, 'api:read api:write');
    const claims = decodeClaims(result.access_token);
    assert.deepEqual(claims['cnf'], { jkt: await DPoP.calculateThumbprint() });
    assert.equal(claims['sub'], CLIENT);
    assert.equal((await lastEvent(h, 'token.issued')).data['auth_method'], 'private_key_jwt');

    // And uses it at the server's own DPoP-protected endpoint with its own proof (RFC 9449 §7).
    const eventsUrl = new URL(`${issuer}/v1/events`);
    let events: oauth.TokenEndpointResponse | undefined;
    for (let attempt = 0; attempt < 2 && !events; attempt++) {
      try {
        events = await oauth.processClientCredentialsResponse(
          as,
          client,
          await oauth.clientCredentialsGrantRequest(
            as,
            client,
            clientAuthentication,
            { resource: eventsUrl.href.replace(/\/$/, '') },
            { DPoP, [oauth.allowInsecureRequests]: true },
          ),
        );
      } catch (err) {
        if (!oauth.isDPoPNonceError(err)) throw err;
      }
    }
    assert.ok(events);
    const res = await oauth.protectedResourceRequest(
      events.access_token,
      'GET',
      // The query is not part of the proof's htu (RFC 9449 §4.2): one proof covers the stream in any form.
      new URL(`${eventsUrl.href}?revocations=sha256`),
      new Headers({ accept: 'text/event-stream' }),
      null,
      { DPoP, [oauth.allowInsecureRequests]: true },
    );
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    for (let i = 0; i < 20 && !text.includes('event: snapshot'); i++) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += Buffer.from(chunk.value).toString('utf8');
    }
    assert.match(text, /event: snapshot/);
    // The server ends the stream when it shuts down (an aborted fetch would hold the close up).
    drain = (async () => {
      for (let i = 0; i < 10_000; i++) if ((await reader.read()).done) return;
    })();
  });

  it('refuses two DPoP header lines sent over a raw socket; one line is accepted', async () => {
    const holder = generateDpopKey();
    const tokenUrl = `${issuer}/oauth2/token`;
    const nonceReply = await httpForm(
      tokenUrl,
      { grant_type: 'client_credentials', ...clientAuth(h, CLIENT, clientKey), resource: API },
      { dpop: createDpopProof(holder, { method: 'POST', url: tokenUrl }) },
    );
    assert.equal(nonceReply.body['error'], 'use_dpop_nonce');
    const nonce = nonceReply.headers.get('dpop-nonce')!;
    const raw = (dpopLines: string[]) => {
      const body = new URLSearchParams({
        grant_type: 'client_credentials',
        ...clientAuth(h, CLIENT, clientKey),
        resource: API,
      }).toString();
      const head = [
        'POST /oauth2/token HTTP/1.1',
        `Host: 127.0.0.1:${port}`,
        'Content-Type: application/x-www-form-urlencoded',
        `Content-Length: ${Buffer.byteLength(body)}`,
        ...dpopLines.map((p) => `DPoP: ${p}`),
        'Connection: close',
      ].join('\r\n');
      return rawRequest(port, `${head}\r\n\r\n${body}`);
    };
    const p = () => createDpopProof(holder, { method: 'POST', url: tokenUrl, nonce });
    const two = await raw([p(), p()]);
    assert.equal(two.status, 400);
    assert.equal(two.body['error'], 'invalid_dpop_proof');
    assert.equal(two.body['error_description'], 'exactly one DPoP header is required; the request has 2');
    assert.equal((await lastEvent(h, 'token.refused')).data['reason'], 'dpop_single_header');
    const one = await raw([p()]);
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.equal(one.body['token_type'], 'DPoP');
  });
});

/** Sends bytes as they are and parses the HTTP/1.1 response (status and JSON body). */
function rawRequest(
  port: number,
  request: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(5000, () => socket.destroy(new Error('raw request timed out')));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
      const split = text.indexOf('\r\n\r\n');
      const head = text.slice(0, split);
      let payload = text.slice(split + 4);
      if (/transfer-encoding: chunked/i.test(head)) payload = dechunk(payload);
      resolve({ status, body: payload ? (JSON.parse(payload) as Record<string, unknown>) : {} });
    });
    socket.write(request);
  });
}

function dechunk(s: string): string {
  let out = '';
  let rest = s;
  for (let i = 0; i < 1000; i++) {
    const eol = rest.indexOf('\r\n');
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (!size) break;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
  return out;
}
