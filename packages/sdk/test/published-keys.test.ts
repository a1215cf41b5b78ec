import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { PublishedKeys } from '../src/verifier/published-keys.js';
import { manualClock, signer } from './helpers/access-tokens.js';

// The verifier's copy of the issuer's JWKS: what it keeps, when it asks again, and what a failing or
// hostile issuer answer does to it.

const ISSUER = 'https://writ.example';

/** A JWKS endpoint the test scripts: each fetch takes the next answer (the last one repeats). */
function jwksEndpoint(...answers: Array<() => Response>) {
  const urls: string[] = [];
  const fetch = (async (url: string | URL | Request) => {
    urls.push(String(url));
    return (answers[Math.min(urls.length, answers.length) - 1] as () => Response)();
  }) as typeof globalThis.fetch;
  return { fetch, urls };
}

const jwks =
  (...keys: unknown[]) =>
  () =>
    Response.json({ keys });

describe('PublishedKeys', () => {
  it('keeps every key of the JWKS that imports and leaves out the rest', async () => {
    const a = signer('ES256', 'a');
    const b = signer('EdDSA', 'b');
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const endpoint = jwksEndpoint(
      jwks(
        a.publicJwk,
        { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' },
        { ...weak, kid: 'weak', alg: 'RS256' },
        b.publicJwk,
        'junk',
      ),
    );
    const keys = new PublishedKeys({
      issuer: ISSUER,
      fetch: endpoint.fetch,
      now: () => 0,
      cooldownMs: 30_000,
    });
    await keys.refresh();
    assert.deepEqual(endpoint.urls, [`${ISSUER}/.well-known/jwks.json`]);
    assert.deepEqual(
      keys.keys.map((k) => k.kid),
      ['a', 'b'],
    );
    assert.ok(keys.has('a') && keys.has('b'));
    assert.ok(!keys.has('hmac') && !keys.has('weak'));
    assert.ok(keys.publishes(a.key.thumbprint));
    assert.ok(!keys.publishes(signer('ES256', 'a').key.thumbprint), 'same kid, other key: not published');
  });

  it('a rotation replaces the keys: the retired one is no longer published', async () => {
    const old = signer('ES256', 'k1');
    const next = signer('ES256', 'k2');
    const endpoint = jwksEndpoint(jwks(old.publicJwk), jwks(next.publicJwk));
    const keys = new PublishedKeys({ issuer: ISSUER, fetch: endpoint.fetch, now: () => 0, cooldownMs: 0 });
    await keys.refresh();
    assert.ok(keys.publishes(old.key.thumbprint));
    await keys.refresh();
    assert.ok(!keys.publishes(old.key.thumbprint));
    assert.ok(keys.publishes(next.key.thumbprint));
  });

  it('a failing or malformed answer throws and keeps the keys held', async () => {
    const a = signer('ES256', 'a');
    const endpoint = jwksEndpoint(
      jwks(a.publicJwk),
      () => new Response('down', { status: 503 }),
      () => Response.json({ keys: 'none' }),
      () => new Response('not json'),
    );
    const keys = new PublishedKeys({ issuer: ISSUER, fetch: endpoint.fetch, now: () => 0, cooldownMs: 0 });
    await keys.refresh();
    await assert.rejects(keys.refresh(), /HTTP 503/);
    await assert.rejects(keys.refresh(), /no keys/);
    await assert.rejects(keys.refresh());
    assert.deepEqual(
      keys.keys.map((k) => k.kid),
      ['a'],
    );
  });

  it('an unknown kid fetches again at most once per cooldown, failed fetches included', async () => {
    const clock = manualClock(1_000_000);
    const a = signer('ES256', 'a');
    const endpoint = jwksEndpoint(
      jwks(a.publicJwk),
      () => new Response('down', { status: 500 }),
      jwks(a.publicJwk),
    );
    const keys = new PublishedKeys({
      issuer: ISSUER,
      fetch: endpoint.fetch,
      now: clock.now,
      cooldownMs: 30_000,
    });
    await keys.refresh();
    // Tokens naming made-up kids, one after the other: none of them reaches the issuer.
    clock.advance(29_999);
    assert.equal(await keys.refreshForUnknownKey(), false);
    assert.equal(endpoint.urls.length, 1);
    clock.advance(1);
    assert.equal(await keys.refreshForUnknownKey(), true, 'the cooldown has passed');
    assert.equal(endpoint.urls.length, 2);
    // That fetch failed (HTTP 500): it still counts, and the keys are kept.
    assert.equal(await keys.refreshForUnknownKey(), false);
    assert.equal(endpoint.urls.length, 2);
    assert.ok(keys.has('a'));
    clock.advance(30_000);
    assert.equal(await keys.refreshForUnknownKey(), true);
    assert.equal(endpoint.urls.length, 3);
  });
});
