import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { QueuedSet, SsfStream } from '../../src/ssf/stream-record.js';
import type { Store } from '../../src/store/store.js';
import { type UsageAggregate, usageKey } from '../../src/usage/usage-aggregate.js';

/**
 * Store contract cases for usage aggregates, Shared Signals streams and their SET queues, and
 * event-log followers; part of `runStoreConformance`.
 */

const NOW = 1_700_000_000_000;

interface Harness {
  store: Store;
  openPeer(): Promise<Store>;
}

function use(extra: Partial<UsageAggregate> = {}): UsageAggregate {
  return {
    jti: 'jti-1',
    sub: 'spiffe://test/w',
    tid: null,
    operation: 'GET /reports/:id',
    source: '10.0.0.7',
    decision: 'allow',
    reason: '',
    reporter: 'spiffe://test/api',
    userAgent: 'curl/8',
    count: 1,
    firstSeen: NOW,
    lastSeen: NOW,
    ...extra,
  };
}

function stream(id: string, extra: Partial<SsfStream> = {}): SsfStream {
  return {
    id,
    owner: 'operator:ops',
    aud: ['https://receiver.test'],
    deliveryMethod: 'urn:ietf:rfc:8935',
    endpointUrl: 'https://receiver.test/events',
    sealedAuthorization: null,
    eventsRequested: ['https://schemas.openid.net/secevent/caep/event-type/session-revoked'],
    description: null,
    status: 'enabled',
    statusReason: null,
    fromSeq: 0,
    createdAt: NOW,
    updatedAt: NOW,
    ...extra,
  };
}

function set(streamId: string, jti: string, extra: Partial<QueuedSet> = {}) {
  return {
    streamId,
    jti,
    eventSeq: null as number | null,
    payload: { jti, events: { e: { n: 'ü' } } },
    createdAt: NOW,
    nextAttemptAt: NOW,
    ...extra,
  };
}

const jtis = (sets: QueuedSet[]) => sets.map((s) => s.jti);

export function signalConformanceCases(
  withStore: (fn: (t: Harness) => Promise<void>) => Promise<void>,
): void {
  describe('usage aggregate', () => {
    it('adds counts per (jti, operation, source, decision, reason) and widens first and last seen', () =>
      withStore(async ({ store }) => {
        await store.addUsage([
          use({ count: 2, firstSeen: NOW + 10, lastSeen: NOW + 20 }),
          use({ decision: 'deny', reason: 'revoked', firstSeen: NOW + 30, lastSeen: NOW + 30 }),
          use({ source: '10.0.0.8', firstSeen: NOW + 5, lastSeen: NOW + 5 }),
          use({ jti: 'jti-other' }),
        ]);
        await store.addUsage([
          use({ count: 3, firstSeen: NOW + 1, lastSeen: NOW + 15, userAgent: 'older', reporter: 'older' }),
          use({ count: 1, firstSeen: NOW + 40, lastSeen: NOW + 50, userAgent: 'newer', reporter: 'newer' }),
          use({ decision: 'deny', reason: 'dpop_replay', firstSeen: NOW + 31, lastSeen: NOW + 31 }),
        ]);
        const got = await store.usageForToken('jti-1', 100);
        assert.deepEqual(got, [
          use({
            count: 6,
            firstSeen: NOW + 1,
            lastSeen: NOW + 50,
            userAgent: 'newer',
            reporter: 'newer',
          }),
          use({ source: '10.0.0.8', firstSeen: NOW + 5, lastSeen: NOW + 5 }),
          use({ decision: 'deny', reason: 'revoked', firstSeen: NOW + 30, lastSeen: NOW + 30 }),
          use({ decision: 'deny', reason: 'dpop_replay', firstSeen: NOW + 31, lastSeen: NOW + 31 }),
        ]);
        assert.equal((await store.usageForToken('jti-1', 2)).length, 2);
        assert.deepEqual(await store.usageForToken('jti-none', 10), []);
        const withTask = use({ jti: 'jti-t', tid: 'task-1', userAgent: null });
        await store.addUsage([withTask]);
        assert.deepEqual(await store.usageForToken('jti-t', 10), [withTask]);
      }));

    it('the same key twice in one batch, and concurrent batches from two instances, lose no count', () =>
      withStore(async ({ store, openPeer }) => {
        const peer = await openPeer();
        await store.addUsage([use({ count: 1 }), use({ count: 2, lastSeen: NOW + 9 })]);
        await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 ? store : peer).addUsage([use({ count: 1, lastSeen: NOW + i }), use({ jti: 'jti-2' })]),
          ),
        );
        const [row] = await peer.usageForToken('jti-1', 10);
        assert.equal(row!.count, 23);
        assert.equal(row!.lastSeen, NOW + 19);
        assert.equal((await store.usageForToken('jti-2', 10))[0]!.count, 20);
      }));

    it('prunes aggregates last seen before a time', () =>
      withStore(async ({ store }) => {
        await store.addUsage([
          use({ jti: 'old', lastSeen: NOW - 1 }),
          use({ jti: 'edge', lastSeen: NOW }),
          use({ jti: 'new', lastSeen: NOW + 1 }),
        ]);
        assert.equal(await store.pruneUsage(NOW), 1);
        assert.deepEqual(await store.usageForToken('old', 10), []);
        assert.equal((await store.usageForToken('edge', 10)).length, 1);
        assert.equal(await store.pruneUsage(NOW), 0);
      }));

    it('scans aggregates last seen since a time, by decision, in key order, page by page', () =>
      withStore(async ({ store }) => {
        await store.addUsage([
          use({ jti: 'b', lastSeen: NOW + 5 }),
          use({ jti: 'a', operation: 'POST /x', lastSeen: NOW }),
          use({ jti: 'a', lastSeen: NOW + 1 }),
          use({ jti: 'a', source: '10.0.0.9', lastSeen: NOW + 2 }),
          use({ jti: 'a', decision: 'deny', reason: 'revoked', lastSeen: NOW + 3 }),
          use({ jti: 'c', lastSeen: NOW - 1 }),
        ]);
        const keys = (rows: UsageAggregate[]) => rows.map((r) => usageKey(r).join('|'));
        const all = await store.scanUsage({ lastSeenFrom: NOW, limit: 100 });
        assert.deepEqual(keys(all), [
          'a|GET /reports/:id|10.0.0.7|allow|',
          'a|GET /reports/:id|10.0.0.7|deny|revoked',
          'a|GET /reports/:id|10.0.0.9|allow|',
          'a|POST /x|10.0.0.7|allow|',
          'b|GET /reports/:id|10.0.0.7|allow|',
        ]);
        const allowed: UsageAggregate[] = [];
        for (let page = await store.scanUsage({ lastSeenFrom: NOW, decision: 'allow', limit: 2 }); ; ) {
          allowed.push(...page);
          if (page.length < 2) break;
          page = await store.scanUsage({
            lastSeenFrom: NOW,
            decision: 'allow',
            after: usageKey(page.at(-1)!),
            limit: 2,
          });
        }
        assert.deepEqual(
          keys(allowed),
          keys(all).filter((k) => !k.includes('|deny|')),
        );
        assert.deepEqual(await store.scanUsage({ lastSeenFrom: NOW + 6, limit: 10 }), []);
      }));

    it('rolls back with the transaction', () =>
      withStore(async ({ store }) => {
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.addUsage([use()]);
            assert.equal((await tx.usageForToken('jti-1', 10)).length, 1);
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.deepEqual(await store.usageForToken('jti-1', 10), []);
      }));
  });

  describe('shared signals streams', () => {
    it('creates, reads, lists by owner, replaces and deletes streams; the sealed header round-trips', () =>
      withStore(async ({ store }) => {
        const sealed = randomBytes(60);
        const a = stream('s-a', {
          sealedAuthorization: sealed,
          description: 'receiver A ✓',
          aud: ['https://a.test', 'https://a.test/mobile'],
        });
        const b = stream('s-b', {
          owner: 'spiffe://test/receiver',
          deliveryMethod: 'urn:ietf:rfc:8936',
          endpointUrl: 'https://writ.test/ssf/poll/s-b',
          createdAt: NOW + 1,
          fromSeq: 42,
        });
        await store.putSsfStream(b);
        await store.putSsfStream(a);
        assert.deepEqual(await store.getSsfStream('s-a'), a);
        assert.ok(Buffer.isBuffer((await store.getSsfStream('s-a'))!.sealedAuthorization));
        assert.deepEqual(await store.getSsfStream('s-b'), b);
        assert.equal(await store.getSsfStream('s-none'), undefined);
        assert.deepEqual(
          (await store.listSsfStreams()).map((s) => s.id),
          ['s-a', 's-b'],
        );
        assert.deepEqual(await store.listSsfStreams('spiffe://test/receiver'), [b]);
        assert.deepEqual(await store.listSsfStreams('nobody'), []);

        const paused = {
          ...a,
          status: 'paused' as const,
          statusReason: 'maintenance',
          sealedAuthorization: null,
          eventsRequested: [],
          updatedAt: NOW + 5,
        };
        await store.putSsfStream(paused);
        assert.deepEqual(await store.getSsfStream('s-a'), paused);

        await store.enqueueSsfSets([set('s-a', 'j1')], 10);
        assert.equal(await store.deleteSsfStream('s-a'), true);
        assert.equal(await store.deleteSsfStream('s-a'), false);
        assert.equal(await store.getSsfStream('s-a'), undefined);
        assert.deepEqual(await store.pendingSsfSets('s-a', 10), [], 'its queue went with it');
      }));
  });

  describe('shared signals queues', () => {
    it('queues SETs in order per stream; a repeat of (stream, jti) is ignored; acks remove them', () =>
      withStore(async ({ store }) => {
        assert.deepEqual(
          await store.enqueueSsfSets(
            [
              set('s1', 'a', { eventSeq: 1 }),
              set('s2', 'a', { eventSeq: 1 }),
              set('s1', 'b', { eventSeq: 2 }),
            ],
            10,
          ),
          [],
        );
        await store.enqueueSsfSets([set('s1', 'a', { payload: { changed: true } }), set('s1', 'c')], 10);
        const queued = await store.pendingSsfSets('s1', 10);
        assert.deepEqual(jtis(queued), ['a', 'b', 'c']);
        assert.deepEqual(queued[0], {
          ...set('s1', 'a', { eventSeq: 1 }),
          attempts: 0,
          lastError: null,
        });
        assert.equal(queued[2]!.eventSeq, null);
        assert.deepEqual(jtis(await store.pendingSsfSets('s1', 2)), ['a', 'b']);
        assert.deepEqual(jtis(await store.pendingSsfSets('s2', 10)), ['a']);

        assert.equal(await store.ackSsfSets('s1', ['a', 'c', 'c', 'unknown']), 2);
        assert.equal(await store.ackSsfSets('s1', []), 0);
        assert.deepEqual(jtis(await store.pendingSsfSets('s1', 10)), ['b']);
        assert.deepEqual(jtis(await store.pendingSsfSets('s2', 10)), ['a'], 'another stream is untouched');
        // An acknowledged SET queued again (another node re-reading the log) is a new entry: the caller
        // only queues events past its follower position, which moves forward in the same transaction.
      }));

    it('a stream over its bound drops its oldest SETs and reports how many', () =>
      withStore(async ({ store }) => {
        await store.enqueueSsfSets(
          ['1', '2', '3'].map((j) => set('s1', j)),
          3,
        );
        const dropped = await store.enqueueSsfSets([set('s1', '4'), set('s1', '5'), set('s2', 'x')], 3);
        assert.deepEqual(dropped, [{ streamId: 's1', dropped: 2 }]);
        assert.deepEqual(jtis(await store.pendingSsfSets('s1', 10)), ['3', '4', '5']);
        assert.deepEqual(jtis(await store.pendingSsfSets('s2', 10)), ['x']);
      }));

    it('claims the oldest due SET once, counting attempts; a deferred one waits for its time', () =>
      withStore(async ({ store }) => {
        await store.enqueueSsfSets(
          [set('s1', 'a'), set('s1', 'b'), set('s2', 'z', { nextAttemptAt: NOW + 50 })],
          10,
        );
        const first = await store.claimSsfSet('s1', NOW, NOW + 30_000);
        assert.equal(first?.jti, 'a');
        assert.equal(first?.attempts, 1);
        assert.equal(first?.nextAttemptAt, NOW + 30_000);
        // Held by the lease: not claimable again, and the SETs behind it wait (delivery stays in order).
        assert.equal(await store.claimSsfSet('s1', NOW + 1, NOW + 30_000), undefined);
        await store.deferSsfSet('s1', 'a', NOW + 2000, 'HTTP 503');
        assert.equal(await store.claimSsfSet('s1', NOW + 1999, NOW + 60_000), undefined);
        const again = await store.claimSsfSet('s1', NOW + 2000, NOW + 60_000);
        assert.equal(again?.jti, 'a');
        assert.equal(again?.attempts, 2);
        assert.equal(again?.lastError, 'HTTP 503');
        await store.ackSsfSets('s1', ['a']);
        assert.equal((await store.claimSsfSet('s1', NOW, NOW + 1))?.jti, 'b');
        assert.equal(await store.claimSsfSet('s2', NOW + 49, NOW + 100), undefined);
        assert.equal((await store.claimSsfSet('s2', NOW + 50, NOW + 100))?.jti, 'z');
        assert.equal(await store.claimSsfSet('s-none', NOW, NOW + 1), undefined);
      }));

    it('30 concurrent claims of one head from two instances: exactly one wins', () =>
      withStore(async ({ store, openPeer }) => {
        const peer = await openPeer();
        await store.enqueueSsfSets([set('s1', 'a'), set('s1', 'b')], 10);
        const claims = await Promise.all(
          Array.from({ length: 30 }, (_, i) => (i % 2 ? store : peer).claimSsfSet('s1', NOW, NOW + 60_000)),
        );
        assert.deepEqual(
          claims.filter((c) => c !== undefined).map((c) => c.jti),
          ['a'],
        );
      }));
  });

  describe('event-log followers', () => {
    it('remembers a position per name, only ever forward, shared by every instance', () =>
      withStore(async ({ store, openPeer }) => {
        assert.equal(await store.followerPosition('ssf'), undefined);
        await store.setFollowerPosition('ssf', 5);
        await store.setFollowerPosition('other', 1);
        await store.setFollowerPosition('ssf', 3);
        const peer = await openPeer();
        assert.equal(await peer.followerPosition('ssf'), 5);
        assert.equal(await peer.followerPosition('other'), 1);
        await peer.setFollowerPosition('ssf', 9);
        assert.equal(await store.followerPosition('ssf'), 9);
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.setFollowerPosition('ssf', 20);
            await tx.enqueueSsfSets([set('s1', 'rolled-back')], 10);
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.equal(await store.followerPosition('ssf'), 9);
        assert.deepEqual(await store.pendingSsfSets('s1', 10), []);
      }));
  });
}
