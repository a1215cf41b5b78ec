import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RawDocument } from '../src/config/config-dir.js';
import { type AdminSession, openAdminSession } from './helpers/admin-session.js';
import { type Harness, type Reply, startHarness, testKey } from './helpers/harness.js';

// Offboarding as identity providers often do it: deactivate the departing user, then rename them to
// free the address. A person config also knows is active only while both sources say so; renaming the
// deactivated SCIM User must not make its old name vanish from SCIM and so hand the person (and her
// operator key) back to config's "active: true".

const SECRET = 'scim-secret-for-tests-0123456789abcdef';
const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

describe('SCIM: a deactivated User cannot be renamed out of its deprovisioning', () => {
  let h: Harness;
  const aliceKey = testKey();
  before(async () => {
    const extra: RawDocument[] = [
      {
        kind: 'people',
        file: 'people/alice.yaml',
        index: 0,
        doc: { id: 'alice', name: 'Alice', active: true },
      },
      {
        kind: 'operator',
        file: 'operators/alice.yaml',
        index: 0,
        doc: { name: 'alice', person: 'alice', jwks: { keys: [aliceKey.publicJwk] } },
      },
    ];
    h = await startHarness({
      extraDocs: extra,
      settings: { 'scim.token_sha256': createHash('sha256').update(SECRET).digest('hex') },
    });
  });
  after(() => h.close());

  async function scim(method: 'POST' | 'PUT' | 'PATCH', path: string, body: unknown): Promise<Reply> {
    const res = await h.writ.app.inject({
      method,
      url: `/scim/v2${path}`,
      headers: { 'content-type': 'application/scim+json', authorization: `Bearer ${SECRET}` },
      payload: JSON.stringify(body),
    });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : {}, headers: res.headers };
  }
  const session = (): Promise<AdminSession> =>
    openAdminSession({
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
  const aliceActive = () => h.writ.ctx.registry.people().person('alice')?.active;

  let id = '';
  it('provisioned, then deactivated: alice may not act', async () => {
    const made = await scim('POST', '/Users', { schemas: [USER], userName: 'alice' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    id = made.body['id'] as string;
    const off = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', path: 'active', value: false }],
    });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.equal(aliceActive(), false);
    await assert.rejects(session(), (e: { answer?: Reply }) => e.answer?.status === 403);
  });

  it('a PATCH or PUT renaming the deactivated User is refused (mutability), and alice stays inactive', async () => {
    const patched = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', path: 'userName', value: 'alice-departed' }],
    });
    assert.equal(patched.status, 400, JSON.stringify(patched.body));
    assert.equal(patched.body['scimType'], 'mutability');
    assert.match(String(patched.body['detail']), /deactivated.*alice/);
    const put = await scim('PUT', `/Users/${id}`, {
      schemas: [USER],
      userName: 'alice-departed',
      active: false,
    });
    assert.equal(put.status, 400, JSON.stringify(put.body));
    assert.equal(put.body['scimType'], 'mutability');
    assert.equal(aliceActive(), false);
    await assert.rejects(session(), (e: { answer?: Reply }) => e.answer?.status === 403);
    const [refused] = (await h.auditEvents('scim.refused')).slice(-1);
    assert.equal(refused?.data['reason'], 'scim_invalid_value');
  });

  it('renaming and reactivating in one request is refused too; reactivating first, then renaming, is allowed', async () => {
    const both = await scim('PUT', `/Users/${id}`, { schemas: [USER], userName: 'alice-new', active: true });
    assert.equal(both.status, 400, JSON.stringify(both.body));
    const on = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', path: 'active', value: true }],
    });
    assert.equal(on.status, 200, JSON.stringify(on.body));
    const renamed = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', path: 'userName', value: 'alice-new' }],
    });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
  });
});
