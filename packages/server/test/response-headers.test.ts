import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fakeClock } from '../src/clock.js';
import { DpopNonces } from '../src/dpop/nonces.js';
import { type Harness, startHarness } from './helpers/harness.js';

/**
 * The headers every answer carries, set by hooks that run per request (`http/app.ts`) and by the token
 * route: a success, a refusal and an unknown path each get `x-content-type-options: nosniff`, and token
 * answers are never cached and carry the current DPoP nonce.
 */
describe('response headers', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('a token, a refusal and a 404 each carry nosniff; token answers carry no-store and the nonce', async () => {
    const ok = await h.requestToken();
    assert.equal(ok.status, 200);
    const refused = await h.requestToken({}, { claims: { aud: 'https://elsewhere.example' } });
    assert.equal(refused.status, 401);
    const missing = await h.writ.app.inject({ method: 'GET', url: '/no/such/path' });
    assert.equal(missing.statusCode, 404);
    for (const headers of [ok.headers, refused.headers, missing.headers])
      assert.equal(headers['x-content-type-options'], 'nosniff');
    for (const headers of [ok.headers, refused.headers]) {
      assert.equal(headers['cache-control'], 'no-store');
      assert.equal(headers['pragma'], 'no-cache');
    }
    assert.equal(ok.headers['dpop-nonce'], h.writ.ctx.dpopNonces.current());
  });
});

describe('DPoP nonces (one HMAC per time slot)', () => {
  const key = randomBytes(32);
  it('stay the same within a slot, change with the next, and are valid for their slot and the next only', () => {
    const clock = fakeClock();
    const nonces = new DpopNonces(key, 60, clock);
    const first = nonces.current();
    clock.advance(10_000);
    assert.equal(nonces.current(), first);
    clock.advance(60_000);
    const second = nonces.current();
    assert.notEqual(second, first);
    assert.equal(nonces.valid(first), true, 'the previous slot is still accepted');
    assert.equal(nonces.valid(second), true);
    clock.advance(60_000);
    assert.equal(nonces.valid(first), false, 'two slots back is refused');
    assert.equal(nonces.valid(second), true);
    // Back to a slot whose nonce is no longer kept: made again, the same.
    clock.advance(-120_000);
    assert.equal(nonces.current(), first);
  });

  it('refuse a tampered, foreign, missing or overlong nonce', () => {
    const clock = fakeClock();
    const nonces = new DpopNonces(key, 60, clock);
    const good = nonces.current();
    const flipped = `${good.slice(0, -1)}${good.endsWith('A') ? 'B' : 'A'}`;
    assert.equal(nonces.valid(flipped), false);
    assert.equal(nonces.valid(new DpopNonces(randomBytes(32), 60, clock).current()), false);
    assert.equal(nonces.valid(undefined), false);
    assert.equal(nonces.valid(''), false);
    assert.equal(nonces.valid(`${good}${'x'.repeat(64)}`), false);
  });
});
