import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import {
  AUDIENCE,
  type Harness,
  LEGACY_SECRET,
  OTHER_AUDIENCE,
  OTHER_WORKLOAD,
  startHarness,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';
import { decodeJwt, expectRefusal, issuanceState } from './helpers/refusals.js';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('token endpoint refusals', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  const now = () => Math.floor(h.writ.ctx.clock.now() / 1000);
  /** The claims of a valid assertion for WORKLOAD, to build hand-made ones from. */
  const claims = (over: Record<string, unknown> = {}) => ({
    iss: WORKLOAD,
    sub: WORKLOAD,
    aud: h.issuer,
    iat: now(),
    exp: now() + 60,
    jti: randomBytes(12).toString('base64url'),
    ...over,
  });
  const withAssertion = (assertion: string, extra: Record<string, string | string[]> = {}) =>
    h.post('/oauth2/token', {
      grant_type: GrantType.clientCredentials,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: assertion,
      resource: AUDIENCE,
      ...extra,
    });
  const invalidClient = (reason: string) => ({ status: 401, error: 'invalid_client', reason });

  it('a valid request is issued (the baseline every refusal below differs from)', async () => {
    const before = await issuanceState(h);
    const r = await h.requestToken();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const after = await issuanceState(h);
    assert.equal(after.issuedEvents, before.issuedEvents + 1);
    assert.equal(after.tokenRows, before.tokenRows + 1);
  });

  describe('client authentication (invalid_client, 401)', () => {
    it('unknown client', async () => {
      const { event } = await expectRefusal(
        h,
        () => h.requestToken({}, { clientId: 'spiffe://test.writ/nobody/here' }),
        invalidClient('unknown_client'),
      );
      assert.equal(event.actor, 'anonymous', 'a client that did not authenticate is no actor');
      assert.equal(event.data['claimed_client_id'], 'spiffe://test.writ/nobody/here');
    });

    it('unknown client named by client_id', async () => {
      await expectRefusal(
        h,
        () => h.requestToken({ client_id: 'spiffe://test.writ/nobody/here' }),
        invalidClient('unknown_client'),
      );
    });

    it('assertion signed by a key that is not registered (own kid)', async () => {
      await expectRefusal(h, () => h.requestToken({}, { key: testKey() }), invalidClient('no_key'));
    });

    it('assertion signed by a key that is not registered, claiming the registered kid', async () => {
      await expectRefusal(
        h,
        () => h.requestToken({}, { key: testKey(), header: { kid: h.workloadKey.kid } }),
        invalidClient('bad_signature'),
      );
    });

    it('assertion signed by another registered client key', async () => {
      await expectRefusal(h, () => h.requestToken({}, { key: h.otherKey }), invalidClient('no_key'));
    });

    it('expired assertion', async () => {
      await expectRefusal(
        h,
        () => h.requestToken({}, { claims: { iat: now() - 200, exp: now() - 60 } }),
        invalidClient('expired'),
      );
    });

    it('assertion issued in the future (iat)', async () => {
      await expectRefusal(
        h,
        () => h.requestToken({}, { claims: { iat: now() + 120, exp: now() + 180 } }),
        invalidClient('iat_future'),
      );
    });

    it('assertion not yet valid (nbf in the future)', async () => {
      await expectRefusal(
        h,
        () => h.requestToken({}, { claims: { nbf: now() + 120, exp: now() + 180 } }),
        invalidClient('nbf'),
      );
    });

    it('assertion expiring more than 5 minutes ahead; 5 minutes is accepted', async () => {
      await expectRefusal(
        h,
        () => h.requestToken({}, { claims: { exp: now() + 360 } }),
        invalidClient('exp_too_far'),
      );
      await expectRefusal(
        h,
        () => h.requestToken({}, { claims: { exp: now() + 3600 } }),
        invalidClient('exp_too_far'),
      );
      const ok = await h.requestToken({}, { claims: { exp: now() + 300 } });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
    });

    it('assertion without exp', async () => {
      await expectRefusal(h, () => h.requestToken({}, { claims: { exp: undefined } }), invalidClient('exp'));
    });

    it('assertion for another audience', async () => {
      await expectRefusal(
        h,
        () => h.requestToken({}, { claims: { aud: 'https://evil.example' } }),
        invalidClient('aud'),
      );
      await expectRefusal(
        h,
        () => h.requestToken({}, { claims: { aud: [h.issuer, 'https://evil.example'] } }),
        invalidClient('aud'),
      );
      await expectRefusal(
        h,
        () => h.requestToken({}, { claims: { aud: `${h.issuer}/oauth2/introspect` } }),
        invalidClient('aud'),
      );
    });

    it('replayed assertion: first use issues, second is refused', async () => {
      const assertion = h.assertion();
      const first = await withAssertion(assertion);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      await expectRefusal(h, () => withAssertion(assertion), invalidClient('replay'));
      // A different request around the same assertion is still a replay.
      await expectRefusal(
        h,
        () => withAssertion(assertion, { scope: 'reports:export' }),
        invalidClient('replay'),
      );
    });

    it('alg "none" (empty signature and with a signature attached)', async () => {
      const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`;
      await expectRefusal(h, () => withAssertion(unsigned), invalidClient('malformed'));
      const valid = h.assertion();
      const borrowed = `${b64({ alg: 'none' })}.${b64(claims())}.${valid.split('.')[2]}`;
      await expectRefusal(h, () => withAssertion(borrowed), invalidClient('alg_not_allowed'));
      const lower = `${b64({ alg: 'None', kid: h.workloadKey.kid })}.${b64(claims())}.${valid.split('.')[2]}`;
      await expectRefusal(h, () => withAssertion(lower), invalidClient('alg_not_allowed'));
    });

    it('HS256 assertion keyed with the public key (algorithm confusion)', async () => {
      for (const secret of [JSON.stringify(h.workloadKey.publicJwk), h.workloadKey.publicJwk['x']!]) {
        const input = `${b64({ alg: 'HS256', kid: h.workloadKey.kid })}.${b64(claims())}`;
        const mac = createHmac('sha256', secret).update(input).digest('base64url');
        await expectRefusal(h, () => withAssertion(`${input}.${mac}`), invalidClient('alg_not_allowed'));
      }
    });

    it('iss differs from sub', async () => {
      await expectRefusal(
        h,
        () => h.requestToken({}, { claims: { iss: OTHER_WORKLOAD } }),
        invalidClient('iss_sub'),
      );
      await expectRefusal(
        h,
        () => h.requestToken({}, { claims: { iss: undefined } }),
        invalidClient('iss_sub'),
      );
    });

    it('assertion without jti (or an empty one)', async () => {
      await expectRefusal(h, () => h.requestToken({}, { claims: { jti: undefined } }), invalidClient('jti'));
      await expectRefusal(h, () => h.requestToken({}, { claims: { jti: '' } }), invalidClient('jti'));
      await expectRefusal(h, () => h.requestToken({}, { claims: { jti: 42 } }), invalidClient('jti'));
    });

    it('an access-token typ is not a client assertion', async () => {
      await expectRefusal(h, () => h.requestToken({}, { header: { typ: 'at+jwt' } }), invalidClient('typ'));
    });

    it('assertion header with crit', async () => {
      await expectRefusal(h, () => h.requestToken({}, { header: { crit: ['exp'] } }), invalidClient('crit'));
    });

    it('no client authentication at all', async () => {
      await expectRefusal(
        h,
        () => h.post('/oauth2/token', { grant_type: GrantType.clientCredentials, resource: AUDIENCE }),
        invalidClient('no_client_auth'),
      );
    });

    it('wrong client_assertion_type (invalid_request)', async () => {
      await expectRefusal(
        h,
        () =>
          h.requestToken({
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer',
          }),
        { status: 400, error: 'invalid_request' },
      );
    });
  });

  describe('what was asked for', () => {
    it('scope outside the class (invalid_scope, 400)', async () => {
      await expectRefusal(h, () => h.requestToken({ scope: 'billing:write' }), {
        status: 400,
        error: 'invalid_scope',
      });
      await expectRefusal(h, () => h.requestToken({ scope: 'reports:read admin' }), {
        status: 400,
        error: 'invalid_scope',
      });
    });

    it('audience outside the class (invalid_target, 400)', async () => {
      const { event } = await expectRefusal(h, () => h.requestToken({ resource: OTHER_AUDIENCE }), {
        status: 400,
        error: 'invalid_target',
      });
      assert.equal(event.data['audience'], OTHER_AUDIENCE);
    });

    it('two different resources (invalid_target)', async () => {
      await expectRefusal(h, () => h.requestToken({ resource: [AUDIENCE, OTHER_AUDIENCE] }), {
        status: 400,
        error: 'invalid_target',
      });
      await expectRefusal(h, () => h.requestToken({ resource: AUDIENCE, audience: OTHER_AUDIENCE }), {
        status: 400,
        error: 'invalid_target',
      });
    });

    it('no resource, or one that is not an absolute URI (invalid_target)', async () => {
      await expectRefusal(h, () => h.requestToken({ resource: [] }), {
        status: 400,
        error: 'invalid_target',
      });
      await expectRefusal(h, () => h.requestToken({ resource: 'reports' }), {
        status: 400,
        error: 'invalid_target',
      });
      await expectRefusal(h, () => h.requestToken({ resource: `${AUDIENCE}#frag` }), {
        status: 400,
        error: 'invalid_target',
      });
    });

    it('TTL above the class maximum is clamped to it, not refused', async () => {
      const before = await issuanceState(h);
      const r = await h.requestToken({ ttl: '99999' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body['expires_in'], 900);
      const { claims: c } = decodeJwt(r.body['access_token'] as string);
      assert.equal((c['exp'] as number) - (c['iat'] as number), 900);
      const after = await issuanceState(h);
      assert.equal(after.issuedEvents, before.issuedEvents + 1);
      const [event] = await h.store.queryAudit({ limit: 1, order: 'desc', type: 'token.issued' });
      assert.equal((event!.data['exp'] as number) - (event!.data['iat'] as number), 900);
      // Below the maximum the request is honoured.
      const short = await h.requestToken({ ttl: '120' });
      assert.equal(short.body['expires_in'], 120);
    });

    it('a ttl that is not a positive number (invalid_request)', async () => {
      for (const ttl of ['0', '-5', '1e3', 'ten']) {
        await expectRefusal(h, () => h.requestToken({ ttl }), { status: 400, error: 'invalid_request' });
      }
    });
  });

  describe('request shape', () => {
    it('missing grant_type (invalid_request)', async () => {
      await expectRefusal(
        h,
        () =>
          h.post('/oauth2/token', {
            client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
            client_assertion: h.assertion(),
            resource: AUDIENCE,
          }),
        { status: 400, error: 'invalid_request' },
      );
    });

    it('unsupported grant type', async () => {
      for (const grant of ['password', 'authorization_code', 'refresh_token', 'CLIENT_CREDENTIALS']) {
        const { event } = await expectRefusal(h, () => h.requestToken({ grant_type: grant }), {
          status: 400,
          error: 'unsupported_grant_type',
        });
        assert.equal(event.data['grant_type'], grant);
      }
    });

    it('two client authentication methods at once (invalid_request)', async () => {
      await expectRefusal(h, () => h.requestToken({ client_secret: LEGACY_SECRET }), {
        status: 400,
        error: 'invalid_request',
      });
      const basic = Buffer.from(`${encodeURIComponent(WORKLOAD)}:x`).toString('base64');
      await expectRefusal(
        h,
        () =>
          h.post(
            '/oauth2/token',
            {
              grant_type: GrantType.clientCredentials,
              client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
              client_assertion: h.assertion(),
              resource: AUDIENCE,
            },
            { authorization: `Basic ${basic}` },
          ),
        { status: 400, error: 'invalid_request' },
      );
    });

    it('a repeated parameter (invalid_request)', async () => {
      await expectRefusal(h, () => h.requestToken({ scope: ['reports:read', 'reports:read'] }), {
        status: 400,
        error: 'invalid_request',
      });
      await expectRefusal(
        h,
        () => h.requestToken({ grant_type: [GrantType.clientCredentials, GrantType.clientCredentials] }),
        { status: 400, error: 'invalid_request' },
      );
      await expectRefusal(h, () => h.requestToken({ client_assertion: [h.assertion(), h.assertion()] }), {
        status: 400,
        error: 'invalid_request',
      });
    });
  });
});

describe('disabled workload', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  const introspect = async (token: string) => {
    const r = await h.post(
      '/oauth2/introspect',
      { token },
      await h.adminHeaders('POST', '/oauth2/introspect'),
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };

  it('is refused with unauthorized_client, and its earlier tokens become inactive', async () => {
    const earlier = await h.requestToken();
    assert.equal(earlier.status, 200, JSON.stringify(earlier.body));
    const token = earlier.body['access_token'] as string;
    assert.equal((await introspect(token))['active'], true);

    const disabled = await h.admin('POST', `/workloads/${encodeURIComponent(WORKLOAD)}/disable`, {});
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body));

    await expectRefusal(h, () => h.requestToken(), {
      status: 400,
      error: 'unauthorized_client',
      reason: 'workload_disabled',
    });
    assert.deepEqual(await introspect(token), { active: false });

    // Other workloads are untouched.
    const other = await h.requestToken(
      { resource: OTHER_AUDIENCE, scope: 'billing:write' },
      { clientId: OTHER_WORKLOAD, key: h.otherKey },
    );
    assert.equal(other.status, 200, JSON.stringify(other.body));
  });
});
