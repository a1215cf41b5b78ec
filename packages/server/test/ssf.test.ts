import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkloadClient } from '@writ/sdk/client';
import pino from 'pino';
import { writeRefusalSummaries } from '../src/audit/refusal.js';
import { validateConfig } from '../src/config/config-dir.js';
import { resolveSettings } from '../src/config/settings.js';
import type { Signal } from '../src/detection/signal.js';
import { kekFromBytes } from '../src/keys/kek.js';
import { FOLLOWER } from '../src/ssf/transmitter.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { createWrit, type Writ } from '../src/writ.js';
import { httpAdminSession } from './helpers/admin-session.js';
import { decodeClaims } from './helpers/dpop.js';
import {
  AUDIENCE,
  configDocuments,
  freePort,
  type Harness,
  OTHER_WORKLOAD,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';
import {
  listeningHarness,
  operatorCall,
  type PushReceiver,
  privateJwk,
  RECEIVER,
  receiverCall,
  receiverDocs,
  STRANGER,
  setValidator,
  startPushReceiver,
  until,
} from './helpers/ssf-receiver.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const SESSION_REVOKED = `${CAEP}session-revoked`;
const CREDENTIAL_CHANGE = `${CAEP}credential-change`;
const TOKEN_CLAIMS_CHANGE = `${CAEP}token-claims-change`;
const RISK_LEVEL_CHANGE = `${CAEP}risk-level-change`;
const VERIFICATION = 'https://schemas.openid.net/secevent/ssf/event-type/verification';
const PUSH = 'urn:ietf:rfc:8935';
const POLL = 'urn:ietf:rfc:8936';

async function json(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

describe('shared signals: transmitter metadata and push delivery (RFC 8935)', () => {
  const keys = [testKey(), testKey()];
  let h: Harness;
  let issuer: string;
  let receiver: PushReceiver;
  let validate: ReturnType<typeof setValidator>;
  let admin: (method: string, path: string, body?: unknown) => Promise<Response>;

  before(async () => {
    // The test receivers listen on loopback, which push endpoints may reach only when allowed.
    ({ h, issuer } = await listeningHarness((i) => receiverDocs(i, keys), {
      'ssf.push_allow_addresses': ['127.0.0.1'],
    }));
    receiver = await startPushReceiver();
    validate = setValidator(issuer);
    admin = async (method, path, body) => operatorCall(issuer, await h.adminSession(), method, path, body);
  });
  after(async () => {
    await h.close();
    await receiver.close();
  });

  const token = async () => {
    const r = await h.requestToken();
    assert.equal(r.status, 200);
    return r.body['access_token'] as string;
  };

  it('publishes /.well-known/ssf-configuration', async () => {
    const res = await fetch(`${issuer}/.well-known/ssf-configuration`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const meta = await json(res);
    assert.equal(meta['issuer'], issuer);
    assert.equal(meta['spec_version'], '1_0');
    assert.equal(meta['jwks_uri'], `${issuer}/.well-known/jwks.json`);
    assert.deepEqual(meta['delivery_methods_supported'], [PUSH, POLL]);
    assert.equal(meta['configuration_endpoint'], `${issuer}/ssf/stream`);
    assert.equal(meta['status_endpoint'], `${issuer}/ssf/status`);
    assert.equal(meta['verification_endpoint'], `${issuer}/ssf/verify`);
    assert.equal((await fetch(meta['jwks_uri'] as string)).status, 200);
  });

  it('pushes signed SETs for revocations, workload state and key changes, with the stream’s authorization header', async () => {
    const created = await admin('POST', '/ssf/stream', {
      aud: 'https://receiver.test.writ',
      delivery: {
        method: PUSH,
        endpoint_url: receiver.url,
        authorization_header: 'Bearer receiver-secret-123',
      },
      events_requested: [SESSION_REVOKED, CREDENTIAL_CHANGE, TOKEN_CLAIMS_CHANGE, 'urn:example:unknown'],
      description: 'SIEM',
    });
    assert.equal(created.status, 201);
    const stream = await json(created);
    assert.equal(stream['iss'], issuer);
    assert.equal(stream['aud'], 'https://receiver.test.writ');
    assert.deepEqual(stream['delivery'], { method: PUSH, endpoint_url: receiver.url });
    assert.deepEqual(stream['events_delivered'], [SESSION_REVOKED, CREDENTIAL_CHANGE, TOKEN_CLAIMS_CHANGE]);
    const streamId = stream['stream_id'] as string;
    const audit = (await h.auditEvents('ssf.stream.created')).at(-1)!;
    assert.equal(audit.actor, 'operator:ops');
    assert.doesNotMatch(JSON.stringify(audit.data), /receiver-secret/, 'the push credential is not audited');

    // Verification (SSF 1.0 §8.1.4): the receiver's state comes back in a SET on the stream.
    assert.equal((await admin('POST', '/ssf/verify', { stream_id: streamId, state: 'st-1' })).status, 204);
    assert.equal((await admin('POST', '/ssf/verify', { stream_id: streamId })).status, 429);
    await until('the verification SET', () => receiver.accepted().length >= 1);
    const verification = await validate(receiver.accepted()[0]!, 'https://receiver.test.writ');
    assert.equal(verification.type, VERIFICATION);
    assert.deepEqual(verification.body, { state: 'st-1' });
    assert.deepEqual(verification.payload.sub_id, { format: 'opaque', id: streamId });

    const jti = decodeClaims(await token())['jti'] as string;
    assert.equal(
      (await admin('POST', '/admin/v1/revocations', { kind: 'jti', value: jti, reason: 'leaked' })).status,
      201,
    );
    assert.equal(
      (await admin('POST', `/admin/v1/workloads/${encodeURIComponent(OTHER_WORKLOAD)}/disable`, {})).status,
      200,
    );
    assert.equal((await admin('POST', '/admin/v1/keys/rotate', {})).status, 200);

    // jti revocation, the disable's sub revocation and state change, the key rotation.
    await until('five SETs', () => receiver.accepted().length >= 5);
    for (const r of receiver.received) {
      assert.equal(r.authorization, 'Bearer receiver-secret-123');
      assert.equal(r.contentType, 'application/secevent+jwt');
    }
    const sets = await Promise.all(
      receiver
        .accepted()
        .slice(1)
        .map((s) => validate(s, 'https://receiver.test.writ')),
    );
    const byType = (t: string) => sets.filter((s) => s.type === t);
    const [one, workload] = byType(SESSION_REVOKED);
    assert.deepEqual(one!.payload.sub_id, { format: 'jwt_id', iss: issuer, jti });
    assert.deepEqual(one!.body['reason_admin'], { en: 'leaked' });
    assert.deepEqual(workload!.payload.sub_id, { format: 'iss_sub', iss: issuer, sub: OTHER_WORKLOAD });
    const [claims] = byType(TOKEN_CLAIMS_CHANGE);
    assert.deepEqual(claims!.payload.sub_id, { format: 'iss_sub', iss: issuer, sub: OTHER_WORKLOAD });
    assert.deepEqual(claims!.body['claims'], { workload_state: 'disabled' });
    const [rotated] = byType(CREDENTIAL_CHANGE);
    assert.deepEqual(rotated!.payload.sub_id, { format: 'uri', uri: issuer });
    assert.equal(rotated!.body['change_type'], 'update');
    // Each SET names the log entry that caused it; SETs of one cause share it.
    assert.equal(workload!.payload['txn'] === claims!.payload['txn'], false);
    assert.equal(new Set(sets.map((s) => s.payload.jti)).size, sets.length);
  });

  it('retries a failed push with backoff, in order; a SET the receiver rejects is dropped and audited', async () => {
    // A receiver of its own: its answers are planned one by one.
    const flaky = await startPushReceiver();
    try {
      await retries(flaky);
    } finally {
      await flaky.close();
    }
  });

  async function retries(flaky: PushReceiver): Promise<void> {
    const created = await admin('POST', '/ssf/stream', {
      aud: 'https://retry.test.writ',
      delivery: { method: PUSH, endpoint_url: flaky.url },
      events_requested: [SESSION_REVOKED],
    });
    const streamId = (await json(created))['stream_id'] as string;
    const mine = () => flaky.received;
    const receiver = flaky;
    receiver.plan.push(400); // the first SET: rejected
    const rejected = decodeClaims(await token())['jti'] as string;
    await admin('POST', '/admin/v1/revocations', { kind: 'jti', value: rejected });
    await until('the rejection', () => mine().length >= 1);
    receiver.plan.push(503, 503); // the next SET: twice unavailable
    const retried = decodeClaims(await token())['jti'] as string;
    await admin('POST', '/admin/v1/revocations', { kind: 'jti', value: retried });
    await until('the third attempt', () => mine().filter((r) => r.status === 202).length >= 1);

    const attempts = mine().map((r) => [
      (decodeClaims(r.set)['sub_id'] as Record<string, unknown>)['jti'],
      r.status,
    ]);
    assert.deepEqual(attempts, [
      [rejected, 400],
      [retried, 503],
      [retried, 503],
      [retried, 202],
    ]);
    const audit = (await h.auditEvents('ssf.set.rejected')).at(-1)!;
    assert.equal(audit.data['stream_id'], streamId);
    assert.equal(audit.data['err'], 'invalid_audience');
    // The retried SET was the same SET each time (same jti), re-signed per attempt.
    const jtis = mine()
      .slice(1)
      .map((r) => decodeClaims(r.set)['jti']);
    assert.equal(new Set(jtis).size, 1);
  }

  it('refuses push endpoints it must not send to', async () => {
    // Plain http to a public address, another scheme, no URL (addresses: security/ssf-ssrf.test.ts).
    for (const endpoint_url of ['http://93.184.216.34/events', 'ftp://127.0.0.1/x', 'not a url']) {
      const res = await admin('POST', '/ssf/stream', { aud: 'x', delivery: { method: PUSH, endpoint_url } });
      assert.equal(res.status, 400, endpoint_url);
    }
    const res = await admin('POST', '/ssf/stream', {
      aud: 'x',
      delivery: { method: 'urn:example:carrier-pigeon' },
    });
    assert.equal(res.status, 400);
  });
});

describe('shared signals: poll delivery (RFC 8936) and stream management by a receiver workload', () => {
  const keys = [testKey(), testKey()];
  let h: Harness;
  let issuer: string;
  let client: WorkloadClient;
  let stranger: WorkloadClient;
  let validate: ReturnType<typeof setValidator>;
  let streamId: string;
  let pollUrl: string;

  before(async () => {
    ({ h, issuer } = await listeningHarness((i) => receiverDocs(i, keys), { 'ssf.poll_wait': '20s' }));
    client = new WorkloadClient({ issuer, clientId: RECEIVER, privateJwk: privateJwk(keys[0]!) });
    stranger = new WorkloadClient({ issuer, clientId: STRANGER, privateJwk: privateJwk(keys[1]!) });
    validate = setValidator(issuer);
  });
  after(() => h.close());

  const call = (c: WorkloadClient, method: string, path: string, body?: unknown) =>
    receiverCall(issuer, c, method, path, body);
  const poll = async (body: Record<string, unknown>) => {
    const res = await call(client, 'POST', new URL(pollUrl).pathname, body);
    assert.equal(res.status, 200);
    return (await json(res)) as { sets: Record<string, string>; moreAvailable: boolean };
  };
  const revokeOne = async () => {
    const r = await h.requestToken();
    const jti = decodeClaims(r.body['access_token'] as string)['jti'] as string;
    assert.equal((await h.admin('POST', '/revocations', { kind: 'jti', value: jti })).status, 201);
    return jti;
  };
  const revokedJti = async (set: string) => {
    const v = await validate(set, RECEIVER);
    assert.equal(v.type, SESSION_REVOKED);
    return v.payload.sub_id['jti'];
  };

  it('a receiver creates its own poll stream; its SETs are addressed to it', async () => {
    const res = await call(client, 'POST', '/ssf/stream', { events_requested: [SESSION_REVOKED] });
    assert.equal(res.status, 201);
    const s = await json(res);
    streamId = s['stream_id'] as string;
    pollUrl = (s['delivery'] as Record<string, string>)['endpoint_url']!;
    assert.deepEqual(s['delivery'], { method: POLL, endpoint_url: `${issuer}/ssf/poll/${streamId}` });
    assert.equal(s['aud'], RECEIVER);
    assert.equal((await h.auditEvents('ssf.stream.created')).at(-1)!.actor, RECEIVER);
    // A receiver cannot address SETs to someone else.
    assert.equal((await call(client, 'POST', '/ssf/stream', { aud: 'https://elsewhere' })).status, 400);
  });

  it('polls SETs, acknowledges them, and never gets an acknowledged one again', async () => {
    const revoked = [await revokeOne(), await revokeOne(), await revokeOne()];
    await until('three queued SETs', async () => (await h.store.pendingSsfSets(streamId, 10)).length === 3);

    const first = await poll({ maxEvents: 2, returnImmediately: true });
    assert.equal(Object.keys(first.sets).length, 2);
    assert.equal(first.moreAvailable, true);
    const firstJtis = await Promise.all(Object.values(first.sets).map(revokedJti));
    assert.deepEqual(firstJtis, revoked.slice(0, 2), 'oldest first');
    for (const [jti, set] of Object.entries(first.sets)) assert.equal(decodeClaims(set)['jti'], jti);

    // Not acknowledged yet: the same two come again.
    const again = await poll({ maxEvents: 2, returnImmediately: true });
    assert.deepEqual(Object.keys(again.sets), Object.keys(first.sets));

    const second = await poll({ ack: Object.keys(first.sets), maxEvents: 10, returnImmediately: true });
    assert.equal(second.moreAvailable, false);
    assert.deepEqual(await Promise.all(Object.values(second.sets).map(revokedJti)), [revoked[2]]);
    for (const jti of Object.keys(first.sets)) assert.equal(jti in second.sets, false);

    const third = await poll({ ack: Object.keys(second.sets), returnImmediately: true });
    assert.deepEqual(third.sets, {});
  });

  it('a long poll answers as soon as a SET is queued', async () => {
    const waiting = poll({ maxEvents: 5 });
    // The poll is waiting (nothing is queued); the revocation it is waiting for happens now.
    const jti = await revokeOne();
    const got = await waiting;
    assert.deepEqual(await Promise.all(Object.values(got.sets).map(revokedJti)), [jti]);
    await poll({ ack: Object.keys(got.sets), maxEvents: 0 });
    assert.deepEqual(await h.store.pendingSsfSets(streamId, 10), []);
  });

  it('setErrs removes a SET the receiver could not use and audits its error', async () => {
    await revokeOne();
    await until('a queued SET', async () => (await h.store.pendingSsfSets(streamId, 10)).length === 1);
    const got = await poll({ returnImmediately: true });
    const [jti] = Object.keys(got.sets);
    const after = await poll({
      setErrs: { [jti!]: { err: 'invalid_key', description: 'cannot verify' } },
      returnImmediately: true,
    });
    assert.deepEqual(after.sets, {});
    const audit = (await h.auditEvents('ssf.set.errors')).at(-1)!;
    assert.equal(audit.actor, RECEIVER);
    assert.deepEqual(audit.data['errors'], { [jti!]: 'invalid_key' });
  });

  it('pausing holds SETs, enabling releases them, disabling drops them', async () => {
    const status = async (s: string) => {
      const res = await call(client, 'POST', '/ssf/status', {
        stream_id: streamId,
        status: s,
        reason: `test ${s}`,
      });
      assert.equal(res.status, 200);
      assert.deepEqual(await json(res), { stream_id: streamId, status: s, reason: `test ${s}` });
    };
    await status('paused');
    const held = await revokeOne();
    await until('a held SET', async () => (await h.store.pendingSsfSets(streamId, 10)).length === 1);
    assert.deepEqual((await poll({ returnImmediately: true })).sets, {});
    const read = await call(client, 'GET', `/ssf/status?stream_id=${streamId}`);
    assert.equal(((await json(read)) as Record<string, unknown>)['status'], 'paused');

    await status('enabled');
    const released = await poll({ returnImmediately: true });
    assert.deepEqual(await Promise.all(Object.values(released.sets).map(revokedJti)), [held]);

    await status('disabled');
    assert.deepEqual(await h.store.pendingSsfSets(streamId, 10), [], 'nothing is held for a disabled stream');
    await revokeOne();
    // The transmitter follows the event log on its own: let it pass the revocation while the stream is
    // still disabled, or it would find the stream enabled again and queue it.
    const last = (await h.store.eventBounds()).last;
    await until(
      'the transmitter past the revocation',
      async () => ((await h.store.followerPosition(FOLLOWER)) ?? 0) >= last,
    );
    await status('enabled');
    assert.deepEqual((await poll({ returnImmediately: true })).sets, {}, 'events while disabled are gone');
  });

  it('reads, updates, replaces and deletes the stream; another receiver cannot see or touch it', async () => {
    const read = await call(client, 'GET', `/ssf/stream?stream_id=${streamId}`);
    assert.equal(read.status, 200);
    const config = await json(read);
    assert.equal(config['stream_id'], streamId);

    const list = await call(client, 'GET', '/ssf/stream');
    assert.deepEqual(
      ((await list.json()) as Array<Record<string, unknown>>).map((s) => s['stream_id']),
      [streamId],
    );

    const patched = await call(client, 'PATCH', '/ssf/stream', { stream_id: streamId, description: 'SOC' });
    assert.equal(patched.status, 200);
    const p = await json(patched);
    assert.equal(p['description'], 'SOC');
    assert.deepEqual(p['events_requested'], [SESSION_REVOKED], 'what PATCH does not name stays');

    // Transmitter-supplied properties may be echoed only as they are.
    const wrong = await call(client, 'PATCH', '/ssf/stream', { stream_id: streamId, iss: 'https://evil' });
    assert.equal(wrong.status, 400);

    const replaced = await call(client, 'PUT', '/ssf/stream', {
      stream_id: streamId,
      ...{ events_requested: [TOKEN_CLAIMS_CHANGE] },
    });
    const r = await json(replaced);
    assert.equal(replaced.status, 200);
    assert.equal(r['description'], undefined, 'what PUT leaves out is deleted');
    assert.deepEqual(r['events_delivered'], [TOKEN_CLAIMS_CHANGE]);

    for (const [method, path, body] of [
      ['GET', `/ssf/stream?stream_id=${streamId}`, undefined],
      ['PATCH', '/ssf/stream', { stream_id: streamId, description: 'mine now' }],
      ['DELETE', `/ssf/stream?stream_id=${streamId}`, undefined],
      ['GET', `/ssf/status?stream_id=${streamId}`, undefined],
      ['POST', `/ssf/poll/${streamId}`, { returnImmediately: true }],
    ] as const) {
      const res = await call(stranger, method, path, body);
      assert.equal(res.status, 404, `${method} ${path} by another receiver`);
    }
    const strangerList = await call(stranger, 'GET', '/ssf/stream');
    assert.deepEqual(await strangerList.json(), []);

    const deleted = await call(client, 'DELETE', `/ssf/stream?stream_id=${streamId}`);
    assert.equal(deleted.status, 204);
    assert.equal((await call(client, 'GET', `/ssf/stream?stream_id=${streamId}`)).status, 404);
    assert.equal((await h.auditEvents('ssf.stream.deleted')).at(-1)!.actor, RECEIVER);
  });

  it('refuses and audits unauthenticated or wrongly authenticated calls, changing nothing', async () => {
    const before = (await h.auditEvents('ssf.refused')).length;
    const streams = (await h.store.listSsfStreams()).length;
    const url = (p: string) => `${issuer}${p}`;
    const create = JSON.stringify({ delivery: { method: POLL } });
    const json = { 'content-type': 'application/json' };
    const apiToken = (await h.requestToken()).body['access_token'] as string;
    const ssfToken = await client.token({ audience: `${issuer}/ssf` });
    const attempts: Array<[string, RequestInit]> = [
      ['/ssf/stream', { method: 'POST', headers: json, body: create }],
      ['/ssf/stream', { method: 'GET' }],
      ['/ssf/status?stream_id=x', { method: 'GET' }],
      ['/ssf/verify', { method: 'POST', headers: json, body: '{"stream_id":"x"}' }],
      ['/ssf/poll/x', { method: 'POST', headers: json, body: '{}' }],
      // A token for another audience.
      [
        '/ssf/stream',
        { method: 'POST', headers: { ...json, authorization: `Bearer ${apiToken}` }, body: create },
      ],
      // The receiver's own DPoP-bound token without its proof.
      [
        '/ssf/stream',
        { method: 'POST', headers: { ...json, authorization: `DPoP ${ssfToken}` }, body: create },
      ],
      // A forged admin token.
      [
        '/ssf/stream',
        {
          method: 'GET',
          headers: {
            authorization: `Bearer ${apiToken.split('.')[0]}.${Buffer.from(JSON.stringify({ aud: `${issuer}/admin` })).toString('base64url')}.x`,
          },
        },
      ],
    ];
    for (const [path, init] of attempts) {
      const res = await fetch(url(path), init);
      assert.equal(res.status, 401, `${init.method} ${path}`);
      assert.ok(res.headers.get('www-authenticate'), 'a challenge comes with the 401');
    }
    // Repeats of a kind of refusal from this address are counted in the window's summary row.
    await writeRefusalSummaries(h.writ.ctx, true);
    const refused = (await h.auditEvents('ssf.refused')).slice(before);
    const counted = refused.reduce(
      (n, e) => n + (typeof e.data['count'] === 'number' ? e.data['count'] : 1),
      0,
    );
    assert.equal(counted, attempts.length, 'every refusal audited, as a row or in a count');
    assert.ok(refused.every((e) => e.outcome === 'refused' && e.data['status'] === 401));
    assert.equal((await h.store.listSsfStreams()).length, streams);
  });
});

describe('shared signals: findings as risk-level-change (CAEP 1.0 §3.8)', () => {
  const keys = [testKey(), testKey()];
  let h: Harness;
  let issuer: string;
  let client: WorkloadClient;
  let validate: ReturnType<typeof setValidator>;
  let pollPath: string;

  before(async () => {
    // Rules that read the baseline act at once (they would only observe for a day otherwise). A medium
    // finding adds 40: off the level's edge (30), which the risk leaves as soon as it decays at all.
    ({ h, issuer } = await listeningHarness((i) => receiverDocs(i, keys), {
      'detection.learning_period': '0s',
      'detection.learning_events': 0,
      'detection.risk_medium': 40,
    }));
    client = new WorkloadClient({ issuer, clientId: RECEIVER, privateJwk: privateJwk(keys[0]!) });
    validate = setValidator(issuer);
  });
  after(() => h.close());

  /** A use of `jti` as a verifier serving the API would report it (the detector's own input). */
  const use = (jti: string, over: Partial<Signal<'usage'>['data']>): Signal<'usage'> => ({
    kind: 'usage',
    time: h.writ.ctx.clock.now(),
    data: {
      sub: WORKLOAD,
      jti,
      tid: '',
      aud: AUDIENCE,
      reporter: 'spiffe://test.writ/reports/api',
      operation: 'GET /reports/:id',
      source: '10.1.2.3',
      network: '10.1.2.0/24',
      network_environment: '',
      user_agent: 'writ-sdk/1',
      user_agent_kind: 'tool',
      decision: 'allow',
      reason: '',
      signal: '',
      token_revoked: false,
      ...over,
    },
  });
  /** Everything queued on the stream at `path` once the findings so far are handled, validated, acknowledged. */
  const drain = async (path = pollPath) => {
    await h.writ.ctx.detection.settled();
    // The transmitter follows the log on its own: wait until it has queued up to the log's end.
    const last = (await h.writ.ctx.events.bounds()).last;
    await until('the transmitter to reach the log', async () => {
      return ((await h.store.followerPosition('ssf-transmitter')) ?? 0) >= last;
    });
    const res = await receiverCall(issuer, client, 'POST', path, { returnImmediately: true });
    assert.equal(res.status, 200);
    const { sets } = (await json(res)) as { sets: Record<string, string> };
    const ack = await receiverCall(issuer, client, 'POST', path, {
      ack: Object.keys(sets),
      returnImmediately: true,
      maxEvents: 0,
    });
    assert.equal(ack.status, 200);
    return Promise.all(Object.values(sets).map((set) => validate(set, RECEIVER)));
  };

  it('a finding that raises a workload’s risk is a risk-level-change for it; one that only alerts is none', async () => {
    const res = await receiverCall(issuer, client, 'POST', '/ssf/stream', {});
    assert.equal(res.status, 201);
    const stream = await json(res);
    assert.ok((stream['events_delivered'] as string[]).includes(RISK_LEVEL_CHANGE));
    pollPath = new URL((stream['delivery'] as Record<string, string>)['endpoint_url']!).pathname;
    const token = await h.requestToken();
    const jti = decodeClaims(token.body['access_token'] as string)['jti'] as string;

    // curl with a workload token: human use (medium, raises risk by 40); the first use of the API and
    // the hour also fire, as alerts (they change no risk).
    h.writ.ctx.detection.observe(use(jti, { user_agent: 'curl/8.5.0', user_agent_kind: 'interactive' }));
    const first = await drain();
    const findings = await h.store.listFindings({ workload: WORKLOAD, limit: 10 });
    assert.ok(
      findings.some((f) => f.outcome === 'alert'),
      `an alert-only finding too (got ${findings.map((f) => `${f.rule}:${f.outcome}`).join(', ')})`,
    );
    assert.deepEqual(
      first.map((s) => s.type),
      [RISK_LEVEL_CHANGE],
      'one event: alerts leave the risk as it was',
    );
    const [medium] = first;
    assert.deepEqual(medium!.payload.sub_id, { format: 'iss_sub', iss: issuer, sub: WORKLOAD });
    assert.equal(medium!.body['principal'], 'USER');
    assert.equal(medium!.body['current_level'], 'MEDIUM');
    assert.equal(medium!.body['previous_level'], 'LOW');
    assert.equal(medium!.body['risk_reason'], 'human-user-agent');
    assert.equal(medium!.body['initiating_entity'], 'policy');
    const human = findings.find((f) => f.rule === 'human-user-agent')!;
    assert.deepEqual(medium!.body['urn:writ:finding'], {
      id: human.id,
      rule: 'human-user-agent',
      risk: 40,
      previous_risk: 0,
      response: 'raise_risk',
      outcome: 'raise_risk',
    });

    // The token presented without its key: critical, revoked. The revocation is its own
    // session-revoked (once), the risk its risk-level-change.
    h.writ.ctx.detection.observe(
      use(jti, { decision: 'deny', reason: 'dpop_bound_as_bearer', signal: 'key_missing' }),
    );
    const second = await drain();
    assert.deepEqual(second.map((s) => s.type).sort(), [RISK_LEVEL_CHANGE, SESSION_REVOKED].sort());
    const revoked = second.find((s) => s.type === SESSION_REVOKED)!;
    assert.deepEqual(revoked.payload.sub_id, { format: 'jwt_id', iss: issuer, jti });
    const high = second.find((s) => s.type === RISK_LEVEL_CHANGE)!;
    assert.deepEqual(high.payload.sub_id, { format: 'iss_sub', iss: issuer, sub: WORKLOAD });
    assert.equal(high.body['previous_level'], 'MEDIUM');
    assert.equal(high.body['current_level'], 'HIGH');
    assert.equal(high.body['risk_reason'], 'bound-token-without-key');
    assert.equal((high.body['urn:writ:finding'] as Record<string, unknown>)['outcome'], 'revoke_token');
    assert.equal((high.body['urn:writ:finding'] as Record<string, unknown>)['risk'], 100);
  });

  it('a receiver that asked for other events is not sent risk-level-change', async () => {
    const res = await receiverCall(issuer, client, 'POST', '/ssf/stream', {
      events_requested: [SESSION_REVOKED],
    });
    assert.equal(res.status, 201);
    const stream = await json(res);
    assert.deepEqual(stream['events_delivered'], [SESSION_REVOKED]);
    const other = new URL((stream['delivery'] as Record<string, string>)['endpoint_url']!).pathname;
    const token = await h.requestToken();
    const jti = decodeClaims(token.body['access_token'] as string)['jti'] as string;
    h.writ.ctx.detection.observe(
      use(jti, { decision: 'deny', reason: 'dpop_replay', signal: 'dpop_replay' }),
    );
    const sets = await drain(other);
    assert.deepEqual(
      sets.map((s) => [s.type, s.payload.sub_id['jti']]),
      [[SESSION_REVOKED, jti]],
    );
    // The stream that asked for everything heard the finding's risk too.
    assert.ok((await drain()).some((s) => s.type === RISK_LEVEL_CHANGE));
  });
});

describe('shared signals: nothing is lost across a restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'writ-ssf-restart-'));
  const kek = kekFromBytes(randomBytes(32), 'test');
  const keys = { workload: testKey(), other: testKey('EdDSA'), operator: testKey() };
  let port: number;
  let receiver: PushReceiver;
  after(async () => {
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (): Promise<Writ> => {
    const settings = resolveSettings(
      undefined,
      {},
      { 'listen.port': port, 'log.level': 'silent', 'ssf.push_allow_addresses': ['127.0.0.1'] },
    );
    const writ = await createWrit({
      settings,
      store: openSqliteStore({ path: join(dir, 'writ.db') }),
      kek,
      config: validateConfig(configDocuments(keys), settings.tokens.maxLifetime),
      logger: pino({ level: 'silent' }),
    });
    await writ.listen();
    return writ;
  };

  it('queued SETs and events appended while the transmitter was down are delivered after it restarts', async () => {
    port = await freePort();
    receiver = await startPushReceiver();
    const issuer = `http://127.0.0.1:${port}`;
    let writ = await start();
    const validate = setValidator(issuer);

    // An operator creates the stream; the receiver is down (503) for now.
    const admin = await httpAdminSession(issuer, keys.operator);
    const res = await fetch(`${issuer}/ssf/stream`, {
      method: 'POST',
      headers: { ...admin.headers('POST', '/ssf/stream'), 'content-type': 'application/json' },
      body: JSON.stringify({
        aud: 'https://receiver.test.writ',
        delivery: { method: PUSH, endpoint_url: receiver.url },
      }),
    });
    assert.equal(res.status, 201);
    receiver.plan.push(...Array.from({ length: 100 }, () => 503));
    const revoke = await fetch(`${issuer}/admin/v1/revocations`, {
      method: 'POST',
      headers: { ...admin.headers('POST', '/admin/v1/revocations'), 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'sub', value: WORKLOAD, reason: 'before the restart' }),
    });
    assert.equal(revoke.status, 201);
    await until('a failed push', () => receiver.received.length >= 1);
    await writ.close();

    // Meanwhile another node (here: the store opened directly) revokes more; this node hears it later.
    const other = openSqliteStore({ path: join(dir, 'writ.db') });
    await other.transaction(async (tx) => {
      const r = await tx.addRevocation({
        kind: 'client_id',
        value: OTHER_WORKLOAD,
        issued_before: Math.floor(Date.now() / 1000),
        created_at: Date.now(),
        reason: 'while it was down',
        actor: 'operator:ops',
        expires_at: Date.now() + 3_600_000,
      });
      await tx.appendEvent({ ts: Date.now(), type: 'revocation', data: { revocation: r } });
    });
    await other.close();

    receiver.plan.length = 0; // the receiver is back
    writ = await start();
    try {
      await until('both SETs', () => receiver.accepted().length >= 2);
      const sets = await Promise.all(
        receiver.accepted().map((s) => validate(s, 'https://receiver.test.writ')),
      );
      assert.deepEqual(
        sets.map((s) => s.body['reason_admin']),
        [{ en: 'before the restart' }, { en: 'while it was down' }],
        'delivered once each, in order',
      );
      assert.deepEqual(sets[1]!.payload.sub_id, {
        format: 'complex',
        application: { format: 'uri', uri: OTHER_WORKLOAD },
      });
    } finally {
      await writ.close();
    }
  });
});
