import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  CHECK_ERROR_CODES,
  isRefusalReason,
  OAuthErrorStatus,
  REFUSAL_REASONS,
  WritError,
} from '@writ/sdk/wire';
import { invalidClient, OAuthError } from '../src/errors.js';
import { type Harness, startHarness, WORKLOAD } from './helpers/harness.js';

const doc = readFileSync(new URL('../../../../docs/errors.md', import.meta.url), 'utf8');

/** The reasons table of docs/errors.md, as it must read: one row per reason, in the order of the set. */
function reasonsTable(): string {
  const rows = Object.entries(REFUSAL_REASONS).map(([reason, what]) => `| \`${reason}\` | ${what} |`);
  return ['| reason | the check that failed |', '|---|---|', ...rows].join('\n');
}

describe('docs/errors.md', () => {
  it('lists every refusal reason, and no other, with the description the code carries', () => {
    const m = /<!-- reasons:begin -->\n([\s\S]*?)\n?<!-- reasons:end -->/.exec(doc);
    assert.ok(m, 'reasons markers missing from docs/errors.md');
    assert.equal(m[1], reasonsTable(), `the reasons table is stale; it must read:\n${reasonsTable()}`);
  });

  it('lists every error code', () => {
    for (const code of [...Object.keys(OAuthErrorStatus), ...Object.keys(CHECK_ERROR_CODES)])
      assert.match(doc, new RegExp(`^\\| \`${code}\` \\|`, 'm'), `code ${code} is not in the codes table`);
  });
});

describe('refusal reasons', () => {
  it('are a closed set of names safe for logs and metric labels', () => {
    for (const reason of Object.keys(REFUSAL_REASONS)) assert.match(reason, /^[a-z][a-z0-9_]{1,47}$/);
    assert.equal(isRefusalReason('revoked'), true);
    assert.equal(isRefusalReason('HPE_HEADER_OVERFLOW'), false);
    assert.equal(isRefusalReason('toString'), false, 'only own names count');
  });

  it('are carried by the server refusal, which is a WritError', () => {
    const err = invalidClient('client authentication failed', { reason: 'unknown_client', client_id: 'x' });
    assert.ok(err instanceof WritError);
    assert.equal(err.code, 'invalid_client');
    assert.equal(err.reason, 'unknown_client');
    assert.deepEqual(err.toBody(), {
      error: 'invalid_client',
      error_description: 'client authentication failed',
    });
    const internal = new OAuthError('server_error', 'internal error', {
      detail: { reason: 'internal_error' },
    });
    assert.equal(internal.reason, 'internal_error');
  });
});

describe('a refusal over HTTP', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('names the same reason in the audit event and the metric label, and none in the response', async () => {
    const r = await h.post('/oauth2/token', { grant_type: 'client_credentials', client_id: WORKLOAD });
    assert.equal(r.status, 401);
    assert.deepEqual(Object.keys(r.body).sort(), ['error', 'error_description'], 'the wire is unchanged');
    assert.equal(r.body['error'], 'invalid_client');
    const [event] = (await h.auditEvents('token.refused')).slice(-1);
    assert.equal(event?.data['reason'], 'no_client_auth');
    const metrics = await h.writ.app.inject({ method: 'GET', url: '/metrics' });
    assert.match(
      metrics.body,
      /writ_refusals_total\{endpoint="token",error="invalid_client",reason="no_client_auth"\} 1/,
    );
  });

  it('audits every refusal, framework ones too, with a reason from the set', async () => {
    const res = await h.writ.app.inject({
      method: 'POST',
      url: '/oauth2/token',
      headers: { 'content-type': 'text/plain' },
      payload: 'grant_type=client_credentials',
    });
    assert.equal(res.statusCode, 415);
    const refused = (await h.auditEvents()).filter((e) => e.outcome === 'refused');
    assert.ok(refused.some((e) => e.data['reason'] === 'media_type'));
    for (const e of refused)
      assert.ok(
        isRefusalReason(e.data['reason']),
        `${e.type}: reason ${String(e.data['reason'])} is not in the set`,
      );
  });
});
