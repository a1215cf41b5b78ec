import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamFreshness } from '../src/verifier/stream-freshness.js';
import { manualClock } from './helpers/access-tokens.js';

// When the verifier's revocation set counts as current, from what the stream delivered, on a clock the
// test moves: stale from the start, current once caught up, stale again past the bound.

const BOUND = 15_000;

function fresh() {
  const clock = manualClock(1_800_000_000_000);
  return { clock, f: new StreamFreshness({ stalenessMs: BOUND, now: clock.now }) };
}

describe('StreamFreshness', () => {
  it('is stale until the stream has caught up, then until the bound passes without a word', () => {
    const { clock, f } = fresh();
    assert.ok(f.stale(), 'nothing heard yet');
    f.opened();
    f.heartbeat();
    assert.ok(!f.stale(), 'a server without head: its first heartbeat follows the catch-up');
    clock.advance(BOUND);
    assert.ok(!f.stale());
    clock.advance(1);
    assert.ok(f.stale());
    f.heartbeat();
    assert.ok(!f.stale(), 'a heartbeat on a current stream proves it current again');
  });

  it('a snapshot makes the stream current at once', () => {
    const { f } = fresh();
    f.opened();
    f.announced(40);
    f.snapshot();
    f.received('40');
    assert.ok(f.synced);
    assert.ok(!f.stale());
  });

  it('after a cut-off past the bound, stays stale until every missed event up to the head has come', () => {
    const { clock, f } = fresh();
    f.opened();
    f.snapshot();
    f.received('10');
    clock.advance(BOUND + 60_000);
    f.closed();
    assert.ok(f.stale());
    // The stream reopens: the server's head is 14; heartbeats and events up to 13 do not count.
    f.opened();
    f.announced(14);
    f.heartbeat();
    f.received('12');
    f.heartbeat();
    f.received('13');
    assert.ok(!f.synced);
    assert.ok(f.stale(), 'revocation 14 has not been heard yet');
    f.received('14');
    assert.ok(f.synced);
    assert.ok(!f.stale());
  });

  it('a reopened stream with nothing missed is current as soon as the head is announced', () => {
    const { clock, f } = fresh();
    f.opened();
    f.snapshot();
    f.received('7');
    clock.advance(BOUND * 2);
    f.opened();
    f.announced(7);
    f.received('7');
    assert.ok(!f.stale());
  });

  it('a head that is not a number never lets ids catch up; only a snapshot does', () => {
    const { f } = fresh();
    f.opened();
    f.announced('99');
    f.received('1000');
    f.heartbeat();
    assert.ok(!f.synced);
    assert.ok(f.stale());
    f.snapshot();
    f.received('1000');
    assert.ok(!f.stale());
  });

  it('a closed stream is no longer in sync but staleness still counts from when it was last heard', () => {
    const { clock, f } = fresh();
    f.opened();
    f.heartbeat();
    clock.advance(1000);
    f.closed();
    assert.ok(!f.synced);
    assert.ok(!f.stale());
    assert.equal(f.lastHeardMs, clock.now() - 1000);
    clock.advance(BOUND - 1000 + 1);
    assert.ok(f.stale());
  });
});
