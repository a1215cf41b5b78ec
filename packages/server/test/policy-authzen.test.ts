import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateDpopKey } from '@writ/sdk/dpop';
import { GrantType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import {
  classDoc,
  clientAuth,
  dpopTokenRequest,
  nowSeconds,
  proofParts,
  rawDoc,
  signProof,
} from './helpers/dpop.js';
import {
  AUDIENCE,
  type Harness,
  OTHER_AUDIENCE,
  OTHER_WORKLOAD,
  startHarness,
  type TestKey,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';
import { adminJson, applyPolicies, policyVersion, putResource } from './helpers/policy.js';

const GATEWAY = 'spiffe://test.writ/edge/gateway';
const BOUND_GATEWAY = 'spiffe://test.writ/edge/bound-gateway';
const ISSUER = 'https://writ.test';

const POLICIES = `
@id("token-baseline")
permit(principal is Workload, action in Action::"token", resource);

@id("dashboard-read")
permit(principal is Human, action == Action::"read", resource)
when { principal.roles.contains("viewer") };

@id("analyst-export")
permit(principal is Human, action in [Action::"read", Action::"export"], resource)
when { principal.roles.contains("analyst") && principal.mfa };

@id("restricted-needs-mfa")
forbid(principal is Human, action, resource)
when { resource.sensitivity == "restricted" && !principal.mfa };

@id("owner-workloads")
permit(principal is Workload, action in Action::"request", resource)
when { principal.owner == resource.owner };

@id("risk-ceiling")
forbid(principal, action in Action::"request", resource) when { context.risk >= 80 };
`;

describe('AuthZEN access evaluation API', () => {
  const clock = fakeClock(Date.UTC(2026, 4, 6, 10));
  const gatewayKey: TestKey = testKey();
  const boundKey: TestKey = testKey();
  const docs = [
    classDoc({
      name: 'pdp-dpop',
      audiences: [`${ISSUER}/access/v1`],
      scopes: ['pdp'],
      default_scopes: ['pdp'],
      binding: 'dpop',
    }),
    rawDoc('workload', {
      id: BOUND_GATEWAY,
      owner: 'team-edge',
      environment: 'prod',
      classes: ['pdp-dpop'],
      jwks: { keys: [boundKey.publicJwk] },
    }),
    classDoc({
      name: 'pdp',
      audiences: [`${ISSUER}/access/v1`],
      scopes: ['pdp'],
      default_scopes: ['pdp'],
      binding: 'bearer',
    }),
    rawDoc('workload', {
      id: GATEWAY,
      owner: 'team-edge',
      environment: 'prod',
      classes: ['pdp'],
      jwks: { keys: [gatewayKey.publicJwk] },
    }),
  ];
  let h: Harness;
  let pdpToken: string;

  before(async () => {
    h = await startHarness({ clock, extraDocs: docs, settings: { issuer: ISSUER } });
    const applied = await applyPolicies(
      h,
      {
        files: [{ file: 'policies/access.cedar', text: POLICIES }],
        resources: [
          { id: AUDIENCE, sensitivity: 'internal', environment: 'prod', owner: 'team-reports' },
          { id: OTHER_AUDIENCE, sensitivity: 'restricted', environment: 'prod', owner: 'team-billing' },
        ],
      },
      docs,
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const t = await h.post('/oauth2/token', {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(h, GATEWAY, gatewayKey),
      resource: `${h.issuer}/access/v1`,
    });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    pdpToken = t.body['access_token'] as string;
  });
  after(() => h.close());

  const call = async (
    path: 'evaluation' | 'evaluations',
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await h.writ.app.inject({
      method: 'POST',
      url: `/access/v1/${path}`,
      headers: { authorization: `Bearer ${pdpToken}`, 'content-type': 'application/json', ...headers },
      payload: JSON.stringify(body),
    });
    return {
      status: res.statusCode,
      body: JSON.parse(res.body) as Record<string, unknown>,
      headers: res.headers,
    };
  };
  const user = (id: string, roles: string[], mfa = false) => ({
    type: 'user',
    id,
    properties: { roles, mfa },
  });
  const api = (id: string) => ({ type: 'api', id });

  it('publishes PDP metadata (AuthZEN §9)', async () => {
    const res = await h.writ.app.inject({ method: 'GET', url: '/.well-known/authzen-configuration' });
    const m = JSON.parse(res.body) as Record<string, unknown>;
    assert.equal(m['policy_decision_point'], h.issuer);
    assert.equal(m['access_evaluation_endpoint'], `${h.issuer}/access/v1/evaluation`);
    assert.equal(m['access_evaluations_endpoint'], `${h.issuer}/access/v1/evaluations`);
    assert.equal(m['writ_policy_built_in'], false);
  });

  it('refuses callers without a PDP token or admin token', async () => {
    const body = { subject: user('alice', ['viewer']), action: { name: 'read' }, resource: api(AUDIENCE) };
    const none = await h.writ.app.inject({
      method: 'POST',
      url: '/access/v1/evaluation',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
    assert.equal(none.statusCode, 401);
    const wrongAudience = await h.requestToken();
    const other = await call('evaluation', body, {
      authorization: `Bearer ${wrongAudience.body['access_token'] as string}`,
    });
    assert.equal(other.status, 401);
    assert.equal(other.body['error'], 'invalid_token');
    const refused = await h.auditEvents('access.refused');
    assert.ok(refused.length >= 2);
    const admin = await call('evaluation', body, await h.adminHeaders('POST', '/access/v1/evaluation'));
    assert.equal(admin.status, 200);
    assert.equal(admin.body['decision'], true);
  });

  it('accepts a DPoP-bound PDP token only with a fresh proof for the endpoint', async () => {
    const holder = generateDpopKey('ES256');
    const t = await dpopTokenRequest(
      h,
      () => ({
        grant_type: GrantType.clientCredentials,
        ...clientAuth(h, BOUND_GATEWAY, boundKey),
        resource: `${ISSUER}/access/v1`,
      }),
      holder,
    );
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const token = t.body['access_token'] as string;
    const body = { subject: user('alice', ['viewer']), action: { name: 'read' }, resource: api(AUDIENCE) };
    const proof = signProof(
      holder,
      proofParts(holder, { htu: `${ISSUER}/access/v1/evaluation`, iat: nowSeconds(h), accessToken: token }),
    );
    const ok = await call('evaluation', body, { authorization: `DPoP ${token}`, dpop: proof });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body['decision'], true);
    const replay = await call('evaluation', body, { authorization: `DPoP ${token}`, dpop: proof });
    assert.equal(replay.status, 401);
    const asBearer = await call('evaluation', body, { authorization: `Bearer ${token}` });
    assert.equal(asBearer.status, 401);
    const otherPath = signProof(
      holder,
      proofParts(holder, { htu: `${ISSUER}/access/v1/evaluations`, iat: nowSeconds(h), accessToken: token }),
    );
    const wrongHtu = await call('evaluation', body, { authorization: `DPoP ${token}`, dpop: otherPath });
    assert.equal(wrongHtu.status, 401);
  });

  it('answers the spec shapes: a boolean decision and an optional context object', async () => {
    const res = await call(
      'evaluation',
      {
        subject: { ...user('alice@acmecorp.com', ['viewer']) },
        resource: { ...api(AUDIENCE), properties: { ignored: true } },
        action: { name: 'read' },
        context: { time: '1985-10-26T01:22-07:00' },
      },
      { 'x-request-id': 'bfe9eb29-ab87-4ca3-be83-a1d5d8305716' },
    );
    assert.equal(res.status, 200);
    assert.equal(res.body['decision'], true);
    assert.equal(typeof res.body['context'], 'object');
    assert.deepEqual((res.body['context'] as { policies: string[] }).policies, ['dashboard-read']);
    assert.equal(res.headers['x-request-id'], 'bfe9eb29-ab87-4ca3-be83-a1d5d8305716');
    const deny = await call('evaluation', {
      subject: user('alice@acmecorp.com', ['viewer']),
      resource: api(AUDIENCE),
      action: { name: 'export' },
    });
    assert.equal(deny.body['decision'], false);
  });

  it('sensitivity tiers, second factor, owners and risk decide request-time access', async () => {
    const d = async (subject: unknown, name: string, resource: string, context?: unknown) =>
      (
        await call('evaluation', {
          subject,
          action: { name },
          resource: api(resource),
          ...(context ? { context } : {}),
        })
      ).body['decision'];
    assert.equal(await d(user('bob', ['analyst'], true), 'export', AUDIENCE), true);
    assert.equal(await d(user('bob', ['analyst'], false), 'export', AUDIENCE), false);
    assert.equal(
      await d(user('bob', ['viewer'], false), 'read', OTHER_AUDIENCE),
      false,
      'restricted needs mfa',
    );
    assert.equal(await d(user('bob', ['viewer'], true), 'read', OTHER_AUDIENCE), true);
    assert.equal(await d({ type: 'workload', id: WORKLOAD }, 'write', AUDIENCE), true);
    assert.equal(
      await d({ type: 'workload', id: OTHER_WORKLOAD }, 'write', AUDIENCE),
      false,
      'not the owner',
    );
    assert.equal(await d({ type: 'workload', id: WORKLOAD }, 'write', AUDIENCE, { risk: 85 }), false);
    assert.equal(await d({ type: 'workload', id: 'spiffe://test.writ/nobody' }, 'read', AUDIENCE), false);
  });

  it('batch evaluations: defaults from the top level, and the three semantics (AuthZEN §7)', async () => {
    const batch = {
      subject: user('carol', ['viewer']),
      resource: api(AUDIENCE),
      evaluations: [
        { action: { name: 'read' } },
        { action: { name: 'export' } },
        { action: { name: 'read' }, resource: api(OTHER_AUDIENCE) },
        { action: { name: 'read' }, subject: user('dave', ['analyst'], true), resource: api(OTHER_AUDIENCE) },
      ],
    };
    const all = await call('evaluations', batch);
    assert.equal(all.status, 200);
    assert.deepEqual(
      (all.body['evaluations'] as Array<{ decision: boolean }>).map((e) => e.decision),
      [true, false, false, true],
    );
    const firstDeny = await call('evaluations', {
      ...batch,
      options: { evaluations_semantic: 'deny_on_first_deny' },
    });
    assert.deepEqual(
      (firstDeny.body['evaluations'] as Array<{ decision: boolean }>).map((e) => e.decision),
      [true, false],
    );
    const firstPermit = await call('evaluations', {
      ...batch,
      evaluations: batch.evaluations.slice(1),
      options: { evaluations_semantic: 'permit_on_first_permit' },
    });
    assert.deepEqual(
      (firstPermit.body['evaluations'] as Array<{ decision: boolean }>).map((e) => e.decision),
      [false, false, true],
    );
    const single = await call('evaluations', {
      subject: user('carol', ['viewer']),
      action: { name: 'read' },
      resource: api(AUDIENCE),
    });
    assert.equal(single.body['decision'], true);
  });

  it('malformed requests are invalid_request and audited', async () => {
    for (const body of [
      { subject: user('x', []), action: { name: 'read' } },
      {
        subject: user('x', []),
        action: { name: 'read' },
        resource: api(AUDIENCE),
        context: { source_ip: 'nope' },
      },
      { subject: user('x', []), action: { name: 'read' }, resource: api(AUDIENCE), context: { risk: 101 } },
      { evaluations: [{ action: { name: 'read' } }] },
    ]) {
      const r = await call('evaluations', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body['error'], 'invalid_request');
    }
  });

  it('a resource attribute or policy change decides the next evaluation', async () => {
    const ask = async () =>
      (
        await call('evaluation', {
          subject: user('erin', ['viewer']),
          action: { name: 'read' },
          resource: api(AUDIENCE),
        })
      ).body['decision'];
    assert.equal(await ask(), true);
    await putResource(h, {
      id: AUDIENCE,
      sensitivity: 'restricted',
      environment: 'prod',
      owner: 'team-reports',
    });
    assert.equal(await ask(), false);
    await adminJson(h, 'DELETE', `/resources/${encodeURIComponent(AUDIENCE)}`);
    assert.equal(await ask(), true);
    const before = await policyVersion(h);
    await applyPolicies(
      h,
      {
        files: [
          {
            file: 'policies/access.cedar',
            text: POLICIES.replace('contains("viewer")', 'contains("reader")'),
          },
        ],
        resources: [{ id: AUDIENCE, sensitivity: 'internal', environment: 'prod', owner: 'team-reports' }],
      },
      docs,
    );
    assert.notEqual(await policyVersion(h), before);
    assert.equal(await ask(), false);
    const metrics = await h.writ.app.inject({ method: 'GET', url: '/metrics' });
    assert.match(
      metrics.body,
      /writ_policy_decisions_total\{endpoint="authzen",action="read",decision="allow"\} \d+/,
    );
  });
});
