import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type DpopKey, generateDpopKey } from '@writ/sdk/dpop';
import { GrantType, TokenType } from '@writ/sdk/wire';
import { exportJWK, SignJWT } from 'jose';
import { fakeClock } from '../src/clock.js';
import { closeTask } from '../src/tasks/tasks.js';
import {
  b64json,
  classDoc,
  count,
  decodeClaims,
  dpopTokenRequest,
  introspect,
  lastEvent,
  rawDoc,
} from './helpers/dpop.js';
import { localIssuerDoc } from './helpers/federation.js';
import { type Harness, type Reply, startHarness } from './helpers/harness.js';
import {
  githubClaims,
  gitlabClaims,
  kubernetesClaims,
  type LocalIssuer,
  spireClaims,
  startLocalIssuer,
} from './helpers/oidc-issuer.js';

const WRIT = 'https://writ.test';
const DEPLOY = 'https://deploy.test';
const GH = 'spiffe://test.writ/github/acme/deployer';
const GL = 'spiffe://test.writ/gitlab/acme/billing';
const K8S = 'spiffe://test.writ/ns/payments/sa/ledger';
const SVID = 'spiffe://test.writ/batch/reconcile';

const federated = (id: string, issuer: string) =>
  rawDoc('workload', { id, owner: 'team-ci', environment: 'prod', classes: ['ci'], federation: [issuer] });

describe('workload federation from trusted OIDC issuers', () => {
  const clock = fakeClock(Date.UTC(2026, 4, 1, 8));
  const now = () => Math.floor(clock.now() / 1000);
  let h: Harness;
  let github: LocalIssuer;
  let gitlab: LocalIssuer;
  let cluster: LocalIssuer;
  let spire: LocalIssuer;
  let rogue: LocalIssuer;

  before(async () => {
    [github, gitlab, cluster, spire, rogue] = await Promise.all([
      startLocalIssuer('RS256'),
      startLocalIssuer('RS256'),
      startLocalIssuer('ES256'),
      startLocalIssuer('ES256'),
      startLocalIssuer('RS256'),
    ]);
    const spireKeys = (await (await fetch(spire.jwksUri)).json()) as { keys: unknown[] };
    h = await startHarness({
      clock,
      extraDocs: [
        classDoc({
          name: 'ci',
          max_ttl: '10m',
          audiences: [DEPLOY],
          scopes: ['deploy:read', 'deploy:write'],
          default_scopes: ['deploy:read'],
          renewal: { max_lifetime: '2h' },
        }),
        localIssuerDoc('github', 'github-actions', github, WRIT, {
          condition: 'claims.repository_owner == "acme" && claims.ref == "refs/heads/main"',
        }),
        localIssuerDoc('gitlab', 'gitlab-ci', gitlab, WRIT),
        localIssuerDoc('cluster', 'kubernetes', cluster, [WRIT], { max_token_age: '2h' }),
        // Air-gapped: the SPIRE bundle's keys are in the config, never fetched.
        rawDoc('issuer', {
          name: 'spire',
          preset: 'spire',
          issuer: spire.url,
          jwks: spireKeys,
          audience: WRIT,
        }),
        federated(GH, 'github'),
        federated(GL, 'gitlab'),
        federated(K8S, 'cluster'),
        federated(SVID, 'spire'),
      ],
    });
  });
  after(async () => {
    await h.close();
    await Promise.all([github, gitlab, cluster, spire, rogue].map((i) => i.close()));
  });

  const bearerGrant = (assertion: string, extra: Record<string, string> = {}) => ({
    grant_type: GrantType.jwtBearer,
    assertion,
    resource: DEPLOY,
    ...extra,
  });
  const federate = (
    assertion: string,
    holder: DpopKey = generateDpopKey(),
    extra: Record<string, string> = {},
  ) => dpopTokenRequest(h, () => bearerGrant(assertion, extra), holder);

  /** A refusal: the RFC 6749 error and status, nothing issued, and the refusal audited with its reason. */
  const refused = async (
    send: () => Promise<Reply>,
    reason: string,
    error = 'invalid_grant',
    status = 400,
  ) => {
    const issued = await count(h, 'token.issued');
    const r = await send();
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal(r.body['error'], error);
    assert.equal(typeof r.body['error_description'], 'string');
    assert.equal(r.body['access_token'], undefined);
    assert.equal(await count(h, 'token.issued'), issued, 'nothing issued');
    const e = await lastEvent(h, 'token.refused');
    assert.equal(e.data['reason'], reason, JSON.stringify(e.data));
    // A repeat of a refusal already audited this window is in its summary row, which carries the kind
    // (error, reason, source) and the count, not each request's parameters.
    if (e.data['count'] === undefined) assert.equal(e.data['grant_type'], GrantType.jwtBearer);
    return e;
  };

  it('a GitHub Actions OIDC token gets a DPoP-bound Writ token, its run becomes the task', async () => {
    const holder = generateDpopKey();
    const r = await federate(await github.mint(githubClaims(now())), holder);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['token_type'], 'DPoP');
    const claims = decodeClaims(r.body['access_token'] as string);
    assert.equal(claims['sub'], GH);
    assert.equal(claims['aud'], DEPLOY);
    assert.equal(claims['scope'], 'deploy:read');
    assert.equal((claims['cnf'] as { jkt: string }).jkt, holder.jkt);
    assert.ok(typeof claims['tid'] === 'string');
    assert.ok((claims['exp'] as number) <= now() + 300, 'no token outlives the federation token');

    const e = await lastEvent(h, 'token.issued');
    assert.equal(e.data['auth_method'], 'federation:github');
    assert.equal(e.data['tid'], claims['tid']);
    const f = e.data['federation'] as Record<string, unknown>;
    assert.equal(f['issuer'], 'github');
    assert.equal(f['token_sub'], 'repo:acme/deployer:ref:refs/heads/main');
    assert.equal(f['reuse'], false);
    assert.deepEqual(f['attributes'], {
      repository: 'acme/deployer',
      repository_owner: 'acme',
      ref: 'refs/heads/main',
      ref_type: 'branch',
      sha: 'a3f1c9d2e4b5a6c7d8e9f0a1b2c3d4e5f6a7b8c9',
      workflow: 'deploy',
      job_workflow_ref: 'acme/deployer/.github/workflows/deploy.yml@refs/heads/main',
      run_id: '9876543210',
      run_attempt: '1',
      run_number: '42',
      actor: 'octocat',
      environment: 'production',
      runner_environment: 'github-hosted',
      event_name: 'push',
    });
    assert.doesNotMatch(JSON.stringify(e.data), /eyJ[\w-]*\.eyJ/, 'no token in the audit event');
    const task = await h.store.getTask(claims['tid'] as string);
    assert.equal(task?.workload, GH);
    assert.deepEqual(task?.labels, { federation: 'github', ci_run_id: '9876543210', ci_run_attempt: '1' });
    assert.equal(task?.openedBy, 'federation:github');
  });

  it('every job of a run shares its task; closing the task revokes their tokens', async () => {
    const run = { runId: '555000111' };
    const a = await federate(await github.mint(githubClaims(now(), run)));
    const b = await federate(await github.mint(githubClaims(now(), run)), generateDpopKey(), {
      scope: 'deploy:write',
    });
    const retry = await federate(await github.mint(githubClaims(now(), { ...run, attempt: '2' })));
    for (const r of [a, b, retry]) assert.equal(r.status, 200, JSON.stringify(r.body));
    const tid = decodeClaims(a.body['access_token'] as string)['tid'] as string;
    assert.equal(decodeClaims(b.body['access_token'] as string)['tid'], tid);
    assert.notEqual(decodeClaims(retry.body['access_token'] as string)['tid'], tid, 'a re-run is a new task');
    assert.equal((await h.auditEvents('task.opened')).filter((e) => e.data['tid'] === tid).length, 1);
    assert.equal((await introspect(h, a.body['access_token'] as string))['active'], true);

    assert.equal(await closeTask(h.writ.ctx, tid, 'job finished', 'operator:ops'), true);
    for (const r of [a, b])
      assert.deepEqual(await introspect(h, r.body['access_token'] as string), { active: false });
    assert.equal((await introspect(h, retry.body['access_token'] as string))['active'], true);
    // The run cannot reopen its closed task with a fresh token.
    const again = await federate(await github.mint(githubClaims(now(), run)));
    assert.equal(again.status, 400);
    assert.equal(again.body['error'], 'invalid_grant');
  });

  it('a GitLab CI ID token works through token exchange (subject_token_type jwt)', async () => {
    const r = await dpopTokenRequest(
      h,
      () => ({
        grant_type: GrantType.tokenExchange,
        subject_token: subject,
        subject_token_type: TokenType.jwt,
        resource: DEPLOY,
      }),
      generateDpopKey(),
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['issued_token_type'], TokenType.accessToken);
    const claims = decodeClaims(r.body['access_token'] as string);
    assert.equal(claims['sub'], GL);
    const task = await h.store.getTask(claims['tid'] as string);
    assert.deepEqual(task?.labels, { federation: 'gitlab', ci_pipeline_id: '574', ci_job_id: '302' });
    const e = await lastEvent(h, 'token.issued');
    assert.equal(e.data['grant_type'], GrantType.tokenExchange);
    assert.equal(e.data['auth_method'], 'federation:gitlab');
    const attrs = (e.data['federation'] as { attributes: Record<string, string> }).attributes;
    assert.equal(attrs['project_path'], 'acme/billing');
    assert.equal(attrs['pipeline_id'], '574');
    assert.equal(attrs['user_login'], 'sam');
  });
  let subject: string;
  before(async () => {
    subject = await gitlab.mint(gitlabClaims(Math.floor(Date.UTC(2026, 4, 1, 8) / 1000)));
  });

  it('a Kubernetes projected service-account token works with jwt-bearer and as an id_token exchange', async () => {
    const r = await federate(await cluster.mint(kubernetesClaims(now(), cluster.url)));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const claims = decodeClaims(r.body['access_token'] as string);
    assert.equal(claims['sub'], K8S);
    assert.equal(claims['tid'], undefined, 'no CI run, no task');
    const attrs = ((await lastEvent(h, 'token.issued')).data['federation'] as { attributes: object })
      .attributes;
    assert.deepEqual(attrs, {
      namespace: 'payments',
      service_account: 'ledger',
      pod: 'ledger-7c9d8f6b5-x2x9q',
    });

    const x = await dpopTokenRequest(
      h,
      () => ({
        grant_type: GrantType.tokenExchange,
        subject_token: k8sToken,
        subject_token_type: TokenType.idToken,
        audience: DEPLOY,
      }),
      generateDpopKey(),
    );
    assert.equal(x.status, 200, JSON.stringify(x.body));
    assert.equal(decodeClaims(x.body['access_token'] as string)['sub'], K8S);
  });
  let k8sToken: string;
  before(async () => {
    k8sToken = await cluster.mint(kubernetesClaims(Math.floor(Date.UTC(2026, 4, 1, 8) / 1000), cluster.url));
  });

  it('a SPIRE JWT-SVID verifies against static keys (never fetched) and binds by its hash', async () => {
    const svid = await spire.mint(spireClaims(now(), SVID));
    const holder = generateDpopKey();
    const fetched = spire.fetches();
    const r = await federate(svid, holder);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(decodeClaims(r.body['access_token'] as string)['sub'], SVID);
    assert.equal(spire.fetches(), fetched, 'jwks_file keys are never fetched');
    await refused(() => federate(svid, generateDpopKey()), 'federation_token_replay');
  });

  it('a second use from another DPoP holder is refused and audited as a possible theft', async () => {
    const token = await github.mint(githubClaims(now(), { runId: '777' }));
    const first = generateDpopKey();
    const first0 = await federate(token, first);
    assert.equal(first0.status, 200);
    const e = await refused(() => federate(token, generateDpopKey()), 'federation_token_replay');
    assert.equal(e.data['federation_issuer'], 'github');
    assert.equal(typeof e.data['federation_fingerprint'], 'string');
    const theft = await lastEvent(h, 'federation.token_replayed');
    assert.equal(theft.outcome, 'refused');
    assert.equal(theft.actor, 'anonymous', 'a copy of the token proves no one');
    assert.equal(e.actor, 'anonymous');
    assert.equal(theft.subject, decodeClaims(first0.body['access_token'] as string)['sub']);
    assert.equal(theft.data['issuer'], 'github');
    assert.equal(theft.data['fingerprint'], e.data['federation_fingerprint']);
    // The first holder may use it again (a renewal from the same process): documented, and audited.
    const renewal = await federate(token, first);
    assert.equal(renewal.status, 200, JSON.stringify(renewal.body));
    assert.equal(((await lastEvent(h, 'token.issued')).data['federation'] as { reuse: boolean }).reuse, true);
  });

  it('refuses a token minted for another audience', async () => {
    const t = await github.mint({ ...githubClaims(now()), aud: 'https://sts.amazonaws.com' });
    await refused(() => federate(t), 'audience');
  });

  it('refuses an untrusted issuer without ever fetching its (reachable) JWKS', async () => {
    const t = await rogue.mint(githubClaims(now()));
    const e = await refused(() => federate(t), 'untrusted_issuer');
    assert.equal(e.data['iss'], rogue.url);
    assert.equal(rogue.fetches(), 0);
  });

  it('refuses expired, not-yet-valid and too-old tokens', async () => {
    const base = githubClaims(now());
    await refused(
      async () =>
        federate(await github.mint({ ...base, iat: now() - 400, nbf: now() - 400, exp: now() - 60 })),
      'expired',
    );
    await refused(async () => federate(await github.mint({ ...base, nbf: now() + 120 })), 'not_yet_valid');
    await refused(
      async () => federate(await github.mint({ ...base, iat: now() - 7200, nbf: now() - 7200 })),
      'too_old',
    );
    await refused(async () => federate(await github.mint({ ...base, iat: undefined })), 'iat');
  });

  it('refuses a token whose claims fail the issuer condition, or map to no workload that trusts the issuer', async () => {
    await refused(
      async () => federate(await github.mint({ ...githubClaims(now()), ref: 'refs/heads/feature' })),
      'condition_false',
    );
    await refused(
      async () => federate(await github.mint(githubClaims(now(), { repo: 'acme/unregistered' }))),
      'unknown_workload',
    );
    // A GitLab project that maps onto the GitHub workload's SPIFFE ID: that workload trusts GitHub only.
    await refused(
      async () => federate(await gitlab.mint(gitlabClaims(now(), { project: 'acme/deployer' }))),
      'unknown_workload',
    );
  });

  it('refuses alg none, HS256 and a token carrying its own key', async () => {
    const claims = githubClaims(now());
    const none = `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json({ iss: github.url, ...claims })}.`;
    await refused(() => federate(none), 'algorithm');
    // HS256 keyed with the issuer's public key material: the classic confusion attack.
    const jwks = (await (await fetch(github.jwksUri)).json()) as { keys: Array<{ n: string; kid: string }> };
    const input = `${b64json({ alg: 'HS256', typ: 'JWT', kid: jwks.keys[0]!.kid })}.${b64json({ iss: github.url, ...claims })}`;
    const hs = `${input}.${createHmac('sha256', jwks.keys[0]!.n).update(input).digest('base64url')}`;
    await refused(() => federate(hs), 'algorithm');
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const embedded = await new SignJWT({ iss: github.url, ...claims })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', jwk: await exportJWK(attacker.publicKey) })
      .sign(attacker.privateKey);
    await refused(() => federate(embedded), 'embedded_key');
  });

  it('an unknown-kid flood costs one JWKS fetch per cooldown; a rotated key is picked up after it', async () => {
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = () =>
      new SignJWT({ iss: github.url, ...githubClaims(now()) })
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: randomBytes(8).toString('hex') })
        .sign(attacker.privateKey);
    clock.advance(31_000);
    const before = github.fetches();
    const flood = await Promise.all(Array.from({ length: 12 }, async () => federate(await forged())));
    for (const r of flood) assert.equal(r.body['error'], 'invalid_grant');
    assert.equal(github.fetches(), before + 1, 'one fetch for the whole flood');
    for (let i = 0; i < 5; i++) await refused(async () => federate(await forged()), 'unknown_key');
    assert.equal(github.fetches(), before + 1, 'none within the cooldown');

    // The issuer rotates mid-test: within the cooldown its new kid is unknown (fail closed)...
    await github.rotate();
    const fresh = () => github.mint(githubClaims(now(), { runId: randomBytes(4).toString('hex') }));
    await refused(async () => federate(await fresh()), 'unknown_key');
    // ...and after it, one fetch brings the new key.
    clock.advance(31_000);
    const r = await federate(await fresh());
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(github.fetches(), before + 2);
  });

  it('a federation token never stands in for client authentication, nor comes with it', async () => {
    const t = await github.mint(githubClaims(now()));
    const r = await dpopTokenRequest(
      h,
      () => ({ ...bearerGrant(t), client_id: GH, client_secret: 'x' }),
      generateDpopKey(),
    );
    assert.equal(r.status, 400);
    assert.equal(r.body['error'], 'invalid_request');
    await refused(() => federate('not-a-jwt'), 'malformed');
  });
});
