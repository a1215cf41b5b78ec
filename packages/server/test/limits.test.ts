import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import {
  AUDIENCE,
  type Harness,
  OTHER_AUDIENCE,
  OTHER_WORKLOAD,
  type Reply,
  startHarness,
  WORKLOAD,
} from './helpers/harness.js';
import { eventsSince, expectRefusal, issuanceState } from './helpers/refusals.js';

/** Sends raw bytes over a socket and returns everything the server wrote before closing. */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** Bad input never crashes a node and never changes state; each refusal is audited. */
describe('request bounds and malformed input', () => {
  let h: Harness;
  let port: number;
  before(async () => {
    h = await startHarness({ listen: true });
    port = Number(new URL(h.issuer).port);
  });
  after(() => h.close());

  const raw = async (
    url: string,
    payload: string | Buffer,
    headers: Record<string, string>,
    method: 'POST' | 'GET' = 'POST',
  ): Promise<Reply> => {
    const res = await h.writ.app.inject({ method, url, headers, payload });
    return {
      status: res.statusCode,
      body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {},
      headers: res.headers,
    };
  };
  const validForm = () =>
    new URLSearchParams({
      grant_type: GrantType.clientCredentials,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: h.assertion(),
      resource: AUDIENCE,
    }).toString();

  it('a form body is required: other content types get 415', async () => {
    for (const type of ['text/plain', 'multipart/form-data; boundary=x', 'application/xml']) {
      const { event } = await expectRefusal(
        h,
        () => raw('/oauth2/token', validForm(), { 'content-type': type }),
        {
          status: 415,
          error: 'invalid_request',
          event: 'http.refused',
          reason: 'media_type',
        },
      );
      assert.equal(event.data['path'], '/oauth2/token');
    }
  });

  it('JSON where a form is required is refused (invalid_request)', async () => {
    const json = JSON.stringify(Object.fromEntries(new URLSearchParams(validForm())));
    await expectRefusal(h, () => raw('/oauth2/token', json, { 'content-type': 'application/json' }), {
      status: 400,
      error: 'invalid_request',
      event: 'http.refused',
    });
  });

  it('a garbage form is refused (invalid_request)', async () => {
    const garbage = ['%%%&&&===&=%zz', '\u0000\u00ff\u0001binary', '&&&&', 'grant_type'];
    for (const body of garbage) {
      await expectRefusal(
        h,
        () => raw('/oauth2/token', body, { 'content-type': 'application/x-www-form-urlencoded' }),
        { status: 400, error: 'invalid_request' },
      );
    }
  });

  it('a form with too many parameters is refused (invalid_request)', async () => {
    const many = Array.from({ length: 100 }, (_, i) => `p${i}=x`).join('&');
    await expectRefusal(
      h,
      () =>
        raw('/oauth2/token', `${validForm()}&${many}`, {
          'content-type': 'application/x-www-form-urlencoded',
        }),
      { status: 400, error: 'invalid_request', event: 'http.refused' },
    );
  });

  it(`a body over limits.body_bytes gets 413`, async () => {
    const limit = h.settings.limits.bodyBytes;
    const big = `${validForm()}&pad=${'a'.repeat(limit)}`;
    assert.ok(Buffer.byteLength(big) > limit);
    await expectRefusal(
      h,
      () => raw('/oauth2/token', big, { 'content-type': 'application/x-www-form-urlencoded' }),
      {
        status: 413,
        error: 'invalid_request',
        event: 'http.refused',
        reason: 'body_too_large',
      },
    );
    // Just under the limit, the same request is served.
    const fits = `${validForm()}&pad=`;
    const padded = `${fits}${'a'.repeat(limit - Buffer.byteLength(fits))}`;
    assert.equal(Buffer.byteLength(padded), limit);
    const ok = await raw('/oauth2/token', padded, { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });

  it('headers over limits.header_bytes get 431 over a real socket, audited as http.refused', async () => {
    const before = await issuanceState(h);
    const form = validForm();
    const huge = 'a'.repeat(h.settings.limits.headerBytes + 1024);
    const response = await rawExchange(
      port,
      `POST /oauth2/token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\n` +
        `content-length: ${Buffer.byteLength(form)}\r\nx-padding: ${huge}\r\n\r\n${form}`,
    );
    assert.match(response, /^HTTP\/1\.1 431 /);
    const body = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
    assert.equal(body['error'], 'invalid_request');

    // The connection-level refusal is audited without awaiting the response: wait for it (bounded).
    let refused: Awaited<ReturnType<typeof eventsSince>> = [];
    for (let i = 0; i < 100 && refused.length === 0; i++) {
      refused = await eventsSince(h, before.lastSeq, 'http.refused');
      if (refused.length === 0) await delay(20);
    }
    assert.equal(refused.length, 1, 'the 431 is audited');
    assert.equal(refused[0]!.data['error'], 'invalid_request');
    assert.equal(refused[0]!.data['reason'], 'headers_too_large');
    assert.equal(refused[0]!.data['http_error'], 'HPE_HEADER_OVERFLOW', 'the parser code stays in the audit');
    const after = await issuanceState(h);
    assert.equal(after.issuedEvents, before.issuedEvents);
    assert.equal(after.tokenRows, before.tokenRows);

    // The server is still serving.
    const health = await fetch(`${h.issuer}/healthz`);
    assert.equal(health.status, 200);
  });

  it('deeply nested JSON on an admin endpoint is refused (invalid_request, admin.refused) and revokes nothing', async () => {
    const session = await h.adminSession();
    const revocations = async () => (await h.store.listRevocations(0, h.writ.ctx.clock.now())).length;
    const count = await revocations();
    const nested = `${'{"kind":'.repeat(100)}"jti"${'}'.repeat(100)}`;
    const arrays = `${'['.repeat(100)}${']'.repeat(100)}`;
    for (const payload of [nested, arrays]) {
      const { reply } = await expectRefusal(
        h,
        () =>
          raw('/admin/v1/revocations', payload, {
            'content-type': 'application/json',
            ...session.headers('POST', '/admin/v1/revocations'),
          }),
        { status: 400, error: 'invalid_request', event: 'admin.refused' },
      );
      assert.match(String(reply.body['error_description']), /JSON/);
    }
    assert.equal(await revocations(), count);
  });

  it('a schema-invalid admin body is refused and audited as admin.refused', async () => {
    const session = await h.adminSession();
    const { event } = await expectRefusal(
      h,
      () =>
        raw('/admin/v1/revocations', JSON.stringify({ kind: 'everything', value: '*' }), {
          'content-type': 'application/json',
          ...session.headers('POST', '/admin/v1/revocations'),
        }),
      { status: 400, error: 'invalid_request', event: 'admin.refused' },
    );
    assert.equal(event.data['path'], '/admin/v1/revocations');
    assert.equal(event.actor, 'operator:ops', 'attributed to the authenticated operator');
  });

  it('an admin request without a token is refused and audited as admin.refused', async () => {
    await expectRefusal(
      h,
      () =>
        raw('/admin/v1/revocations', JSON.stringify({ kind: 'jti', value: 'x' }), {
          'content-type': 'application/json',
        }),
      { status: 401, error: 'invalid_token', event: 'admin.refused' },
    );
  });
});

describe('request rate per client', () => {
  const clock = fakeClock(Date.UTC(2026, 5, 1, 12));
  let h: Harness;
  before(async () => {
    h = await startHarness({ clock, settings: { 'limits.client_rate': 1, 'limits.client_burst': 2 } });
  });
  after(() => h.close());

  it('past its bucket a client gets 429 temporarily_unavailable with Retry-After, audited, nothing issued; it refills with time', async () => {
    for (let i = 0; i < 2; i++)
      assert.equal((await h.requestToken()).status, 200, `request ${i + 1} of the burst`);
    const { reply, event } = await expectRefusal(h, () => h.requestToken(), {
      status: 429,
      error: 'temporarily_unavailable',
      reason: 'rate_limited',
    });
    assert.equal(reply.headers['retry-after'], '1');
    assert.equal(event.actor, WORKLOAD, 'the refusal names the authenticated client');
    assert.equal(event.data['workload'], WORKLOAD);
    // Another client has a bucket of its own.
    const other = await h.requestToken(
      { resource: OTHER_AUDIENCE, scope: 'billing:write' },
      { clientId: OTHER_WORKLOAD, key: h.otherKey },
    );
    assert.equal(other.status, 200, JSON.stringify(other.body));
    clock.advance(1000);
    assert.equal((await h.requestToken()).status, 200, 'one token per second comes back');
  });

  it('opening tasks draws on the same budget (429, audited, no task); closing a task never does', async () => {
    clock.advance(10_000); // a full bucket again
    const auth = () => ({
      client_id: WORKLOAD,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: h.assertion(),
    });
    const open = () => h.post('/v1/tasks', { ...auth(), purpose: 'rate test' });
    const first = await open();
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal((await h.requestToken()).status, 200);
    const tasksBefore = await h.countRows('tasks');
    const refused = await open();
    assert.equal(refused.status, 429);
    assert.equal(refused.body['error'], 'temporarily_unavailable');
    assert.equal(await h.countRows('tasks'), tasksBefore, 'no task opened');
    const [event] = await h.store.queryAudit({ type: 'task.refused', order: 'desc', limit: 1 });
    assert.equal(event?.data['reason'], 'rate_limited');
    assert.equal(event?.actor, WORKLOAD);
    // Over its limit, the client can still close its task (and so revoke its tokens).
    const closed = await h.post(`/v1/tasks/${String(first.body['id'])}/close`, { ...auth(), reason: 'done' });
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
  });
});
