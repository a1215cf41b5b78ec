import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fakeClock } from '../../src/clock.js';
import { ClockSkew } from '../../src/cluster/clock-skew.js';
import { StoreUnavailableError } from '../../src/errors.js';

/**
 * The skew measurement on its own: a database clock the test sets, answering after a round trip the test
 * chooses (the real database is in cluster-clock-skew.test.ts).
 */
function scene(o: { databaseMs: number; roundTripMs?: number; maxSkew?: number }) {
  const clock = fakeClock(Date.UTC(2026, 5, 1));
  const database = { at: clock.now() + o.databaseMs, roundTrip: o.roundTripMs ?? 10, down: false };
  const measured: number[] = [];
  const skew = new ClockSkew({
    cluster: {
      databaseTime: async () => {
        if (database.down) throw new StoreUnavailableError('postgres store: connection refused');
        // The answer is read halfway through the round trip.
        clock.advance(database.roundTrip / 2);
        const now = database.at + database.roundTrip / 2;
        clock.advance(database.roundTrip / 2);
        database.at += database.roundTrip;
        return now;
      },
    },
    clock,
    maxSkew: o.maxSkew ?? 2,
    onMeasure: (ms) => measured.push(ms),
  });
  return { skew, database, measured };
}

describe('clock skew measurement', () => {
  it('is this node minus the database, at the round trip’s midpoint; the bound itself still passes', async () => {
    const { skew, measured } = scene({ databaseMs: -2000 });
    await skew.measure();
    assert.deepEqual(skew.report(), { reference: 'database', skew_ms: 2000, max_skew_ms: 2000 });
    assert.deepEqual(measured, [2000]);
    assert.equal(skew.refusal(), undefined);
  });

  it('past the bound either way: a refusal that names the skew, its direction and the setting', async () => {
    const ahead = scene({ databaseMs: -2001 });
    await ahead.skew.measure();
    assert.equal(
      ahead.skew.refusal(),
      "this node's clock is 2.0s ahead of the database's, more than the 2s allowed (cluster.max_clock_skew); retry on another node",
    );
    const behind = scene({ databaseMs: 45_000, maxSkew: 30 });
    await behind.skew.measure();
    assert.match(behind.skew.refusal() ?? '', /is 45\.0s behind the database's, more than the 30s allowed/);
  });

  it('a round trip longer than the bound is no measurement: the last one stands', async () => {
    const { skew, database } = scene({ databaseMs: 0 });
    await skew.measure();
    database.at -= 60_000;
    database.roundTrip = 2500;
    await skew.measure();
    assert.equal(skew.report().skew_ms, 0);
    assert.equal(skew.refusal(), undefined);
  });

  it('an unreachable database rejects the measurement and leaves the last one', async () => {
    const { skew, database } = scene({ databaseMs: -10_000 });
    await skew.measure();
    database.down = true;
    await assert.rejects(skew.measure(), StoreUnavailableError);
    assert.equal(skew.report().skew_ms, 10_000);
    assert.notEqual(skew.refusal(), undefined);
  });

  it('no shared store, or one on the callers’ times: the node’s clock is the reference, never refused', async () => {
    const embedded = new ClockSkew({ cluster: undefined, clock: fakeClock(), maxSkew: 2 });
    await embedded.measure();
    assert.deepEqual(embedded.report(), { reference: 'node', skew_ms: null, max_skew_ms: 2000 });
    const callers = new ClockSkew({
      cluster: { databaseTime: async () => undefined },
      clock: fakeClock(),
      maxSkew: 2,
    });
    await callers.measure();
    assert.equal(callers.report().reference, 'node');
    assert.equal(callers.refusal(), undefined);
  });
});
