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
  console.log(`federation-cluster: skipped: ${reason} (CI sets it to a throwaway database)`);
  describe('trusted issuers across nodes', { skip: reason }, () => {});
} else {
  describe('trusted issuers across nodes', () => {
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
      await github.close();
      await db.drop();
    });

    it('an issuer applied on one node is trusted by the other, and its replay binding is shared', async () => {
      const bundle = validateConfig([
        classDoc({ name: 'ci', audiences: [DEPLOY], scopes: ['d'], default_scopes: ['d'] }),
        localIssuerDoc('github', 'github-actions', github, 'https://writ.test'),
        rawDoc('workload', {
          id: GH,
          owner: 'ci',
          environment: 'prod',
          classes: ['ci'],
          federation: ['github'],
        }),
      ]);
      await applyConfig(a.ctx, bundle, 'operator:test', false);
      const token = await github.mint(githubClaims(Math.floor(Date.now() / 1000)));
      const ask = (w: Writ, holder = generateDpopKey()) =>
        w.app.inject({
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
      const first = generateDpopKey();
      const issued = await eventually('node b trusts the issuer', async () => {
        if (b.ctx.registry.issuers().length === 0) return undefined;
        const r = await ask(b, first);
        return r.statusCode === 200 ? r : assert.fail(r.body);
      });
      assert.equal(decodeClaims(JSON.parse(issued.body).access_token)['sub'], GH);
      // The token is bound to its first holder on every node.
      const stolen = await ask(a);
      assert.equal(stolen.statusCode, 400);
      assert.equal(JSON.parse(stolen.body).error, 'invalid_grant');
      assert.equal((await ask(a, first)).statusCode, 200);
    });
  });
}
