import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { generateDpopKey } from '@writ/sdk/dpop';
import { GrantType } from '@writ/sdk/wire';
import { exportJWK, SignJWT } from 'jose';
import { fakeClock } from '../src/clock.js';
import { JwksUnavailableError, RemoteJwks } from '../src/federation/jwks.js';
import { classDoc, count, dpopTokenRequest, lastEvent, rawDoc } from './helpers/dpop.js';
import { githubWorkloadDoc } from './helpers/federation.js';
import { type Harness, startHarness } from './helpers/harness.js';
import { githubClaims, type LocalIssuer, startLocalIssuer } from './helpers/oidc-issuer.js';

/** A JWKS endpoint in a function: counts calls and answers what the test says. */
function countingFetch(answer: () => Response | Promise<Response>) {
  let calls = 0;
  const f = (async () => {
    calls++;
    return answer();
  }) as unknown as typeof fetch;
  return { fetch: f, calls: () => calls };
}

describe('issuer JWKS cache', () => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let jwk: Record<string, unknown>;
  before(async () => {
    jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
  });
  const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200 });

  it('fetches once, serves from cache, refetches after max age; unknown kids share one fetch per cooldown', async () => {
    const clock = fakeClock();
    const f = countingFetch(() => json({ keys: [jwk] }));
    const jwks = new RemoteJwks('https://issuer.example/jwks', {
      clock,
      cooldownMs: 30_000,
      maxAgeMs: 600_000,
      fetch: f.fetch,
    });
    await jwks.resolve({ alg: 'ES256', kid: 'k1' });
    await jwks.resolve({ alg: 'ES256', kid: 'k1' });
    assert.equal(f.calls(), 1);
    const unknown = await Promise.allSettled(
      Array.from({ length: 25 }, () => jwks.resolve({ alg: 'ES256', kid: randomBytes(4).toString('hex') })),
    );
    assert.ok(unknown.every((r) => r.status === 'rejected'));
    assert.equal(f.calls(), 1, 'within the cooldown of the first fetch: none');
    clock.advance(30_000);
    const flood = await Promise.allSettled(
      Array.from({ length: 25 }, () => jwks.resolve({ alg: 'ES256', kid: randomBytes(4).toString('hex') })),
    );
    assert.ok(flood.every((r) => r.status === 'rejected'));
    assert.equal(f.calls(), 2, 'one fetch for the whole flood');
    clock.advance(600_000);
    await jwks.resolve({ alg: 'ES256', kid: 'k1' });
    assert.equal(f.calls(), 3, 'past max age');
  });

  it('never uses a set past its max age: a failed refetch refuses, and is retried only after the cooldown', async () => {
    const clock = fakeClock();
    let up = true;
    const f = countingFetch(() => (up ? json({ keys: [jwk] }) : new Response('', { status: 503 })));
    const jwks = new RemoteJwks('https://issuer.example/jwks', {
      clock,
      cooldownMs: 30_000,
      maxAgeMs: 600_000,
      fetch: f.fetch,
    });
    await jwks.resolve({ alg: 'ES256', kid: 'k1' });
    up = false;
    clock.advance(600_000);
    await assert.rejects(jwks.resolve({ alg: 'ES256', kid: 'k1' }), JwksUnavailableError);
    await assert.rejects(jwks.resolve({ alg: 'ES256', kid: 'k1' }), JwksUnavailableError);
    assert.equal(f.calls(), 2, 'the failed fetch is not retried within the cooldown');
    up = true;
    clock.advance(30_000);
    await jwks.resolve({ alg: 'ES256', kid: 'k1' });
    assert.equal(f.calls(), 3);
  });

  it('fails closed on a bad answer: not 200, too large, not JSON, no keys; keys it must not use are dropped', async () => {
    const cases: Array<() => Response> = [
      () => new Response('{}', { status: 500 }),
      () => json({ keys: [jwk], padding: 'x'.repeat(70_000) }),
      () => new Response('<html>', { status: 200 }),
      () => json({ nothing: true }),
    ];
    for (const answer of cases) {
      const jwks = new RemoteJwks('https://issuer.example/jwks', {
        clock: fakeClock(),
        cooldownMs: 1000,
        maxAgeMs: 1000,
        fetch: countingFetch(answer).fetch,
      });
      await assert.rejects(jwks.resolve({ alg: 'ES256', kid: 'k1' }), JwksUnavailableError);
    }
    const filtered = new RemoteJwks('https://issuer.example/jwks', {
      clock: fakeClock(),
      cooldownMs: 1000,
      maxAgeMs: 1000,
      fetch: countingFetch(() =>
        json({
          keys: [
            { ...jwk, use: 'x509-svid' },
            { kty: 'oct', k: 'c2VjcmV0', kid: 'k1', alg: 'HS256' },
          ],
        }),
      ).fetch,
    });
    await assert.rejects(filtered.resolve({ alg: 'ES256', kid: 'k1' }), /no applicable key|matches/i);
  });
});

describe('an issuer whose JWKS is down', () => {
  const clock = fakeClock(Date.UTC(2026, 4, 1, 8));
  let h: Harness;
  let github: LocalIssuer;
  before(async () => {
    github = await startLocalIssuer();
    h = await startHarness({
      clock,
      extraDocs: [
        classDoc({ name: 'ci', audiences: ['https://deploy.test'], scopes: ['d'], default_scopes: ['d'] }),
        rawDoc('issuer', {
          name: 'github',
          preset: 'github-actions',
          issuer: github.url,
          jwks_uri: `${github.url}/nowhere`,
          audience: 'https://writ.test',
          trust_domain: 'test.writ',
        }),
        githubWorkloadDoc('spiffe://test.writ/github/acme/deployer'),
      ],
    });
  });
  after(async () => {
    await h.close();
    await github.close();
  });

  it('answers 503 temporarily_unavailable, issues nothing and audits why', async () => {
    const token = await github.mint(githubClaims(Math.floor(clock.now() / 1000)));
    const issued = await count(h, 'token.issued');
    const r = await dpopTokenRequest(
      h,
      () => ({ grant_type: GrantType.jwtBearer, assertion: token, resource: 'https://deploy.test' }),
      generateDpopKey(),
    );
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'temporarily_unavailable');
    assert.equal(await count(h, 'token.issued'), issued);
    assert.equal((await lastEvent(h, 'token.refused')).data['reason'], 'jwks_unavailable');
  });

  it('keeps refusing (503) while the JWKS stays down, whatever key a token names', async () => {
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await new SignJWT({ iss: github.url, ...githubClaims(Math.floor(clock.now() / 1000)) })
      .setProtectedHeader({ alg: 'RS256', kid: 'whatever' })
      .sign(attacker.privateKey);
    clock.advance(60_000);
    const r = await dpopTokenRequest(
      h,
      () => ({ grant_type: GrantType.jwtBearer, assertion: forged, resource: 'https://deploy.test' }),
      generateDpopKey(),
    );
    assert.equal(r.status, 503);
    assert.equal(r.body['access_token'], undefined);
    assert.equal((await lastEvent(h, 'token.refused')).data['reason'], 'jwks_unavailable');
  });
});
