import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { generateDpopKey } from '@writ/sdk/dpop';
import { GrantType } from '@writ/sdk/wire';
import pino from 'pino';
import { applyConfig } from '../src/admin/operations.js';
import { validateConfig } from '../src/config/config-dir.js';
import { resolveSettings } from '../src/config/settings.js';
import { kekFromBytes } from '../src/keys/kek.js';
import { openPostgresStore } from '../src/store/postgres/postgres-store.js';
import { createWrit, type Writ } from '../src/writ.js';
import { eventually, freshDatabase, POSTGRES_URL } from './helpers/cluster.js';
import { classDoc, decodeClaims, proofParts, rawDoc, signProof } from './helpers/dpop.js';
import { localIssuerDoc } from './helpers/federation.js';
import { githubClaims, type LocalIssuer, startLocalIssuer } from './helpers/oidc-issuer.js';

const DEPLOY = 'https://deploy.cluster.test';
const GH = 'spiffe://test.writ/github/acme/deployer';

if (POSTGRES_URL === '') {
  const reason = 'WRIT_TEST_POSTGRES_URL is not set';
  console.log(`templates-cluster: skipped: ${reason} (CI sets it to a throwaway database)`);
  describe('workload templates across nodes', { skip: reason }, () => {});
} else {
  describe('workload templates across nodes', () => {
    let db: { url: string; drop(): Promise<void> };
    let a: Writ;
    let b: Writ;
    let github: LocalIssuer;

    before(async () => {
      github = await startLocalIssuer();
      db = await freshDatabase(POSTGRES_URL);
      const settings = resolveSettings(undefined, {}, { 'log.level': 'silent', 'dpop.require_nonce': false });
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
    });
    after(async () => {
      await Promise.all([a?.close(), b?.close()]);
      await github?.close();
      await db?.drop();
    });

    const ask = async (w: Writ) => {
      const holder = generateDpopKey();
      const token = await github.mint(githubClaims(Math.floor(Date.now() / 1000)));
      return w.app.inject({
        method: 'POST',
        url: '/oauth2/token',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          dpop: signProof(
            holder,
            proofParts(holder, {
              htu: `${w.ctx.settings.issuer}/oauth2/token`,
              iat: Math.floor(Date.now() / 1000),
            }),
          ),
        },
        payload: new URLSearchParams({
          grant_type: GrantType.jwtBearer,
          assertion: token,
          resource: DEPLOY,
        }).toString(),
      });
    };

    it('a workload admitted on one node is added on the other without a registry reload', async () => {
      const bundle = validateConfig([
        classDoc({ name: 'ci', audiences: [DEPLOY], scopes: ['d'], default_scopes: ['d'] }),
        localIssuerDoc('github', 'github-actions', github, 'https://writ.test'),
        rawDoc('template', {
          id: 'acme',
          owner: 'team-platform',
          environment: 'prod',
          federation: 'github',
          match: { prefixes: ['spiffe://test.writ/github/acme/'] },
          condition: 'claims.repository_owner == "acme"',
          classes: ['ci'],
          derive: { owner: '"team-ci"', environment: '"prod"' },
        }),
      ]);
      await applyConfig(a.ctx, bundle, 'operator:test', false);
      await eventually('node b has the template', async () =>
        b.ctx.registry.templates().byId('acme') ? true : undefined,
      );
      const generation = b.ctx.registry.generation;
      assert.equal(b.ctx.registry.workload(GH), undefined);

      const first = await ask(a);
      assert.equal(first.statusCode, 200, first.body);
      await eventually('node b has the admitted workload', async () =>
        b.ctx.registry.workload(GH) ? true : undefined,
      );
      assert.equal(b.ctx.registry.workload(GH)?.template?.id, 'acme');
      assert.equal(b.ctx.registry.workload(GH)?.owner, 'team-ci');
      assert.equal(b.ctx.registry.generation, generation, 'node b added one workload, it did not reload');
      assert.equal(a.ctx.registry.generation >= 1, true);

      // Node b issues for it as a registered workload: no second admission.
      const second = await ask(b);
      assert.equal(second.statusCode, 200, second.body);
      assert.equal(decodeClaims(JSON.parse(second.body).access_token)['sub'], GH);
      const admitted = await a.ctx.store.queryAudit({ type: 'workload.admitted', limit: 10 });
      assert.equal(admitted.length, 1);
    });
  });
}
