import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { applyConfig } from '../src/admin/operations.js';
import { validateConfig } from '../src/config/config-dir.js';
import { resolveSettings } from '../src/config/settings.js';
import { kekFromBytes } from '../src/keys/kek.js';
import { openPostgresStore } from '../src/store/postgres/postgres-store.js';
import { createWrit, type Writ } from '../src/writ.js';
import { type AdminSession, openAdminSession } from './helpers/admin-session.js';
import { eventually, freshDatabase, POSTGRES_URL } from './helpers/cluster.js';
import { rawDoc } from './helpers/dpop.js';
import { testKey } from './helpers/harness.js';

// Deprovisioning over SCIM on one node ends the person's admin session on every node: the others
// reload their people directory when they read the `people.changed` event.

const SECRET = 'cluster-scim-secret-0123456789';

if (POSTGRES_URL === '') {
  const reason = 'WRIT_TEST_POSTGRES_URL is not set';
  console.log(`people-cluster: skipped: ${reason} (CI sets it to a throwaway database)`);
  describe('people across nodes', { skip: reason }, () => {});
} else {
  describe('people across nodes', () => {
    let db: { url: string; drop(): Promise<void> };
    let a: Writ;
    let b: Writ;
    const aliceKey = testKey();

    before(async () => {
      db = await freshDatabase(POSTGRES_URL);
      const settings = resolveSettings(
        undefined,
        {},
        {
          'log.level': 'silent',
          'scim.token_sha256': createHash('sha256').update(SECRET).digest('hex'),
        },
      );
      const kek = randomBytes(32);
      const node = async () =>
        createWrit({
          settings,
          store: await openPostgresStore(db.url),
          kek: kekFromBytes(kek, 'test'),
          logger: pino({ level: 'silent' }),
        });
      a = await node();
      b = await node();
      await applyConfig(
        a.ctx,
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
    after(async () => {
      await Promise.all([a?.close(), b?.close()]);
      await db?.drop();
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
}
