import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fakeClock } from '../src/clock.js';
import { OIDC_CLIENT_ID, operatorDoc, personDoc, startOidcHarness } from './helpers/console-oidc.js';
import { freePort, type Harness } from './helpers/harness.js';

// The ID token checks of the console's OpenID Connect callback (docs/console.md, "OpenID Connect"): a
// stand-in identity provider (node:http: discovery, JWKS, token endpoint) hands back an ID token the test
// signs itself, so each field can be made wrong. A token signed by a key the provider's JWKS does not
// hold, unsigned, with a wrong or missing nonce, a wrong or missing audience, another issuer, or expired
// by Writ's clock is refused at the callback: 401 invalid_grant (reason oidc_token), audited, no session.

const CLIENT_ID = OIDC_CLIENT_ID;
const KID = 'idp-1';

type Claims = Record<string, unknown>;

/** How the next ID token is made: its claims changed, and the key, `kid` and `alg` it is signed with. */
interface Issue {
  claims?: (c: Claims) => Claims;
  key?: KeyObject;
  kid?: string;
  alg?: 'ES256' | 'none';
}

interface StandIn {
  issuer: string;
  /** The code the provider would have sent back after a sign-in whose authorization URL is `authorize`. */
  code(authorize: URL, issue: Issue): string;
  close(): Promise<void>;
}

const b64u = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

async function body(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const chunk of req) s += chunk;
  return s;
}

/**
 * A provider that holds one signing key (`KID`) in its JWKS and answers the code grant of one confidential
 * client (client_secret_basic, PKCE S256) with an ID token made as the code's `Issue` says.
 */
async function startStandIn(port: number, clientSecret: string, now: () => number): Promise<StandIn> {
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const codes = new Map<string, { nonce: string; challenge: string; redirectUri: string; issue: Issue }>();

  function idToken(nonce: string, issue: Issue): string {
    const t = Math.floor(now() / 1000);
    const base: Claims = { iss: issuer, sub: 'alice', aud: CLIENT_ID, iat: t, exp: t + 300, nonce };
    const claims = issue.claims ? issue.claims(base) : base;
    const alg = issue.alg ?? 'ES256';
    const input = `${b64u({ alg, typ: 'JWT', ...(alg === 'none' ? {} : { kid: issue.kid ?? KID }) })}.${b64u(claims)}`;
    if (alg === 'none') return `${input}.`;
    const sig = sign('sha256', Buffer.from(input), {
      key: issue.key ?? privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    return `${input}.${sig.toString('base64url')}`;
  }

  const server: Server = createServer(async (req, res) => {
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(json));
    };
    const path = new URL(req.url ?? '/', issuer).pathname;
    if (req.method === 'GET' && path === '/.well-known/openid-configuration')
      return send(200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['ES256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic'],
        code_challenge_methods_supported: ['S256'],
      });
    if (req.method === 'GET' && path === '/jwks')
      return send(200, {
        keys: [{ ...publicKey.export({ format: 'jwk' }), kid: KID, alg: 'ES256', use: 'sig' }],
      });
    if (req.method === 'POST' && path === '/token') {
      const form = new URLSearchParams(await body(req));
      // client_secret_basic: both halves form-urlencoded before base64 (RFC 6749 §2.3.1).
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const [id, secret] = Buffer.from(basic ?? '', 'base64')
        .toString()
        .split(':')
        .map((v) => decodeURIComponent(v.replace(/\+/g, ' ')));
      if (id !== CLIENT_ID || secret !== clientSecret) return send(401, { error: 'invalid_client' });
      const grant = codes.get(form.get('code') ?? '');
      codes.delete(form.get('code') ?? '');
      const verifier = form.get('code_verifier') ?? '';
      if (
        form.get('grant_type') !== 'authorization_code' ||
        !grant ||
        form.get('redirect_uri') !== grant.redirectUri ||
        createHash('sha256').update(verifier).digest('base64url') !== grant.challenge
      )
        return send(400, { error: 'invalid_grant' });
      return send(200, {
        access_token: randomBytes(16).toString('base64url'),
        token_type: 'Bearer',
        expires_in: 300,
        id_token: idToken(grant.nonce, grant.issue),
      });
    }
    send(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  assert.equal((server.address() as AddressInfo).port, port);
  return {
    issuer,
    code(authorize, issue) {
      const q = authorize.searchParams;
      assert.equal(q.get('client_id'), CLIENT_ID);
      assert.equal(q.get('code_challenge_method'), 'S256');
      const code = randomBytes(16).toString('base64url');
      codes.set(code, {
        nonce: q.get('nonce')!,
        challenge: q.get('code_challenge')!,
        redirectUri: q.get('redirect_uri')!,
        issue,
      });
      return code;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('console sign-in with OpenID Connect: the ID token checks', () => {
  let h: Harness;
  let idp: StandIn;
  // Writ's clock: the relying party judges `exp` by it. Moved past the refusal window between cases so
  // each refusal is audited on its own row.
  const clock = fakeClock(Date.now());

  before(async () => {
    const idpPort = await freePort();
    let clientSecret: string;
    ({ h, clientSecret } = await startOidcHarness({
      idpPort,
      docs: [personDoc('alice'), operatorDoc('alice', 'alice')],
      clock,
      settings: { 'audit.refusal_window': 1 },
    }));
    idp = await startStandIn(idpPort, clientSecret, () => clock.now());
  });
  after(async () => {
    await idp?.close();
    await h?.close();
  });

  /** A browser's sign-in: start, the provider's code for it made as `issue` says, the callback. */
  async function signIn(issue: Issue, meanwhile?: () => void): Promise<Response> {
    clock.advance(2_000);
    const start = await fetch(`${h.issuer}/console/oidc/start`, { redirect: 'manual' });
    assert.equal(start.status, 302, await start.text());
    const flow = /^writ_oidc=([^;]+)/.exec(start.headers.get('set-cookie') ?? '')?.[1];
    assert.ok(flow, 'the flow cookie is set');
    const authorize = new URL(start.headers.get('location')!);
    assert.equal(authorize.origin, idp.issuer);
    const callback = new URL(`${h.issuer}/console/oidc/callback`);
    callback.searchParams.set('code', idp.code(authorize, issue));
    callback.searchParams.set('state', authorize.searchParams.get('state')!);
    callback.searchParams.set('iss', idp.issuer);
    meanwhile?.();
    return fetch(callback, { redirect: 'manual', headers: { cookie: `writ_oidc=${flow}` } });
  }

  /** The sign-in is refused as an ID token that failed a check, audited, and no session is opened. */
  async function refusedToken(issue: Issue, check: RegExp, meanwhile?: () => void): Promise<void> {
    const sessions = await h.countRows('console_sessions');
    const refusals = (await h.auditEvents('console.refused')).length;
    const res = await signIn(issue, meanwhile);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(res.status, 401, JSON.stringify(body));
    assert.equal(body['error'], 'invalid_grant');
    assert.match(String(body['error_description']), /the ID token failed a check/);
    assert.match(String(body['error_description']), check);
    const cookies = res.headers.getSetCookie();
    assert.ok(!cookies.some((c) => c.startsWith('writ_console=')), 'no session cookie');
    assert.ok(
      cookies.some((c) => /^writ_oidc=;/.test(c)),
      'the flow cookie is cleared',
    );
    assert.equal(await h.countRows('console_sessions'), sessions, 'no session was opened');
    const audited = await h.auditEvents('console.refused');
    assert.equal(audited.length, refusals + 1, 'the refusal is audited');
    const event = audited.at(-1)!;
    assert.equal(event.data['reason'], 'oidc_token');
    assert.equal(event.data['error'], 'invalid_grant');
    assert.equal(event.data['description'], body['error_description']);
  }

  it('a well-formed ID token signs in (the stand-in provider is a valid one)', async () => {
    const sessions = await h.countRows('console_sessions');
    const res = await signIn({});
    assert.equal(res.status, 302, await res.text());
    assert.equal(res.headers.get('location'), '/console/');
    assert.ok(res.headers.getSetCookie().some((c) => c.startsWith('writ_console=')));
    assert.equal(await h.countRows('console_sessions'), sessions + 1);
  });

  it("an ID token signed by a key the provider's JWKS does not hold is refused", async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    // The provider's key id on another key: the signature does not verify.
    await refusedToken({ key: other }, /signature verification failed/);
    // A key id the JWKS does not name.
    await refusedToken({ key: other, kid: 'idp-2' }, /no applicable keys/);
  });

  it('an unsigned ID token (alg none) is refused', async () => {
    await refusedToken({ alg: 'none' }, /"alg"/);
  });

  it('an ID token with a wrong or missing nonce is refused', async () => {
    await refusedToken(
      { claims: (c) => ({ ...c, nonce: randomBytes(32).toString('base64url') }) },
      /"nonce"/,
    );
    await refusedToken({ claims: ({ nonce: _, ...c }) => c }, /"nonce"/);
  });

  it('an ID token for another audience, or none, is refused', async () => {
    await refusedToken({ claims: (c) => ({ ...c, aud: 'another-client' }) }, /"aud"/);
    await refusedToken({ claims: (c) => ({ ...c, aud: ['another-client'] }) }, /"aud"/);
    await refusedToken({ claims: ({ aud: _, ...c }) => c }, /"aud"/);
  });

  it('an ID token from another issuer is refused', async () => {
    await refusedToken({ claims: (c) => ({ ...c, iss: 'http://127.0.0.1:1' }) }, /"iss"/);
    await refusedToken({ claims: (c) => ({ ...c, iss: `${idp.issuer}/` }) }, /"iss"/);
  });

  it("an ID token expired by Writ's clock is refused, though the wall clock would still take it", async () => {
    const t = () => Math.floor(clock.now() / 1000);
    await refusedToken({ claims: (c) => ({ ...c, iat: t() - 600, exp: t() - 120 }) }, /"exp"/);
    // Valid for two minutes by the wall clock, but Writ's clock has moved five minutes on meanwhile.
    const wall = Math.floor(Date.now() / 1000);
    await refusedToken({ claims: (c) => ({ ...c, iat: wall, exp: wall + 120 }) }, /"exp"/, () =>
      clock.advance(300_000),
    );
  });

  it('after every refusal, a well-formed ID token still signs in', async () => {
    const res = await signIn({});
    assert.equal(res.status, 302, await res.text());
  });
});
