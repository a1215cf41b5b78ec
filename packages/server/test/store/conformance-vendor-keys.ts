import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Store } from '../../src/store/store.js';
import type { VendorKeyRecord } from '../../src/vendor/vendor-key.js';

/** Store contract cases for vendor keys; part of `runStoreConformance`. */

const NOW = 1_700_000_000_000;

interface Harness {
  store: Store;
  openPeer(): Promise<Store>;
}

const version = (name: string, v: number, extra: Partial<VendorKeyRecord> = {}): VendorKeyRecord => ({
  name,
  version: v,
  sealed: randomBytes(60),
  fingerprint: randomBytes(8).toString('hex'),
  proxies: ['spiffe://test.writ/proxy'],
  createdAt: NOW + v,
  createdBy: 'ops',
  replacedAt: null,
  overlapUntil: null,
  ...extra,
});

export function vendorKeyConformanceCases(withStore: (fn: (t: Harness) => Promise<void>) => Promise<void>) {
  describe('vendor keys', () => {
    it('keeps every version byte for byte, oldest first, by name; a peer sees them', () =>
      withStore(async ({ store, openPeer }) => {
        const a1 = version('payments', 1);
        const a2 = version('payments', 2);
        const b1 = version('mail', 1, { proxies: [] });
        for (const k of [a2, b1, a1]) await store.putVendorKey(k);
        assert.deepEqual(await store.listVendorKeys('payments'), [a1, a2]);
        assert.deepEqual(await store.listVendorKeys(), [b1, a1, a2]);
        assert.deepEqual(await store.listVendorKeys('nothing'), []);
        const peer = await openPeer();
        assert.deepEqual(await peer.listVendorKeys('payments'), [a1, a2]);
      }));

    it('an update changes proxies, replacement and overlap only, never the sealed key', () =>
      withStore(async ({ store }) => {
        const k = version('payments', 1);
        await store.putVendorKey(k);
        await store.putVendorKey({
          ...k,
          sealed: randomBytes(60),
          fingerprint: 'changed',
          proxies: ['spiffe://test.writ/other'],
          replacedAt: NOW + 10,
          overlapUntil: NOW + 3_600_000,
        });
        const [got] = await store.listVendorKeys('payments');
        assert.deepEqual(got, {
          ...k,
          proxies: ['spiffe://test.writ/other'],
          replacedAt: NOW + 10,
          overlapUntil: NOW + 3_600_000,
        });
      }));

    it('deletes one version or every version of a name, and says how many', () =>
      withStore(async ({ store }) => {
        for (const v of [1, 2, 3]) await store.putVendorKey(version('payments', v));
        await store.putVendorKey(version('mail', 1));
        assert.equal(await store.deleteVendorKeys('payments', 1), 1);
        assert.equal(await store.deleteVendorKeys('payments', 1), 0);
        assert.deepEqual(
          (await store.listVendorKeys('payments')).map((k) => k.version),
          [2, 3],
        );
        assert.equal(await store.deleteVendorKeys('payments'), 2);
        assert.deepEqual(
          (await store.listVendorKeys()).map((k) => k.name),
          ['mail'],
        );
      }));
  });
}
