import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { ConsoleSession } from '../../src/console/console-session.js';
import type { Store } from '../../src/store/store.js';

/** Store contract cases for console sessions; part of `runStoreConformance`. */

const NOW = 1_700_000_000_000;

interface Harness {
  store: Store;
  openPeer(): Promise<Store>;
}

const session = (extra: Partial<ConsoleSession> = {}): ConsoleSession => ({
  idHash: randomBytes(32).toString('base64url'),
  operator: 'alice',
  person: 'alice',
  csrf: randomBytes(32).toString('base64url'),
  via: 'link',
  createdAt: NOW,
  lastSeenAt: NOW,
  expiresAt: NOW + 8 * 3_600_000,
  ...extra,
});

export function consoleConformanceCases(withStore: (fn: (t: Harness) => Promise<void>) => Promise<void>) {
  describe('console sessions', () => {
    it('keeps a session by its id hash; a peer (another node) reads it; no person is null', () =>
      withStore(async ({ store, openPeer }) => {
        const a = session();
        const b = session({ operator: 'robot', person: null, via: 'oidc' });
        await store.putConsoleSession(a);
        await store.putConsoleSession(b);
        assert.deepEqual(await store.getConsoleSession(a.idHash), a);
        assert.deepEqual(await (await openPeer()).getConsoleSession(b.idHash), b);
        assert.equal(await store.getConsoleSession(session().idHash), undefined);
      }));

    it('the same id hash cannot open a second session', () =>
      withStore(async ({ store }) => {
        const a = session();
        await store.putConsoleSession(a);
        await assert.rejects(store.putConsoleSession({ ...a, operator: 'mallory' }));
        assert.equal((await store.getConsoleSession(a.idHash))?.operator, 'alice');
      }));

    it('touch moves last seen forward only; false for an unknown session', () =>
      withStore(async ({ store, openPeer }) => {
        const a = session();
        await store.putConsoleSession(a);
        assert.equal(await store.touchConsoleSession(a.idHash, NOW + 5000), true);
        assert.equal(await (await openPeer()).touchConsoleSession(a.idHash, NOW + 1000), true);
        assert.equal((await store.getConsoleSession(a.idHash))?.lastSeenAt, NOW + 5000);
        assert.equal(await store.touchConsoleSession(session().idHash, NOW), false);
      }));

    it('delete ends a session once; prune drops those past their absolute end only', () =>
      withStore(async ({ store }) => {
        const a = session();
        const old = session({ expiresAt: NOW - 1 });
        const live = session({ expiresAt: NOW + 1 });
        for (const s of [a, old, live]) await store.putConsoleSession(s);
        assert.equal(await store.deleteConsoleSession(a.idHash), true);
        assert.equal(await store.deleteConsoleSession(a.idHash), false);
        assert.equal(await store.getConsoleSession(a.idHash), undefined);
        await store.prune(NOW);
        assert.equal(await store.getConsoleSession(old.idHash), undefined);
        assert.deepEqual(await store.getConsoleSession(live.idHash), live);
      }));
  });
}
