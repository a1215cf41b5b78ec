import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import { AUDIENCE, type Harness, type Reply, startHarness } from './helpers/harness.js';

/**
 * The token endpoint on the listener (http/token-listener.ts) takes plain token requests before Fastify
 * does. Over a socket it must answer exactly as the Fastify route answers in-process (`inject`): the
 * same status, body and headers, the same audit events, every check kept; and it must leave every other
 * request to Fastify.
 */
describe('token endpoint on the listener', () => {
  let h: Harness;
  let origin: string;
  before(async () => {
    h = await startHarness();
    await h.writ.app.listen({ host: '127.0.0.1', port: 0 });
    origin = `http://127.0.0.1:${(h.writ.app.server.address() as AddressInfo).port}`;
  });
  after(() => h.close());

  const form = (fields: Record<string, string | string[]>) => {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(fields))
      for (const x of Array.isArray(v) ? v : [v]) body.append(k, x);
    return body.toString();
  };
  const tokenForm = (extra: Record<string, string | string[]> = {}, o = {}) => ({
    grant_type: GrantType.clientCredentials,
    client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
    client_assertion: h.assertion(o),
    resource: AUDIENCE,
    ...extra,
  });
  /** The same request over a socket (the listener) and in-process (Fastify's route). */
  const overSocket = async (
    body: string,
    headers: Record<string, string> = {},
    path = '/oauth2/token',
  ): Promise<Reply> => {
    const res = await fetch(`${origin}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body,
    });
    const text = await res.text();
    return {
      status: res.status,
      body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
      headers: Object.fromEntries(res.headers.entries()),
    };
  };
  const inProcess = (body: string, headers: Record<string, string> = {}) =>
    h.writ.app
      .inject({
        method: 'POST',
        url: '/oauth2/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        payload: body,
      })
      .then((res) => ({
        status: res.statusCode,
        body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {},
        headers: res.headers as Record<string, unknown>,
      }));
  const HEADERS = [
    'content-type',
    'cache-control',
    'pragma',
    'x-content-type-options',
    'www-authenticate',
    'retry-after',
  ];
  const sameAnswer = (socket: Reply, fastify: Awaited<ReturnType<typeof inProcess>>, what: string) => {
    assert.equal(socket.status, fastify.status, `${what}: status`);
    for (const name of HEADERS)
      assert.equal(socket.headers[name], fastify.headers[name] as string | undefined, `${what}: ${name}`);
    assert.equal(typeof socket.headers['dpop-nonce'], typeof fastify.headers['dpop-nonce'], `${what}: nonce`);
    if (socket.status === 200) {
      assert.deepEqual(Object.keys(socket.body).sort(), Object.keys(fastify.body).sort(), `${what}: body`);
      assert.equal(socket.body['token_type'], fastify.body['token_type']);
      assert.equal(socket.body['expires_in'], fastify.body['expires_in']);
      assert.equal(socket.body['scope'], fastify.body['scope']);
    } else assert.deepEqual(socket.body, fastify.body, `${what}: body`);
  };

  it('issues as the Fastify route does, and records the token and its audit event', async () => {
    const socket = await overSocket(form(tokenForm()));
    sameAnswer(socket, await inProcess(form(tokenForm())), 'issued');
    assert.equal(socket.status, 200);
    assert.equal(socket.headers['dpop-nonce'], h.writ.ctx.dpopNonces.current());
    const jti = JSON.parse(
      Buffer.from(String(socket.body['access_token']).split('.')[1]!, 'base64url').toString(),
    ).jti as string;
    assert.ok(await h.store.getToken(jti), 'the token is recorded');
    const issued = (await h.auditEvents('token.issued')).filter((e) => e.jti === jti);
    assert.equal(issued.length, 1, 'one audit event');
    assert.equal(issued[0]!.data['ip'], '127.0.0.1');
  });

  it('refuses as the Fastify route does, each refusal audited', async () => {
    const cases: Array<[string, () => string, Record<string, string>?]> = [
      ['wrong audience', () => form(tokenForm({}, { claims: { aud: 'https://elsewhere.example' } }))],
      ['no grant type', () => form({ ...tokenForm(), grant_type: '' })],
      ['unknown grant type', () => form(tokenForm({ grant_type: 'password' }))],
      ['repeated parameter', () => form(tokenForm({ scope: ['a', 'b'] }))],
      [
        'too many parameters',
        () => form(Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`p${i}`, 'x']))),
      ],
      [
        'no client authentication',
        () => form({ grant_type: GrantType.clientCredentials, resource: AUDIENCE }),
      ],
      ['a DPoP header that is no proof', () => form(tokenForm()), { dpop: 'not.a.proof' }],
    ];
    for (const [what, body, headers] of cases) {
      const before = (await h.auditEvents()).length;
      const socket = await overSocket(body(), headers);
      const audited = (await h.auditEvents()).length;
      sameAnswer(socket, await inProcess(body(), headers), what);
      assert.ok(socket.status >= 400, `${what}: refused`);
      assert.ok(audited > before, `${what}: audited`);
    }
  });

  it('refuses a replayed assertion', async () => {
    const body = form(tokenForm());
    assert.equal((await overSocket(body)).status, 200);
    const again = await overSocket(body);
    assert.equal(again.status, 401);
    assert.equal(again.body['error'], 'invalid_client');
    assert.match(String(again.body['error_description']), /already been used/);
  });

  it('leaves other requests to Fastify, which answers them as before', async () => {
    // A charset parameter, a query string, another type and a body over the limit: not the listener's.
    const charset = await overSocket(form(tokenForm()), {
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
    });
    assert.equal(charset.status, 200);
    const query = await overSocket(form(tokenForm()), {}, '/oauth2/token?x=1');
    assert.equal(query.status, 200);
    const json = await overSocket(JSON.stringify(tokenForm()), { 'content-type': 'application/json' });
    assert.equal(json.status, 400);
    assert.equal(json.body['error'], 'invalid_request');
    const large = await overSocket(form(tokenForm({ pad: 'x'.repeat(h.settings.limits.bodyBytes) })));
    assert.equal(large.status, 413);
    for (const r of [charset, query, json, large])
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
  });
});
