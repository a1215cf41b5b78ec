import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import { writeRefusalSummaries } from '../../src/audit/refusal.js';
import {
  AUDIENCE,
  type Harness,
  LEGACY_WORKLOAD,
  type Reply,
  signJwt,
  startHarness,
  type TestKey,
  testKey,
  WORKLOAD,
} from '../helpers/harness.js';

// Refusals say which check failed (issue 21), but an attacker probing Writ must not learn from them
// which client ids or operator names exist, or how a client authenticates: everything the registry
// decides gets one answer per method until the caller proved who it is. Tried as an attacker would:
// made-up ids, keys and secrets, side by side with registered ones. The operator still sees the real
// reason in the audit log. (Certificates: say-why-mtls; federation tokens: say-why-federation.)

const NOBODY = 'spiffe://test.writ/nobody/here';

describe('no client id enumeration through refusals', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ settings: { 'limits.source_burst': 10_000 } });
  });
  after(() => h.close());

  const now = () => Math.floor(h.writ.ctx.clock.now() / 1000);
  const token = (assertion: string) =>
    h.post('/oauth2/token', {
      grant_type: GrantType.clientCredentials,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: assertion,
      resource: AUDIENCE,
    });
  const basic = (id: string, secret: string) =>
    `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  const operatorAssertion = (name: string, key: TestKey) => {
    const t = now();
    return signJwt(key, {
      iss: name,
      sub: name,
      aud: h.issuer,
      iat: t,
      exp: t + 60,
      jti: randomBytes(8).toString('hex'),
    });
  };
  const alike = (answers: Reply[]) => {
    for (const r of answers) {
      assert.equal(r.status, answers[0]!.status);
      assert.deepEqual(r.body, answers[0]!.body);
      assert.deepEqual(r.headers['www-authenticate'], answers[0]!.headers['www-authenticate']);
    }
  };

  it('a made-up client id, an unregistered key and a forged signature get one answer', async () => {
    const before = (await h.store.queryAudit({ limit: 1, order: 'desc' }))[0]?.seq ?? 0;
    const answers = await Promise.all([
      token(h.assertion({ clientId: NOBODY })),
      token(h.assertion({ key: testKey() })),
      token(h.assertion({ key: testKey(), header: { kid: h.workloadKey.kid } })),
      // Checks the registered client would fail after its signature are never reached for nobody.
      token(h.assertion({ clientId: NOBODY, claims: { exp: now() + 3600, aud: 'https://x.example' } })),
    ]);
    alike(answers);
    assert.equal(answers[0]!.status, 401);
    assert.doesNotMatch(String(answers[0]!.body['error_description']), /not registered|unknown|no such/i);
    // The operator learns which it was.
    await writeRefusalSummaries(h.writ.ctx, true);
    const reasons = (await h.store.queryAudit({ afterSeq: before, type: 'token.refused', limit: 100 })).map(
      (e) => e.data['reason'],
    );
    for (const r of ['unknown_client', 'no_key', 'bad_signature']) assert.ok(reasons.includes(r), r);
  });

  it('what depends on the request alone is told to everyone alike, registered or not', async () => {
    for (const header of [{ alg: 'HS256' }, { crit: ['exp'] }]) {
      alike([await token(h.assertion({ clientId: NOBODY, header })), await token(h.assertion({ header }))]);
    }
  });

  it('a wrong secret for a client with a secret, one without, and nobody get one answer', async () => {
    for (const send of [
      (id: string) =>
        h.post(
          '/oauth2/token',
          { grant_type: 'client_credentials', resource: AUDIENCE },
          { authorization: basic(id, 'guess') },
        ),
      (id: string) =>
        h.post('/oauth2/token', {
          grant_type: 'client_credentials',
          resource: AUDIENCE,
          client_id: id,
          client_secret: 'guess',
        }),
    ])
      alike(await Promise.all([LEGACY_WORKLOAD, WORKLOAD, NOBODY].map(send)));
  });

  it('a made-up operator and a registered one with another key get one answer', async () => {
    const answers = await Promise.all(
      [operatorAssertion('nobody', h.operatorKey), operatorAssertion('ops', testKey())].map((assertion) =>
        h.post('/admin/v1/token', { grant_type: GrantType.jwtBearer, assertion }),
      ),
    );
    alike(answers);
    assert.equal(answers[0]!.body['error'], 'invalid_client');
  });
});
