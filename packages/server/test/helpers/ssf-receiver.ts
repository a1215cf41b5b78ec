import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';

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

export interface PushReceipt {
  authorization: string | undefined;
  contentType: string | undefined;
  set: string;
  status: number;
}

/** A push receiver on loopback. `plan` holds the statuses to answer next (then 202). */
export interface PushReceiver {
  url: string;
  received: PushReceipt[];
  plan: number[];
  /** SETs answered with 202. */
  accepted(): string[];
  close(): Promise<void>;
}

export async function startPushReceiver(port = 0): Promise<PushReceiver> {
  const received: PushReceipt[] = [];
  const plan: number[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = plan.shift() ?? 202;
      received.push({
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        set: Buffer.concat(chunks).toString('utf8'),
        status,
      });
      if (status === 400) {
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
  return {
    url: `http://127.0.0.1:${bound}/events`,
    received,
    plan,
    accepted: () => received.filter((r) => r.status === 202).map((r) => r.set),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Polls `probe` (bounded: 600 × 25 ms) until it is true. */
export async function until(what: string, probe: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}
