import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AUDIENCE, type Harness, startHarness, WORKLOAD } from './helpers/harness.js';

describe('token endpoint smoke', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('issues a token for a registered workload and audits it', async () => {
    const r = await h.requestToken();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['token_type'], 'Bearer');
    assert.equal(r.body['scope'], 'reports:read');
    const issued = await h.auditEvents('token.issued');
    assert.equal(issued.length, 1);
    assert.equal(issued[0]!.actor, WORKLOAD);
    assert.equal(issued[0]!.data['aud'], AUDIENCE);
  });
});
