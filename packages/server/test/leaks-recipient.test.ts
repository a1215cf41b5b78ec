import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GrantType } from '@writ/sdk/wire';
import { classDoc, clientAuth, introspect, workloadDoc } from './helpers/dpop.js';
import { AUDIENCE, type Harness, startHarness, testKey, WORKLOAD } from './helpers/harness.js';

// An attacker holding a workload identity that may report leaks, and that serves an API, receives
// other workloads' tokens for that API in the ordinary course. Reporting one as "leaked" must not
// turn leaks.response (here: quarantine) against its caller: a token that reached its audience was
// not leaked by reaching it. The token the reporter names is still revoked (it says it leaked from
// it), but the caller's workload is not quarantined on that word. A reporter that does not serve the
// token's audience still gets the whole response.

const ISSUER = 'http://127.0.0.1:8080';
const API = 'spiffe://test.writ/reports/api';
const SCANNER = 'spiffe://test.writ/logs/scanner';
const apiKey = testKey();
const scannerKey = testKey();

describe('POST /v1/leaks: a reporter that serves the token’s audience cannot quarantine its callers', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      settings: { 'leaks.response': 'quarantine' },
      extraDocs: [
        classDoc({
          name: 'leak-reporter',
          binding: 'bearer',
          audiences: [`${ISSUER}/v1/leaks`],
          scopes: ['leaks:report'],
          default_scopes: ['leaks:report'],
        }),
        workloadDoc(API, apiKey, ['leak-reporter'], { serves: [AUDIENCE] }),
        workloadDoc(SCANNER, scannerKey, ['leak-reporter']),
      ],
    });
  });
  after(() => h.close());

  const report = async (reporter: string, key: ReturnType<typeof testKey>, leaked: string) => {
    const t = await h.post('/oauth2/token', {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(h, reporter, key),
      resource: `${h.issuer}/v1/leaks`,
    });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const res = await h.writ.app.inject({
      method: 'POST',
      url: '/v1/leaks',
      headers: { authorization: `Bearer ${t.body['access_token']}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ tokens: [{ token: leaked }] }),
    });
    assert.equal(res.statusCode, 200, res.body);
    return (JSON.parse(res.body) as { results: Array<Record<string, unknown>> }).results[0]!;
  };
  const callerToken = async () => {
    const r = await h.requestToken({ resource: AUDIENCE });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };

  it('the API reports a token its caller sent it: that token is revoked, the caller is not quarantined', async () => {
    const sent = await callerToken();
    const risk = h.writ.ctx.detection.riskOf(WORKLOAD);
    const r = await report(API, apiKey, sent);
    assert.equal(r['action'], 'revoked');
    assert.equal(r['outcome'], 'revoke_token');
    assert.equal((await introspect(h, sent))['active'], false);
    assert.equal(h.writ.ctx.registry.workload(WORKLOAD)?.state, 'active');
    assert.equal((await h.requestToken({ resource: AUDIENCE })).status, 200, 'the caller still gets tokens');
    assert.equal(h.writ.ctx.detection.riskOf(WORKLOAD), risk, 'nor is its risk raised');
    const [f] = await h.store.listFindings({ rule: 'leak', limit: 1 });
    const leak = f?.evidence.read?.['leak'] as Record<string, unknown>;
    assert.equal(leak['reporter'], API);
    assert.equal(leak['reporter_is_audience'], true);
  });

  it('a scanner that does not serve the audience gets the whole response: quarantine', async () => {
    const found = await callerToken();
    const r = await report(SCANNER, scannerKey, found);
    assert.equal(r['outcome'], 'quarantine');
    assert.equal(h.writ.ctx.registry.workload(WORKLOAD)?.state, 'quarantined');
    assert.ok(h.writ.ctx.detection.riskOf(WORKLOAD) > 0, 'and its risk raised');
  });
});
