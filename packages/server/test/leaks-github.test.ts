import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GrantType } from '@writ/sdk/wire';
import { resolveSettings } from '../src/config/settings.js';
import { classDoc, clientAuth, decodeClaims, httpForm, introspect, workloadDoc } from './helpers/dpop.js';
import { type Harness, type Reply, signJwt, startHarness, testKey, WORKLOAD } from './helpers/harness.js';
import {
  type PartnerKeyServer,
  partnerHeaders,
  partnerKey,
  startPartnerKeyServer,
} from './helpers/partner-keys.js';
import { expectRefusal } from './helpers/refusals.js';
import {
  API,
  eventually,
  outcome,
  presenting,
  startVerifierWorld,
  type VerifierWorld,
} from './helpers/verifier.js';

// Issue 17, item 3: GitHub's secret scanning partner program reports Writ tokens to POST /v1/leaks/github.
// The keys are served over real HTTP from the configured URL; reports are signed as GitHub signs them.

const LEAKY = 'spiffe://test.writ/leaky/job';
const leakyKey = testKey();

/** POST a report, its body sent exactly as given. */
async function send(h: Harness, body: string, headers: Record<string, string>): Promise<Reply> {
  const res = await h.writ.app.inject({
    method: 'POST',
    url: '/v1/leaks/github',
    headers: { 'content-type': 'application/json', ...headers },
    payload: Buffer.from(body),
  });
  return {
    status: res.statusCode,
    body: JSON.parse(res.body) as Record<string, unknown>,
    headers: res.headers,
  };
}

const reportOf = (...tokens: string[]) =>
  JSON.stringify(
    tokens.map((token, i) => ({
      token,
      type: 'writ_access_token',
      url: `https://github.com/octo/repo/blob/abc/ci/${i}.env`,
      source: 'content',
    })),
  );

describe('POST /v1/leaks/github', () => {
  const current = partnerKey();
  let keys: PartnerKeyServer;
  let w: VerifierWorld;
  let h: Harness;

  before(async () => {
    keys = await startPartnerKeyServer([current]);
    w = await startVerifierWorld({
      settings: { 'leaks.github_keys_url': keys.url },
      docs: () => [
        classDoc({
          name: 'leaky-api',
          binding: 'bearer',
          audiences: [API],
          scopes: ['api:call'],
          default_scopes: ['api:call'],
        }),
        workloadDoc(LEAKY, leakyKey, ['leaky-api']),
      ],
    });
    h = w.h;
  });
  after(async () => {
    await w.close();
    await keys.close();
  });

  const issue = async (): Promise<string> => {
    const r = await httpForm(`${w.issuer}/oauth2/token`, {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(h, LEAKY, leakyKey),
      resource: API,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };
  const use = (token: string) => ({
    ...presenting(token, { url: `${API}/things` }),
    operation: 'GET /things',
  });
  const findings = async () => (await h.store.listFindings({ rule: 'leak', limit: 1000 })).length;
  /** What a refused report must leave as it was: revocations, findings, the token live. */
  const unchanged = async (token: string, before: { revocations: number; findings: number }) => {
    assert.equal(await h.countRows('revocations'), before.revocations, 'nothing revoked');
    assert.equal(await findings(), before.findings, 'nothing recorded');
    assert.equal((await introspect(h, token))['active'], true, 'the token still works');
  };
  const state = async () => ({ revocations: await h.countRows('revocations'), findings: await findings() });

  it('a correctly signed report revokes the live token, labels it, and a connected verifier refuses it right after', async () => {
    const leaked = await issue();
    const jti = decodeClaims(leaked)['jti'] as string;
    const stranger = testKey();
    const now = Math.floor(w.clock.now() / 1000);
    const foreign = signJwt(
      stranger,
      {
        iss: 'https://other.example',
        sub: 'x',
        aud: API,
        client_id: 'x',
        scope: '',
        iat: now,
        nbf: now,
        exp: now + 60,
        jti: 'f1',
        cls: 'c',
      },
      { typ: 'at+jwt' },
    );
    assert.equal(await outcome(w.verifier, use(leaked)), `ok:${jti}`, 'the verifier accepts it before');

    const body = reportOf(leaked, foreign);
    const r = await send(h, body, partnerHeaders(current, body));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, [
      { token_raw: leaked, token_type: 'writ_access_token', label: 'true_positive' },
      { token_raw: foreign, token_type: 'writ_access_token', label: 'false_positive' },
    ]);
    // The revocation is in the log by the time the answer is sent: wait until the verifier has read
    // up to there (its stream position), then it must refuse.
    const { last } = await h.store.eventBounds();
    await eventually('the verifier to reach the revocation', () =>
      Number(w.verifier.status().lastEventId) >= last ? true : undefined,
    );
    assert.equal(await outcome(w.verifier, use(leaked)), 'revoked');

    const [f] = await h.store.listFindings({ rule: 'leak', limit: 1 });
    const where = f?.evidence.read?.['leak'] as Record<string, unknown>;
    assert.equal(f?.jti, jti);
    assert.equal(f?.workload, LEAKY);
    assert.deepEqual(
      [where['via'], where['reporter'], where['url'], where['source'], where['type']],
      [
        'github',
        'github:secret-scanning',
        'https://github.com/octo/repo/blob/abc/ci/0.env',
        'content',
        'writ_access_token',
      ],
    );
  });

  it('refuses a bad signature, and revokes nothing', async () => {
    const token = await issue();
    const before = await state();
    const body = reportOf(token);
    const other = reportOf(`${token} `);
    for (const headers of [
      partnerHeaders(current, other), // signed, but another body
      {
        ...partnerHeaders(current, body),
        'github-public-key-signature': Buffer.alloc(70, 1).toString('base64'),
      },
      partnerHeaders({ ...partnerKey(), id: current.id }, body), // the right id, another key
    ])
      await expectRefusal(h, () => send(h, body, headers), {
        status: 401,
        error: 'invalid_client',
        event: 'leaks.refused',
        reason: 'partner_signature',
        description: /does not verify/,
      });
    await unchanged(token, before);
  });

  it('refuses an unknown key id (one refetch per cooldown for a flood), and revokes nothing', async () => {
    const token = await issue();
    const before = await state();
    const fetched = keys.fetches;
    const stranger = partnerKey();
    const body = reportOf(token);
    for (let i = 0; i < 3; i++)
      await expectRefusal(h, () => send(h, body, partnerHeaders(stranger, body)), {
        status: 401,
        error: 'invalid_client',
        event: 'leaks.refused',
        reason: 'partner_key_unknown',
      });
    assert.ok(keys.fetches - fetched <= 1, `at most one refetch, not ${keys.fetches - fetched}`);
    await unchanged(token, before);
  });

  it('a rotated key is fetched once its id is seen, after the cooldown', async () => {
    const next = partnerKey();
    keys.publish([next, current]);
    w.clock.advance(61_000);
    const token = await issue();
    const body = reportOf(token);
    const r = await send(h, body, partnerHeaders(next, body));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((r.body as unknown as { label: string }[])[0]?.label, 'true_positive');
  });

  it('refuses a replayed body, and the replay changes nothing', async () => {
    const token = await issue();
    const body = reportOf(token);
    const headers = partnerHeaders(current, body);
    assert.equal((await send(h, body, headers)).status, 200);
    const before = await state();
    await expectRefusal(h, () => send(h, body, headers), {
      status: 400,
      error: 'invalid_request',
      event: 'leaks.refused',
      reason: 'partner_replay',
      description: /leaks\.replay_window/,
    });
    assert.equal(await h.countRows('revocations'), before.revocations);
    assert.equal(await findings(), before.findings, 'the replay recorded nothing');
  });

  it('refuses an oversized body, and revokes nothing', async () => {
    const token = await issue();
    const before = await state();
    const body = JSON.stringify([{ token, type: 'x', url: 'u'.repeat(300_000), source: 'content' }]);
    await expectRefusal(h, () => send(h, body, partnerHeaders(current, body)), {
      status: 413,
      error: 'invalid_request',
      event: 'http.refused',
      reason: 'body_too_large',
      description: /leaks\.body_bytes/,
    });
    await unchanged(token, before);
  });

  it('refuses a malformed token list (signed), and revokes nothing', async () => {
    const token = await issue();
    const before = await state();
    const bodies = [
      'not json',
      '{}',
      '[]',
      JSON.stringify([{ tok: token }]),
      JSON.stringify([{ token, type: 7 }]),
      JSON.stringify({ token }),
      JSON.stringify(Array.from({ length: 101 }, () => ({ token }))),
    ];
    for (const body of bodies)
      await expectRefusal(h, () => send(h, body, partnerHeaders(current, body)), {
        status: 400,
        error: 'invalid_request',
        event: 'leaks.refused',
        reason: 'leak_report',
      });
    await unchanged(token, before);
  });

  it('refuses a report without the signature headers, and revokes nothing', async () => {
    const token = await issue();
    const before = await state();
    const body = reportOf(token);
    const signed = partnerHeaders(current, body);
    for (const headers of [
      {},
      { 'github-public-key-identifier': current.id },
      { 'github-public-key-signature': signed['github-public-key-signature']! },
      { ...signed, 'github-public-key-identifier': 'bad id with spaces' },
    ])
      await expectRefusal(h, () => send(h, body, headers), {
        status: 400,
        error: 'invalid_request',
        event: 'leaks.refused',
        reason: 'partner_signature_missing',
      });
    await unchanged(token, before);
  });

  it('refuses every report while the keys cannot be fetched (a redirect elsewhere is not followed)', async () => {
    keys.redirect('http://127.0.0.1:9/elsewhere');
    w.clock.advance(3_600_000);
    try {
      const token = await issue();
      const before = await state();
      const body = reportOf(token);
      await expectRefusal(h, () => send(h, body, partnerHeaders(current, body)), {
        status: 503,
        error: 'temporarily_unavailable',
        event: 'leaks.refused',
        reason: 'partner_keys_unavailable',
      });
      await unchanged(token, before);
    } finally {
      keys.redirect(undefined);
    }
  });
});

describe('POST /v1/leaks/github without leaks.github_keys_url', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('is off: every report is refused, and nothing is revoked', async () => {
    const token = (await h.requestToken()).body['access_token'] as string;
    const body = reportOf(token);
    await expectRefusal(h, () => send(h, body, partnerHeaders(partnerKey(), body)), {
      status: 404,
      error: 'not_found',
      event: 'leaks.refused',
      reason: 'partner_off',
      description: /leaks\.github_keys_url/,
    });
    assert.equal((await introspect(h, token))['active'], true);
    assert.equal(decodeClaims(token)['sub'], WORKLOAD);
  });
});

describe('leaks.github_keys_url', () => {
  const settings = (url: string) => resolveSettings(undefined, {}, { 'leaks.github_keys_url': url });
  it('takes https, and plain http only to a loopback address', () => {
    assert.equal(
      settings('https://api.github.com/meta/public_keys/secret_scanning').leaks.githubKeysUrl,
      'https://api.github.com/meta/public_keys/secret_scanning',
    );
    assert.equal(settings('http://127.0.0.1:9000/keys').leaks.githubKeysUrl, 'http://127.0.0.1:9000/keys');
    for (const bad of ['http://keys.example/k', 'http://localhost/k', 'ftp://x/k', 'https://u:p@x/k', 'keys'])
      assert.throws(() => settings(bad), /leaks\.github_keys_url/, bad);
  });
});
