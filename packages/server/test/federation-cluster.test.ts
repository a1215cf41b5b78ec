import assert from 'node:assert/strict';
import { it } from 'node:test';
import { generateDpopKey } from '@writ/sdk/dpop';
import { applyConfig } from '../src/admin/operations.js';
import { validateConfig } from '../src/config/config-dir.js';
import type { Writ } from '../src/writ.js';
import { describeOnPostgres, eventually } from './helpers/cluster.js';
import { classDoc, decodeClaims } from './helpers/dpop.js';
import { exchangeAt, githubPairForSuite, githubWorkloadDoc, localIssuerDoc } from './helpers/federation.js';
import { githubClaims } from './helpers/oidc-issuer.js';

const DEPLOY = 'https://deploy.cluster.test';
const GH = 'spiffe://test.writ/github/acme/deployer';

describeOnPostgres('federation-cluster', 'trusted issuers across nodes', () => {
  const suite = githubPairForSuite();

  it('an issuer applied on one node is trusted by the other, and its replay binding is shared', async () => {
    const { a, b } = suite;
    const bundle = validateConfig([
      classDoc({ name: 'ci', audiences: [DEPLOY], scopes: ['d'], default_scopes: ['d'] }),
      localIssuerDoc('github', 'github-actions', suite.github, 'https://writ.test'),
      githubWorkloadDoc(GH),
    ]);
    await applyConfig(a.ctx, bundle, 'operator:test', false);
    const token = await suite.github.mint(githubClaims(Math.floor(Date.now() / 1000)));
    const ask = (w: Writ, holder = generateDpopKey()) => exchangeAt(w, token, DEPLOY, holder);
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
