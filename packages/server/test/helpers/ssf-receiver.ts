import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { WorkloadClient } from '@writ/sdk/client';
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';
import type { HostResolver } from '../../src/net/resolver.js';
import type { AdminSession } from './admin-session.js';
import { classDoc, workloadDoc } from './dpop.js';
import { freePort, type Harness, type Reply, startHarness, type TestKey } from './harness.js';

/**
 * An SSF receiver as a third party would write one: an RFC 8935 push endpoint on loopback, and a
 * validator that checks each SET with `jose` against the transmitter's published JWKS: signature,
 * `typ: secevent+jwt`, `iss`, `aud`, no `sub` or `exp`, one event of a known CAEP/SSF type whose
 * members follow its schema, and a well-formed `sub_id`.
 */

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const VERIFICATION = 'https://schemas.openid.net/secevent/ssf/event-type/verification';

export interface ValidSet {
  type: string;
  body: Record<string, unknown>;
  payload: JWTPayload & { sub_id: Record<string, unknown>; events: Record<string, unknown> };
}

export function setValidator(issuer: string) {
  const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
  return async (set: string, audience: string): Promise<ValidSet> => {
    const { payload, protectedHeader } = await jwtVerify(set, jwks, {
      issuer,
      audience,
      typ: 'secevent+jwt',
      algorithms: ['ES256', 'EdDSA'],
    });
    assert.equal(protectedHeader.typ, 'secevent+jwt');
    assert.equal(payload.sub, undefined, 'SSF 1.0 §4.1.2: no sub claim');
    assert.equal(payload.exp, undefined, 'SSF 1.0 §4.1.7: no exp claim');
    assert.equal(typeof payload.jti, 'string');
    assert.equal(typeof payload.iat, 'number');
    const events = payload['events'] as Record<string, Record<string, unknown>>;
    assert.equal(typeof events, 'object');
    const entries = Object.entries(events);
    assert.equal(entries.length, 1, 'one event per SET');
    const [type, body] = entries[0]!;
    checkSubject(payload['sub_id']);
    switch (type) {
      case `${CAEP}session-revoked`:
        assert.equal(typeof body['event_timestamp'], 'number');
        break;
      case `${CAEP}credential-change`:
        assert.equal(typeof body['credential_type'], 'string');
        assert.ok(['create', 'revoke', 'update', 'delete'].includes(body['change_type'] as string));
        break;
      case `${CAEP}token-claims-change`:
        assert.equal(typeof body['claims'], 'object');
        assert.ok(Object.keys(body['claims'] as object).length > 0, 'claims is required and non-empty');
        break;
      case `${CAEP}risk-level-change`: {
        // CAEP 1.0 §3.8: `principal` and `current_level` required, `previous_level` optional.
        const levels = ['LOW', 'MEDIUM', 'HIGH'];
        assert.equal(typeof body['principal'], 'string');
        assert.ok(levels.includes(body['current_level'] as string), String(body['current_level']));
        if ('previous_level' in body) assert.ok(levels.includes(body['previous_level'] as string));
        if ('risk_reason' in body) assert.equal(typeof body['risk_reason'], 'string');
        assert.equal(typeof body['event_timestamp'], 'number');
        break;
      }
      case VERIFICATION:
        assert.deepEqual(Object.keys(payload['sub_id'] as object).sort(), ['format', 'id']);
        assert.equal((payload['sub_id'] as Record<string, unknown>)['format'], 'opaque');
        break;
      default:
        assert.fail(`unexpected event type ${type}`);
    }
    if ('initiating_entity' in body)
      assert.ok(['admin', 'user', 'policy', 'system'].includes(body['initiating_entity'] as string));
    return { type, body, payload: payload as ValidSet['payload'] };
  };
}

/** RFC 9493 and SSF 1.0 §3 subject identifier formats, with the members each requires. */
function checkSubject(sub: unknown, nested = false): void {
  assert.equal(typeof sub, 'object');
  const s = sub as Record<string, unknown>;
  const str = (k: string) => assert.equal(typeof s[k], 'string', `sub_id ${s['format']} needs ${k}`);
  switch (s['format']) {
    case 'opaque':
      str('id');
      break;
    case 'iss_sub':
      str('iss');
      str('sub');
      break;
    case 'jwt_id':
      str('iss');
      str('jti');
      break;
    case 'uri':
      str('uri');
      new URL(s['uri'] as string);
      break;
    case 'email':
      str('email');
      break;
    case 'complex': {
      assert.ok(!nested, 'complex subjects do not nest');
      const members = Object.entries(s).filter(([k]) => k !== 'format');
      assert.ok(members.length > 0);
      for (const [, m] of members) checkSubject(m, true);
      break;
    }
    default:
      assert.fail(`unknown subject format ${String(s['format'])}`);
  }
}

export const RECEIVER = 'spiffe://test.writ/siem/receiver';
export const STRANGER = 'spiffe://test.writ/siem/other';

export { privateJwk } from './harness.js';

/** Two receiver workloads (RECEIVER, STRANGER) whose class may call the stream management API. */
export const receiverDocs = (issuer: string, keys: TestKey[]) => [
  classDoc({ name: 'ssf-receiver', audiences: [`${issuer}/ssf`], scopes: ['ssf'], default_scopes: ['ssf'] }),
  workloadDoc(RECEIVER, keys[0]!, ['ssf-receiver']),
  workloadDoc(STRANGER, keys[1]!, ['ssf-receiver']),
];

/** A Writ listening on a port chosen up front, so the receiver class can name its audience. */
export async function listeningHarness(
  extra: (issuer: string) => ReturnType<typeof receiverDocs>,
  settings: Record<string, unknown> = {},
  opts: { resolveHost?: HostResolver } = {},
): Promise<{ h: Harness; issuer: string }> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const h = await startHarness({
    listen: true,
    settings: { 'listen.port': port, ...settings },
    extraDocs: extra(issuer),
    ...opts,
  });
  return { h, issuer };
}

const jsonBody = (body: unknown) =>
  body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {};

/** A stream management (or poll) call over HTTP as an operator, in an admin session (a fresh proof each). */
export function operatorCall(
  issuer: string,
  admin: AdminSession,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  return fetch(`${issuer}${path}`, {
    method,
    headers: {
      ...admin.headers(method, path),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

/** A stream management (or poll) call as a receiver workload: its DPoP-bound token for `<issuer>/ssf`. */
export function receiverCall(
  issuer: string,
  c: WorkloadClient,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  return c.fetch(`${issuer}${path}`, { method, audience: `${issuer}/ssf`, ...jsonBody(body) });
}

/** A fetch response as the harness's `Reply` (for `expectRefusal`). */
export async function replyOf(res: Response): Promise<Reply> {
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    headers: Object.fromEntries(res.headers),
  };
}

export interface PushReceipt {
  authorization: string | undefined;
  contentType: string | undefined;
  /** The Host header: the name the request was made for, whatever address it went to. */
  host: string | undefined;
  set: string;
  status: number;
}

/**
 * A push receiver on loopback. `plan` holds the answers to give next (then 202): a status, or a function
 * that answers itself (a misbehaving receiver). `connections` counts every TCP connection it accepted,
 * whether or not a request came.
 */
export interface PushReceiver {
  url: string;
  port: number;
  received: PushReceipt[];
  plan: Array<number | ((res: ServerResponse) => void)>;
  connections: number;
  /** SETs answered with 202. */
  accepted(): string[];
  close(): Promise<void>;
}

export async function startPushReceiver(port = 0): Promise<PushReceiver> {
  const received: PushReceipt[] = [];
  const plan: PushReceiver['plan'] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const next = plan.shift() ?? 202;
      const status = typeof next === 'number' ? next : 0;
      received.push({
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        host: req.headers.host,
        set: Buffer.concat(chunks).toString('utf8'),
        status,
      });
      if (typeof next === 'function') {
        next(res);
      } else if (status === 400) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ err: 'invalid_audience', description: 'not for this receiver' }));
      } else {
        res.writeHead(status);
        res.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const { port: bound } = server.address() as { port: number };
  const receiver: PushReceiver = {
    url: `http://127.0.0.1:${bound}/events`,
    port: bound,
    received,
    plan,
    connections: 0,
    accepted: () => received.filter((r) => r.status === 202).map((r) => r.set),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', () => {
    receiver.connections++;
  });
  return receiver;
}

/** Polls `probe` (bounded: 600 × 25 ms) until it is true. */
export async function until(what: string, probe: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}
