import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DpopKey, generateDpopKey } from '@writ/sdk/dpop';
import { GrantType } from '@writ/sdk/wire';
import { operatorCli } from './helpers/cli.js';
import { classDoc, dpopTokenRequest, introspect, rawDoc } from './helpers/dpop.js';
import { localIssuerDoc } from './helpers/federation.js';
import { type Harness, startHarness } from './helpers/harness.js';
import { githubClaims, type LocalIssuer, startLocalIssuer } from './helpers/oidc-issuer.js';
import { expectRefusal } from './helpers/refusals.js';

const WRIT = 'https://writ.test';
const DEPLOY = 'https://deploy.github.test';
const id = (repo: string) => `spiffe://test.writ/github/${repo}`;

describe('workload templates: every repository of a GitHub organisation matching a CEL condition', () => {
  let github: LocalIssuer;
  let h: Harness;

  before(async () => {
    github = await startLocalIssuer('RS256');
    h = await startHarness({
      listen: true,
      extraDocs: [
        classDoc({
          name: 'ci',
          audiences: [DEPLOY],
          scopes: ['deploy:read'],
          default_scopes: ['deploy:read'],
        }),
        // The issuer vouches for any repository on GitHub; the template decides which are workloads.
        localIssuerDoc('github', 'github-actions', github, WRIT),
        rawDoc('template', {
          id: 'acme-repos',
          owner: 'team-platform',
          environment: 'prod',
          federation: 'github',
          // The preset maps a token to spiffe://<td>/github/<owner>/<repo>.
          match: { prefixes: ['spiffe://test.writ/github/acme/'] },
          // The organisation by its id (a renamed or re-registered "acme" is another org), private
          // repositories, protected refs only.
          condition:
            'claims.repository_owner_id == "1234567" && claims.repository_visibility == "private" && claims.ref_protected == "true"',
          classes: ['ci'],
          tables: { owners: { 'acme/deployer': 'team-deploy' } },
          derive: {
            owner: 'claims.repository in tables.owners ? tables.owners[claims.repository] : "team-platform"',
            environment: 'claims.ref == "refs/heads/main" ? "prod" : "dev"',
            attributes: { repository: 'claims.repository', workflow: 'claims.workflow' },
          },
        }),
      ],
    });
  });
  after(async () => {
    await h?.close();
    await github?.close();
  });

  const now = () => Math.floor(Date.now() / 1000);
  const federate = (assertion: string, holder: DpopKey = generateDpopKey()) =>
    dpopTokenRequest(h, () => ({ grant_type: GrantType.jwtBearer, assertion, resource: DEPLOY }), holder);
  const repoToken = (repo: string, extra: Record<string, unknown> = {}) =>
    github.mint({ ...githubClaims(now(), { repo }), ...extra });

  it('admits each repository of the organisation on its first run, each its own workload', async () => {
    for (const [repo, owner] of [
      ['acme/deployer', 'team-deploy'],
      ['acme/website', 'team-platform'],
    ] as const) {
      const r = await federate(await repoToken(repo));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal((await introspect(h, r.body['access_token'] as string))['sub'], id(repo));
      const w = await h.store.getWorkload(id(repo));
      assert.equal(w?.template?.id, 'acme-repos');
      assert.equal(w?.owner, owner);
      assert.equal(w?.environment, 'prod');
      assert.deepEqual(w?.attributes, { repository: repo, workflow: 'deploy' });
    }
    const admitted = (await h.auditEvents('workload.admitted')).map((e) => e.subject).sort();
    assert.deepEqual(admitted, [id('acme/deployer'), id('acme/website')]);
  });

  it('says which template admitted a workload: the admin API list and view, writ workloads list and show', async () => {
    const list = await h.admin('GET', '/workloads');
    const rows = list.body['workloads'] as Array<Record<string, unknown>>;
    const row = (wid: string) => rows.find((x) => x['id'] === wid);
    assert.equal(row(id('acme/deployer'))?.['template'], 'acme-repos');
    const registered = rows.find((x) => x['template'] === undefined);
    assert.ok(registered, 'a registered workload is listed without a template');
    const one = await h.admin('GET', `/workloads/${encodeURIComponent(id('acme/deployer'))}`);
    assert.equal(one.status, 200);
    const t = one.body['template'] as Record<string, unknown>;
    assert.equal(t['id'], 'acme-repos');
    assert.equal(t['issuer'], 'github');
    assert.equal(t['subject'], 'repo:acme/deployer:ref:refs/heads/main');
    assert.equal(typeof t['fingerprint'], 'string');

    const writ = operatorCli(h);
    const listed = await writ(['workloads', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    const line = listed.stdout.split('\n').find((l) => l.includes(id('acme/deployer')));
    assert.match(line ?? '', /template=acme-repos/);
    const other = listed.stdout.split('\n').find((l) => l.includes(String(registered['id'])));
    assert.match(other ?? '', /template=-/);
    const shown = await writ(['workloads', 'show', id('acme/deployer')]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /"template"/);
    assert.match(shown.stdout, /acme-repos/);
  });

  it('refuses a repository outside the organisation, and one of a look-alike organisation: unknown_workload', async () => {
    for (const repo of ['evil/deployer', 'acme-labs/deployer']) {
      const { event } = await expectRefusal(h, async () => federate(await repoToken(repo)), {
        status: 400,
        error: 'invalid_grant',
        reason: 'unknown_workload',
        description: /no workload template of issuer github covers it/,
      });
      assert.equal(event.data['workload'], id(repo));
      assert.equal(await h.store.getWorkload(id(repo)), undefined, `${repo} not admitted`);
    }
  });

  it('refuses a repository of the organisation whose claims fail the condition: condition_false', async () => {
    // A public repository; and an organisation called acme that is not the one (another owner id).
    for (const [repo, claims] of [
      ['acme/public-site', { repository_visibility: 'public' }],
      ['acme/squatted', { repository_owner_id: '999' }],
    ] as const) {
      const { event } = await expectRefusal(h, async () => federate(await repoToken(repo, claims)), {
        status: 400,
        error: 'invalid_grant',
        reason: 'condition_false',
        description: /condition of template acme-repos/,
      });
      assert.equal(event.data['template'], 'acme-repos');
      assert.equal(await h.store.getWorkload(id(repo)), undefined, `${repo} not admitted`);
    }
  });

  it('holds the condition for every later token of an admitted repository', async () => {
    const r = await federate(await repoToken('acme/deployer', { ref_protected: 'false' }));
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'invalid_grant');
    assert.match(String(r.body['error_description']), /condition of template acme-repos/);
    assert.ok(await h.store.getWorkload(id('acme/deployer')), 'the workload itself stays');
    assert.equal(
      (await federate(await repoToken('acme/deployer'))).status,
      200,
      'a protected ref still gets one',
    );
  });
});
