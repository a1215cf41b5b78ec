import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createVerifier, RevocationSet, revocationDigest, type Verifier } from '@writ/sdk/verifier';
import { EVENT_STREAM_QUERY, type RevocationKind, type VerifierRevocation } from '@writ/sdk/wire';
import { revoke } from '../../src/revocation/revoke.js';
import { classDoc, workloadDoc } from '../helpers/dpop.js';
import { freePort, type Harness, startHarness, type TestKey, testKey } from '../helpers/harness.js';
import { openRawStream, type RawStream } from '../helpers/raw-stream.js';
import { eventually, startVerifierWorld } from '../helpers/verifier.js';

/**
 * The event stream as an attacker holding a verifier identity would abuse it: streams whose own token
 * is revoked in the middle of a batch, streams that never read, more streams than a fair share.
 */

const VICTIM = 'spiffe://test.writ/verifier/victim';
const WATCHER = 'spiffe://test.writ/verifier/watcher';
const GREEDY = 'spiffe://test.writ/verifier/greedy';
const IDLE = 'spiffe://test.writ/verifier/idle';
const READER = 'spiffe://test.writ/verifier/reader';

/**
 * A reader in a process of its own, as a verifier is: it follows the stream, and when the server drops
 * it (it fell behind) it reconnects and resumes after the last id it took, as the SDK does. Prints the
 * highest event id it has taken whenever it grows.
 */
function spawnReader(port: number, token: string): { lastId: () => number; stop: () => void } {
  const script = `
    const net = require('node:net');
    let last = 0, stopped = false;
    const follow = () => {
      const s = net.connect(${port}, '127.0.0.1');
      let partial = '';
      s.setEncoding('utf8');
      s.on('data', (c) => {
        const lines = (partial + c).split('\\n');
        partial = lines.pop();
        for (const l of lines) {
          const m = /^id: (\\d+)/.exec(l);
          if (m && Number(m[1]) > last) last = Number(m[1]);
        }
        process.stdout.write(last + '\\n');
      });
      s.on('error', () => {});
      s.on('close', () => { if (!stopped) setTimeout(follow, 50); });
      const resume = last > 0 ? 'last-event-id: ' + last + '\\r\\n' : '';
      s.write('GET /v1/events?revocations=sha256 HTTP/1.1\\r\\nhost: 127.0.0.1\\r\\nconnection: close\\r\\nauthorization: Bearer ' + process.argv[1] + '\\r\\n' + resume + '\\r\\n');
    };
    follow();
    process.on('SIGTERM', () => { stopped = true; process.exit(0); });
  `;
  const child = spawn(process.execPath, ['-e', script, token], { stdio: ['ignore', 'pipe', 'inherit'] });
  let last = 0;
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    const lines = (pending + d).split('\n');
    pending = lines.pop() ?? '';
    const n = Number(lines.at(-1));
    if (Number.isFinite(n)) last = n;
  });
  return { lastId: () => last, stop: () => child.kill() };
}

describe('event stream under abuse', () => {
  let h: Harness;
  let port: number;
  const keys: Record<string, TestKey> = {};

  before(async () => {
    port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    for (const id of [VICTIM, WATCHER, GREEDY, IDLE, READER]) keys[id] = testKey();
    h = await startHarness({
      listen: true,
      settings: {
        'listen.port': port,
        'events.heartbeat': 1,
        'events.max_unsent_bytes': 1_048_576,
        'events.max_streams_per_client': 3,
        'events.max_streams_per_token': 2,
        'events.snapshot_page': 100,
      },
      extraDocs: [
        classDoc({
          name: 'events-bearer',
          audiences: [`${issuer}/v1/events`],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
          binding: 'bearer',
        }),
        ...[VICTIM, WATCHER, GREEDY, IDLE, READER].map((id) => workloadDoc(id, keys[id]!, ['events-bearer'])),
      ],
    });
  });
  after(async () => {
    await h?.close();
  });

  const streamToken = async (clientId: string): Promise<string> => {
    const r = await h.requestToken({ resource: `${h.issuer}/v1/events` }, { clientId, key: keys[clientId]! });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };

  /** Digests of the revocation values a stream was sent (verifiers get no value in clear). */
  const revocationsSeen = (s: RawStream) =>
    s.events
      .filter((e) => e.event === 'revocation')
      .map((e) => (e.data['revocation'] as { value_sha256: string }).value_sha256);

  it('a stream whose own token is revoked mid-batch ends; the server stays up and other streams get every event', async () => {
    const victim = openRawStream(port, await streamToken(VICTIM), { read: true });
    const watcher = openRawStream(port, await streamToken(WATCHER), { read: true });
    assert.match(await victim.head, /^HTTP\/1\.1 200/);
    assert.match(await watcher.head, /^HTTP\/1\.1 200/);
    await eventually('both streams registered', () => (h.writ.ctx.streams.size >= 2 ? true : undefined));

    // One transaction, so the log hands all of these to every stream in one read: the first ends the
    // victim's stream, and the rest of the same batch must not be written to it.
    const others = Array.from({ length: 20 }, () => randomBytes(9).toString('base64url'));
    await h.writ.ctx.store.transaction(async (tx) => {
      await revoke(
        h.writ.ctx,
        { kind: 'client_id', value: VICTIM, issuedBefore: null, reason: 't', actor: 'ops' },
        tx,
      );
      for (const value of others)
        await revoke(
          h.writ.ctx,
          { kind: 'jti' as RevocationKind, value, issuedBefore: null, reason: 't', actor: 'ops' },
          tx,
        );
    });
    h.writ.ctx.events.notify();

    await victim.closed;
    await eventually('the watcher heard every revocation', () =>
      revocationsSeen(watcher).length === others.length + 1 ? true : undefined,
    );
    assert.deepEqual(revocationsSeen(watcher), [VICTIM, ...others].map(revocationDigest));
    // The victim heard the revocation that ended its stream and nothing after it.
    assert.deepEqual(revocationsSeen(victim), [revocationDigest(VICTIM)]);

    // Disabling a verifier with an open stream while more revocations flow: same outcome, through the API.
    const watcher2 = openRawStream(port, await streamToken(GREEDY), { read: true });
    assert.match(await watcher2.head, /^HTTP\/1\.1 200/);
    const disabled = await h.admin('POST', `/workloads/${encodeURIComponent(WATCHER)}/disable`, {
      reason: 'test',
    });
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body));
    const more = randomBytes(9).toString('base64url');
    const r = await h.admin('POST', '/revocations', { kind: 'jti', value: more, reason: 'after' });
    assert.equal(r.status, 201);
    await watcher.closed;
    await eventually('the other stream still receives', () =>
      revocationsSeen(watcher2).includes(revocationDigest(more)) ? true : undefined,
    );
    const health = await fetch(`${h.issuer}/healthz`);
    assert.equal(health.status, 200);
    watcher2.socket.destroy();
    await h.admin('POST', `/workloads/${encodeURIComponent(WATCHER)}/enable`, { reason: 'test' });
  });

  it('caps streams per token and per workload with 429 and an error naming the cap', async () => {
    const token = await streamToken(GREEDY);
    const a = openRawStream(port, token, { read: true });
    const b = openRawStream(port, token, { read: true });
    assert.match(await a.head, / 200 /);
    assert.match(await b.head, / 200 /);
    const c = openRawStream(port, token, { read: true });
    const head = await c.head;
    assert.match(head, /^HTTP\/1\.1 429/);
    await c.closed.catch(() => undefined);
    // A second token of the same workload gets one more stream (3 per workload), then no more.
    const token2 = await streamToken(GREEDY);
    const d = openRawStream(port, token2, { read: true });
    assert.match(await d.head, / 200 /);
    const e = openRawStream(port, token2, { read: true });
    assert.match(await e.head, /^HTTP\/1\.1 429/);
    const refusals = await h.auditEvents('events.refused');
    const reasons = refusals.map((x) => (x.data as Record<string, unknown>)['reason']);
    assert.ok(reasons.includes('stream_limit_token'), JSON.stringify(reasons));
    assert.ok(reasons.includes('stream_limit_client'), JSON.stringify(reasons));
    for (const s of [a, b, d]) s.socket.destroy();
    await eventually('streams released', () => (h.writ.ctx.streams.size === 0 ? true : undefined));
    // Closing frees the share: the workload may open streams again.
    const again = openRawStream(port, token, { read: true });
    assert.match(await again.head, / 200 /);
    again.socket.destroy();
  });

  it('counts a stream from admission: opens racing through their snapshots cannot pass the cap together', async () => {
    const token = await streamToken(GREEDY);
    // Six opens at once, each of which awaits the store (bounds, snapshot, audit) before its stream
    // exists: with the cap checked only on arrival, every one of them would see zero streams open.
    const opens = Array.from({ length: 6 }, () => openRawStream(port, token, { read: true }));
    const heads = await Promise.all(opens.map((o) => o.head));
    const ok = heads.filter((x) => / 200 /.test(x)).length;
    const refused = heads.filter((x) => /^HTTP\/1\.1 429/.test(x)).length;
    assert.equal(ok, 2, heads.join('\n'));
    assert.equal(refused, 4);
    for (const o of opens) o.socket.destroy();
    await eventually('streams released', () => (h.writ.ctx.streams.size === 0 ? true : undefined));
    assert.equal(h.writ.ctx.streams.openFor(GREEDY), 0, 'refused opens hold no place');
  });

  it('sends a large snapshot in pages that add up to the set, closed by one snapshot event', async () => {
    const ctx = h.writ.ctx;
    await ctx.store.transaction(async (tx) => {
      for (let i = 0; i < 250; i++)
        await revoke(
          ctx,
          { kind: 'jti', value: `page-${i}`, issuedBefore: null, reason: 't', actor: 'ops' },
          tx,
        );
    });
    const inForce = (await ctx.store.listRevocations(0, ctx.clock.now())).length;
    const s = openRawStream(port, await streamToken(READER), {
      read: true,
      path: `/v1/events?${EVENT_STREAM_QUERY}`,
    });
    assert.match(await s.head, / 200 /);
    const closing = await eventually('the closing snapshot', () =>
      s.events.find((e) => e.event === 'snapshot'),
    );
    const pages = s.events.filter((e) => e.event === 'snapshot.page');
    assert.equal(pages.length, Math.ceil(inForce / 100) - 1);
    for (const p of pages) assert.equal((p.data['revocations'] as unknown[]).length, 100);
    assert.equal(closing.data['paged'], true);
    const all = [...pages, closing].flatMap((e) => e.data['revocations'] as Array<{ value_sha256: string }>);
    assert.equal(new Set(all.map((r) => r.value_sha256)).size, inForce);
    // Without asking for pages, one snapshot event holds everything (what older verifiers expect).
    const legacy = openRawStream(port, await streamToken(READER), { read: true });
    const one = await eventually('the snapshot', () => legacy.events.find((e) => e.event === 'snapshot'));
    assert.equal((one.data['revocations'] as unknown[]).length, inForce);
    assert.equal(legacy.events.filter((e) => e.event === 'snapshot.page').length, 0);
    s.socket.destroy();
    legacy.socket.destroy();
  });

  it('keeps a revocation that expired moments ago in snapshots, for verifiers still inside their leeway', async () => {
    const ctx = h.writ.ctx;
    const now = ctx.clock.now();
    // Created now: a store several nodes share records its own time as created_at and shifts expires_at
    // by as much (see Store.addRevocation), so an older created_at would move these expiries.
    const base = { issued_before: null, created_at: now, reason: 't', actor: 'ops' } as const;
    await ctx.store.addRevocation({ ...base, kind: 'jti', value: 'just-expired', expires_at: now - 2_000 });
    await ctx.store.addRevocation({ ...base, kind: 'jti', value: 'long-expired', expires_at: now - 120_000 });
    const s = openRawStream(port, await streamToken(READER), { read: true });
    try {
      const snapshot = await eventually('the snapshot', () => s.events.find((e) => e.event === 'snapshot'));
      const values = (snapshot.data['revocations'] as Array<{ value_sha256: string }>).map(
        (r) => r.value_sha256,
      );
      assert.ok(
        values.includes(revocationDigest('just-expired')),
        'a token 2 s past exp is still accepted by a verifier',
      );
      assert.ok(
        !values.includes(revocationDigest('long-expired')),
        'past every leeway, the revocation is forgotten',
      );
    } finally {
      s.socket.destroy();
    }
  });

  it('refuses a verifier leeway longer than snapshots keep expired revocations', () => {
    const make = (leewaySeconds: number) =>
      createVerifier({
        issuer: h.issuer,
        audience: 'https://api.example',
        client: {} as never,
        leewaySeconds,
      });
    assert.throws(() => make(120), /leewaySeconds must be between 0 and 60/);
  });

  it('drops streams that never read instead of buffering for them, and keeps serving readers', async () => {
    await eventually('no streams left over', () => (h.writ.ctx.streams.size === 0 ? true : undefined));
    const before = await slowReaderDrops(h);
    const idle: RawStream[] = [];
    // Two tokens of one workload, two streams each: within both caps (2 per token, 3 per workload) but one.
    for (const perToken of [2, 1]) {
      const token = await streamToken(IDLE);
      for (let i = 0; i < perToken; i++) idle.push(openRawStream(port, token, { read: false }));
    }
    for (const s of idle) assert.match(await s.head, / 200 /);
    const reader = spawnReader(port, await streamToken(READER));
    try {
      await eventually('streams registered', () => (h.writ.ctx.streams.size === 4 ? true : undefined));

      // About 13 MB of events for every stream: far more than the cap (1 MiB) plus what the kernel holds.
      const total = 40_000;
      let lastSeq = 0;
      await h.writ.ctx.store.transaction(async (tx) => {
        for (let i = 0; i < total; i++) {
          const e = await h.writ.ctx.events.append(tx, 'revocation', {
            revocation: {
              seq: 0,
              kind: 'jti',
              value: `flood-${i}-${'x'.repeat(200)}`,
              issued_before: null,
              created_at: 0,
              reason: '',
            },
          });
          lastSeq = e.seq;
        }
      });
      h.writ.ctx.events.notify();
      // The idle clients do not read, so they would not notice the server closing: watch the server's side.
      await eventually(
        'every non-reading stream dropped',
        () => (h.writ.ctx.streams.openFor(IDLE) === 0 ? true : undefined),
        {
          attempts: 2400,
        },
      );
      assert.ok((await slowReaderDrops(h)) - before >= idle.length);
      // A reader that reads gets everything: at once, or (if the machine let it fall behind the cap) by
      // resuming after the last id it took, as verifiers do.
      await eventually('the reader got every event', () => (reader.lastId() >= lastSeq ? true : undefined), {
        attempts: 2400,
      });
    } finally {
      for (const s of idle) s.socket.destroy();
      reader.stop();
    }
  });
});

async function slowReaderDrops(h: Harness): Promise<number> {
  const { values } = await h.writ.ctx.metrics.streamsEnded.get();
  return values.filter((v) => v.labels.reason === 'slow_reader').reduce((n, v) => n + v.value, 0);
}

/** What a stream delivered, applied as a verifier applies it: the snapshot (every page), then each revocation. */
function appliedSet(s: RawStream): RevocationSet {
  const set = new RevocationSet();
  const closing = s.events.findIndex((e) => e.event === 'snapshot');
  assert.ok(closing >= 0, 'the stream sent a snapshot');
  const snapshot = s.events
    .slice(0, closing + 1)
    .filter((e) => e.event === 'snapshot.page' || e.event === 'snapshot')
    .flatMap((e) => e.data['revocations'] as VerifierRevocation[]);
  set.reset(snapshot, 0);
  for (const e of s.events.slice(closing + 1))
    if (e.event === 'revocation') set.apply(e.data['revocation'] as VerifierRevocation);
  return set;
}

/** The newest log position a stream has delivered (every logged event carries its seq). */
const lastSeq = (s: RawStream): number =>
  Math.max(0, ...s.events.map((e) => (typeof e.data['seq'] === 'number' ? e.data['seq'] : 0)));

describe('reconnect storm', () => {
  const STORM = 'spiffe://test.writ/verifier/storm';
  const stormKey = testKey();
  let h: Harness;
  let port: number;

  before(async () => {
    port = await freePort();
    h = await startHarness({
      listen: true,
      settings: {
        'listen.port': port,
        'events.heartbeat': 1,
        'events.snapshot_page': 100,
        'events.max_streams_per_token': 40,
        'events.max_streams_per_client': 40,
      },
      extraDocs: [
        classDoc({
          name: 'events-bearer',
          audiences: [`http://127.0.0.1:${port}/v1/events`],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
          binding: 'bearer',
        }),
        workloadDoc(STORM, stormKey, ['events-bearer']),
      ],
    });
  });
  after(async () => {
    await h?.close();
  });

  it('streams opened one after another while revocations commit each end with exactly the server’s set', async () => {
    const ctx = h.writ.ctx;
    // More than a page, so paged snapshots have several.
    await ctx.store.transaction(async (tx) => {
      for (let i = 0; i < 250; i++)
        await revoke(
          ctx,
          { kind: 'jti', value: `seed-${i}`, issuedBefore: null, reason: 't', actor: 'ops' },
          tx,
        );
    });
    const r = await h.requestToken({ resource: `${h.issuer}/v1/events` }, { clientId: STORM, key: stormKey });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const token = r.body['access_token'] as string;

    // Thirty opens that each need a snapshot (no Last-Event-ID), half of them paged, each read to the
    // end, with revocations committing between one open and the next while its snapshot is being read.
    const streams: RawStream[] = [];
    for (let i = 0; i < 30; i++) {
      streams.push(
        openRawStream(port, token, {
          read: true,
          path: i % 2 ? `/v1/events?${EVENT_STREAM_QUERY}` : '/v1/events?revocations=sha256',
        }),
      );
      for (let j = 0; j < 5; j++)
        await revoke(ctx, {
          kind: 'jti',
          value: `flow-${i}-${j}`,
          issuedBefore: null,
          reason: 't',
          actor: 'ops',
        });
    }
    for (const s of streams) assert.match(await s.head, / 200 /);
    const head = (await ctx.events.bounds()).last;
    const inForce = await ctx.store.listRevocations(0, ctx.clock.now());
    assert.equal(inForce.length, 400);
    for (const [i, s] of streams.entries()) {
      await eventually(`stream ${i} caught up`, () => (lastSeq(s) >= head ? true : undefined));
      const set = appliedSet(s);
      // Exactly the server's set: none missing (a revocation the snapshot lacked arrived after it, with a
      // seq the verifier had not passed), none extra.
      assert.equal(set.size, inForce.length, `stream ${i}`);
      for (const rev of inForce)
        assert.equal(
          set.match({ jti: rev.value, sub: 's', client_id: 'c', cls: 'k', iat: 0, kid: 'x' }),
          'jti',
          `stream ${i} holds ${rev.value}`,
        );
      s.socket.destroy();
    }
  });

  it('a snapshot asked for after a revocation committed carries it, however recently the last was read', async () => {
    const ctx = h.writ.ctx;
    const r = await h.requestToken({ resource: `${h.issuer}/v1/events` }, { clientId: STORM, key: stormKey });
    const token = r.body['access_token'] as string;
    for (let i = 0; i < 5; i++) {
      // A snapshot read just now, then a revocation, then a stream that needs a snapshot.
      const warm = openRawStream(port, token, { read: true });
      await eventually('the first snapshot', () => warm.events.find((e) => e.event === 'snapshot'));
      const value = `after-snapshot-${i}`;
      await revoke(ctx, { kind: 'jti', value, issuedBefore: null, reason: 't', actor: 'ops' });
      const next = openRawStream(port, token, { read: true, path: `/v1/events?${EVENT_STREAM_QUERY}` });
      const head = await eventually('the head', () => next.events.find((e) => e.event === 'head'));
      await eventually('caught up to the head', () =>
        lastSeq(next) >= (head.data['head'] as number) && next.events.some((e) => e.event === 'snapshot')
          ? true
          : undefined,
      );
      // Held by the time the stream reached the head it announced: in the snapshot, or right after it.
      assert.equal(
        appliedSet(next).match({ jti: value, sub: 's', client_id: 'c', cls: 'k', iat: 0, kid: 'x' }),
        'jti',
      );
      warm.socket.destroy();
      next.socket.destroy();
    }
  });
});

describe('paged snapshots', () => {
  it('a verifier takes a snapshot larger than one page, and enforces revocations from every page', async () => {
    const world = await startVerifierWorld({ settings: { 'events.snapshot_page': 100 } });
    try {
      const ctx = world.h.writ.ctx;
      const values = Array.from({ length: 350 }, (_, i) => `paged-${i}`);
      await ctx.store.transaction(async (tx) => {
        for (const value of values)
          await revoke(ctx, { kind: 'jti', value, issuedBefore: null, reason: 't', actor: 'ops' }, tx);
      });
      // A new verifier (no Last-Event-ID) gets the snapshot: four events of at most 100 revocations.
      const fresh = await world.spawnVerifier();
      assert.ok(fresh.status().revocations >= values.length, JSON.stringify(fresh.status()));
    } finally {
      await world.close();
    }
  });
  it('verifiers that connect while revocations flow each end with exactly the server’s set', async () => {
    const world = await startVerifierWorld({ settings: { 'events.snapshot_page': 100 } });
    try {
      const ctx = world.h.writ.ctx;
      await ctx.store.transaction(async (tx) => {
        for (let i = 0; i < 250; i++)
          await revoke(
            ctx,
            { kind: 'jti', value: `seed-${i}`, issuedBefore: null, reason: 't', actor: 'ops' },
            tx,
          );
      });
      // Verifiers start (each takes a paged snapshot) while revocations keep committing, a few at a time.
      const starting: Array<Promise<Verifier>> = [];
      for (let i = 0; i < 8; i++) {
        starting.push(world.spawnVerifier());
        for (let j = 0; j < 10; j++)
          await revoke(ctx, {
            kind: 'jti',
            value: `flow-${i}-${j}`,
            issuedBefore: null,
            reason: 't',
            actor: 'ops',
          });
      }
      const verifiers = await Promise.all(starting);
      const inForce = (await ctx.store.listRevocations(0, ctx.clock.now())).length;
      const head = String((await ctx.events.bounds()).last);
      for (const [i, v] of verifiers.entries()) {
        await eventually(`verifier ${i} caught up`, () =>
          v.status().lastEventId === head ? true : undefined,
        );
        assert.equal(v.status().revocations, inForce, `verifier ${i}`);
      }
    } finally {
      await world.close();
    }
  });
});
