import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER } from '@writ/sdk/wire';
import { classDoc, lastEvent, rawDoc } from './helpers/dpop.js';
import { configDocuments, type Harness, startHarness } from './helpers/harness.js';
import { githubClaims, kubernetesClaims, type LocalIssuer, startLocalIssuer } from './helpers/oidc-issuer.js';

const DEPLOY = 'https://deploy.fedtasks.test';
const GH = 'spiffe://test.writ/github/acme/deployer';
const K8S = 'spiffe://test.writ/ns/payments/sa/ledger';

describe('federated task authentication: negative cases', () => {
  let h: Harness;
  let github: LocalIssuer;
  let cluster: LocalIssuer;
  const now = () => Math.floor(Date.now() / 1000);

  before(async () => {
    [github, cluster] = await Promise.all([startLocalIssuer('RS256'), startLocalIssuer('ES256')]);
    h = await startHarness();
    const applied = await h.admin('POST', '/config', {
      documents: [
        ...configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey }),
        classDoc({
          name: 'ci',
          audiences: [DEPLOY],
          scopes: ['deploy:read'],
          default_scopes: ['deploy:read'],
        }),
        rawDoc('issuer', {
          name: 'github',
          preset: 'github-actions',
          issuer: github.url,
          jwks_uri: github.jwksUri,
          audience: h.issuer,
          trust_domain: 'test.writ',
        }),
        rawDoc('issuer', {
          name: 'cluster',
          preset: 'kubernetes',
          issuer: cluster.url,
          jwks_uri: cluster.jwksUri,
          audience: h.issuer,
          trust_domain: 'test.writ',
        }),
        ...[
          [GH, ['github']],
          [K8S, ['cluster']],
        ].map(([id, federation]) =>
          rawDoc('workload', { id, owner: 'ci', environment: 'prod', classes: ['ci'], federation }),
        ),
      ],
      policies: null,
      dry_run: false,
    });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
  });
  after(async () => {
    await h.close();
    await Promise.all([github.close(), cluster.close()]);
  });

  const ghToken = (runId: string) => github.mint({ ...githubClaims(now(), { runId }), aud: h.issuer });
  const k8sToken = () => cluster.mint({ ...kubernetesClaims(now(), cluster.url), aud: [h.issuer] });
  const call = (path: string, assertion: string, extra: Record<string, string> = {}) =>
    h.post(path, {
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: assertion,
      ...extra,
    });

  it('refuses a client_id that is not the workload the token maps to, auditing no token', async () => {
    const tasks = await h.countRows('tasks');
    const r = await call('/v1/tasks', await k8sToken(), { purpose: 'x', client_id: GH });
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'invalid_client');
    assert.equal(await h.countRows('tasks'), tasks, 'no task created');
    const e = await lastEvent(h, 'task.refused');
    assert.equal(e.data['reason'], 'client_id_mismatch', JSON.stringify(e.data));
    assert.doesNotMatch(JSON.stringify(e.data), /eyJ[\w-]*\.eyJ/, 'no token in the audit event');
  });

  it('refuses a platform token sent together with another client authentication method', async () => {
    const tasks = await h.countRows('tasks');
    const r = await call('/v1/tasks', await k8sToken(), { purpose: 'x', client_secret: 'guess' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'invalid_request');
    assert.equal(await h.countRows('tasks'), tasks, 'no task created');
  });

  it('refuses a client_assertion_type other than jwt-bearer with a trusted issuer token', async () => {
    const r = await call('/v1/tasks', await k8sToken(), {
      purpose: 'x',
      client_assertion_type: 'urn:example:other',
    });
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'invalid_client');
  });

  it('a CI run cannot heartbeat or close a task of another run of the same workload (404)', async () => {
    const opened = await call('/v1/tasks', await ghToken('1001'), { purpose: 'run 1001' });
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    const tid = opened.body['id'] as string;
    const other = await ghToken('2002');
    const hb = await call(`/v1/tasks/${tid}/heartbeat`, other, { lease: '30' });
    assert.equal(hb.status, 404, JSON.stringify(hb.body));
    const close = await call(`/v1/tasks/${tid}/close`, other);
    assert.equal(close.status, 404, JSON.stringify(close.body));
    const own = await call(`/v1/tasks/${tid}/close`, await ghToken('1001'));
    assert.equal(own.status, 200, JSON.stringify(own.body));
  });

  it('the labels the platform token proves win over labels the caller sends', async () => {
    const opened = await call('/v1/tasks', await k8sToken(), {
      purpose: 'spoof',
      labels: JSON.stringify({ federation: 'github', ticket: 'OPS-2' }),
    });
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    const view = await h.admin('GET', `/tasks/${opened.body['id'] as string}`);
    assert.deepEqual(view.body['labels'], { federation: 'cluster', ticket: 'OPS-2' });
  });
});
