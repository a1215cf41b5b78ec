import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { type Harness, LEGACY_SECRET, LEGACY_WORKLOAD, startHarness } from './helpers/harness.js';

describe('structured logs', () => {
  let h: Harness;
  const lines: string[] = [];
  before(async () => {
    const stream = { write: (line: string) => void lines.push(line) };
    h = await startHarness({ logger: pino({ level: 'trace' }, stream) });
  });
  after(() => h.close());

  it('are JSON, record refusals and issuance, and never carry a token, assertion or secret', async () => {
    const secrets: string[] = [LEGACY_SECRET];
    const assertion = h.assertion();
    secrets.push(assertion);
    const ok = await h.post('/oauth2/token', {
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      resource: 'https://reports.test.writ',
    });
    assert.equal(ok.status, 200);
    secrets.push(ok.body['access_token'] as string);
    const replay = await h.post('/oauth2/token', {
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      resource: 'https://reports.test.writ',
    });
    assert.equal(replay.status, 401);
    const basic = Buffer.from(`${encodeURIComponent(LEGACY_WORKLOAD)}:wrong-${LEGACY_SECRET}`).toString(
      'base64',
    );
    secrets.push(`wrong-${LEGACY_SECRET}`, basic);
    const bad = await h.post(
      '/oauth2/token',
      { grant_type: 'client_credentials', resource: 'https://reports.test.writ' },
      { authorization: `Basic ${basic}` },
    );
    assert.equal(bad.status, 401);
    const admin = await h.adminSession();
    const headers = admin.headers('POST', '/oauth2/introspect');
    secrets.push(admin.token, headers.dpop);
    await h.post('/oauth2/introspect', { token: ok.body['access_token'] as string }, headers);

    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      records.some((r) => r['msg'] === 'issued'),
      'issuance is logged',
    );
    assert.ok(
      records.some((r) => r['msg'] === 'refused' && r['error'] === 'invalid_client'),
      'refusals are logged',
    );
    const all = lines.join('\n');
    for (const s of secrets)
      assert.equal(all.includes(s), false, `a log line carries a secret (${s.slice(0, 12)}…)`);
    // Signatures are the unforgeable part: no JWS signature segment may appear either.
    for (const s of secrets.filter((x) => x.split('.').length === 3))
      assert.equal(all.includes(s.split('.')[2]!), false);
  });
});
