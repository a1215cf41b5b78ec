import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BreakGlass } from '../../src/governance/break-glass.js';
import type { CredentialException, ExceptionRuntime } from '../../src/governance/exception.js';
import type { Store } from '../../src/store/store.js';

/**
 * Store contract cases for governance: the exceptions registry (declarations and their runtime state)
 * and break-glass grants; part of `runStoreConformance`.
 */

const NOW = 1_700_000_000_000;

interface Harness {
  store: Store;
  openPeer(): Promise<Store>;
}

function exception(id: string, over: Partial<CredentialException> = {}): CredentialException {
  return {
    id,
    covers: { kind: 'legacy_client_secret', class: 'legacy', workloads: ['spiffe://test/cron'] },
    owner: 'team-ünïcødé',
    justification: 'the vendor tool cannot sign JWTs',
    controls: { sourceNetworks: ['10.0.0.0/8'], rate: { requests: 10, per: 60 }, scopes: ['r'] },
    expiresAt: NOW + 86_400_000,
    reviewEvery: 90 * 86_400,
    alertBefore: 14 * 86_400,
    ...over,
  };
}

function grant(id: string, over: Partial<BreakGlass> = {}): BreakGlass {
  return {
    id,
    workload: 'spiffe://test/w1',
    cls: 'admin-ish',
    reason: 'incident #42 ✓',
    duration: 1800,
    emergency: false,
    requestedBy: 'alice',
    requestedAt: NOW,
    state: 'pending',
    ...over,
  };
}

export function governanceConformanceCases(withStore: (fn: (t: Harness) => Promise<void>) => Promise<void>) {
  describe('governance: exceptions registry', () => {
    it('stores declarations with empty runtime state, replaces a declaration keeping its runtime, deletes', () =>
      withStore(async ({ store, openPeer }) => {
        assert.deepEqual(await store.listExceptions(), []);
        const bearer = exception('b-bearer', {
          covers: { kind: 'bearer_class', class: 'reports' },
          controls: {},
        });
        const device = exception('a-device', {
          description: 'a kiosk',
          covers: { kind: 'long_lived_token', workload: 'spiffe://test/kiosk', class: 'k', maxTtl: 86_400 },
        });
        await store.putException(bearer);
        await store.putException(device);
        assert.deepEqual(await store.listExceptions(), [
          { ...device, runtime: {} },
          { ...bearer, runtime: {} },
        ]);
        const renewed: ExceptionRuntime = {
          renewal: {
            expiresAt: NOW + 2e9,
            declaredExpiresAt: device.expiresAt,
            by: 'ops',
            at: NOW,
            note: 'n',
          },
        };
        assert.equal(await store.setExceptionRuntime('a-device', renewed, {}), true);
        // A new declaration (writ apply) keeps what operators did at runtime.
        const redeclared = { ...device, owner: 'team-kiosk' };
        await store.putException(redeclared);
        assert.deepEqual(await store.getException('a-device'), { ...redeclared, runtime: renewed });
        const peer = await openPeer();
        assert.deepEqual(await peer.getException('a-device'), { ...redeclared, runtime: renewed });
        await store.deleteException('a-device');
        await store.deleteException('none');
        assert.equal(await store.getException('a-device'), undefined);
        assert.deepEqual(await store.listExceptions(), [{ ...bearer, runtime: {} }]);
      }));

    it('setExceptionRuntime changes the state only from the state expected: one of two racing writers wins', () =>
      withStore(async ({ store, openPeer }) => {
        await store.putException(exception('x'));
        const alerted: ExceptionRuntime = { alerted: { expiresAt: NOW + 86_400_000, at: NOW } };
        const retired: ExceptionRuntime = { retired: { by: 'bob', at: NOW, note: 'done' } };
        const peer = await openPeer();
        const results = await Promise.all([
          store.setExceptionRuntime('x', alerted, {}),
          peer.setExceptionRuntime('x', retired, {}),
        ]);
        assert.deepEqual(results.filter(Boolean).length, 1, 'exactly one writer wins');
        const won = results[0] ? alerted : retired;
        assert.deepEqual((await store.getException('x'))?.runtime, won);
        assert.equal(await store.setExceptionRuntime('x', {}, {}), false, 'stale expectation');
        assert.equal(await store.setExceptionRuntime('nope', alerted, {}), false, 'unknown id');
        const both = { ...won, ...(results[0] ? retired : alerted) };
        assert.equal(await store.setExceptionRuntime('x', both, won), true);
        assert.deepEqual((await peer.getException('x'))?.runtime, both);
      }));
  });

  describe('governance: break-glass grants', () => {
    it('creates, reads and lists grants by workload, state, open review and end; ids are unique', () =>
      withStore(async ({ store, openPeer }) => {
        const a = grant('bg-a');
        const b = grant('bg-b', {
          workload: 'spiffe://test/w2',
          requestedAt: NOW + 1,
          state: 'active',
          emergency: true,
          grantedAt: NOW + 1,
          endsAt: NOW + 1_800_001,
          taskId: 't-1',
          reviewDue: NOW + 86_400_001,
        });
        const c = grant('bg-c', {
          requestedAt: NOW + 2,
          state: 'ended',
          approvedBy: 'bob',
          grantedAt: NOW + 2,
          endsAt: NOW + 60_002,
          endedAt: NOW + 60_002,
          endCause: 'expired',
          review: { note: 'fine', by: 'bob', at: NOW + 70_000 },
        });
        for (const g of [c, a, b]) await store.createBreakGlass(g);
        await assert.rejects(store.createBreakGlass(grant('bg-a')));
        assert.deepEqual(await store.getBreakGlass('bg-b'), b);
        assert.equal(await store.getBreakGlass('nope'), undefined);
        const ids = async (q: Parameters<Store['listBreakGlass']>[0], s: Store = store) =>
          (await s.listBreakGlass(q)).map((g) => g.id);
        assert.deepEqual(await ids({ limit: 10 }), ['bg-a', 'bg-b', 'bg-c']);
        assert.deepEqual(await ids({ limit: 2 }), ['bg-a', 'bg-b']);
        assert.deepEqual(await ids({ workload: 'spiffe://test/w1', limit: 10 }), ['bg-a', 'bg-c']);
        assert.deepEqual(await ids({ state: 'active', limit: 10 }), ['bg-b']);
        assert.deepEqual(await ids({ openReview: true, limit: 10 }), ['bg-a', 'bg-b']);
        assert.deepEqual(await ids({ openReview: false, limit: 10 }), ['bg-c']);
        assert.deepEqual(await ids({ state: 'active', endsBy: NOW + 1_800_000, limit: 10 }), []);
        assert.deepEqual(await ids({ state: 'active', endsBy: NOW + 1_800_001, limit: 10 }), ['bg-b']);
        const peer = await openPeer();
        assert.deepEqual(await peer.listBreakGlass({ limit: 10 }), [a, b, c]);
      }));

    it('updateBreakGlass replaces a grant only from the state expected: one of two approvers wins', () =>
      withStore(async ({ store, openPeer }) => {
        await store.createBreakGlass(grant('bg-1'));
        const peer = await openPeer();
        const by = (approver: string): BreakGlass =>
          grant('bg-1', {
            state: 'active',
            approvedBy: approver,
            grantedAt: NOW + 5,
            endsAt: NOW + 1_800_005,
            taskId: `t-${approver}`,
          });
        const results = await Promise.all([
          store.updateBreakGlass(by('bob'), 'pending'),
          peer.updateBreakGlass(by('carol'), 'pending'),
        ]);
        assert.equal(results.filter(Boolean).length, 1, 'exactly one approval wins');
        const winner = by(results[0] ? 'bob' : 'carol');
        assert.deepEqual(await store.getBreakGlass('bg-1'), winner);
        assert.deepEqual(await store.listBreakGlass({ state: 'active', endsBy: NOW + 1_800_005, limit: 5 }), [
          winner,
        ]);
        const closed: BreakGlass = {
          ...winner,
          state: 'ended',
          endedAt: NOW + 10,
          endCause: 'closed',
          review: { note: 'rotated the key', by: 'alice', at: NOW + 10 },
        };
        assert.equal(await store.updateBreakGlass(closed, 'pending'), false, 'no longer pending');
        assert.equal(await store.updateBreakGlass(closed, 'active'), true);
        assert.deepEqual(await peer.listBreakGlass({ openReview: true, limit: 5 }), []);
        assert.deepEqual(await peer.listBreakGlass({ openReview: false, limit: 5 }), [closed]);
        assert.equal(await store.updateBreakGlass(grant('nope', { state: 'ended' }), 'pending'), false);
      }));
  });
}
