import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkloadClient } from '@writ/sdk/client';
import { EventType, GrantType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import { findingClaims } from '../src/detection/webhook.js';
import { securityEvents } from '../src/ssf/events.js';
import { SecurityEventType } from '../src/ssf/vocabulary.js';
import { tokenFingerprint } from '../src/tokens/access-token.js';
import { classDoc, clientAuth, decodeClaims, introspect, workloadDoc } from './helpers/dpop.js';
import { type Harness, type Reply, signJwt, startHarness, testKey, WORKLOAD } from './helpers/harness.js';
import { expectRefusal } from './helpers/refusals.js';
import {
  listeningHarness,
  privateJwk,
  RECEIVER,
  receiverCall,
  receiverDocs,
  setValidator,
  until,
} from './helpers/ssf-receiver.js';

// Issue 17, item 5: the response to a confirmed leak, through the admin API `writ scan --revoke`
// uses and the generic `POST /v1/leaks` a scanner workload uses.

const ISSUER = 'http://127.0.0.1:8080';
const PIPELINE = 'spiffe://test.writ/logs/pipeline';
const pipelineKey = testKey();

function leakDocs() {
  return [
    classDoc({
      name: 'leak-reporter',
      binding: 'bearer',
      audiences: [`${ISSUER}/v1/leaks`],
      scopes: ['leaks:report'],
      default_scopes: ['leaks:report'],
    }),
    workloadDoc(PIPELINE, pipelineKey, ['leak-reporter']),
  ];
}

async function token(h: Harness): Promise<string> {
  const r = await h.requestToken();
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body['access_token'] as string;
}

async function reportAsAdmin(h: Harness, body: unknown): Promise<Reply> {
  return h.admin('POST', '/leaks', body);
}

async function leakFindings(h: Harness) {
  return h.store.listFindings({ rule: 'leak', limit: 100 });
}

describe('a confirmed leak reported by an operator (POST /admin/v1/leaks)', () => {
  let h: Harness;
  const clock = fakeClock(Date.now());
  before(async () => {
    h = await startHarness({ clock, extraDocs: leakDocs() });
  });
  after(() => h.close());

  it('revokes a live token, records a leak finding with where it was found, raises the risk, logs leak.found', async () => {
    const leaked = await token(h);
    const { jti } = decodeClaims(leaked) as { jti: string };
    const neighbour = await token(h);
    const revocationsBefore = await h.countRows('revocations');
    assert.equal(h.writ.ctx.detection.riskOf(WORKLOAD), 0);

    const r = await reportAsAdmin(h, {
      tokens: [{ token: leaked, where: { path: 'ci/deploy.log', line: 42, commit: 'abc123' } }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [result, ...more] = r.body['results'] as Record<string, unknown>[];
    assert.equal(more.length, 0);
    assert.equal(result!['state'], 'live');
    assert.equal(result!['action'], 'revoked');
    assert.equal(result!['jti'], jti);
    assert.equal(result!['sub'], WORKLOAD);
    assert.equal(result!['outcome'], 'revoke_token');
    assert.ok(!JSON.stringify(r.body).includes(leaked), 'the token is never answered back');

    assert.equal(await h.countRows('revocations'), revocationsBefore + 1, 'one revocation: the token');
    assert.equal((await introspect(h, leaked))['active'], false);
    assert.equal((await introspect(h, neighbour))['active'], true, 'only the leaked token');

    const [f] = await leakFindings(h);
    assert.equal(f?.id, result!['finding']);
    assert.equal(f?.workload, WORKLOAD);
    assert.equal(f?.jti, jti);
    assert.equal(f?.severity, 'high');
    assert.equal(f?.outcome, 'revoke_token');
    const where = f?.evidence.read?.['leak'] as Record<string, unknown>;
    assert.equal(where['via'], 'scan');
    assert.equal(where['path'], 'ci/deploy.log');
    assert.equal(where['line'], 42);
    assert.equal(where['commit'], 'abc123');
    assert.equal(where['reporter'], 'operator:ops');
    assert.equal(where['owner'], 'team-reports');
    assert.equal(where['fingerprint'], tokenFingerprint(leaked));
    assert.ok(!JSON.stringify(f).includes(leaked), 'the finding holds no token');
    // Listed where detections are (`writ detections list`).
    const listed = await h.admin('GET', '/detections/findings?rule=leak');
    assert.deepEqual(
      (listed.body['findings'] as { id: string }[]).map((x) => x.id),
      [f!.id],
    );

    assert.equal(h.writ.ctx.detection.riskOf(WORKLOAD), 50, "a high finding's points (detection.risk_high)");
    assert.equal(f?.risk, 50);

    const log = await h.store.readEvents(0, 10_000);
    const found = log.filter((e) => e.type === EventType.leakFound);
    assert.equal(found.length, 1);
    const e = found[0]!;
    assert.deepEqual(e.data, {
      id: f!.id,
      source: 'scan',
      fingerprint: tokenFingerprint(leaked),
      revoked: true,
      jti,
      sub: WORKLOAD,
    });
    // Shared Signals receivers hear a CAEP credential-change of the workload's token.
    const [caep, ...others] = securityEvents(e as never, h.issuer);
    assert.equal(others.length, 0);
    assert.equal(caep?.type, SecurityEventType.credentialChange);
    assert.deepEqual(caep?.subId, { format: 'iss_sub', iss: h.issuer, sub: WORKLOAD });
    assert.equal(caep?.body['change_type'], 'revoke');
    assert.equal((caep!.body['urn:writ:leak'] as Record<string, unknown>)['jti'], jti);
    // The risk went up through detection.raised, as for any finding (verifiers, risk-level-change).
    assert.ok(log.some((x) => x.type === EventType.detectionRaised && x.data.id === f!.id));

    // The webhook's claims say where it was found and whose it is, never the token.
    const claims = findingClaims(f!, {
      issuer: h.issuer,
      audience: 'https://chat.example',
      now: clock.now(),
    });
    const leak = (claims['finding'] as Record<string, unknown>)['leak'] as Record<string, unknown>;
    assert.equal(leak['owner'], 'team-reports');
    assert.equal(leak['path'], 'ci/deploy.log');
    assert.ok(!JSON.stringify(claims).includes(leaked));

    const [reported] = (await h.auditEvents('leak.reported')).slice(-1);
    assert.equal(reported?.actor, 'operator:ops');
    assert.deepEqual(
      [reported?.data['tokens'], reported?.data['ours'], reported?.data['revoked']],
      [1, 1, 1],
    );
    const raised = (await h.auditEvents('detection.raised')).find((x) => x.data['finding'] === f!.id);
    assert.equal(raised?.actor, 'operator:ops');
  });

  it('records a token already revoked, or expired, and changes nothing', async () => {
    const revoked = await token(h);
    const revokedJti = decodeClaims(revoked)['jti'] as string;
    const r0 = await h.admin('POST', '/revocations', { kind: 'jti', value: revokedJti });
    assert.equal(r0.status < 300, true, JSON.stringify(r0.body));
    const expired = await token(h);
    const riskBefore = h.writ.ctx.detection.riskOf(WORKLOAD);
    const revocationsBefore = await h.countRows('revocations');
    const { last } = await h.store.eventBounds();

    const first = await reportAsAdmin(h, { tokens: [{ token: revoked }] });
    clock.advance(10 * 60_000);
    const second = await reportAsAdmin(h, { tokens: [{ token: expired }] });
    const results = [first, second].flatMap((r) => {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body['results'] as Record<string, unknown>[];
    });
    assert.deepEqual(
      results.map((x) => [x['state'], x['action'], x['outcome']]),
      [
        ['revoked', 'recorded', 'inactive'],
        ['expired', 'recorded', 'inactive'],
      ],
    );
    assert.equal(await h.countRows('revocations'), revocationsBefore, 'nothing revoked');
    assert.ok(h.writ.ctx.detection.riskOf(WORKLOAD) <= riskBefore, 'no risk added');
    const ids = results.map((x) => x['finding']);
    const recorded = (await leakFindings(h)).filter((f) => ids.includes(f.id));
    assert.equal(recorded.length, 2, 'both recorded');
    for (const f of recorded) assert.equal(f.outcome, 'inactive');
    const found = (await h.store.readEvents(last, 1000)).filter((e) => e.type === EventType.leakFound);
    assert.equal(found.length, 2);
    for (const e of found) {
      assert.equal((e.data as { revoked: boolean }).revoked, false);
      assert.deepEqual(securityEvents(e as never, h.issuer), [], 'no credential changed');
    }
  });

  it('never revokes a token of another issuer, nor one naming us that our keys did not sign', async () => {
    const stranger = testKey();
    const now = Math.floor(clock.now() / 1000);
    const claims = {
      sub: WORKLOAD,
      aud: 'https://reports.test.writ',
      client_id: WORKLOAD,
      scope: 'reports:read',
      iat: now,
      nbf: now,
      exp: now + 300,
      jti: 'forged-jti-1',
      cls: 'reports-read',
    };
    const forged = signJwt(stranger, { ...claims, iss: h.issuer }, { typ: 'at+jwt' });
    const foreign = signJwt(stranger, { ...claims, iss: 'https://other.example' }, { typ: 'at+jwt' });
    const live = await token(h);
    const truncated = live.slice(0, -10);
    const before = {
      revocations: await h.countRows('revocations'),
      findings: (await leakFindings(h)).length,
    };

    const r = await reportAsAdmin(h, {
      tokens: [{ token: forged }, { token: foreign }, { token: truncated }, { token: 'not a jwt' }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(
      (r.body['results'] as Record<string, unknown>[]).map((x) => [x['state'], x['action']]),
      [
        ['unverified', 'none'],
        ['foreign', 'none'],
        ['unverified', 'none'],
        ['foreign', 'none'],
      ],
    );
    assert.equal(await h.countRows('revocations'), before.revocations);
    assert.equal((await leakFindings(h)).length, before.findings, 'no finding for tokens not ours');
    assert.equal((await introspect(h, live))['active'], true);
  });

  it('a dry run classifies and changes nothing', async () => {
    const live = await token(h);
    const before = {
      revocations: await h.countRows('revocations'),
      findings: (await leakFindings(h)).length,
    };
    const r = await reportAsAdmin(h, { tokens: [{ token: live }], dry_run: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [result] = r.body['results'] as Record<string, unknown>[];
    assert.deepEqual([result!['state'], result!['action']], ['live', 'none']);
    assert.equal(await h.countRows('revocations'), before.revocations);
    assert.equal((await leakFindings(h)).length, before.findings);
    assert.equal((await introspect(h, live))['active'], true);
  });

  it('refuses a malformed report, or one with too many tokens, and revokes nothing', async () => {
    const live = await token(h);
    const send = (body: unknown) => () => reportAsAdmin(h, body);
    const cases: [unknown, RegExp][] = [
      [{ tokens: [] }, /tokens/],
      [{ tokens: [{ token: 42 }] }, /tokens\.0\.token/],
      [[{ token: live }], /a report is/],
      [{ tokens: [{ token: live, where: { line: -1 } }] }, /where\.line/],
      [
        { tokens: Array.from({ length: 101 }, () => ({ token: live })) },
        /at most 100 tokens.*leaks\.max_tokens/,
      ],
    ];
    for (const [body, description] of cases) {
      const revocations = await h.countRows('revocations');
      await expectRefusal(h, send(body), {
        status: 400,
        error: 'invalid_request',
        event: 'admin.refused',
        reason: 'leak_report',
        description,
      });
      assert.equal(await h.countRows('revocations'), revocations);
    }
    assert.equal((await introspect(h, live))['active'], true);
  });
});

describe('leaks.response: quarantine', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ settings: { 'leaks.response': 'quarantine' }, extraDocs: leakDocs() });
  });
  after(() => h.close());

  it('quarantines the workload of a leaked live token', async () => {
    const leaked = await token(h);
    const r = await reportAsAdmin(h, { tokens: [{ token: leaked }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((r.body['results'] as Record<string, unknown>[])[0]!['outcome'], 'quarantine');
    assert.equal(h.writ.ctx.registry.workload(WORKLOAD)?.state, 'quarantined');
    const refused = await h.requestToken();
    assert.notEqual(refused.status, 200, 'a quarantined workload gets no token');
  });
});

describe('leaks.response: revoke_task', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ settings: { 'leaks.response': 'revoke_task' }, extraDocs: leakDocs() });
  });
  after(() => h.close());

  it("revokes the leaked token's task (every token of it), and leaves other tokens alone", async () => {
    const task = await h.admin('POST', '/tasks', { workload: WORKLOAD, purpose: 'nightly export' });
    assert.equal(task.status, 201, JSON.stringify(task.body));
    const inTask = async () => {
      const r = await h.requestToken({ task_id: task.body['id'] as string });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body['access_token'] as string;
    };
    const leaked = await inTask();
    const sibling = await inTask();
    const outside = await token(h);
    const r = await reportAsAdmin(h, { tokens: [{ token: leaked }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((r.body['results'] as Record<string, unknown>[])[0]!['outcome'], 'revoke_task');
    assert.equal((await introspect(h, leaked))['active'], false);
    assert.equal((await introspect(h, sibling))['active'], false, 'the whole task');
    assert.equal((await introspect(h, outside))['active'], true, 'not the workload');
  });

  it('a token without a task: the token alone (outcome revoke_token)', async () => {
    const leaked = await token(h);
    const other = await token(h);
    const r = await reportAsAdmin(h, { tokens: [{ token: leaked }] });
    assert.equal((r.body['results'] as Record<string, unknown>[])[0]!['outcome'], 'revoke_token');
    assert.equal((await introspect(h, leaked))['active'], false);
    assert.equal((await introspect(h, other))['active'], true);
  });
});

describe('a scanner workload reports leaks (POST /v1/leaks)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ extraDocs: leakDocs() });
  });
  after(() => h.close());

  const reporterToken = async (resource: string) => {
    const r = await h.post('/oauth2/token', {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(h, PIPELINE, pipelineKey),
      resource,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };
  const report = (bearer: string, body: unknown, contentType = 'application/json') =>
    h.writ.app
      .inject({
        method: 'POST',
        url: '/v1/leaks',
        headers: { authorization: `Bearer ${bearer}`, 'content-type': contentType },
        payload: typeof body === 'string' ? body : JSON.stringify(body),
      })
      .then((res) => ({
        status: res.statusCode,
        body: JSON.parse(res.body) as Record<string, unknown>,
        headers: res.headers,
      }));

  it('revokes a live token and records the reporting workload in the finding', async () => {
    const leaked = await token(h);
    const bearer = await reporterToken(`${h.issuer}/v1/leaks`);
    const r = await report(bearer, {
      tokens: [{ token: leaked, where: { source: 'ci-logs', url: 'https://ci.example/run/9' } }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((r.body['results'] as Record<string, unknown>[])[0]!['action'], 'revoked');
    assert.equal((await introspect(h, leaked))['active'], false);
    const [f] = await leakFindings(h);
    const where = f?.evidence.read?.['leak'] as Record<string, unknown>;
    assert.equal(where['reporter'], PIPELINE);
    assert.equal(where['via'], 'report');
    assert.equal(where['source'], 'ci-logs');
  });

  it('refuses a caller without a token for the leaks audience, before reading the report, and revokes nothing', async () => {
    const leaked = await token(h);
    const wrongAudience = await token(h);
    for (const authorization of [wrongAudience, 'garbage']) {
      await expectRefusal(h, () => report(authorization, { tokens: [{ token: leaked }] }), {
        status: 401,
        error: 'invalid_token',
        event: 'leaks.refused',
      });
    }
    assert.equal((await introspect(h, leaked))['active'], true);
  });

  it('refuses an oversized body (413, leaks.body_bytes), a non-JSON one, and a dry run', async () => {
    const leaked = await token(h);
    const bearer = await reporterToken(`${h.issuer}/v1/leaks`);
    const big = JSON.stringify({ tokens: [{ token: leaked, where: { url: 'x'.repeat(300_000) } }] });
    await expectRefusal(h, () => report(bearer, big), {
      status: 413,
      error: 'invalid_request',
      event: 'http.refused',
      reason: 'body_too_large',
      description: /leaks\.body_bytes/,
    });
    await expectRefusal(h, () => report(bearer, `token=${leaked}`, 'application/x-www-form-urlencoded'), {
      status: 400,
      error: 'invalid_request',
      event: 'leaks.refused',
      reason: 'media_type',
    });
    await expectRefusal(h, () => report(bearer, { tokens: [{ token: leaked }], dry_run: true }), {
      status: 400,
      error: 'invalid_request',
      event: 'leaks.refused',
      reason: 'leak_report',
    });
    assert.equal((await introspect(h, leaked))['active'], true);
  });
});

describe('a leak reaches Shared Signals receivers as a CAEP credential-change', () => {
  const keys = [testKey(), testKey()];
  let h: Harness;
  let issuer: string;
  before(async () => {
    ({ h, issuer } = await listeningHarness((i) => receiverDocs(i, keys)));
  });
  after(() => h.close());

  it('a poll stream that asked for credential-change gets one SET for the leaked token, signed by the server', async () => {
    const client = new WorkloadClient({ issuer, clientId: RECEIVER, privateJwk: privateJwk(keys[0]!) });
    const created = await receiverCall(issuer, client, 'POST', '/ssf/stream', {
      events_requested: [SecurityEventType.credentialChange],
    });
    assert.equal(created.status, 201);
    const stream = (await created.json()) as { stream_id: string; delivery: { endpoint_url: string } };
    const leaked = await token(h);
    const jti = decodeClaims(leaked)['jti'] as string;
    const r = await reportAsAdmin(h, { tokens: [{ token: leaked, where: { path: 'notes.txt' } }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await until(
      'the SET queued',
      async () => (await h.store.pendingSsfSets(stream.stream_id, 10)).length > 0,
    );
    const polled = await receiverCall(
      issuer,
      client,
      'POST',
      new URL(stream.delivery.endpoint_url).pathname,
      {
        returnImmediately: true,
      },
    );
    const { sets } = (await polled.json()) as { sets: Record<string, string> };
    const validate = setValidator(issuer);
    const changes = [];
    for (const set of Object.values(sets)) {
      const v = await validate(set, RECEIVER);
      if (v.type === SecurityEventType.credentialChange) changes.push(v);
    }
    assert.equal(changes.length, 1, 'one credential-change');
    const [change] = changes;
    assert.deepEqual(change!.payload.sub_id, { format: 'iss_sub', iss: issuer, sub: WORKLOAD });
    assert.equal(change!.body['change_type'], 'revoke');
    assert.equal((change!.body['urn:writ:leak'] as Record<string, unknown>)['jti'], jti);
    assert.ok(!Object.values(sets).some((set) => set.includes(leaked)), 'no SET carries the token');
  });
});
