import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GrantType, TokenType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import type { RawDocument } from '../src/config/config-dir.js';
import { DEFAULT_POLICY_ID } from '../src/policy/compile.js';
import { clientAuth } from './helpers/dpop.js';
import { AUDIENCE, type Harness, startHarness, type TestKey, testKey, WORKLOAD } from './helpers/harness.js';
import { adminJson, applyPolicies, policyVersion, putResource } from './helpers/policy.js';

const DEV = 'spiffe://test.writ/reports/dev-exporter';

const BASELINE = `
@id("token-baseline")
permit(principal is Workload, action in Action::"token", resource);

@id("env-separation")
forbid(principal is Workload, action in Action::"token", resource)
unless { principal.environment == resource.environment };
`;

const PROD_REPORTS = {
  id: AUDIENCE,
  sensitivity: 'confidential',
  environment: 'prod',
  owner: 'team-reports',
};

describe('policy decisions at issuance, exchange and renewal', () => {
  const clock = fakeClock(Date.UTC(2026, 4, 6, 10));
  const devKey: TestKey = testKey();
  const devDoc: RawDocument = {
    kind: 'workload',
    file: 'workloads/dev.yaml',
    index: 0,
    doc: {
      id: DEV,
      owner: 'team-reports',
      environment: 'dev',
      classes: ['reports-read'],
      jwks: { keys: [devKey.publicJwk] },
    },
  };
  let h: Harness;
  before(async () => {
    h = await startHarness({ clock, extraDocs: [devDoc] });
  });
  after(() => h.close());

  const devToken = (extra: Record<string, string> = {}) =>
    h.post('/oauth2/token', {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(h, DEV, devKey),
      resource: AUDIENCE,
      ...extra,
    });
  const lastEvent = async (type: string) => {
    const events = await h.auditEvents(type);
    return events[events.length - 1]!;
  };

  it('without a policies directory, the built-in set keeps class-limited issuance and says so in audit', async () => {
    const policy = await adminJson(h, 'GET', '/policy');
    assert.equal((policy.body['version'] as { builtIn: boolean }).builtIn, true);
    const dev = await devToken();
    assert.equal(dev.status, 200, JSON.stringify(dev.body));
    const issued = await lastEvent('token.issued');
    assert.deepEqual(issued.data['policy'], {
      decision: 'allow',
      version: (policy.body['version'] as { id: string }).id,
      policies: [DEFAULT_POLICY_ID],
    });
  });

  it('a dev workload cannot get a prod audience; the refusal is access_denied with version and policy in audit', async () => {
    const builtIn = await policyVersion(h);
    const applied = await applyPolicies(
      h,
      { files: [{ file: 'policies/base.cedar', text: BASELINE }], resources: [PROD_REPORTS] },
      [devDoc],
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const version = await policyVersion(h);
    const loaded = await lastEvent('policy.loaded');
    assert.equal(loaded.data['version'], version);
    assert.equal(loaded.data['policies'], 2);
    assert.equal(loaded.actor, 'operator:ops');
    assert.equal(loaded.data['previous'], builtIn);
    assert.equal(Number(version.split('-')[0]), Number(builtIn.split('-')[0]) + 1);

    const denied = await devToken();
    assert.equal(denied.status, 400);
    assert.equal(denied.body['error'], 'access_denied');
    assert.doesNotMatch(String(denied.body['error_description']), /env-separation|environment/);
    const refused = await lastEvent('token.refused');
    assert.equal(refused.data['reason'], 'policy_denied');
    assert.equal(refused.data['policy_version'], version);
    assert.deepEqual(refused.data['policies'], ['env-separation']);

    const prod = await h.requestToken();
    assert.equal(prod.status, 200, JSON.stringify(prod.body));
    const issued = await lastEvent('token.issued');
    assert.deepEqual(issued.data['policy'], { decision: 'allow', version, policies: ['token-baseline'] });
  });

  it('an invalid policy set is refused with file, line and reason, and the running set keeps deciding', async () => {
    const before = await policyVersion(h);
    const broken = await applyPolicies(
      h,
      {
        files: [
          { file: 'policies/base.cedar', text: BASELINE },
          {
            file: 'policies/extra.cedar',
            text: '\n\npermit(principal, action, resource) when { resource.colour == "red" };\n',
          },
        ],
        resources: [PROD_REPORTS],
      },
      [devDoc],
    );
    assert.equal(broken.status, 400);
    assert.match(String(broken.body['error_description']), /^policies\/extra\.cedar:3: .*colour/);
    const unparsable = await applyPolicies(
      h,
      { files: [{ file: 'policies/x.cedar', text: 'permit(principal, action, resource) when {' }] },
      [devDoc],
    );
    assert.equal(unparsable.status, 400);
    assert.match(String(unparsable.body['error_description']), /^policies\/x\.cedar:1: /);
    assert.equal(await policyVersion(h), before);
    assert.equal((await devToken()).status, 400);
    assert.equal((await h.requestToken()).status, 200);
    const refusals = await h.auditEvents('admin.refused');
    assert.equal(refusals[refusals.length - 1]!.data['file'], 'policies/x.cedar');
  });

  it('a resource attribute changed through the admin API decides the next issuance, without restart', async () => {
    assert.equal((await h.requestToken()).status, 200);
    const put = await putResource(h, { ...PROD_REPORTS, environment: 'staging' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body['environment'], 'staging');
    assert.equal((await h.requestToken()).status, 400);
    const cleared = await adminJson(h, 'DELETE', `/resources/${encodeURIComponent(AUDIENCE)}`);
    assert.equal(cleared.status, 200);
    assert.equal(cleared.body['environment'], 'prod');
    assert.equal((await h.requestToken()).status, 200);
    const updates = await h.auditEvents('resource.updated');
    assert.equal(updates.length, 2);
    assert.equal(updates[0]!.data['environment'], 'staging');
    assert.equal(updates[1]!.data['cleared'], true);
  });

  it('a changed policy decides the next request; the counter grows and equal sets keep their version', async () => {
    const v1 = await policyVersion(h);
    const again = await applyPolicies(
      h,
      { files: [{ file: 'policies/base.cedar', text: BASELINE }], resources: [PROD_REPORTS] },
      [devDoc],
    );
    assert.equal((again.body['policy'] as { changed: boolean }).changed, false);
    assert.equal(await policyVersion(h), v1);
    assert.equal((await h.requestToken({ scope: 'reports:export' })).status, 200);
    const noExport = `${BASELINE}
@id("no-export-tokens")
forbid(principal, action in Action::"token", resource) when { context.scopes.contains("reports:export") };
`;
    await applyPolicies(
      h,
      { files: [{ file: 'policies/base.cedar', text: noExport }], resources: [PROD_REPORTS] },
      [devDoc],
    );
    const v2 = await policyVersion(h);
    assert.equal(Number(v2.split('-')[0]), Number(v1.split('-')[0]) + 1);
    const denied = await h.requestToken({ scope: 'reports:export' });
    assert.equal(denied.status, 400);
    assert.equal(denied.body['error'], 'access_denied');
    assert.equal((await h.requestToken({ scope: 'reports:read' })).status, 200);
  });

  it('exchange and renewal are decided as their own actions', async () => {
    const rules = `${BASELINE}
@id("no-exchange")
forbid(principal, action == Action::"exchange", resource);

@id("one-shot-tasks-do-not-renew")
forbid(principal, action == Action::"renew", resource) when { context.purpose == "one-shot" };
`;
    await applyPolicies(
      h,
      { files: [{ file: 'policies/base.cedar', text: rules }], resources: [PROD_REPORTS] },
      [devDoc],
    );
    const subject = await h.requestToken();
    assert.equal(subject.status, 200);
    const exchanged = await h.post('/oauth2/token', {
      grant_type: GrantType.tokenExchange,
      ...clientAuth(h, WORKLOAD, h.workloadKey),
      subject_token: subject.body['access_token'] as string,
      subject_token_type: TokenType.accessToken,
    });
    assert.equal(exchanged.status, 400);
    assert.equal(exchanged.body['error'], 'access_denied');
    const refused = await h.auditEvents('token.refused');
    assert.equal(refused[refused.length - 1]!.data['policy_action'], 'exchange');

    for (const [purpose, renewStatus] of [
      ['one-shot', 400],
      ['nightly', 200],
    ] as const) {
      const task = await h.admin('POST', '/tasks', { workload: WORKLOAD, purpose });
      assert.equal(task.status, 201);
      const first = await h.requestToken({ task_id: task.body['id'] as string });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const renewal = await h.requestToken({ task_id: task.body['id'] as string });
      assert.equal(renewal.status, renewStatus, `${purpose}: ${JSON.stringify(renewal.body)}`);
    }
  });

  it('returning to no policies directory restores the built-in set', async () => {
    const r = await applyPolicies(h, null, [devDoc]);
    assert.equal(r.status, 200);
    assert.equal((r.body['policy'] as { version: { builtIn: boolean } }).version.builtIn, true);
    assert.equal((await devToken()).status, 200);
  });
});
