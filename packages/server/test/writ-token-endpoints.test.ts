import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateDpopKey } from '@writ/sdk/dpop';
import { fakeClock } from '../src/clock.js';
import { classDoc, clientAuth, dpopTokenRequest, workloadDoc } from './helpers/dpop.js';
import { AUDIENCE, type Harness, type Reply, startHarness, testKey } from './helpers/harness.js';
import { expectRefusal } from './helpers/refusals.js';

/**
 * One way in: every Writ endpoint that takes a Writ token (as a resource server, or the admin token of
 * an operator) makes the same checks and refuses the same way: a revoked token, a DPoP-bound token sent
 * as Bearer, a token for another audience and an expired token are each 401 `invalid_token` with the
 * same RFC 6750 / RFC 9449 challenge, and each refusal is audited once.
 */

const CALLER = 'spiffe://test.writ/edge/caller';
const BOUND_CALLER = 'spiffe://test.writ/edge/bound-caller';

type Kind = 'workload' | 'operator';
interface Endpoint {
  name: string;
  /** The audience of the token this endpoint takes (workload endpoints). */
  audience?: (issuer: string) => string;
  kind: Kind;
  event: string;
  /** Without `Authorization: Bearer` the endpoint takes client authentication instead. */
  clientAuthToo?: boolean;
  send: (h: Harness, authorization: string | undefined) => Promise<Reply>;
}

const json = (body: unknown) => ({
  headers: { 'content-type': 'application/json' },
  payload: JSON.stringify(body),
});

let sent = 0;

async function inject(
  h: Harness,
  method: 'GET' | 'POST',
  url: string,
  authorization: string | undefined,
  extra: { headers?: Record<string, string>; payload?: string } = {},
): Promise<Reply> {
  const res = await h.writ.app.inject({
    method,
    url,
    // Each refusal from an address of its own: unauthenticated refusals are audited once per kind and
    // source per window (rate-limit-budget.test.ts), and this test wants each one's own row.
    remoteAddress: `198.51.100.${++sent % 250}`,
    headers: { ...(authorization !== undefined ? { authorization } : {}), ...extra.headers },
    ...(extra.payload !== undefined ? { payload: extra.payload } : {}),
  });
  return {
    status: res.statusCode,
    body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {},
    headers: res.headers,
  };
}

const form = (token: string) => ({
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  payload: new URLSearchParams({ token }).toString(),
});

const evaluation = json({
  subject: { type: 'user', id: 'alice', properties: { roles: ['viewer'] } },
  action: { name: 'read' },
  resource: { type: 'api', id: AUDIENCE },
});

/** Every endpoint that takes a Writ token, found by the functions of `auth/` they call. */
const ENDPOINTS: Endpoint[] = [
  {
    name: 'usage reports',
    kind: 'workload',
    audience: (i) => `${i}/v1/usage`,
    event: 'usage.refused',
    send: (h, a) => inject(h, 'POST', '/v1/usage', a, json({ records: [] })),
  },
  {
    name: 'SSF stream management',
    kind: 'workload',
    audience: (i) => `${i}/ssf`,
    event: 'ssf.refused',
    send: (h, a) => inject(h, 'GET', '/ssf/stream', a),
  },
  {
    name: 'event stream',
    kind: 'workload',
    audience: (i) => `${i}/v1/events`,
    event: 'events.refused',
    send: (h, a) => inject(h, 'GET', '/v1/events', a),
  },
  {
    name: 'policy bundle',
    kind: 'workload',
    audience: (i) => `${i}/v1/events`,
    event: 'policy_bundle.refused',
    send: (h, a) => inject(h, 'GET', `/v1/policy/bundle?audience=${encodeURIComponent(AUDIENCE)}`, a),
  },
  {
    name: 'AuthZEN access evaluation',
    kind: 'workload',
    audience: (i) => `${i}/access/v1`,
    event: 'access.refused',
    send: (h, a) => inject(h, 'POST', '/access/v1/evaluation', a, evaluation),
  },
  {
    name: 'admin API',
    kind: 'operator',
    event: 'admin.refused',
    send: (h, a) => inject(h, 'GET', '/admin/v1/workloads', a),
  },
  {
    name: 'admin audit trace',
    kind: 'operator',
    event: 'admin.refused',
    send: (h, a) => inject(h, 'GET', '/admin/v1/audit/trace/some-jti', a),
  },
  {
    name: 'SSF stream management (operator)',
    kind: 'operator',
    event: 'ssf.refused',
    send: (h, a) => inject(h, 'GET', '/ssf/stream', a),
  },
  {
    name: 'AuthZEN access evaluation (operator)',
    kind: 'operator',
    event: 'access.refused',
    send: (h, a) => inject(h, 'POST', '/access/v1/evaluation', a, evaluation),
  },
  {
    name: 'introspection (operator)',
    kind: 'operator',
    event: 'introspection.refused',
    clientAuthToo: true,
    send: (h, a) => inject(h, 'POST', '/oauth2/introspect', a, form('x.y.z')),
  },
  {
    name: 'revocation (operator)',
    kind: 'operator',
    event: 'revocation.refused',
    clientAuthToo: true,
    send: (h, a) => inject(h, 'POST', '/oauth2/revoke', a, form('x.y.z')),
  },
];

const ALGS = 'ES256 EdDSA ES384 PS256';
/** The one challenge: `DPoP` (with `algs`) and `Bearer`, realm `writ`, the error in the scheme to use. */
const challenge = (description: string, inDpop = false): string => {
  const error = `error="invalid_token", error_description="${description}"`;
  return inDpop
    ? `DPoP realm="writ", ${error}, algs="${ALGS}", Bearer realm="writ"`
    : `DPoP realm="writ", algs="${ALGS}", Bearer realm="writ", ${error}`;
};

describe('every endpoint that takes a Writ token makes the same checks and refuses the same way', () => {
  const clock = fakeClock(Date.UTC(2026, 6, 1, 9));
  const callerKey = testKey();
  const boundKey = testKey();
  let h: Harness;
  const audiences = (issuer: string) => [
    `${issuer}/v1/usage`,
    `${issuer}/ssf`,
    `${issuer}/v1/events`,
    `${issuer}/access/v1`,
  ];

  before(async () => {
    const issuer = 'http://127.0.0.1:8080';
    h = await startHarness({
      clock,
      settings: { issuer },
      extraDocs: [
        classDoc({
          name: 'writ-callers',
          audiences: audiences(issuer),
          scopes: ['writ'],
          default_scopes: ['writ'],
          binding: 'bearer',
        }),
        classDoc({
          name: 'writ-callers-dpop',
          audiences: audiences(issuer),
          scopes: ['writ'],
          default_scopes: ['writ'],
          binding: 'dpop',
        }),
        workloadDoc(CALLER, callerKey, ['writ-callers']),
        workloadDoc(BOUND_CALLER, boundKey, ['writ-callers-dpop']),
      ],
    });
  });
  after(() => h.close());

  /** A Bearer token of CALLER for `audience`. */
  const bearerToken = async (audience: string): Promise<string> => {
    const r = await h.post('/oauth2/token', {
      grant_type: 'client_credentials',
      resource: audience,
      ...clientAuth(h, CALLER, callerKey),
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };
  const dpopBoundToken = async (audience: string): Promise<string> => {
    const key = await generateDpopKey('ES256');
    const r = await dpopTokenRequest(
      h,
      () => ({
        grant_type: 'client_credentials',
        resource: audience,
        ...clientAuth(h, BOUND_CALLER, boundKey),
      }),
      key,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['token_type'], 'DPoP');
    return r.body['access_token'] as string;
  };
  const revokeJti = async (token: string) => {
    const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())['jti'] as string;
    const r = await h.admin('POST', '/revocations', { kind: 'jti', value: jti, reason: 'test' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };

  /** The token each case presents to `e`: what a caller of that endpoint would hold, made unacceptable. */
  const cases: {
    name: string;
    token: (e: Endpoint) => Promise<string>;
    /** The challenge expected at an endpoint of this kind. */
    expected: (kind: Kind) => { challenge: string; reason: string };
  }[] = [
    {
      name: 'a revoked token',
      token: async (e) => {
        const t = e.kind === 'operator' ? await h.adminToken() : await bearerToken(e.audience!(h.issuer));
        await revokeJti(t);
        return t;
      },
      expected: () => ({ challenge: challenge('token has been revoked'), reason: 'revoked' }),
    },
    {
      name: 'a DPoP-bound token sent as Bearer',
      // Admin tokens are DPoP-bound to the operator key, like a workload's bound token.
      token: (e) => (e.kind === 'operator' ? h.adminToken() : dpopBoundToken(e.audience!(h.issuer))),
      expected: () => ({
        challenge: challenge(
          'the token is DPoP-bound (cnf.jkt): send it with Authorization: DPoP and a proof by its key',
          true,
        ),
        reason: 'dpop_bound_as_bearer',
      }),
    },
    {
      name: 'a token for another audience',
      token: () => bearerToken(`${h.issuer}/v1/usage`),
      expected: () => ({ challenge: challenge('token is not for this audience'), reason: 'aud' }),
    },
    {
      name: 'an expired token',
      token: async (e) => {
        const t = e.kind === 'operator' ? await h.adminToken() : await bearerToken(e.audience!(h.issuer));
        clock.advance(3_600_000); // past every class's max_ttl and the admin session
        return t;
      },
      expected: () => ({ challenge: challenge('token has expired'), reason: 'expired' }),
    },
  ];

  for (const c of cases) {
    it(`${c.name}: 401 invalid_token, the same challenge at every endpoint, audited once each`, async () => {
      const seen = new Map<string, string>();
      for (const e of ENDPOINTS) {
        // The usage endpoint itself takes usage-audience tokens: give it another audience's token.
        const token =
          c.name === 'a token for another audience' && e.audience?.(h.issuer) === `${h.issuer}/v1/usage`
            ? await bearerToken(`${h.issuer}/ssf`)
            : await c.token(e);
        const want = c.expected(e.kind);
        const { reply, event } = await expectRefusal(h, () => e.send(h, `Bearer ${token}`), {
          status: 401,
          error: 'invalid_token',
          event: e.event,
          reason: want.reason,
        });
        assert.equal(reply.headers['www-authenticate'], want.challenge, `${e.name}: the challenge`);
        assert.equal(event.actor, 'anonymous', `${e.name}: a refused token proves no identity`);
        seen.set(e.name, String(reply.headers['www-authenticate']));
      }
      assert.equal(seen.size, ENDPOINTS.length);
    });
  }

  it('without credentials every endpoint answers 401 with the bare challenges (RFC 6750 §3.1), audited', async () => {
    for (const e of ENDPOINTS.filter((x) => !x.clientAuthToo)) {
      const { reply } = await expectRefusal(h, () => e.send(h, undefined), {
        status: 401,
        error: 'invalid_token',
        event: e.event,
        reason: 'no_token',
      });
      assert.equal(
        reply.headers['www-authenticate'],
        `DPoP realm="writ", algs="${ALGS}", Bearer realm="writ"`,
        e.name,
      );
    }
  });
  it('a token for the right audience, live and presented as its binding says, passes the same check (the refusals are not blanket)', async () => {
    const usage = await inject(
      h,
      'POST',
      '/v1/usage',
      `Bearer ${await bearerToken(`${h.issuer}/v1/usage`)}`,
      json({ records: [] }),
    );
    assert.notEqual(usage.status, 401, JSON.stringify(usage.body));
    const { authorization, dpop } = await h.adminHeaders('GET', '/admin/v1/workloads');
    const admin = await inject(h, 'GET', '/admin/v1/workloads', authorization, { headers: { dpop } });
    assert.equal(admin.status, 200);
  });
});
