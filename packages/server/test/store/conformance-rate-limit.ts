import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Store } from '../../src/store/store.js';

/** Store contract cases for rate buckets (`rateLimit`); part of `runStoreConformance`. */

const NOW = 1_700_000_000_000;

interface Harness {
  store: Store;
  openPeer(): Promise<Store>;
}

const takes = async (store: Store, key: string, n: number, rate: number, burst: number, now: number) => {
  const waits: number[] = [];
  for (let i = 0; i < n; i++) waits.push(await store.rateLimit(key, rate, burst, now));
  return waits;
};

export function rateLimitConformanceCases(withStore: (fn: (t: Harness) => Promise<void>) => Promise<void>) {
  describe('rate buckets', () => {
    it('a new bucket allows `burst` requests, then refuses with the whole seconds until the next', () =>
      withStore(async ({ store }) => {
        assert.deepEqual(await takes(store, 'client:a', 4, 2, 3, NOW), [0, 0, 0, 1]);
        // Empty at 0.5 requests per second: two seconds until the next one.
        assert.deepEqual(await takes(store, 'client:slow', 3, 0.5, 2, NOW), [0, 0, 2]);
      }));

    it('refills at the rate, never above the burst; buckets are independent', () =>
      withStore(async ({ store }) => {
        assert.deepEqual(await takes(store, 'client:a', 3, 1, 2, NOW), [0, 0, 1]);
        assert.deepEqual(await takes(store, 'client:b', 1, 1, 2, NOW), [0]);
        assert.deepEqual(await takes(store, 'client:a', 2, 1, 2, NOW + 1000), [0, 1]);
        // A long pause refills to the burst, not beyond it.
        assert.deepEqual(await takes(store, 'client:a', 3, 1, 2, NOW + 3_600_000), [0, 0, 1]);
      }));

    it('a node whose clock is behind the bucket gets no refill from it', () =>
      withStore(async ({ store, openPeer }) => {
        const peer = await openPeer();
        assert.deepEqual(await takes(store, 'client:a', 2, 1, 2, NOW + 5000), [0, 0]);
        assert.deepEqual(await takes(peer, 'client:a', 1, 1, 2, NOW), [1]);
        assert.deepEqual(await takes(peer, 'client:a', 2, 1, 2, NOW + 6000), [0, 1]);
      }));

    it('40 concurrent requests from two instances: exactly `burst` pass', () =>
      withStore(async ({ store, openPeer }) => {
        const peer = await openPeer();
        const waits = await Promise.all(
          Array.from({ length: 40 }, (_, i) => (i % 2 ? store : peer).rateLimit('client:c', 1, 10, NOW)),
        );
        assert.equal(waits.filter((w) => w === 0).length, 10);
        assert.ok(waits.every((w) => w === 0 || w === 1));
      }));

    it('prune drops a bucket once it has refilled; the next request finds it full', () =>
      withStore(async ({ store }) => {
        assert.deepEqual(await takes(store, 'client:a', 2, 1, 2, NOW), [0, 0]);
        assert.equal(await store.prune(NOW + 999), 0);
        assert.equal(await store.prune(NOW + 2001), 1);
        assert.deepEqual(await takes(store, 'client:a', 3, 1, 2, NOW + 2001), [0, 0, 1]);
      }));

    it('a lease takes up to the number asked for, fewer when the bucket holds fewer, none when empty', () =>
      withStore(async ({ store }) => {
        // 2 a second up to 10: a new bucket gives 4, then 4, then the 2 left, then none for half a second.
        assert.deepEqual(await store.leaseRate('client:l', 2, 10, 4, NOW), { granted: 4, wait: 0 });
        assert.deepEqual(await store.leaseRate('client:l', 2, 10, 4, NOW), { granted: 4, wait: 0 });
        assert.deepEqual(await store.leaseRate('client:l', 2, 10, 4, NOW), { granted: 2, wait: 1 });
        assert.deepEqual(await store.leaseRate('client:l', 2, 10, 4, NOW), { granted: 0, wait: 1 });
        // A second refills two; a one-request take (rateLimit) shares the bucket.
        assert.deepEqual(await store.leaseRate('client:l', 2, 10, 1, NOW + 1000), { granted: 1, wait: 0 });
        assert.equal(await store.rateLimit('client:l', 2, 10, NOW + 1000), 0);
        assert.equal(await store.rateLimit('client:l', 2, 10, NOW + 1000), 1);
        // A lease never exceeds the burst, asked for more or not; a fractional ask takes whole requests.
        assert.deepEqual(await store.leaseRate('client:m', 1, 3, 100, NOW), { granted: 3, wait: 1 });
        assert.deepEqual(await store.leaseRate('client:n', 1, 3, 2.7, NOW), { granted: 2, wait: 0 });
      }));

    it('concurrent leases from two instances grant the burst once in all', () =>
      withStore(async ({ store, openPeer }) => {
        const peer = await openPeer();
        const leases = await Promise.all(
          Array.from({ length: 30 }, (_, i) => (i % 2 ? store : peer).leaseRate('client:d', 1, 50, 3, NOW)),
        );
        assert.equal(
          leases.reduce((n, l) => n + l.granted, 0),
          50,
        );
        assert.ok(leases.every((l) => l.granted >= 0 && l.granted <= 3));
        assert.equal((await store.leaseRate('client:d', 1, 50, 3, NOW)).granted, 0);
      }));

    it('leases of many buckets asked for together each get what they would alone', () =>
      withStore(async ({ store }) => {
        const keys = Array.from({ length: 20 }, (_, i) => `client:many-${i}`);
        const want = (i: number) => 1 + (i % 7);
        // All in one turn (one statement on PostgreSQL), a key twice, and another rate and burst beside.
        const [first, twice, other] = await Promise.all([
          Promise.all(keys.map((k, i) => store.leaseRate(k, 1, 10, want(i), NOW))),
          store.leaseRate('client:many-0', 1, 10, 2, NOW),
          store.leaseRate('client:other', 5, 3, 10, NOW),
        ]);
        assert.deepEqual(
          first.map((l) => l.granted),
          keys.map((_, i) => want(i)),
        );
        assert.deepEqual(twice, { granted: 2, wait: 0 });
        assert.deepEqual(other, { granted: 3, wait: 1 });
        const second = await Promise.all(keys.map((k) => store.leaseRate(k, 1, 10, 10, NOW)));
        assert.deepEqual(
          second.map((l) => [l.granted, l.wait]),
          keys.map((_, i) => [10 - want(i) - (i === 0 ? 2 : 0), 1]),
        );
      }));

    it('a lease taken inside a transaction draws on the same bucket, with the same arithmetic', () =>
      withStore(async ({ store }) => {
        const inside = await store.transaction(async (tx) => [
          await tx.leaseRate('client:tx', 1, 5, 3, NOW),
          await tx.leaseRate('client:tx', 1, 5, 4, NOW),
          await tx.leaseRate('client:tx-fresh', 2, 3, 10, NOW),
        ]);
        assert.deepEqual(inside, [
          { granted: 3, wait: 0 },
          { granted: 2, wait: 1 },
          { granted: 3, wait: 1 },
        ]);
        assert.deepEqual(await store.leaseRate('client:tx', 1, 5, 1, NOW + 1000), { granted: 1, wait: 1 });
      }));

    it('prune keeps a bucket a lease emptied until it has refilled', () =>
      withStore(async ({ store }) => {
        assert.equal((await store.leaseRate('client:p', 1, 4, 4, NOW)).granted, 4);
        assert.equal(await store.prune(NOW + 3000), 0);
        assert.equal(await store.prune(NOW + 4001), 1);
      }));
  });
}
