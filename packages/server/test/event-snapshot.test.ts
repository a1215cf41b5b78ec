import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { revocationDigest } from '@writ/sdk/verifier';
import type { VerifierRevocation } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import { SNAPSHOT_EXPIRY_GRACE_MS, type SnapshotRevocations, SnapshotSet } from '../src/events/snapshot.js';
import { revoke } from '../src/revocation/revoke.js';
import { type Harness, startHarness } from './helpers/harness.js';

/**
 * The set of revocations a node keeps for the snapshots of the streams that open on it, read on from
 * the store for each snapshot: what a read returns holds every revocation stored before it was asked
 * for, whatever reads and writes run beside it, and drops what expired once the set is read whole again.
 */
describe('snapshot set', () => {
  const clock = fakeClock(Date.now());
  let h: Harness;
  before(async () => {
    h = await startHarness({ clock });
  });
  after(async () => {
    await h?.close();
  });

  const add = (value: string, expiresAt?: number) =>
    revoke(h.writ.ctx, {
      kind: 'jti',
      value,
      issuedBefore: null,
      reason: 'test',
      actor: 'ops',
      ...(expiresAt !== undefined ? { expiresAt } : {}),
    });
  const inStore = async () =>
    (await h.store.listRevocations(0, clock.now() - SNAPSHOT_EXPIRY_GRACE_MS)).map((r) => r.seq);
  const seqsOf = (s: SnapshotRevocations): number[] =>
    (JSON.parse(text(s, 0, s.size)) as VerifierRevocation[]).map((r) => r.seq);
  /** What a stream is sent of `s` from `from` up to `to`: its parts one after the other. */
  const text = (s: SnapshotRevocations, from: number, to: number) =>
    Buffer.concat(s.json(from, to)).toString('utf8');

  it('holds every revocation stored before each read, with reads and writes running side by side', async () => {
    const set = new SnapshotSet(h.store, clock);
    for (let i = 0; i < 30; i++) await add(`before-${i}`);
    let written = 0;
    const writer = (async () => {
      for (; written < 300; written++) await add(`during-${written}`);
    })();
    let reads = 0;
    // Three readers, each asking again as soon as it has its answer: reads asked for while another is
    // still reading the store, and revocations keep committing all along.
    const reader = async () => {
      while (written < 300) {
        const stored = await inStore();
        const got = seqsOf(await set.read());
        reads++;
        const missing = stored.filter((seq) => !got.includes(seq));
        assert.deepEqual(missing, [], 'a read misses nothing stored before it was asked for');
        assert.deepEqual(
          got,
          [...got].sort((a, b) => a - b),
          'in seq order',
        );
        assert.equal(new Set(got).size, got.length, 'each revocation once');
        // The embedded store answers reads without I/O: let the writer's commits in between.
        await new Promise((r) => setImmediate(r));
      }
    };
    await Promise.all([writer, reader(), reader(), reader()]);
    assert.ok(reads > 5, `reads ran beside the writes (${reads})`);
    assert.deepEqual(seqsOf(await set.read()), await inStore(), 'at rest it is exactly what the store holds');
  });

  it('pages through the store, and keeps what it handed out as it was when later reads add to it', async () => {
    const set = new SnapshotSet(h.store, clock);
    // More than one page of the store's rows (1,000 a read), so the set is built over several reads.
    await h.writ.ctx.store.transaction(async (tx) => {
      for (let i = 0; i < 2100; i++)
        await revoke(
          h.writ.ctx,
          { kind: 'jti', value: `bulk-${i}`, issuedBefore: null, reason: 't', actor: 'ops' },
          tx,
        );
    });
    const first = await set.read();
    assert.deepEqual(seqsOf(first), await inStore());
    const page = first.json(0, 100);
    const size = first.size;
    await add('later');
    const second = await set.read();
    assert.equal(second.size, size + 1);
    assert.equal(first.size, size, 'a snapshot handed out does not grow');
    assert.deepEqual(seqsOf(first), seqsOf(second).slice(0, size));
    assert.deepEqual(first.json(0, 100), page);
    // As verifiers are sent it: the value as its digest, never in clear.
    const tail = (s: SnapshotRevocations, from: number) => text(s, from, from + 5);
    const later = `"${revocationDigest('later')}"`;
    assert.equal(tail(first, size - 1).includes(later), false);
    assert.equal(tail(second, size).includes(later), true);
    assert.equal(tail(second, size).includes('"later"'), false);
  });

  it('builds each range from blocks shared by later snapshots, whatever the range', async () => {
    const set = new SnapshotSet(h.store, clock);
    await h.writ.ctx.store.transaction(async (tx) => {
      for (let i = 0; i < 700; i++)
        await revoke(
          h.writ.ctx,
          { kind: 'jti', value: `block-${i}`, issuedBefore: null, reason: 't', actor: 'ops' },
          tx,
        );
    });
    const first = await set.read();
    const all = seqsOf(first);
    // Ranges on block boundaries (250) and off them, empty, one revocation, past the end.
    for (const [from, to] of [
      [0, 0],
      [0, 1],
      [0, 250],
      [250, 500],
      [100, 700],
      [249, 251],
      [499, first.size],
      [first.size - 3, first.size + 50],
    ] as const) {
      const got = (JSON.parse(text(first, from, to)) as VerifierRevocation[]).map((r) => r.seq);
      assert.deepEqual(got, all.slice(from, to), `revocations ${from} to ${to}`);
    }
    await add('after-the-blocks');
    const second = await set.read();
    assert.equal(second.size, first.size + 1);
    // The full blocks are the same bytes in both snapshots, not built again for the second.
    const [, a0, a1] = first.json(0, first.size);
    const [, b0, b1] = second.json(0, second.size);
    assert.equal(b0, a0, 'the first block is shared');
    assert.equal(b1, a1, 'the second block is shared');
    assert.deepEqual(seqsOf(second).slice(0, first.size), all);
  });

  it('keeps an expired revocation for the grace period, and drops it when it next reads the set whole', async () => {
    const set = new SnapshotSet(h.store, clock);
    const now = clock.now();
    const soon = await add('expires-soon', now + 5_000);
    const long = await add('expired-long-ago', now - 2 * SNAPSHOT_EXPIRY_GRACE_MS);
    const kept = await add('kept');
    let got = seqsOf(await set.read());
    assert.ok(got.includes(soon.seq) && got.includes(kept.seq));
    assert.ok(!got.includes(long.seq), 'stored already past the grace period: never sent');
    // A whole read while it is inside the grace period: kept.
    clock.advance(36_000);
    got = seqsOf(await set.read());
    assert.ok(got.includes(soon.seq));
    // Past its expiry and the grace period, the set read on from its newest seq since: still there
    // (longer in the verifiers' sets, never shorter).
    clock.advance(29_000);
    assert.deepEqual(
      (await h.store.listRevocations(0, clock.now() - SNAPSHOT_EXPIRY_GRACE_MS)).filter(
        (r) => r.seq === soon.seq,
      ),
      [],
      'the store no longer lists it',
    );
    await add('after-expiry');
    got = seqsOf(await set.read());
    assert.ok(got.includes(soon.seq));
    // The next whole read (30 s after the last one) leaves it out, as the store does.
    clock.advance(2_000);
    got = seqsOf(await set.read());
    assert.ok(!got.includes(soon.seq));
    assert.ok(got.includes(kept.seq));
    assert.deepEqual(got, await inStore());
  });

  it('passes a read that failed on to its caller, and the next read starts over', async () => {
    let fail = true;
    const store = {
      listRevocations: (after: number, now: number, limit?: number) =>
        fail ? Promise.reject(new Error('store unreachable')) : h.store.listRevocations(after, now, limit),
      lastRevocationSeq: () => h.store.lastRevocationSeq(),
    };
    const set = new SnapshotSet(store, clock);
    await assert.rejects(set.read(), /store unreachable/);
    fail = false;
    assert.deepEqual(seqsOf(await set.read()), await inStore());
  });
});
