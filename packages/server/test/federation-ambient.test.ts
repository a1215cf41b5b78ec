import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { detectAmbientIdentity, tokenFromFile, WorkloadClient, WritClientError } from '@writ/sdk/client';
import { runWrit } from './helpers/cli.js';
import { decodeClaims, introspect, rawDoc } from './helpers/dpop.js';
import { ciClassDoc, githubWorkloadDoc, localIssuerDoc } from './helpers/federation.js';
import { configDocuments, type Harness, startHarness } from './helpers/harness.js';
import {
  type ActionsEndpoint,
  githubClaims,
  kubernetesClaims,
  type LocalIssuer,
  startActionsEndpoint,
  startLocalIssuer,
} from './helpers/oidc-issuer.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const DEPLOY = 'https://deploy.ambient.test';
const GH = 'spiffe://test.writ/github/acme/deployer';
const K8S = 'spiffe://test.writ/ns/payments/sa/ledger';
const REQUEST_TOKEN = 'actions-runtime-request-token';

describe('ambient identity: no key file in CI or in a pod', () => {
  let h: Harness;
  let github: LocalIssuer;
  let cluster: LocalIssuer;
  let actions: ActionsEndpoint;
  let actionsUrl: string;
  const asked: Array<{ audience: string | null; authorization: string | undefined }> = [];
  let dir: string;

  before(async () => {
    [github, cluster] = await Promise.all([startLocalIssuer('RS256'), startLocalIssuer('ES256')]);
    actions = await startActionsEndpoint(github, {
      requestToken: REQUEST_TOKEN,
      claims: () => githubClaims(Math.floor(Date.now() / 1000), { runId: '31337' }),
      checkPath: true,
      onRequest: (a) => asked.push(a),
    });
    actionsUrl = actions.url;
    h = await startHarness({ listen: true });
    const applied = await h.admin('POST', '/config', {
      documents: [
        ...configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey }),
        ciClassDoc(DEPLOY),
        localIssuerDoc('github', 'github-actions', github, h.issuer),
        localIssuerDoc('cluster', 'kubernetes', cluster, h.issuer),
        githubWorkloadDoc(GH),
        rawDoc('workload', {
          id: K8S,
          owner: 'pay',
          environment: 'prod',
          classes: ['ci'],
          federation: ['cluster'],
        }),
      ],
      policies: null,
      dry_run: false,
    });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    dir = mkdtempSync(join(tmpdir(), 'writ-ambient-'));
  });
  after(async () => {
    await h.close();
    await Promise.all([github.close(), cluster.close()]);
    await actions.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const actionsEnv = () => ({
    ACTIONS_ID_TOKEN_REQUEST_URL: actionsUrl,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN,
  });

  it('the SDK detects GitHub Actions, asks for an ID token with &audience=, and gets DPoP-bound Writ tokens', async () => {
    const ambient = detectAmbientIdentity({
      audience: h.issuer,
      env: actionsEnv(),
      defaultTokenFile: join(dir, 'none'),
    });
    assert.equal(ambient?.kind, 'github-actions');
    const client = new WorkloadClient({ issuer: h.issuer, federationToken: ambient!.token });
    const before = asked.length;
    const first = await client.requestToken({ audience: DEPLOY });
    const second = await client.requestToken({ audience: DEPLOY });
    assert.equal(first.token_type, 'DPoP');
    const a = decodeClaims(first.access_token);
    assert.equal(a['sub'], GH);
    assert.equal(typeof a['tid'], 'string');
    assert.equal(decodeClaims(second.access_token)['tid'], a['tid'], 'one run, one task');
    // A fresh ID token per request, asked for the Writ audience with the runner's request token.
    const mine = asked.slice(before);
    assert.equal(mine.length, 2);
    for (const q of mine) {
      assert.equal(q.audience, h.issuer);
      assert.equal(q.authorization, `bearer ${REQUEST_TOKEN}`);
    }
    assert.throws(() => client.clientAuth(), /federated client has no key/);
  });

  it('a wrong runner request token fails on the client, nothing reaches Writ', async () => {
    const ambient = detectAmbientIdentity({
      audience: h.issuer,
      env: { ...actionsEnv(), ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'wrong' },
    });
    const client = new WorkloadClient({ issuer: h.issuer, federationToken: ambient!.token });
    await assert.rejects(client.requestToken({ audience: DEPLOY }), /HTTP 401/);
  });

  it('a projected token file is re-read on every renewal (the kubelet rotates it)', async () => {
    const file = join(dir, 'writ-token');
    const now = () => Math.floor(Date.now() / 1000);
    writeFileSync(file, await cluster.mint({ ...kubernetesClaims(now(), cluster.url), aud: [h.issuer] }));
    const ambient = detectAmbientIdentity({ audience: h.issuer, env: {}, defaultTokenFile: file });
    assert.equal(ambient?.kind, `file:${file}`);
    const client = new WorkloadClient({ issuer: h.issuer, federationToken: ambient!.token });
    const a = await client.requestToken({ audience: DEPLOY });
    assert.equal(decodeClaims(a.access_token)['sub'], K8S);
    const fingerprints = async () =>
      (await h.auditEvents('token.issued'))
        .filter((e) => e.subject === K8S)
        .map((e) => (e.data['federation'] as { fingerprint: string }).fingerprint);
    writeFileSync(file, await cluster.mint({ ...kubernetesClaims(now(), cluster.url), aud: [h.issuer] }));
    await client.requestToken({ audience: DEPLOY });
    const seen = await fingerprints();
    assert.equal(seen.length, 2);
    assert.notEqual(seen[0], seen[1], 'the rotated token was read');
    writeFileSync(file, 'not a token');
    await assert.rejects(tokenFromFile(file)(), /does not hold a compact JWT/);
    await assert.rejects(client.requestToken({ audience: DEPLOY }), (e) => !(e instanceof WritClientError));
  });

  it('writ exec --audience A -- cmd needs no key file under GitHub Actions; its token dies with the command', async () => {
    const out = mkdtempSync(join(dir, 'exec-'));
    const { code, stderr } = await runWrit(
      MAIN,
      [
        '--server',
        h.issuer,
        'exec',
        '--audience',
        DEPLOY,
        '--',
        'sh',
        '-c',
        'printf %s "$WRIT_TASK_ID" > "$OUT/tid" && cp "$WRIT_TOKEN_FILE" "$OUT/token"',
      ],
      { env: { ...process.env, ...actionsEnv(), OUT: out } },
    );
    assert.equal(code, 0, stderr);
    assert.match(stderr, /proving the workload with github-actions/);
    const token = readFileSync(join(out, 'token'), 'utf8');
    const claims = decodeClaims(token);
    assert.equal(claims['sub'], GH);
    assert.equal(claims['tid'], readFileSync(join(out, 'tid'), 'utf8'));
    // writ exec opened its own task and closed it when the command exited: the token died with it.
    assert.deepEqual(await introspect(h, token), { active: false });
    const task = await h.store.getTask(claims['tid'] as string);
    assert.notEqual(task?.closedAt, null);
    assert.equal(task?.labels['ci_run_id'], '31337');
  });
});
