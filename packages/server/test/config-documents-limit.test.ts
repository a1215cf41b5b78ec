import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type RawDocument, validateConfig } from '../src/config/config-dir.js';
import { ConfigError } from '../src/errors.js';
import { type Harness, harnessDocuments, startHarness, WORKLOAD } from './helpers/harness.js';

// The number of documents a config directory may hold is a setting (`limits.config_documents`), not a
// fixed cap: a real estate registers 100,000 workloads. Above the setting the config is refused, and the
// error names the setting that would let it through.

/** `n` more workloads like the harness's own (same key, same class), each its own document. */
function moreWorkloads(h: Harness, n: number): RawDocument[] {
  return Array.from({ length: n }, (_, i) => ({
    kind: 'workload' as const,
    file: `workloads/extra-${i}.yaml`,
    index: 0,
    doc: {
      id: `${WORKLOAD}/extra-${i}`,
      owner: 'team-reports',
      environment: 'prod',
      classes: ['reports-read'],
      jwks: { keys: [h.workloadKey.publicJwk] },
    },
  }));
}

describe('limits.config_documents bounds a config directory, and its refusal names the setting', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ settings: { 'limits.config_documents': 100 } });
  });
  after(() => h.close());

  it('more documents than the setting: refused, naming limits.config_documents and the count', async () => {
    const documents = harnessDocuments(h, moreWorkloads(h, 100 - harnessDocuments(h).length + 1));
    assert.equal(documents.length, 101);
    const r = await h.admin('POST', '/config', { documents });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'invalid_request');
    assert.match(
      String(r.body['error_description']),
      /101 documents is more than limits\.config_documents \(100\): raise limits\.config_documents/,
    );
    // Nothing of it was applied.
    assert.equal(await h.store.getWorkload(`${WORKLOAD}/extra-0`), undefined);
  });

  it('exactly the setting: applied', async () => {
    const documents = harnessDocuments(h, moreWorkloads(h, 100 - harnessDocuments(h).length));
    const r = await h.admin('POST', '/config', { documents });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(await h.store.getWorkload(`${WORKLOAD}/extra-0`));
  });

  it('more than the old fixed cap of 10,000 documents is valid under the default limit', () => {
    const h0 = { workloadKey: h.workloadKey, otherKey: h.otherKey, operatorKey: h.operatorKey } as Harness;
    const bundle = validateConfig(harnessDocuments(h0, moreWorkloads(h0, 10_001)));
    assert.equal(bundle.workloads.length, 10_001 + 3);
    assert.throws(
      () => validateConfig(harnessDocuments(h0, moreWorkloads(h0, 10_001)), undefined, undefined, 10_000),
      (err) => err instanceof ConfigError && /limits\.config_documents \(10000\)/.test(err.message),
    );
  });
});
