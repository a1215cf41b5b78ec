import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestRefusal, TokenError, verifyAccessTokenJwt } from '../src/verifier/index.js';
import { type VerifiedToken, VerifiedTokenCache } from '../src/verifier/verified-token-cache.js';
import { accessTokenClaims, signer, signToken } from './helpers/access-tokens.js';

// The verified-token cache skips only the signature on a repeat presentation: time and key are checked
// again, and nothing but the very same token string is ever served from it.

const ISSUER = 'https://writ.example';
const API = 'https://api.example';
const NOW = 1_800_000_000;
const LEEWAY = 5;
const es = signer('ES256', 'k1');

function token(over: Record<string, unknown> = {}): string {
  return signToken(es, {}, accessTokenClaims(ISSUER, API, NOW, over));
}

/** The real signature check, counted. */
function verifier(nowSeconds: () => number) {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    verify: (t: string) => (): VerifiedToken => {
      calls++;
      const v = verifyAccessTokenJwt(t, {
        issuer: ISSUER,
        audience: API,
        nowSeconds: nowSeconds(),
        leeway: LEEWAY,
        maxBytes: 8192,
        keys: [es.key],
      });
      return { claims: v.claims, kid: v.kid, thumbprint: v.key.thumbprint };
    },
  };
}

const published = (thumbprint: string) => thumbprint === es.key.thumbprint;
const at = (nowSeconds: number) => ({ nowSeconds, leeway: LEEWAY, publishes: published });

function refusedWith(reason: string) {
  return (err: unknown) =>
    err instanceof RequestRefusal && err.code === 'invalid_token' && err.reason === reason;
}

describe('VerifiedTokenCache', () => {
  it('verifies a token once; the same token again is a hit with the same claims', async () => {
    const cache = new VerifiedTokenCache();
    const v = verifier(() => NOW);
    const t = token();
    const first = await cache.verified(t, at(NOW), v.verify(t));
    const second = await cache.verified(t, at(NOW + 10), v.verify(t));
    assert.equal(first.cached, false);
    assert.equal(second.cached, true);
    assert.deepEqual(second.claims, first.claims);
    assert.equal(second.kid, 'k1');
    assert.equal(v.calls, 1);
  });

  it('a token altered in any character is never served from the cache (its signature is checked)', async () => {
    const cache = new VerifiedTokenCache();
    const v = verifier(() => NOW);
    const t = token();
    await cache.verified(t, at(NOW), v.verify(t));
    const [h, p, s] = t.split('.') as [string, string, string];
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), scope: 'admin' })).toString('base64url')}.${s}`;
    await assert.rejects(
      cache.verified(forged, at(NOW), v.verify(forged)),
      (err) => err instanceof TokenError && err.reason === 'bad_signature',
    );
    assert.equal(v.calls, 2);
  });

  it('refuses a cached token once it has expired (past the leeway), and forgets it', async () => {
    const cache = new VerifiedTokenCache();
    const v = verifier(() => NOW);
    const t = token({ exp: NOW + 60, jti: 'cached-jti' });
    await cache.verified(t, at(NOW), v.verify(t));
    // Within the leeway after exp it is still a hit.
    assert.equal((await cache.verified(t, at(NOW + 60 + LEEWAY - 1), v.verify(t))).cached, true);
    await assert.rejects(cache.verified(t, at(NOW + 60 + LEEWAY), v.verify(t)), (err) => {
      assert.ok(refusedWith('expired')(err));
      // Verified once: the refusal names the token, so the use is reported under its jti.
      assert.equal((err as RequestRefusal).claims?.jti, 'cached-jti');
      return true;
    });
    assert.equal(cache.size, 0);
    assert.equal(v.calls, 1);
  });

  it('refuses a cached token that is not yet valid at the time asked (a clock stepped back)', async () => {
    const cache = new VerifiedTokenCache();
    const v = verifier(() => NOW);
    const t = token();
    await cache.verified(t, at(NOW), v.verify(t));
    await assert.rejects(cache.verified(t, at(NOW - LEEWAY - 1), v.verify(t)), refusedWith('nbf'));
  });

  it('verifies again from scratch once the key that verified it is no longer published', async () => {
    const cache = new VerifiedTokenCache();
    const v = verifier(() => NOW);
    const t = token();
    await cache.verified(t, at(NOW), v.verify(t));
    const retired = { ...at(NOW), publishes: () => false };
    const again = await cache.verified(t, retired, v.verify(t));
    assert.equal(again.cached, false);
    assert.equal(v.calls, 2);
  });

  it('is bounded: past its size the oldest token is forgotten and verified again', async () => {
    const cache = new VerifiedTokenCache(2);
    const v = verifier(() => NOW);
    const [a, b, c] = [token(), token(), token()];
    for (const t of [a, b, c]) await cache.verified(t, at(NOW), v.verify(t));
    assert.equal(cache.size, 2);
    assert.equal((await cache.verified(c, at(NOW), v.verify(c))).cached, true);
    assert.equal((await cache.verified(a, at(NOW), v.verify(a))).cached, false);
    assert.equal(v.calls, 4);
  });
});
