import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createDpopProof, type DpopKey, generateDpopKey } from '@writ/sdk/dpop';
import { jwkThumbprint } from '@writ/sdk/jose';
import { writeRefusalSummaries } from '../../src/audit/refusal.js';
import { ADMIN_CLASS } from '../../src/auth/admin.js';
import { adminAudience } from '../../src/context.js';
import { signAccessToken } from '../../src/tokens/access-token.js';
import {
  type AdminSession,
  adminTokenRequest,
  httpAdminSession,
  operatorDpopKey,
} from '../helpers/admin-session.js';
import { runWrit } from '../helpers/cli.js';
import { MAIN } from '../helpers/cluster.js';
import { decodeClaims } from '../helpers/dpop.js';
import {
  AUDIENCE,
  configDocuments,
  type Harness,
  OTHER_WORKLOAD,
  type Reply,
  startHarness,
  testKey,
  WORKLOAD,
} from '../helpers/harness.js';
import { expectRefusal } from '../helpers/refusals.js';

// An attacker who copied an admin token (from a log, a proxy, a shell history, another process's
// environment) and perhaps a request or two the operator made with it. Admin tokens are DPoP-bound to the
// operator's key (RFC 9449): every admin call needs a fresh proof by that key over its method, URL and
// token, so the copy alone is useless at every endpoint that takes an admin token. Real HTTP; the issuer
// is not the address the clients reach, so proofs must name the issuer's URLs as the server checks them.

const ISSUER = 'https://writ.admin-binding.test';
const ALGS = 'ES256 EdDSA ES384 PS256';
const nowSeconds = () => Math.floor(Date.now() / 1000);

type Body = { json: unknown } | { form: Record<string, string> };

/** One endpoint that takes an admin token, and a request to it an operator could make. */
interface AdminEndpoint {
  family: string;
  method: 'GET' | 'POST' | 'PUT';
  /** From the issuer root, query included. */
  path: string;
  /** The audit event type of its refusals. */
  event: string;
  body?: () => Body;
}

describe('a copied admin token is useless without the operator key (DPoP-bound admin sessions)', () => {
  let h: Harness;
  let origin: string;
  let session: AdminSession;
  /** A second session of the same operator: its proofs carry another token's hash. */
  let otherSession: AdminSession;
  /** A workload token, for the endpoints that take one as a parameter (introspection, revocation, trace). */
  let workloadToken: string;
  let ENDPOINTS: AdminEndpoint[];
  const attacker = generateDpopKey();

  before(async () => {
    h = await startHarness({
      listen: true,
      settings: {
        issuer: ISSUER,
        // Every refused request here comes from 127.0.0.1: keep the per-address budget out of the way.
        'limits.source_rate': 1_000_000,
        'limits.source_burst': 1_000_000,
      },
    });
    origin = `http://127.0.0.1:${h.settings.listen.port}`;
    session = await httpAdminSession(ISSUER, h.operatorKey, { origin });
    otherSession = await httpAdminSession(ISSUER, h.operatorKey, { origin });
    const r = await h.requestToken();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    workloadToken = r.body['access_token'] as string;
    ENDPOINTS = endpoints();
  });
  after(() => h.close());

  /** A request over HTTP to the listening server, as anyone on the network sends it. */
  async function send(e: AdminEndpoint, headers: Record<string, string>): Promise<Reply> {
    const body = e.body?.();
    const res = await fetch(`${origin}${e.path}`, {
      method: e.method,
      headers: {
        ...headers,
        ...(body && 'json' in body ? { 'content-type': 'application/json' } : {}),
        ...(body && 'form' in body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      ...(body ? { body: 'json' in body ? JSON.stringify(body.json) : new URLSearchParams(body.form) } : {}),
    });
    const text = await res.text();
    return {
      status: res.status,
      body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
      headers: Object.fromEntries(res.headers),
    };
  }

  /** What any admin action leaves behind: its audit events, revocations, tokens, tasks, keys. */
  async function world(): Promise<Record<string, number>> {
    const events = await h.auditEvents();
    return {
      // Refusals and DPoP nonce challenges change nothing.
      actions: events.filter((e) => e.outcome !== 'refused' && e.outcome !== 'challenged').length,
      revocations: (await h.store.listRevocations(0, Date.now())).length,
      tokens: await h.countRows('tokens'),
      tasks: await h.countRows('tasks'),
      keys: h.writ.ctx.keys.list().length,
    };
  }

  /** Every endpoint family that takes an admin token (built once the server runs: some name its data). */
  const endpoints = (): AdminEndpoint[] => [
    { family: 'admin API: registry', method: 'GET', path: '/admin/v1/workloads', event: 'admin.refused' },
    {
      family: 'admin API: workload state',
      method: 'POST',
      path: `/admin/v1/workloads/${encodeURIComponent(OTHER_WORKLOAD)}/disable`,
      event: 'admin.refused',
      body: () => ({ json: { reason: 'copied token' } }),
    },
    {
      family: 'admin API: revocations',
      method: 'POST',
      path: '/admin/v1/revocations',
      event: 'admin.refused',
      body: () => ({ json: { kind: 'jti', value: 'copied-token-test', reason: 'copied token' } }),
    },
    {
      family: 'admin API: config apply',
      method: 'POST',
      path: '/admin/v1/config',
      event: 'admin.refused',
      body: () => ({
        json: {
          documents: configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey }),
          dry_run: true,
        },
      }),
    },
    {
      family: 'admin API: signing keys',
      method: 'POST',
      path: '/admin/v1/keys/rotate',
      event: 'admin.refused',
      body: () => ({ json: {} }),
    },
    {
      family: 'admin API: tasks',
      method: 'POST',
      path: '/admin/v1/tasks',
      event: 'admin.refused',
      body: () => ({ json: { workload: WORKLOAD, purpose: 'copied token' } }),
    },
    { family: 'admin API: audit', method: 'GET', path: '/admin/v1/audit?limit=1', event: 'admin.refused' },
    {
      family: 'admin API: audit trace',
      method: 'GET',
      path: `/admin/v1/audit/trace/${decodeClaims(workloadToken)['jti'] as string}`,
      event: 'admin.refused',
    },
    {
      family: 'admin API: policy attributes',
      method: 'PUT',
      path: '/admin/v1/resources/reports-api',
      event: 'admin.refused',
      body: () => ({ json: { sensitivity: 'restricted' } }),
    },
    {
      family: 'Shared Signals stream management',
      method: 'POST',
      path: '/ssf/stream',
      event: 'ssf.refused',
      body: () => ({ json: { aud: 'https://siem.test', delivery: { method: 'urn:ietf:rfc:8936' } } }),
    },
    {
      family: 'AuthZEN access evaluation',
      method: 'POST',
      path: '/access/v1/evaluation',
      event: 'access.refused',
      body: () => ({
        json: {
          subject: { type: 'workload', id: WORKLOAD },
          action: { name: 'read' },
          resource: { type: 'api', id: AUDIENCE },
        },
      }),
    },
    {
      family: 'introspection (RFC 7662)',
      method: 'POST',
      path: '/oauth2/introspect',
      event: 'introspection.refused',
      body: () => ({ form: { token: workloadToken } }),
    },
    {
      family: 'revocation (RFC 7009)',
      method: 'POST',
      path: '/oauth2/revoke',
      event: 'revocation.refused',
      body: () => ({ form: { token: workloadToken } }),
    },
  ];

  /** A proof by `key` as an attacker or a capture makes it. */
  const proof = (key: DpopKey, method: string, path: string, o: { token?: string; iat?: number } = {}) =>
    createDpopProof(key, {
      method,
      url: `${ISSUER}${path}`,
      ...(o.token !== undefined ? { accessToken: o.token } : {}),
      nowSeconds: o.iat ?? nowSeconds(),
    });
  const operatorKey = () => operatorDpopKey(h.operatorKey);
  const otherPath = (e: AdminEndpoint) =>
    e.path === '/admin/v1/workloads' ? '/admin/v1/audit' : '/admin/v1/workloads';

  /** What the attacker sends with the copied token, and the check that must refuse it. */
  const ATTACKS: Array<{
    name: string;
    headers: (e: AdminEndpoint, token: string) => Record<string, string>;
    error: 'invalid_token' | 'invalid_dpop_proof';
    reason: string;
  }> = [
    {
      name: 'the token as a Bearer token',
      headers: (_e, t) => ({ authorization: `Bearer ${t}` }),
      error: 'invalid_token',
      reason: 'dpop_bound_as_bearer',
    },
    {
      name: 'the DPoP scheme without a proof',
      headers: (_e, t) => ({ authorization: `DPoP ${t}` }),
      error: 'invalid_dpop_proof',
      reason: 'dpop_single_header',
    },
    {
      name: 'a proof by the attacker’s own key',
      headers: (e, t) => ({
        authorization: `DPoP ${t}`,
        dpop: proof(attacker, e.method, e.path, { token: t }),
      }),
      error: 'invalid_dpop_proof',
      reason: 'dpop_jkt',
    },
    {
      name: 'a captured operator proof for another URL',
      headers: (e, t) => ({
        authorization: `DPoP ${t}`,
        dpop: proof(operatorKey(), e.method, otherPath(e), { token: t }),
      }),
      error: 'invalid_dpop_proof',
      reason: 'dpop_htu',
    },
    {
      name: 'a captured operator proof for another method',
      headers: (e, t) => ({
        authorization: `DPoP ${t}`,
        dpop: proof(operatorKey(), e.method === 'GET' ? 'POST' : 'GET', e.path, { token: t }),
      }),
      error: 'invalid_dpop_proof',
      reason: 'dpop_htm',
    },
    {
      name: 'a captured operator proof without ath (as sent to the token endpoint)',
      headers: (e, t) => ({ authorization: `DPoP ${t}`, dpop: proof(operatorKey(), e.method, e.path) }),
      error: 'invalid_dpop_proof',
      reason: 'dpop_required_claims',
    },
    {
      name: 'a captured operator proof made for another admin token',
      headers: (e, t) => ({ authorization: `DPoP ${t}`, dpop: otherSession.headers(e.method, e.path).dpop }),
      error: 'invalid_dpop_proof',
      reason: 'dpop_ath',
    },
    {
      name: 'a captured operator proof an hour old',
      headers: (e, t) => ({
        authorization: `DPoP ${t}`,
        dpop: proof(operatorKey(), e.method, e.path, { token: t, iat: nowSeconds() - 3600 }),
      }),
      error: 'invalid_dpop_proof',
      reason: 'dpop_iat',
    },
  ];

  it('the admin token endpoint binds the token to the operator key: token_type DPoP, cnf.jkt', () => {
    const claims = decodeClaims(session.token);
    assert.deepEqual(claims['cnf'], { jkt: jwkThumbprint(h.operatorKey.publicJwk) });
    assert.equal(claims['cls'], ADMIN_CLASS);
  });

  for (const attack of ATTACKS) {
    it(`${attack.name}: 401 at every endpoint family, audited, nothing done`, async () => {
      for (const e of ENDPOINTS) {
        const before = await world();
        const { reply, event } = await expectRefusal(h, () => send(e, attack.headers(e, session.token)), {
          status: 401,
          error: attack.error,
          event: e.event,
          reason: attack.reason,
        });
        const challenge = String(reply.headers['www-authenticate']);
        assert.ok(
          challenge.startsWith(`DPoP realm="writ", error="${attack.error}", `) &&
            challenge.endsWith(`algs="${ALGS}", Bearer realm="writ"`),
          `${e.family}: the error is in the DPoP challenge: ${challenge}`,
        );
        assert.equal(event.actor, 'anonymous', `${e.family}: a refused token proves no identity`);
        assert.deepEqual(await world(), before, `${e.family}: nothing was done`);
      }
    });
  }

  it('a replayed operator request (token and proof copied together) is refused after its one use, and not repeated', async () => {
    for (const e of ENDPOINTS) {
      const captured = session.headers(e.method, e.path);
      const first = await send(e, captured);
      assert.ok(
        first.status < 300,
        `${e.family}: the operator's own call passes: ${JSON.stringify(first.body)}`,
      );
      const done = await world();
      await expectRefusal(h, () => send(e, captured), {
        status: 401,
        error: 'invalid_dpop_proof',
        event: e.event,
        reason: 'dpop_replay',
      });
      assert.deepEqual(await world(), done, `${e.family}: the replay did nothing`);
    }
  });

  it('a copied, unused operator assertion cannot open a session bound to the attacker’s key', async () => {
    // The attacker asks for a nonce as any client does, then sends the assertion with its own proof.
    const copied = adminTokenRequest({ issuer: ISSUER, key: h.operatorKey, nowSeconds: nowSeconds() });
    const probe = await post('/admin/v1/token', copied.form, { dpop: copied.dpop });
    const nonce = probe.headers['dpop-nonce'];
    assert.equal(typeof nonce, 'string');
    const before = (await h.auditEvents('admin.session')).length;
    const attack = adminTokenRequest({
      issuer: ISSUER,
      key: h.operatorKey,
      nowSeconds: nowSeconds(),
      dpopKey: attacker,
      nonce: nonce as string,
    });
    await expectRefusal(h, () => post('/admin/v1/token', attack.form, { dpop: attack.dpop }), {
      status: 400,
      error: 'invalid_dpop_proof',
      event: 'admin_token.refused',
      reason: 'admin_dpop_key',
    });
    // Without any proof: no admin token that is not bound.
    const bare = adminTokenRequest({ issuer: ISSUER, key: h.operatorKey, nowSeconds: nowSeconds() });
    await expectRefusal(h, () => post('/admin/v1/token', bare.form), {
      status: 400,
      error: 'invalid_dpop_proof',
      event: 'admin_token.refused',
      reason: 'dpop_single_header',
    });
    assert.equal((await h.auditEvents('admin.session')).length, before, 'no session was opened');
  });

  it('an unbound admin token (as issued before sessions were bound) is refused, as Bearer and as DPoP', async () => {
    const { token } = signAccessToken(h.writ.ctx.keys, {
      issuer: ISSUER,
      subject: 'operator:ops',
      clientId: 'operator:ops',
      audience: adminAudience(ISSUER),
      scope: 'admin',
      tokenClass: ADMIN_CLASS,
      ttl: 300,
      nowMs: Date.now(),
    });
    const e = ENDPOINTS[0]!;
    await expectRefusal(h, () => send(e, { authorization: `Bearer ${token}` }), {
      status: 401,
      error: 'invalid_token',
      event: 'admin.refused',
      reason: 'admin_not_bound',
    });
    await expectRefusal(
      h,
      () =>
        send(e, { authorization: `DPoP ${token}`, dpop: proof(operatorKey(), e.method, e.path, { token }) }),
      { status: 401, error: 'invalid_token', event: 'admin.refused', reason: 'not_dpop_bound' },
    );
  });

  it('replacing an operator’s key ends the sessions bound to the old one at their next call', async () => {
    const replaced = testKey('EdDSA');
    const old = await httpAdminSession(ISSUER, h.operatorKey, { origin });
    const e: AdminEndpoint = {
      family: 'config apply',
      method: 'POST',
      path: '/admin/v1/config',
      event: 'admin.refused',
      body: () => ({
        json: {
          documents: configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: replaced }),
        },
      }),
    };
    const applied = await send(e, old.headers(e.method, e.path));
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const registry = ENDPOINTS[0]!;
    await expectRefusal(h, () => send(registry, old.headers(registry.method, registry.path)), {
      status: 401,
      error: 'invalid_token',
      event: 'admin.refused',
      reason: 'admin_key_unregistered',
    });
    const fresh = await httpAdminSession(ISSUER, replaced, { origin });
    assert.equal((await send(registry, fresh.headers(registry.method, registry.path))).status, 200);
    // Put the harness's operator key back for whatever runs after.
    const restore: AdminEndpoint = {
      ...e,
      body: () => ({
        json: {
          documents: configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey }),
        },
      }),
    };
    assert.equal((await send(restore, fresh.headers(restore.method, restore.path))).status, 200);
  });

  async function post(
    path: string,
    form: Record<string, string>,
    headers: Record<string, string> = {},
  ): Promise<Reply> {
    return send(
      { family: 'token', method: 'POST', path, event: 'admin_token.refused', body: () => ({ form }) },
      headers,
    );
  }

  it('the operator’s own calls pass at every endpoint family (the refusals are not blanket)', async () => {
    for (const e of ENDPOINTS) {
      const r = await send(e, session.headers(e.method, e.path));
      assert.ok(r.status < 300, `${e.family}: ${r.status} ${JSON.stringify(r.body)}`);
    }
  });

  it('the CLI flow is unchanged: `writ` admin commands against a real server, nonces and all', async () => {
    const keyFile = join(h.dir, 'operator.jwk');
    const key = {
      ...(h.operatorKey.privateKey.export({ format: 'jwk' }) as Record<string, string>),
      kid: h.operatorKey.kid,
      alg: 'ES256',
    };
    writeFileSync(keyFile, JSON.stringify({ operator: 'ops', key }), { mode: 0o600 });
    const writ = async (...args: string[]) => {
      const r = await runWrit(MAIN, ['--server', origin, '--operator-key', keyFile, ...args], {
        stdout: true,
      });
      assert.equal(r.code, 0, `writ ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const [last] = await h.store.queryAudit({ limit: 1, order: 'desc' });
    const since = last?.seq ?? 0;
    assert.match(await writ('workloads', 'list'), new RegExp(WORKLOAD.replace(/[/.]/g, '\\$&')));
    assert.match(await writ('keys', 'list'), /"active"/);
    const live = (await h.requestToken()).body['access_token'] as string;
    assert.equal(JSON.parse(await writ('token', 'introspect', live))['active'], true);
    const revoked = JSON.parse(await writ('revoke', '--jti', 'cli-test-jti', '--reason', 'cli flow'));
    assert.equal(revoked['value'], 'cli-test-jti');
    assert.match(await writ('audit', 'tail', '-n', '3'), /revocation\.created/);
    // Endpoints without a command of their own: `writ api` signs the proofs a copied token would lack.
    const stream = JSON.parse(
      await writ(
        'api',
        'POST',
        '/ssf/stream',
        '--data',
        '{"aud":"https://siem.test","delivery":{"method":"urn:ietf:rfc:8936"}}',
      ),
    );
    assert.equal(typeof stream['stream_id'], 'string');
    assert.equal(typeof JSON.parse(await writ('api', 'GET', '/admin/v1/policy?x=1'))['version'], 'object');
    // One session per command, each bound to the operator key (its thumbprint is the session's `key`).
    const opened = await h.store.queryAudit({ afterSeq: since, type: 'admin.session', limit: 100 });
    assert.equal(opened.length, 7);
    for (const ev of opened) assert.equal(ev.data['key'], jwkThumbprint(h.operatorKey.publicJwk));
    // The server asks for its DPoP nonce at the admin token endpoint (`dpop.require_nonce`): the CLI
    // retried with it. The question is a challenge, not a refusal.
    await writeRefusalSummaries(h.writ.ctx, true);
    const asked = (
      await h.store.queryAudit({ afterSeq: since, type: 'admin_token.challenged', limit: 100 })
    ).filter((ev) => ev.data['reason'] === 'dpop_nonce');
    const refused = await h.store.queryAudit({ afterSeq: since, type: 'admin_token.refused', limit: 100 });
    assert.deepEqual(refused, [], 'no refusal when nothing failed');
    assert.ok(asked.length >= 1, 'the CLI was asked for a nonce and answered');
  });
});
