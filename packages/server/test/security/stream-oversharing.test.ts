import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createVerifier, revocationDigest, type Verifier } from '@writ/sdk/verifier';
import { EVENT_STREAM_QUERY, EventType } from '@writ/sdk/wire';
import { revoke } from '../../src/revocation/revoke.js';
import { classDoc, clientAuth, decodeClaims, httpForm, workloadDoc } from '../helpers/dpop.js';
import { testKey } from '../helpers/harness.js';
import { openRawStream, type RawStream } from '../helpers/raw-stream.js';
import {
  API,
  eventually,
  outcome,
  presenting,
  ready,
  startVerifierWorld,
  VERIFIER_ID,
  type VerifierWorld,
  workloadClient,
} from '../helpers/verifier.js';

/**
 * The event stream as a verifier that wants to learn more than it enforces reads it: one workload
 * allowed the events audience opens `GET /v1/events` on a plain socket (live, resumed, with a snapshot,
 * with a paged snapshot) while operators revoke with notes, disable a workload, and other workloads
 * open and close tasks with labels and reasons, and detection raises a finding on one of them. None of
 * that text, and none of the other workloads', tasks' and tokens' ids, may reach it (the finding only as
 * the workload's risk, the workload as a digest); every verifier still refuses every revoked token.
 */

/** The reader: any workload whose class allows the events audience (bearer, to read on a raw socket). */
const READER = 'spiffe://test.writ/verifier/curious';
/** Workloads whose tokens the reader never sees. */
const SUSPECT = 'spiffe://test.writ/payroll/ledger-writer';
const BYSTANDER = 'spiffe://test.writ/hr/records-sync';
const DEPLOYER = 'spiffe://test.writ/release/deployer';
/** A second verifier of the API that stays connected, directly, through everything. */
const LIVE_VERIFIER = 'spiffe://test.writ/verifier/live';

/** Every piece of free text below carries this: none of it may be on the stream. */
const MARK = 'SECRET-';
const NOTES = {
  subReason: `${MARK}REASON ledger exfiltration suspected, INC-4711, contractor j.doe`,
  clientReason: `${MARK}REASON hr sync credentials pasted in #general`,
  jtiReason: `${MARK}REASON token seen in a public gist`,
  disableReason: `${MARK}DISABLE offboarded with the hr vendor`,
  purpose: `${MARK}PURPOSE payroll hotfix for the march run`,
  labels: { change: `${MARK}LABEL CHG-7781`, repo: `${MARK}LABEL payroll-internal` },
  closeReason: `${MARK}CLOSE rolled back after data loss`,
  bulkReason: `${MARK}BULK tokens listed in the breach report`,
};

/** Revocations made in bulk besides, so snapshots come in more than one page (pages hold at least 100). */
const BULK = 205;

/** The names a verifier may be sent, and the fields each may carry (besides `seq` and `ts`). */
const ALLOWED: Record<string, readonly string[]> = {
  [EventType.head]: ['head'],
  [EventType.snapshot]: ['revocations', 'keys', 'paged', 'risks'],
  [EventType.snapshotPage]: ['revocations'],
  [EventType.revocation]: ['revocation'],
  [EventType.keysRotated]: ['activated', 'retired', 'next'],
  [EventType.policyBundle]: ['version', 'policy_version'],
  [EventType.position]: [],
  [EventType.risk]: ['sub_sha256', 'risk', 'risk_at', 'half_life'],
};
const REVOCATION_FIELDS = ['seq', 'kind', 'value_sha256', 'issued_before', 'created_at', 'expires_at'];

interface History {
  /** The log's last seq before anything below happened, and after all of it. */
  before: number;
  last: number;
  /** Tokens of the other workloads for the verifiers' API, revoked, by what revoked them. */
  revoked: Record<'sub' | 'client_id' | 'jti' | 'tid', string>;
  /** A token of the deployer outside the task, never revoked. */
  untouched: string;
  taskId: string;
  /** Ids of the other workloads' tokens, and the values revoked in bulk. */
  jtis: string[];
  /** Every revocation made, as kind and digest of the value, in order. */
  made: string[];
  /** The finding detection raised on the suspect: its id and rule, which verifiers are not sent. */
  finding: { id: string; rule: string };
}

describe('the event stream sends verifiers predicates, never operators’ notes or other workloads’ ids', () => {
  const keys = {
    reader: testKey(),
    suspect: testKey(),
    bystander: testKey(),
    deployer: testKey(),
    live: testKey(),
  };
  let w: VerifierWorld;
  let port: number;
  let live: Verifier;
  let liveStream: RawStream;
  let history: History;
  const streams: RawStream[] = [];

  const token = async (
    clientId: string,
    key: ReturnType<typeof testKey>,
    extra: Record<string, string> = {},
  ) => {
    const r = await w.h.requestToken({ resource: API, ...extra }, { clientId, key });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };
  const admin = async (path: string, body: Record<string, unknown>) => {
    const r = await w.h.admin('POST', path, body);
    assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
  };
  /** A stream opened by the reader with a token of its own. */
  const open = async (o: { lastEventId?: number; paged?: boolean } = {}): Promise<RawStream> => {
    const r = await w.h.requestToken(
      { resource: `${w.issuer}/v1/events` },
      { clientId: READER, key: keys.reader },
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const s = openRawStream(port, r.body['access_token'] as string, {
      read: true,
      ...(o.paged ? { path: `/v1/events?${EVENT_STREAM_QUERY}` } : {}),
      ...(o.lastEventId !== undefined ? { lastEventId: o.lastEventId } : {}),
    });
    streams.push(s);
    assert.match(await s.head, / 200 /);
    return s;
  };
  /** Waits until `s` has been sent everything up to `seq` (an event with that id). */
  const through = (s: RawStream, seq: number) =>
    eventually(`the stream to reach event ${seq}`, () =>
      s.events.some((e) => e.id !== undefined && Number(e.id) >= seq) ? true : undefined,
    );

  /** What operators and the other workloads do while the reader listens. */
  const act = async (): Promise<History> => {
    const ctx = w.h.writ.ctx;
    const before = (await ctx.events.bounds()).last;
    const bulk = Array.from({ length: BULK }, () => randomBytes(12).toString('base64url'));
    await ctx.store.transaction(async (tx) => {
      for (const value of bulk)
        await revoke(
          ctx,
          {
            kind: 'jti',
            value,
            issuedBefore: null,
            reason: NOTES.bulkReason,
            actor: 'ops',
            expiresAt: ctx.clock.now() + 3_600_000,
          },
          tx,
        );
    });
    ctx.events.notify();
    const suspect = await token(SUSPECT, keys.suspect);
    const bystander = await token(BYSTANDER, keys.bystander);
    const stray = await token(DEPLOYER, keys.deployer);
    const untouched = await token(DEPLOYER, keys.deployer);
    const tasks = `${w.issuer}/v1/tasks`;
    const opened = await httpForm(tasks, {
      ...clientAuth(w.h, DEPLOYER, keys.deployer),
      purpose: NOTES.purpose,
      duration: '300',
      labels: JSON.stringify(NOTES.labels),
    });
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    const taskId = opened.body['id'] as string;
    const inTask = await token(DEPLOYER, keys.deployer, { task_id: taskId });

    await admin('/revocations', { kind: 'sub', value: SUSPECT, reason: NOTES.subReason });
    await admin('/revocations', { kind: 'client_id', value: BYSTANDER, reason: NOTES.clientReason });
    await admin('/revocations', {
      kind: 'jti',
      value: decodeClaims(stray)['jti'],
      reason: NOTES.jtiReason,
    });
    const closed = await httpForm(`${tasks}/${taskId}/close`, {
      ...clientAuth(w.h, DEPLOYER, keys.deployer),
      reason: NOTES.closeReason,
    });
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    // A workload state change (and the revocation and bundle version it brings), with a note.
    await admin(`/workloads/${encodeURIComponent(BYSTANDER)}/disable`, { reason: NOTES.disableReason });
    // And a key rotation, which verifiers are sent.
    await admin('/keys/rotate', {});
    // A finding on the suspect: someone drove its token by hand. Verifiers hear its risk, not the finding.
    ctx.detection.observe({
      kind: 'usage',
      time: ctx.clock.now(),
      data: {
        sub: SUSPECT,
        jti: decodeClaims(suspect)['jti'] as string,
        tid: '',
        aud: API,
        reporter: LIVE_VERIFIER,
        operation: 'GET /ledger',
        source: '10.1.2.3',
        network: '10.1.2.0/24',
        network_environment: '',
        user_agent: `curl/8.5.0 ${MARK}UA`,
        user_agent_kind: 'interactive',
        decision: 'allow',
        reason: '',
        signal: '',
        token_revoked: false,
      },
    });
    await ctx.detection.settled();
    const [finding] = await ctx.store.listFindings({ workload: SUSPECT, rule: 'human-user-agent', limit: 1 });
    assert.ok(finding && finding.risk > 0, 'the finding raised the suspect’s risk');
    const jtiOf = (t: string) => decodeClaims(t)['jti'] as string;
    return {
      before,
      last: (await ctx.events.bounds()).last,
      revoked: { sub: suspect, client_id: bystander, jti: stray, tid: inTask },
      untouched,
      taskId,
      jtis: [...[suspect, bystander, stray, untouched, inTask].map(jtiOf), ...bulk],
      made: [
        ...bulk.map((v) => `jti ${revocationDigest(v)}`),
        `sub ${revocationDigest(SUSPECT)}`,
        `client_id ${revocationDigest(BYSTANDER)}`,
        `jti ${revocationDigest(jtiOf(stray))}`,
        `tid ${revocationDigest(taskId)}`,
        `sub ${revocationDigest(BYSTANDER)}`,
      ],
      finding: { id: finding.id, rule: finding.rule },
    };
  };

  /** Nothing anyone wrote, no other workload's, task's or token's id, and only the fields verifiers use. */
  const assertPredicatesOnly = (s: RawStream) => {
    const text = s.text();
    assert.ok(!text.includes(MARK), `free text reached the stream: ${excerpt(text, MARK)}`);
    for (const id of [
      SUSPECT,
      BYSTANDER,
      DEPLOYER,
      history.taskId,
      ...history.jtis,
      history.finding.id,
      history.finding.rule,
    ])
      assert.ok(!text.includes(id), `an id the reader never saw reached the stream: ${excerpt(text, id)}`);
    assert.ok(!/"reason"|"actor"|"labels"|"purpose"/.test(text), excerpt(text, 'reason'));
    for (const e of s.events) {
      const allowed = ALLOWED[e.event];
      assert.ok(allowed, `event ${e.event} is not one verifiers are sent: ${JSON.stringify(e.data)}`);
      for (const field of Object.keys(e.data))
        assert.ok(
          [...allowed, 'seq', 'ts'].includes(field) && !(e.event === EventType.position && field === 'ts'),
          `${e.event} carries ${field}: ${JSON.stringify(e.data)}`,
        );
      const revocations =
        e.event === EventType.revocation
          ? [e.data['revocation']]
          : ((e.data['revocations'] as unknown[]) ?? []);
      for (const r of revocations as Array<Record<string, unknown>>)
        assert.deepEqual(
          Object.keys(r).filter((k) => !REVOCATION_FIELDS.includes(k)),
          [],
          `a revocation carries more than its predicate: ${JSON.stringify(r)}`,
        );
    }
  };

  /** The revocations a snapshot (paged or not) sent, as kind and digest. */
  const snapshotOf = (s: RawStream) =>
    s.events
      .filter((e) => e.event === EventType.snapshot || e.event === EventType.snapshotPage)
      .flatMap((e) => e.data['revocations'] as Array<{ kind: string; value_sha256: string }>)
      .map((r) => `${r.kind} ${r.value_sha256}`)
      .sort();

  /** The verifier refuses every revoked token and still accepts the one nobody revoked. */
  const assertEnforces = async (v: Verifier) => {
    const url = `${API}/ledger`;
    for (const [kind, t] of Object.entries(history.revoked))
      await eventually(`the verifier to refuse the token revoked by ${kind}`, async () =>
        (await outcome(v, presenting(t, { url }))) === 'revoked' ? true : undefined,
      );
    assert.equal(
      await outcome(v, presenting(history.untouched, { url })),
      `ok:${decodeClaims(history.untouched)['jti'] as string}`,
    );
  };

  before(async () => {
    w = await startVerifierWorld({
      settings: { 'events.snapshot_page': 100 },
      docs: (issuer) => [
        classDoc({
          name: 'curious-events',
          binding: 'bearer',
          audiences: [`${issuer}/v1/events`],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
        }),
        classDoc({
          name: 'ledger',
          binding: 'bearer',
          audiences: [API],
          scopes: ['ledger:write'],
          default_scopes: ['ledger:write'],
        }),
        workloadDoc(READER, keys.reader, ['curious-events']),
        workloadDoc(LIVE_VERIFIER, keys.live, ['verifier-events']),
        workloadDoc(SUSPECT, keys.suspect, ['ledger']),
        workloadDoc(BYSTANDER, keys.bystander, ['ledger']),
        workloadDoc(DEPLOYER, keys.deployer, ['ledger']),
      ],
    });
    port = Number(new URL(w.issuer).port);
    // Connected directly, not through the world's proxy: it hears everything as it happens.
    live = createVerifier({
      issuer: w.issuer,
      audience: API,
      client: workloadClient(w.issuer, LIVE_VERIFIER, keys.live, { nowMs: w.clock.now }),
      now: w.clock.now,
      stalenessMs: 120_000,
    });
    await ready(live);
    liveStream = await open();
    await eventually('the live stream’s snapshot', () =>
      liveStream.events.some((e) => e.event === EventType.snapshot) ? true : undefined,
    );
    // The world's verifier is cut off while it all happens, and resumes afterwards.
    w.proxy.cut();
    history = await act();
    w.proxy.release();
  });
  after(async () => {
    for (const s of streams) s.socket.destroy();
    live?.close();
    await w?.close();
  });

  it('live: the reader hears each revocation as predicate and digest; a connected verifier refuses every revoked token', async () => {
    await through(liveStream, history.last);
    assertPredicatesOnly(liveStream);
    // Everything after the snapshot, in order, one event per entry of the log: what verifiers do not
    // use as a bare position.
    const ids = liveStream.events.filter((e) => e.id !== undefined).map((e) => Number(e.id));
    assert.deepEqual(
      ids.filter((id) => id > history.before),
      Array.from({ length: history.last - history.before }, (_, i) => history.before + 1 + i),
    );
    const revocations = liveStream.events
      .filter((e) => e.event === EventType.revocation)
      .map((e) => e.data['revocation'] as { kind: string; value_sha256: string });
    // A verifier matches a token it is shown: the digest of the value, as the SDK computes it.
    assert.deepEqual(
      revocations.map((r) => `${r.kind} ${r.value_sha256}`),
      history.made,
    );
    assert.ok(liveStream.events.some((e) => e.event === EventType.keysRotated));
    // The finding as the suspect's risk, the suspect as the digest of its id.
    assert.deepEqual(
      liveStream.events.filter((e) => e.event === EventType.risk).map((e) => e.data['sub_sha256']),
      [revocationDigest(SUSPECT)],
    );
    assert.ok(liveStream.events.some((e) => e.event === EventType.position));
    await assertEnforces(live);
  });

  it('resumed: catching up from the log sends the same predicates and nothing more; a verifier that was cut off refuses every revoked token', async () => {
    const resumed = await open({ lastEventId: history.before });
    await through(resumed, history.last);
    assertPredicatesOnly(resumed);
    assert.ok(!resumed.events.some((e) => e.event === EventType.snapshot), 'caught up from the log');
    assert.equal(resumed.events.filter((e) => e.event === EventType.revocation).length, history.made.length);
    await assertEnforces(w.verifier);
    const subscribed = (await w.h.auditEvents('events.subscribed')).filter((e) => e.actor === VERIFIER_ID);
    assert.equal(
      subscribed.at(-1)?.data['snapshot'],
      false,
      'the cut-off verifier resumed, not re-snapshotted',
    );
  });

  it('snapshot: a new reader gets the revocations in force as predicates and digests; a new verifier refuses every revoked token', async () => {
    const fresh = await open();
    await eventually('the snapshot', () =>
      fresh.events.some((e) => e.event === EventType.snapshot) ? true : undefined,
    );
    assertPredicatesOnly(fresh);
    assert.deepEqual(snapshotOf(fresh), [...history.made].sort());
    const snapshot = fresh.events.find((e) => e.event === EventType.snapshot)!;
    assert.deepEqual(
      (snapshot.data['risks'] as Array<{ sub_sha256: string }>).map((r) => r.sub_sha256),
      [revocationDigest(SUSPECT)],
      'the risks in force, as digests',
    );
    await assertEnforces(await w.spawnVerifier());
  });

  it('a stream asked for without ?revocations=sha256 (a verifier that matches clear values) is refused, not silently sent digests', async () => {
    const r = await w.h.requestToken(
      { resource: `${w.issuer}/v1/events` },
      { clientId: READER, key: keys.reader },
    );
    const token = r.body['access_token'] as string;
    for (const path of ['/v1/events', '/v1/events?snapshot=paged', '/v1/events?revocations=plain']) {
      const refusedBefore = (await w.h.auditEvents('events.refused')).length;
      const res = await w.h.writ.app.inject({
        method: 'GET',
        url: path,
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(res.statusCode, 400, path);
      assert.equal(res.headers['content-type']?.toString().startsWith('text/event-stream'), false, path);
      const body = JSON.parse(res.body) as Record<string, unknown>;
      assert.equal(body['error'], 'invalid_request', path);
      assert.match(String(body['error_description']), /\?revocations=sha256/, path);
      const refused = await w.h.auditEvents('events.refused');
      assert.equal(refused.length, refusedBefore + 1, path);
      assert.equal(refused.at(-1)?.data['reason'], 'stream_form', path);
    }
  });

  it('paged snapshot: every page carries predicates and digests only; a new verifier (which asks for pages) refuses every revoked token', async () => {
    const paged = await open({ paged: true });
    await eventually('the closing snapshot', () =>
      paged.events.some((e) => e.event === EventType.snapshot) ? true : undefined,
    );
    assert.ok(paged.events.filter((e) => e.event === EventType.snapshotPage).length >= 2);
    assertPredicatesOnly(paged);
    assert.deepEqual(snapshotOf(paged), [...history.made].sort());
    await assertEnforces(await w.spawnVerifier());
  });
});

/** Where `needle` first occurs in `text`, with a little around it (for the failure message). */
function excerpt(text: string, needle: string): string {
  const at = text.indexOf(needle);
  return at < 0 ? '(not found)' : JSON.stringify(text.slice(Math.max(0, at - 120), at + 120));
}
