import assert from 'node:assert/strict';
import { it } from 'node:test';
import { applyConfig } from '../src/admin/operations.js';
import { validateConfig } from '../src/config/config-dir.js';
import type { Writ } from '../src/writ.js';
import { describeOnPostgres, eventually } from './helpers/cluster.js';
import { classDoc, decodeClaims, rawDoc } from './helpers/dpop.js';
import { exchangeAt, githubPairForSuite, localIssuerDoc } from './helpers/federation.js';
import { githubClaims } from './helpers/oidc-issuer.js';

const DEPLOY = 'https://deploy.cluster.test';
const GH = 'spiffe://test.writ/github/acme/deployer';

describeOnPostgres('templates-cluster', 'workload templates across nodes', () => {
  const suite = githubPairForSuite();

  /** A fresh GitHub token for GH exchanged at `w`, by a fresh holder. */
  const ask = async (w: Writ) =>
    exchangeAt(w, await suite.github.mint(githubClaims(Math.floor(Date.now() / 1000))), DEPLOY);

  it('a workload admitted on one node is added on the other without a registry reload', async () => {
    const { a, b, github } = suite;
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
