import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RawDocument } from '../src/config/config-dir.js';
import { type AdminSession, openAdminSession } from './helpers/admin-session.js';
import { type Harness, type Reply, startHarness, type TestKey, testKey } from './helpers/harness.js';

// SCIM 2.0 driven as an identity provider drives it (RFC 7644 §3 request shapes, Entra's and Okta's
// habits included): provisioning, deprovisioning with `active: false`, deletion; what that does to the
// person's operator access and the workloads they own; and the refusals of bad input, all audited.

const SECRET = 'scim-secret-for-tests-0123456789abcdef';
const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const ALICE_WORKLOAD = 'spiffe://test.writ/alice/job';
const TEAM_WORKLOAD = 'spiffe://test.writ/payments/api';

describe('SCIM as an identity provider drives it', () => {
  let h: Harness;
  const aliceKey = testKey();
  const jobKey = testKey();
  before(async () => {
    const extra: RawDocument[] = [
      {
        kind: 'operator',
        file: 'operators/alice.yaml',
        index: 0,
        doc: { name: 'alice', person: 'alice@example.com', jwks: { keys: [aliceKey.publicJwk] } },
      },
      ...[
        [ALICE_WORKLOAD, 'alice@example.com'],
        [TEAM_WORKLOAD, 'payments'],
      ].map(
        ([id, owner], i): RawDocument => ({
          kind: 'workload',
          file: `workloads/w${i}.yaml`,
          index: 0,
          doc: {
            id,
            owner,
            environment: 'prod',
            classes: ['reports-read'],
            jwks: { keys: [jobKey.publicJwk] },
          },
        }),
      ),
    ];
    h = await startHarness({
      extraDocs: extra,
      settings: { 'scim.token_sha256': createHash('sha256').update(SECRET).digest('hex') },
    });
  });
  after(() => h.close());

  async function scim(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
    headers: Record<string, string> = { authorization: `Bearer ${SECRET}` },
  ): Promise<Reply> {
    const res = await h.writ.app.inject({
      method,
      url: `/scim/v2${path}`,
      headers: { ...(body !== undefined ? { 'content-type': 'application/scim+json' } : {}), ...headers },
      ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : {}, headers: res.headers };
  }
  async function session(): Promise<AdminSession> {
    return openAdminSession({
      issuer: h.issuer,
      key: aliceKey,
      operator: 'alice',
      nowSeconds: () => Math.floor(h.writ.ctx.clock.now() / 1000),
      post: async (form, headers) => {
        const r = await h.post('/admin/v1/token', form, headers);
        const nonce = r.headers['dpop-nonce'];
        return { ...r, nonce: typeof nonce === 'string' ? nonce : undefined };
      },
    });
  }
  async function adminCall(s: AdminSession): Promise<number> {
    const path = '/admin/v1/classes';
    const res = await h.writ.app.inject({ method: 'GET', url: path, headers: s.headers('GET', path) });
    return res.statusCode;
  }
  async function orphaned(): Promise<Array<Record<string, unknown>>> {
    const r = await h.admin('GET', '/workloads/orphaned');
    assert.equal(r.status, 200);
    return r.body['workloads'] as Array<Record<string, unknown>>;
  }
  const lastAudit = async (type: string) => (await h.auditEvents(type)).at(-1);
  const expectScimError = (r: Reply, status: number, scimType?: string) => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.deepEqual(r.body['schemas'], [ERROR]);
    assert.equal(r.body['status'], String(status));
    assert.equal(r.body['scimType'], scimType);
    assert.equal(typeof r.body['detail'], 'string');
    assert.match(String(r.headers['content-type']), /^application\/scim\+json/);
  };

  let aliceId = '';
  let live: AdminSession;

  it('publishes ServiceProviderConfig, ResourceTypes and Schemas', async () => {
    const spc = await scim('GET', '/ServiceProviderConfig');
    assert.equal(spc.status, 200);
    assert.deepEqual(spc.body['patch'], { supported: true });
    assert.equal((spc.body['filter'] as { supported: boolean }).supported, true);
    const types = await scim('GET', '/ResourceTypes');
    assert.deepEqual(
      (types.body['Resources'] as Array<{ id: string }>).map((t) => t.id),
      ['User', 'Group'],
    );
    const user = await scim('GET', `/Schemas/${USER}`);
    assert.ok((user.body['attributes'] as Array<{ name: string }>).some((a) => a.name === 'active'));
  });

  it('creates a User (POST), finds it by userName in any case, and refuses a second one', async () => {
    const r = await scim('POST', '/Users', {
      schemas: [USER],
      userName: 'Alice@Example.com',
      externalId: '00u1abcd',
      name: { givenName: 'Alice', familyName: 'Liddell' },
      displayName: 'Alice Liddell',
      emails: [{ value: 'alice@example.com', type: 'work', primary: true }],
      active: true,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    aliceId = r.body['id'] as string;
    assert.match(aliceId, /^[0-9a-f-]{36}$/);
    assert.equal(r.headers['location'], `${h.issuer}/scim/v2/Users/${aliceId}`);
    assert.equal(r.headers['etag'], 'W/"1"');
    assert.equal((r.body['meta'] as { resourceType: string }).resourceType, 'User');
    assert.equal(r.body['active'], true);

    const found = await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "alice@EXAMPLE.com"')}`);
    assert.equal(found.body['totalResults'], 1);
    assert.equal((found.body['Resources'] as Array<{ id: string }>)[0]?.id, aliceId);

    expectScimError(
      await scim('POST', '/Users', { schemas: [USER], userName: 'alice@example.com' }),
      409,
      'uniqueness',
    );
    const person = h.writ.ctx.registry.people().person('alice@example.com');
    assert.equal(person?.active, true);
    assert.equal(person?.name, 'Alice Liddell');
    assert.equal((await lastAudit('scim.user.created'))?.subject, 'alice@example.com');
  });

  it('creates a Group with the User as a member: the team owns through her', async () => {
    const r = await scim('POST', '/Groups', {
      schemas: [GROUP],
      displayName: 'Payments',
      members: [{ value: aliceId }],
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual(h.writ.ctx.registry.people().team('payments')?.members, ['alice@example.com']);
    const byName = await scim('GET', `/Groups?filter=${encodeURIComponent('displayName eq "PAYMENTS"')}`);
    assert.equal(byName.body['totalResults'], 1);
    const byExternal = await scim('GET', `/Users?filter=${encodeURIComponent('externalId eq "00u1abcd"')}`);
    assert.equal((byExternal.body['Resources'] as Array<{ id: string }>)[0]?.id, aliceId);
    const exact = await scim('GET', `/Users?filter=${encodeURIComponent('externalId eq "00U1ABCD"')}`);
    assert.equal(exact.body['totalResults'], 0, 'externalId is caseExact');
    assert.equal(h.writ.ctx.registry.people().owner('payments').status, 'active');
    expectScimError(
      await scim('POST', '/Groups', {
        schemas: [GROUP],
        displayName: 'Ghosts',
        members: [{ value: 'no-such-user' }],
      }),
      400,
      'invalidValue',
    );
  });

  it('her operator works while she is active, and nothing is orphaned', async () => {
    live = await session();
    assert.equal(await adminCall(live), 200);
    assert.deepEqual(await orphaned(), []);
  });

  it('PATCH active:false (Entra’s shape) ends her admin session at once and orphans what she owns', async () => {
    const r = await scim('PATCH', `/Users/${aliceId}`, {
      schemas: [PATCH],
      Operations: [{ op: 'Replace', path: 'active', value: 'False' }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['active'], false);
    assert.equal(r.headers['etag'], 'W/"2"');

    assert.equal(await adminCall(live), 401, 'the live session is refused at its next call');
    assert.equal((await lastAudit('admin.refused'))?.data['reason'], 'operator_person_inactive');
    await assert.rejects(session(), (e: { answer?: Reply }) => e.answer?.status === 403);

    const list = await orphaned();
    assert.deepEqual(
      list.map((o) => [o.id, o.owner, o.reason]),
      [
        [ALICE_WORKLOAD, 'alice@example.com', 'person_inactive'],
        [TEAM_WORKLOAD, 'payments', 'team_without_active_member'],
      ],
    );
    assert.equal(typeof list[0]?.['since'], 'number');
    const deprovisioned = await lastAudit('person.deprovisioned');
    assert.equal(deprovisioned?.subject, 'alice@example.com');
    assert.deepEqual(deprovisioned?.data['operators'], ['alice']);
    assert.deepEqual(deprovisioned?.data['orphaned_workloads'], [ALICE_WORKLOAD, TEAM_WORKLOAD]);
  });

  it('Okta’s PATCH with a value object makes her active again: a new session works', async () => {
    const r = await scim('PATCH', `/Users/${aliceId}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', value: { active: true } }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(await adminCall(await session()), 200);
    assert.deepEqual(await orphaned(), []);
    assert.equal((await lastAudit('person.reactivated'))?.subject, 'alice@example.com');
  });

  it('PUT replaces the whole User; emails[type eq "work"].value patches one address', async () => {
    const got = await scim('GET', `/Users/${aliceId}`);
    const put = await scim('PUT', `/Users/${aliceId}`, {
      ...got.body,
      displayName: 'Alice L.',
      meta: undefined,
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body['displayName'], 'Alice L.');
    const p = await scim('PATCH', `/Users/${aliceId}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', path: 'emails[type eq "work"].value', value: 'a.liddell@example.com' }],
    });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.deepEqual(p.body['emails'], [{ value: 'a.liddell@example.com', type: 'work', primary: true }]);
    expectScimError(
      await scim(
        'PATCH',
        `/Users/${aliceId}`,
        { schemas: [PATCH], Operations: [{ op: 'replace', path: 'active', value: true }] },
        {
          authorization: `Bearer ${SECRET}`,
          'if-match': 'W/"1"',
        },
      ),
      412,
    );
  });

  it('DELETE removes her: 404 after, her session ends, what she owned is orphaned as deleted', async () => {
    live = await session();
    const d = await scim('DELETE', `/Users/${aliceId}`);
    assert.equal(d.status, 204);
    expectScimError(await scim('GET', `/Users/${aliceId}`), 404);
    assert.equal(await adminCall(live), 401);
    assert.equal((await orphaned()).find((o) => o.id === ALICE_WORKLOAD)?.['reason'], 'person_deleted');
    const list = await scim('GET', '/Users');
    assert.equal(list.body['totalResults'], 0);
    // The identity provider may provision the same person again: a new resource, active.
    const again = await scim('POST', '/Users', { schemas: [USER], userName: 'alice@example.com' });
    assert.equal(again.status, 201);
    assert.notEqual(again.body['id'], aliceId);
    assert.equal(h.writ.ctx.registry.people().person('alice@example.com')?.active, true);
  });

  describe('refusals, each an RFC 7644 error and audited as scim.refused', () => {
    it('no credential, a wrong one, another scheme: 401 with a Bearer challenge', async () => {
      const before = (await h.auditEvents('scim.refused')).length;
      for (const authorization of [
        undefined,
        `Bearer ${SECRET}x`,
        `Basic ${Buffer.from(`a:${SECRET}`).toString('base64')}`,
      ]) {
        const r = await scim('GET', '/Users', undefined, authorization ? { authorization } : {});
        expectScimError(r, 401);
        assert.match(String(r.headers['www-authenticate']), /^Bearer realm="writ-scim"/);
      }
      // Unauthenticated refusals of one kind from one source are written once a window, then summed
      // (audit.refusal_window): the first is here, the others are counted into its summary row.
      const events = (await h.auditEvents('scim.refused')).slice(before);
      assert.equal(events.length, 1);
      assert.equal(events[0]?.data['reason'], 'scim_credential');
      assert.equal(events[0]?.actor, 'anonymous');
      assert.ok(!JSON.stringify(await h.auditEvents()).includes(SECRET), 'the secret is never audited');
    });

    it('a wrong schema, an unknown attribute, a bad userName: 400 with scimType', async () => {
      const cases: Array<[unknown, string, RegExp]> = [
        [{ schemas: [GROUP], userName: 'bob@example.com' }, 'invalidSyntax', /schemas must include/],
        [{ userName: 'bob@example.com' }, 'invalidSyntax', /schemas/],
        [
          { schemas: [USER], userName: 'bob@example.com', favoriteColor: 'red' },
          'invalidSyntax',
          /unknown attribute "favoriteColor"/,
        ],
        [
          { schemas: [USER], userName: 'bob@example.com', name: { nickname: 'b' } },
          'invalidSyntax',
          /name\.nickname/,
        ],
        [{ schemas: [USER], userName: 'Bob Smith' }, 'invalidValue', /userName/],
        [{ schemas: [USER], userName: 'bob@example.com', active: 'yes' }, 'invalidValue', /active/],
        [{ schemas: [USER] }, 'invalidValue', /userName is required/],
        ['{"schemas": [', 'invalidSyntax', /JSON/],
      ];
      for (const [body, scimType, detail] of cases) {
        const r = await scim('POST', '/Users', body);
        expectScimError(r, 400, scimType);
        assert.match(String(r.body['detail']), detail);
      }
      const last = await lastAudit('scim.refused');
      assert.equal(last?.actor, 'scim');
      assert.equal(last?.data['reason'], 'scim_invalid_syntax');
      assert.equal(
        h.writ.ctx.registry.people().person('bob@example.com'),
        undefined,
        'nothing was provisioned',
      );
    });

    it('an oversized body: 413', async () => {
      const r = await scim('POST', '/Users', {
        schemas: [USER],
        userName: 'big@example.com',
        title: 'x'.repeat(300_000),
      });
      expectScimError(r, 413);
      assert.equal((await lastAudit('scim.refused'))?.data['reason'], 'scim_too_large');
    });

    it('filter injection and unsupported filters: invalidFilter, or a literal that matches nothing', async () => {
      for (const filter of [
        'userName eq "alice@example.com" or userName pr',
        'userName sw "a"',
        'password eq "x"',
        'userName eq alice',
        'userName eq "a") or (1 eq 1',
      ]) {
        const r = await scim('GET', `/Users?filter=${encodeURIComponent(filter)}`);
        expectScimError(r, 400, 'invalidFilter');
      }
      const literal = await scim(
        'GET',
        `/Users?filter=${encodeURIComponent('userName eq "x\\" or \\"1\\" eq \\"1"')}`,
      );
      assert.equal(literal.status, 200);
      assert.equal(literal.body['totalResults'], 0);
    });

    it('a PATCH path Writ does not answer, an unknown op, a required attribute removed', async () => {
      const id = ((await scim('GET', '/Users')).body['Resources'] as Array<{ id: string }>)[0]!.id;
      const patch = (op: unknown) => scim('PATCH', `/Users/${id}`, { schemas: [PATCH], Operations: [op] });
      expectScimError(
        await patch({ op: 'replace', path: 'roles[value eq "admin"]', value: {} }),
        400,
        'invalidPath',
      );
      expectScimError(await patch({ op: 'move', path: 'active', value: false }), 400, 'invalidSyntax');
      expectScimError(await patch({ op: 'remove', path: 'userName' }), 400, 'mutability');
      expectScimError(await scim('PATCH', `/Users/${id}`, { Operations: [] }), 400, 'invalidSyntax');
      assert.equal(h.writ.ctx.registry.people().person('alice@example.com')?.active, true, 'unchanged');
    });
  });

  it('people never get tokens from the token endpoint: a person’s id is no client', async () => {
    const r = await h.requestToken(
      { client_id: 'alice@example.com' },
      { clientId: 'alice@example.com', key: aliceKey },
    );
    assert.equal(r.status, 401);
    assert.equal(r.body['error'], 'invalid_client');
  });
});

describe('SCIM when no credential is configured', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('refuses every request, whatever it sends, and audits it', async () => {
    const res = await h.writ.app.inject({
      method: 'GET',
      url: '/scim/v2/Users',
      headers: { authorization: 'Bearer anything' },
    });
    assert.equal(res.statusCode, 401);
    assert.equal(JSON.parse(res.body)['schemas'][0], 'urn:ietf:params:scim:api:messages:2.0:Error');
    assert.equal((await h.auditEvents('scim.refused')).at(-1)?.data['reason'], 'scim_disabled');
  });
});

export type { TestKey };
