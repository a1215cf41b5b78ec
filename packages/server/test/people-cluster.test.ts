import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { before, it } from 'node:test';
import { applyConfig } from '../src/admin/operations.js';
import { validateConfig } from '../src/config/config-dir.js';
import type { Writ } from '../src/writ.js';
import { type AdminSession, openAdminSession } from './helpers/admin-session.js';
import { describeOnPostgres, eventually, writPairForSuite } from './helpers/cluster.js';
import { rawDoc } from './helpers/dpop.js';
import { testKey } from './helpers/harness.js';

// Deprovisioning over SCIM on one node ends the person's admin session on every node: the others
// reload their people directory when they read the `people.changed` event.

const SECRET = 'cluster-scim-secret-0123456789';

describeOnPostgres('people-cluster', 'people across nodes', () => {
  const pair = writPairForSuite({ 'scim.token_sha256': createHash('sha256').update(SECRET).digest('hex') });
  const aliceKey = testKey();

  before(async () => {
    await applyConfig(
      pair.a.ctx,
      validateConfig([
        rawDoc('operator', {
          name: 'alice',
          person: 'alice@example.com',
          jwks: { keys: [aliceKey.publicJwk] },
        }),
      ]),
      'operator:test',
      false,
    );
  });

  const scim = async (w: Writ, method: 'POST' | 'PATCH', path: string, body: unknown) => {
    const r = await w.app.inject({
      method,
      url: `/scim/v2${path}`,
      headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/scim+json' },
      payload: JSON.stringify(body),
    });
    assert.ok(r.statusCode < 300, r.body);
    return JSON.parse(r.body) as Record<string, unknown>;
  };
  const session = (w: Writ): Promise<AdminSession> =>
    openAdminSession({
      issuer: w.ctx.settings.issuer,
      key: aliceKey,
      operator: 'alice',
      nowSeconds: () => Math.floor(Date.now() / 1000),
      post: async (form, headers) => {
        const r = await w.app.inject({
          method: 'POST',
          url: '/admin/v1/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
          payload: new URLSearchParams(form).toString(),
        });
        const nonce = r.headers['dpop-nonce'];
        return {
          status: r.statusCode,
          body: JSON.parse(r.body),
          nonce: typeof nonce === 'string' ? nonce : undefined,
        };
      },
    });
  const call = async (w: Writ, s: AdminSession) => {
    const path = '/admin/v1/classes';
    return (await w.app.inject({ method: 'GET', url: path, headers: s.headers('GET', path) })).statusCode;
  };

  it('a person provisioned on node a can act on node b; deprovisioned on a, her session on b ends', async () => {
    const { a, b } = pair;
    const user = await scim(a, 'POST', '/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: 'alice@example.com',
    });
    await eventually('node b knows her', () => b.ctx.registry.people().person('alice@example.com')?.active);
    const onB = await session(b);
    assert.equal(await call(b, onB), 200);

    await scim(a, 'PATCH', `/Users/${user['id']}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'replace', path: 'active', value: false }],
    });
    await eventually('node b refuses her session', async () =>
      (await call(b, onB)) === 401 ? true : undefined,
    );
    await assert.rejects(session(b), (e: { answer?: { status: number } }) => e.answer?.status === 403);
  });
});
