import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { GrantType } from '@writ/sdk/wire';
import { parseBasicAuthorization, secretMatches } from '../src/auth/client/client-secret.js';
import type { RawDocument } from '../src/config/config-dir.js';
import {
  AUDIENCE,
  type Harness,
  LEGACY_SECRET,
  LEGACY_WORKLOAD,
  startHarness,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';
import { expectRefusal, issuanceState } from './helpers/refusals.js';

const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex');
const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

const EXPIRED_WORKLOAD = 'spiffe://test.writ/legacy/expired';
const EXPIRED_SECRET = 'expired-secret-0123456789abcdef';
const MIXED_WORKLOAD = 'spiffe://test.writ/legacy/mixed';
const MIXED_SECRET = 'mixed-secret-0123456789abcdef';
const mixedKey = testKey();

const doc = (kind: RawDocument['kind'], d: unknown, i: number): RawDocument => ({
  kind,
  file: `legacy-${kind}-${i}.yaml`,
  index: 0,
  doc: d,
});
const extraDocs: RawDocument[] = [
  doc(
    'class',
    {
      name: 'legacy-expired',
      binding: 'bearer',
      max_ttl: '5m',
      audiences: [AUDIENCE],
      scopes: ['reports:read'],
    },
    1,
  ),
  doc(
    'exception',
    {
      id: 'legacy-expired-secret',
      covers: { kind: 'legacy_client_secret', class: 'legacy-expired' },
      owner: 'team-reports',
      justification: 'vendor job retired late',
      expires: '2020-01-31',
    },
    1,
  ),
  doc(
    'workload',
    {
      id: EXPIRED_WORKLOAD,
      owner: 'team-reports',
      environment: 'prod',
      classes: ['legacy-expired'],
      client_secret_sha256: sha256hex(EXPIRED_SECRET),
    },
    1,
  ),
  // A workload with a key for its normal class and a secret under the legacy exception.
  doc(
    'workload',
    {
      id: MIXED_WORKLOAD,
      owner: 'team-reports',
      environment: 'prod',
      classes: ['reports-read', 'legacy-cron'],
      jwks: { keys: [mixedKey.publicJwk] },
      client_secret_sha256: sha256hex(MIXED_SECRET),
    },
    2,
  ),
];

describe('legacy client secrets (registered exceptions only)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ extraDocs });
  });
  after(() => h.close());

  const form = (extra: Record<string, string> = {}) => ({
    grant_type: GrantType.clientCredentials,
    resource: AUDIENCE,
    scope: 'reports:read',
    ...extra,
  });

  const expectIssued = async (send: () => ReturnType<Harness['post']>, method: string) => {
    const before = await issuanceState(h);
    const r = await send();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['token_type'], 'Bearer');
    const after = await issuanceState(h);
    assert.equal(after.issuedEvents, before.issuedEvents + 1);
    assert.equal(after.tokenRows, before.tokenRows + 1);
    const [event] = await h.store.queryAudit({ afterSeq: before.lastSeq, type: 'token.issued', limit: 10 });
    assert.equal(event!.actor, LEGACY_WORKLOAD);
    assert.equal(event!.data['legacy_secret_exception'], 'legacy-cron');
    assert.equal(event!.data['auth_method'], method);
    assert.equal(event!.data['cls'], 'legacy-cron');
    return r;
  };

  it('the server advertises the secret methods because an exception exists', async () => {
    const res = await h.writ.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    const meta = JSON.parse(res.body) as Record<string, string[]>;
    assert.deepEqual(meta['token_endpoint_auth_methods_supported'], [
      'private_key_jwt',
      'client_secret_basic',
      'client_secret_post',
    ]);
  });

  it('client_secret_basic succeeds under the exception and is audited as such', async () => {
    await expectIssued(
      () => h.post('/oauth2/token', form(), { authorization: basic(LEGACY_WORKLOAD, LEGACY_SECRET) }),
      'client_secret_basic',
    );
  });

  it('client_secret_post succeeds under the exception and is audited as such', async () => {
    await expectIssued(
      () => h.post('/oauth2/token', form({ client_id: LEGACY_WORKLOAD, client_secret: LEGACY_SECRET })),
      'client_secret_post',
    );
  });

  it('a wrong secret with Basic is invalid_client 401 with a Basic challenge', async () => {
    for (const secret of [
      `${LEGACY_SECRET}x`,
      LEGACY_SECRET.slice(0, -1),
      LEGACY_SECRET.toUpperCase(),
      ' ',
    ]) {
      const { reply } = await expectRefusal(
        h,
        () => h.post('/oauth2/token', form(), { authorization: basic(LEGACY_WORKLOAD, secret) }),
        { status: 401, error: 'invalid_client', reason: 'bad_secret' },
      );
      assert.match(String(reply.headers['www-authenticate']), /^Basic /);
    }
  });

  it('an unknown client with Basic is invalid_client 401 with a Basic challenge', async () => {
    const { reply } = await expectRefusal(
      h,
      () =>
        h.post('/oauth2/token', form(), { authorization: basic('spiffe://test.writ/nobody', LEGACY_SECRET) }),
      { status: 401, error: 'invalid_client', reason: 'unknown_client' },
    );
    assert.match(String(reply.headers['www-authenticate']), /^Basic /);
  });

  it('a malformed Basic header is invalid_client 401', async () => {
    for (const authorization of ['Basic !!!', `Basic ${Buffer.from('no-colon').toString('base64')}`]) {
      await expectRefusal(h, () => h.post('/oauth2/token', form(), { authorization }), {
        status: 401,
        error: 'invalid_client',
        reason: 'malformed_basic',
      });
    }
  });

  it('a wrong secret with client_secret_post is invalid_client 401', async () => {
    await expectRefusal(
      h,
      () => h.post('/oauth2/token', form({ client_id: LEGACY_WORKLOAD, client_secret: 'wrong' })),
      { status: 401, error: 'invalid_client', reason: 'bad_secret' },
    );
  });

  it('a workload without an exception cannot use a secret', async () => {
    await expectRefusal(
      h,
      () => h.post('/oauth2/token', form(), { authorization: basic(WORKLOAD, LEGACY_SECRET) }),
      { status: 401, error: 'invalid_client', reason: 'bad_secret' },
    );
    await expectRefusal(
      h,
      () => h.post('/oauth2/token', form({ client_id: WORKLOAD, client_secret: LEGACY_SECRET })),
      { status: 401, error: 'invalid_client', reason: 'bad_secret' },
    );
  });

  it('an expired exception is refused with unauthorized_client, even with the right secret', async () => {
    await expectRefusal(
      h,
      () => h.post('/oauth2/token', form(), { authorization: basic(EXPIRED_WORKLOAD, EXPIRED_SECRET) }),
      { status: 400, error: 'unauthorized_client', reason: 'exception_expired' },
    );
    await expectRefusal(
      h,
      () => h.post('/oauth2/token', form({ client_id: EXPIRED_WORKLOAD, client_secret: EXPIRED_SECRET })),
      { status: 400, error: 'unauthorized_client', reason: 'exception_expired' },
    );
  });

  it('a secret reaches only the exception class; the key reaches the rest', async () => {
    const bySecret = await h.post('/oauth2/token', form({ scope: 'reports:read' }), {
      authorization: basic(MIXED_WORKLOAD, MIXED_SECRET),
    });
    assert.equal(bySecret.status, 200, JSON.stringify(bySecret.body));
    assert.equal(bySecret.body['expires_in'], 300, 'legacy-cron max_ttl');
    await expectRefusal(
      h,
      () =>
        h.post('/oauth2/token', form({ scope: 'reports:export' }), {
          authorization: basic(MIXED_WORKLOAD, MIXED_SECRET),
        }),
      { status: 400, error: 'invalid_scope' },
    );
    const byKey = await h.requestToken(
      { scope: 'reports:export' },
      { clientId: MIXED_WORKLOAD, key: mixedKey },
    );
    assert.equal(byKey.status, 200, JSON.stringify(byKey.body));
  });
});

describe('secretMatches and parseBasicAuthorization', () => {
  const stored = sha256hex(LEGACY_SECRET);

  it('accepts exactly the registered secret', () => {
    assert.equal(secretMatches(LEGACY_SECRET, stored), true);
    assert.equal(secretMatches(LEGACY_SECRET, stored.toUpperCase()), true, 'hex case does not matter');
  });

  it('rejects wrong secrets of the same and of different lengths', () => {
    const wrongSameLength = `${LEGACY_SECRET.slice(0, -1)}${LEGACY_SECRET.endsWith('f') ? 'e' : 'f'}`;
    assert.equal(wrongSameLength.length, LEGACY_SECRET.length);
    for (const wrong of [wrongSameLength, `${LEGACY_SECRET}f`, LEGACY_SECRET.slice(0, -1), '', ' ', stored]) {
      assert.equal(secretMatches(wrong, stored), false, JSON.stringify(wrong));
    }
  });

  it('rejects (without throwing) when the stored digest has another length or is not hex', () => {
    for (const bad of [stored.slice(0, 62), `${stored}00`, '', 'not-hex', stored.slice(0, 63)]) {
      assert.equal(secretMatches(LEGACY_SECRET, bad), false, JSON.stringify(bad));
    }
  });

  it('parses form-encoded Basic credentials (RFC 6749 §2.3.1)', () => {
    const parsed = parseBasicAuthorization(basic(LEGACY_WORKLOAD, 'p:a ss+word%'));
    assert.deepEqual(parsed, { clientId: LEGACY_WORKLOAD, secret: 'p:a ss+word%' });
    assert.equal(parseBasicAuthorization('Bearer abc'), undefined);
    assert.equal(parseBasicAuthorization(`Basic ${Buffer.from('%E0%A4%A:x').toString('base64')}`), undefined);
  });
});
