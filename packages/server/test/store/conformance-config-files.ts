import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AppliedConfigFile,
  CONFIG_FILES_VERSIONS_KEPT,
  type ConfigFilesListing,
} from '../../src/store/config-file-rows.js';
import type { Store } from '../../src/store/store.js';

/** Store contract cases for the applied config's files; part of `runStoreConformance`. */

interface Harness {
  store: Store;
  openPeer(): Promise<Store>;
}

function file(path: string, digest: string, extra: Partial<AppliedConfigFile> = {}): AppliedConfigFile {
  return {
    path,
    digest,
    refs: [],
    documents: [{ kind: 'workload', index: 0, doc: { id: `spiffe://test/${path}`, note: 'Zoë ✓' } }],
    ...extra,
  };
}

export function configFileConformanceCases(
  withStore: (fn: (t: Harness) => Promise<void>) => Promise<void>,
): void {
  describe('applied config files', () => {
    it('stores, lists by path, replaces and deletes; a peer sees them', () =>
      withStore(async ({ store, openPeer }) => {
        assert.deepEqual(await store.listConfigFiles(), []);
        const b = file('workloads/b.yaml', 'digest-b', {
          refs: ['workloads/b.pub.jwk'],
          documents: [
            { kind: 'workload', index: 0, doc: { id: 'spiffe://test/b0' } },
            { kind: 'workload', index: 1, doc: { id: 'spiffe://test/b1', n: 1, t: true } },
          ],
        });
        await store.putConfigFiles([b, file('classes/a.yaml', 'digest-a')]);
        assert.deepEqual(
          (await store.listConfigFiles()).map((f) => f.path),
          ['classes/a.yaml', 'workloads/b.yaml'],
        );
        assert.deepEqual((await store.listConfigFiles())[1], b);
        await store.putConfigFiles([file('workloads/b.yaml', 'digest-b2')]);
        const peer = await openPeer();
        const seen = await peer.listConfigFiles();
        assert.equal(seen.find((f) => f.path === 'workloads/b.yaml')?.digest, 'digest-b2');
        assert.deepEqual(seen.find((f) => f.path === 'workloads/b.yaml')?.refs, []);
        await store.deleteConfigFiles(['workloads/b.yaml', 'workloads/never.yaml']);
        assert.deepEqual(
          (await store.listConfigFiles()).map((f) => f.path),
          ['classes/a.yaml'],
        );
        await store.deleteConfigFiles('all');
        assert.deepEqual(await store.listConfigFiles(), []);
      }));

    it('lists some paths, or none of the documents; keeps stamps, and records one only with its digest', () =>
      withStore(async ({ store, openPeer }) => {
        const a = file('classes/a.yaml', 'digest-a', { stamp: '12:1700000000000.5:1700000000001.25:77' });
        const b = file('workloads/b.yaml', 'digest-b', {
          refs: ['workloads/b.pub.jwk'],
          documents: [{ kind: 'workload', index: 0, doc: { id: 'spiffe://test/b', refs: [] } }],
        });
        const c = file('workloads/c.yaml', 'digest-c');
        await store.putConfigFiles([a, b, c]);
        assert.deepEqual(
          await store.listConfigFiles({ paths: ['workloads/c.yaml', 'classes/a.yaml', 'x'] }),
          [a, c],
        );
        assert.deepEqual(await store.listConfigFiles({ documents: false }), [
          { ...a, documents: [] },
          { ...b, documents: [] },
          { ...c, documents: [] },
        ]);
        assert.deepEqual(await store.listConfigFiles({ paths: ['workloads/b.yaml'], documents: false }), [
          { ...b, documents: [] },
        ]);
        // Only where the digest is still the one given: a file changed since keeps no stale stamp.
        await store.stampConfigFiles([
          { path: 'workloads/c.yaml', digest: 'digest-c', stamp: '3:1:2:4' },
          { path: 'classes/a.yaml', digest: 'not-a', stamp: '9:9:9:9' },
          { path: 'never.yaml', digest: 'x', stamp: '1:1:1:1' },
        ]);
        const peer = await openPeer();
        const seen = await peer.listConfigFiles({ documents: false });
        assert.equal(seen.find((f) => f.path === 'workloads/c.yaml')?.stamp, '3:1:2:4');
        assert.equal(seen.find((f) => f.path === 'classes/a.yaml')?.stamp, a.stamp);
        assert.equal(seen.length, 3);
        // Replaced without a stamp: none.
        await store.putConfigFiles([file('classes/a.yaml', 'digest-a2')]);
        assert.equal((await store.listConfigFiles({ paths: ['classes/a.yaml'] }))[0]?.stamp, undefined);
      }));

    it('versions the record: changes since a version it holds, none for another, a pruned or a forgotten one', () =>
      withStore(async ({ store, openPeer }) => {
        const paths = (l: ConfigFilesListing | undefined) => l?.files.map((f) => f.path);
        const v0 = (await store.listConfigFileChanges())!.version;
        await store.putConfigFiles([
          file('classes/a.yaml', 'digest-a'),
          file('workloads/b.yaml', 'digest-b'),
        ]);
        const whole = (await store.listConfigFileChanges())!;
        assert.ok(whole.version.n > v0.n);
        assert.notEqual(whole.version.tag, v0.tag);
        assert.deepEqual(paths(whole), ['classes/a.yaml', 'workloads/b.yaml']);
        assert.deepEqual(whole.files[0]?.documents, []);
        const v1 = whole.version;
        // Nothing since: the same version, nothing listed.
        assert.deepEqual(await store.listConfigFileChanges(v1), { version: v1, files: [], removed: [] });
        // A change, a stamp and a removal, each listed after v1 (a stamp not recorded changes nothing).
        await store.putConfigFiles([file('workloads/c.yaml', 'digest-c')]);
        await store.stampConfigFiles([
          { path: 'classes/a.yaml', digest: 'digest-a', stamp: '1:2:3:4' },
          { path: 'workloads/b.yaml', digest: 'not-b', stamp: '9:9:9:9' },
        ]);
        await store.deleteConfigFiles(['workloads/b.yaml']);
        const peer = await openPeer();
        const since = (await peer.listConfigFileChanges(v1))!;
        assert.ok(since.version.n > v1.n);
        assert.deepEqual(paths(since), ['classes/a.yaml', 'workloads/c.yaml']);
        assert.equal(since.files[0]?.stamp, '1:2:3:4');
        assert.deepEqual(since.removed, ['workloads/b.yaml']);
        // Removed, then put again: listed as a file, not as removed.
        await store.putConfigFiles([file('workloads/b.yaml', 'digest-b2')]);
        const back = (await store.listConfigFileChanges(v1))!;
        assert.deepEqual(back.removed, []);
        assert.equal(back.files.find((f) => f.path === 'workloads/b.yaml')?.digest, 'digest-b2');
        // A rolled-back change leaves the version where it was.
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.putConfigFiles([file('workloads/d.yaml', 'd')]);
            throw new Error('apply fails');
          }),
          /apply fails/,
        );
        assert.deepEqual((await store.listConfigFileChanges())!.version, back.version);
        // A version the store does not hold: another tag, one ahead, or (after a whole apply) any before.
        assert.equal(await store.listConfigFileChanges({ n: v1.n, tag: 'another-store' }), undefined);
        assert.equal(await store.listConfigFileChanges({ n: back.version.n + 1, tag: v1.tag }), undefined);
        await store.deleteConfigFiles('all');
        assert.equal(await store.listConfigFileChanges(v1), undefined);
        assert.equal(await store.listConfigFileChanges(back.version), undefined);
        const now = (await store.listConfigFileChanges())!;
        assert.deepEqual(await store.listConfigFileChanges(now.version), {
          version: now.version,
          files: [],
          removed: [],
        });
      }));

    it('keeps the last CONFIG_FILES_VERSIONS_KEPT versions', () =>
      withStore(async ({ store }) => {
        const first = (await store.listConfigFileChanges())!.version;
        await store.putConfigFiles([file('workloads/a.yaml', 'a0')]);
        const kept = (await store.listConfigFileChanges())!.version;
        for (let i = 1; i < CONFIG_FILES_VERSIONS_KEPT; i++)
          await store.stampConfigFiles([{ path: 'workloads/a.yaml', digest: 'a0', stamp: `${i}:1:1:1` }]);
        assert.equal(await store.listConfigFileChanges(first), undefined);
        assert.deepEqual(
          (await store.listConfigFileChanges(kept))?.files.map((f) => f.stamp),
          [`${CONFIG_FILES_VERSIONS_KEPT - 1}:1:1:1`],
        );
      }));

    it('writes thousands in one call, and rolls back with the transaction', () =>
      withStore(async ({ store }) => {
        const many = Array.from({ length: 2500 }, (_, i) =>
          file(`workloads/w-${String(i).padStart(4, '0')}.yaml`, `d${i}`),
        );
        await store.putConfigFiles(many);
        assert.equal((await store.listConfigFiles()).length, 2500);
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.deleteConfigFiles(many.slice(0, 1500).map((f) => f.path));
            await tx.putConfigFiles([file('workloads/new.yaml', 'n')]);
            throw new Error('apply fails');
          }),
          /apply fails/,
        );
        const after = await store.listConfigFiles();
        assert.equal(after.length, 2500);
        assert.equal(
          after.some((f) => f.path === 'workloads/new.yaml'),
          false,
        );
        await store.deleteConfigFiles(many.slice(0, 1500).map((f) => f.path));
        assert.equal((await store.listConfigFiles()).length, 1000);
      }));
  });
}
