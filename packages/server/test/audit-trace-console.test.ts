import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, type JWK } from 'jose';
import { signSignInLink } from '../src/cli/commands/console.js';
import { type Harness, privateJwk, startHarness } from './helpers/harness.js';

// `GET /admin/v1/audit/trace/:jti` (registered with the usage routes, outside the admin scope) takes
// the admin API's one way in: an admin token or the console's session cookie. The console's token
// trace view reads it with the cookie; a cookie of no session is refused and audited.

describe('token trace: the console session cookie', () => {
  let h: Harness;
  let jti: string;
  before(async () => {
    h = await startHarness({ listen: true });
    const t = await h.requestToken();
    assert.equal(t.status, 200, JSON.stringify(t.body));
    jti = decodeJwt(t.body['access_token'] as string).jti!;
  });
  after(() => h.close());

  const trace = (cookie: string) =>
    fetch(`${h.issuer}/admin/v1/audit/trace/${encodeURIComponent(jti)}`, { headers: { cookie } });

  it('answers a signed-in console session', async () => {
    const link = await signSignInLink({ operator: 'ops', key: privateJwk(h.operatorKey) as JWK }, h.issuer);
    const signedIn = await fetch(`${h.issuer}/console/api/signin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ link }),
    });
    assert.equal(signedIn.status, 200, await signedIn.clone().text());
    const cookie = (signedIn.headers.get('set-cookie') ?? '').split(';')[0]!;
    const r = await trace(cookie);
    assert.equal(r.status, 200, await r.clone().text());
    assert.equal(((await r.json()) as { jti: string }).jti, jti);
  });

  it('refuses a cookie of no session, audited as admin.refused', async () => {
    const before = (await h.auditEvents('admin.refused')).length;
    const r = await trace(`writ_console=${'A'.repeat(43)}`);
    assert.equal(r.status, 401);
    const body = (await r.json()) as { error: string; error_description: string };
    assert.equal(typeof body.error_description, 'string');
    const refused = await h.auditEvents('admin.refused');
    assert.equal(refused.length, before + 1);
    assert.match(String(refused.at(-1)?.data['path']), /\/admin\/v1\/audit\/trace\//);
  });
});
