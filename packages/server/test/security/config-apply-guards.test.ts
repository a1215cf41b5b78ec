import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RawDocument } from '../../src/config/config-dir.js';
import { configDocuments, type Harness, startHarness, testKey } from '../helpers/harness.js';
import { adminJson } from '../helpers/policy.js';

// Operator mistakes that lock everyone out: a `writ apply` that drops every operator (then no admin
// call, the repair included, is accepted), and a realistic config refused by the 16 KiB limit of
// ordinary requests.

function harnessDocuments(h: Harness, extra: RawDocument[] = []): RawDocument[] {
  return configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey }, extra);
}

/** `n` workloads as a team would write them: owner, attributes, a description, one key each. */
function manyWorkloads(n: number): RawDocument[] {
  return Array.from({ length: n }, (_, i) => ({
    kind: 'workload' as const,
    file: `workloads/service-${i}.yaml`,
    index: 0,
    doc: {
      id: `spiffe://test.writ/fleet/service-${i}`,
      owner: `team-${i % 7}`,
      environment: i % 3 === 0 ? 'staging' : 'prod',
      description: `service ${i}: nightly export of the reports of region ${i % 5} to the warehouse`,
      attributes: {
        tier: i % 2 === 0 ? 'batch' : 'online',
        region: `eu-${i % 5}`,
        cost_center: `cc-${1000 + i}`,
        runbook: `https://runbooks.example.internal/fleet/service-${i}`,
      },
      classes: ['reports-read'],
      jwks: { keys: [testKey().publicJwk] },
    },
  }));
}

describe('writ apply: a config that leaves no operator is refused', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  for (const dryRun of [false, true]) {
    it(`refuses it${dryRun ? ' (dry run too)' : ''}: 400 no_operator, audited, nothing changed`, async () => {
      const refusedBefore = (await h.auditEvents('admin.refused')).length;
      const appliedBefore = (await h.auditEvents('config.applied')).length;
      // The attacker here is a tired operator: the same directory, operators/ forgotten, one workload added.
      const documents = harnessDocuments(h, manyWorkloads(1)).filter((d) => d.kind !== 'operator');
      const res = await adminJson(h, 'POST', '/config', { documents, policies: null, dry_run: dryRun });
      assert.equal(res.status, 400);
      assert.equal(res.body['error'], 'invalid_request');
      assert.match(String(res.body['error_description']), /registers no operator/);
      assert.match(String(res.body['error_description']), /keep at least one file in operators\//);

      const refused = await h.auditEvents('admin.refused');
      assert.equal(refused.length, refusedBefore + 1, 'exactly one refusal is audited');
      assert.equal(refused.at(-1)?.data['reason'], 'no_operator');
      assert.equal((await h.auditEvents('config.applied')).length, appliedBefore, 'nothing was applied');
      assert.deepEqual(
        (await h.store.listOperators()).map((o) => o.name),
        ['ops'],
      );
      assert.equal(await h.store.getWorkload('spiffe://test.writ/fleet/service-0'), undefined);
      // And the operator can still do admin work, a fresh admin token included.
      const after = await adminJson(h, 'GET', '/workloads');
      assert.equal(after.status, 200);
    });
  }

  it('applies a config that swaps the operator for another one', async () => {
    const documents = harnessDocuments(h).map((d) =>
      d.kind === 'operator' ? { ...d, doc: { name: 'ops-2', jwks: { keys: [testKey().publicJwk] } } } : d,
    );
    const res = await adminJson(h, 'POST', '/config', { documents, policies: null, dry_run: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  });
});

describe('writ apply: a config has its own body limit (limits.config_bytes)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ settings: { 'limits.config_bytes': 65_536 } });
  });
  after(() => h.close());

  it('applies a realistic config of 40 workloads (over 25 KB), which the 16 KiB request limit refused', async () => {
    const body = { documents: harnessDocuments(h, manyWorkloads(40)), policies: null, dry_run: false };
    const size = Buffer.byteLength(JSON.stringify(body));
    assert.ok(size > 25_000 && size > h.settings.limits.bodyBytes, `the config is only ${size} bytes`);
    const res = await adminJson(h, 'POST', '/config', body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body['applied'], true);
    assert.equal((await h.store.listWorkloads()).length, 43);
    // Every other request keeps the ordinary limit.
    const form = await h.post('/oauth2/token', { grant_type: 'client_credentials', pad: 'x'.repeat(20_000) });
    assert.equal(form.status, 413);
    assert.match(String(form.body['error_description']), /larger than 16384 bytes \(limits\.body_bytes\)/);
  });

  it('refuses a config larger than limits.config_bytes with 413 naming the setting, audited, nothing changed', async () => {
    const before = (await h.store.listWorkloads()).length;
    const refusedBefore = (await h.auditEvents('admin.refused')).length;
    const body = { documents: harnessDocuments(h, manyWorkloads(120)), policies: null, dry_run: false };
    assert.ok(Buffer.byteLength(JSON.stringify(body)) > 65_536);
    const res = await adminJson(h, 'POST', '/config', body);
    assert.equal(res.status, 413);
    assert.equal(res.body['error'], 'invalid_request');
    assert.match(String(res.body['error_description']), /larger than 65536 bytes \(limits\.config_bytes\)/);
    const refused = await h.auditEvents('admin.refused');
    assert.equal(refused.length, refusedBefore + 1);
    assert.equal(refused.at(-1)?.data['reason'], 'body_too_large');
    assert.equal((await h.store.listWorkloads()).length, before);
  });

  it('reads no config body before the operator is authenticated', async () => {
    const refusedBefore = (await h.auditEvents('admin.refused')).length;
    // Larger than even the config limit, and no valid admin token: the caller meets the authentication
    // check (401), not the body parser (413), so an anonymous caller never has megabytes parsed.
    const res = await h.writ.app.inject({
      method: 'POST',
      url: '/admin/v1/config',
      headers: { 'content-type': 'application/json', authorization: 'Bearer not-a-token' },
      payload: JSON.stringify({ documents: manyWorkloads(120), policies: null }),
    });
    assert.equal(res.statusCode, 401);
    const refused = await h.auditEvents('admin.refused');
    assert.equal(refused.length, refusedBefore + 1);
    assert.notEqual(refused.at(-1)?.data['reason'], 'body_too_large');
  });
});
