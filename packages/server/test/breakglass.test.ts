import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import type { RawDocument } from '../src/config/config-dir.js';
import { sweepGovernance } from '../src/governance/sweeper.js';
import { securityEvents } from '../src/ssf/events.js';
import { type AdminSession, openAdminSession } from './helpers/admin-session.js';
import {
  type Harness,
  OTHER_AUDIENCE,
  type Reply,
  startHarness,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';
import { decodeJwt, expectRefusal } from './helpers/refusals.js';

const bobKey = testKey();
const START = Date.UTC(2026, 0, 1, 9);

describe('break-glass: two people, a time-boxed elevation, its tokens revoked at the end, a review', () => {
  const clock = fakeClock(START);
  let h: Harness;
  /** A new admin session of operator bob for each call, as the harness opens one for ops. */
  const bobSession = (): Promise<AdminSession> =>
    openAdminSession({
      issuer: h.issuer,
      key: bobKey,
      operator: 'bob',
      nowSeconds: () => Math.floor(clock.now() / 1000),
      post: async (form, headers) => {
        const r = await h.post('/admin/v1/token', form, headers);
        const nonce = r.headers['dpop-nonce'];
        return { ...r, nonce: typeof nonce === 'string' ? nonce : undefined };
      },
    });
  const elevated = () => h.requestToken({ resource: OTHER_AUDIENCE, scope: 'billing:write' });
  /** An admin call by operator bob (the harness's `admin` is operator ops). */
  async function asBob(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Reply> {
    const bob = await bobSession();
    const res = await h.writ.app.inject({
      method,
      url: `/admin/v1${path}`,
      headers: {
        ...bob.headers(method, `/admin/v1${path}`),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    return {
      status: res.statusCode,
      body: JSON.parse(res.body) as Record<string, unknown>,
      headers: res.headers,
    };
  }
  const grantOf = async (id: string) => (await h.admin('GET', `/breakglass/${id}`)).body;
  const openReviews = async () =>
    ((await h.admin('GET', '/breakglass?open_review=true')).body['breakglass'] as Array<{ id: string }>).map(
      (g) => g.id,
    );

  before(async () => {
    h = await startHarness({
      clock,
      extraDocs: [
        {
          kind: 'operator',
          file: 'bob.yaml',
          index: 0,
          doc: { name: 'bob', jwks: { keys: [bobKey.publicJwk] } },
        } as RawDocument,
      ],
    });
  });
  after(() => h.close());

  let id = '';
  let tid = '';

  it('without a grant the workload gets no token of a class it may not use', async () => {
    await expectRefusal(h, elevated, {
      status: 400,
      error: 'invalid_target',
      reason: 'audience_not_allowed',
    });
  });

  it('a request is pending (audited) and grants nothing until another operator approves', async () => {
    const r = await h.admin('POST', '/breakglass', {
      workload: WORKLOAD,
      class: 'billing-write',
      reason: 'incident 42: billing job down',
      duration: 1800,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body['state'], 'pending');
    id = r.body['id'] as string;
    const [requested] = await h.auditEvents('breakglass.requested');
    assert.equal(requested?.actor, 'operator:ops');
    assert.equal(requested?.data['breakglass'], id);
    await expectRefusal(h, elevated, {
      status: 400,
      error: 'invalid_target',
      reason: 'audience_not_allowed',
    });
    const own = await h.admin('POST', '/breakglass', {
      workload: WORKLOAD,
      class: 'reports-read',
      reason: 'a class it has',
      duration: 600,
    });
    assert.equal(own.status, 400, 'break-glass is for a class the workload may not use');
  });

  it('the requester cannot approve their own request (two-person rule); refused and audited', async () => {
    const { reply, event } = await expectRefusal(h, () => h.admin('POST', `/breakglass/${id}/approve`), {
      status: 403,
      error: 'access_denied',
      event: 'admin.refused',
      reason: 'breakglass_self_approval',
      description: /another operator must approve it \(two-person rule\)/,
    });
    assert.ok(reply);
    assert.match(String(event.actor), /ops/, JSON.stringify(event));
    assert.equal((await grantOf(id))['state'], 'pending');
  });

  it('approved by a second operator: active, loudly audited, logged for Shared Signals, detection heightened', async () => {
    const r = await asBob('POST', `/breakglass/${id}/approve`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['state'], 'active');
    assert.equal(r.body['approvedBy'], 'operator:bob');
    assert.equal(r.body['endsAt'], START + 1800_000);
    tid = r.body['taskId'] as string;
    const [granted] = await h.auditEvents('breakglass.granted');
    assert.equal(granted?.actor, 'operator:bob');
    assert.equal(granted?.data['requested_by'], 'operator:ops');
    const logged = (await h.store.readEvents(0, 10_000)).find((e) => e.type === EventType.breakglassGranted);
    assert.ok(logged, 'breakglass.granted is in the event log');
    const [caep] = securityEvents(logged as Parameters<typeof securityEvents>[0], h.issuer);
    assert.equal(caep?.type, 'https://schemas.openid.net/secevent/caep/event-type/token-claims-change');
    assert.deepEqual(caep?.subId, { format: 'iss_sub', iss: h.issuer, sub: WORKLOAD });
    assert.equal(h.writ.ctx.detection.engine.heightened(WORKLOAD, clock.now()), true);
    const twice = await asBob('POST', `/breakglass/${id}/approve`);
    assert.equal(twice.status, 400, 'an active grant is not approved again');
  });

  it('while active the workload gets a token of the class, in the grant’s task, audited with the grant', async () => {
    const r = await elevated();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const { claims } = decodeJwt(r.body['access_token'] as string);
    assert.equal(claims['cls'], 'billing-write');
    assert.equal(claims['tid'], tid);
    assert.ok(
      (claims['exp'] as number) <= (START + 1800_000) / 1000,
      'the token ends with the grant at the latest',
    );
    const [issued] = (await h.auditEvents('token.issued')).slice(-1);
    assert.equal(issued?.data['breakglass'], id);
    const other = await elevated();
    assert.equal(other.status, 200);
    const wrongTask = await h.requestToken({
      resource: OTHER_AUDIENCE,
      scope: 'billing:write',
      task_id: 'task_x',
    });
    assert.equal(wrongTask.status, 400);
    assert.equal(wrongTask.body['error'], 'invalid_grant');
  });

  it('at the end the sweep ends the grant: its task closes and every token issued under it is dead; the review stays open', async () => {
    // Before the end, closing the grant's task is what revokes its tokens (the emergency case below
    // closes early); at the end they also expire, since none may outlive the grant.
    clock.set(START + 1800_000);
    await sweepGovernance(h.writ.ctx);
    const g = await grantOf(id);
    assert.equal(g['state'], 'ended');
    assert.equal(g['endCause'], 'expired');
    const task = (await h.admin('GET', `/tasks/${tid}`)).body;
    assert.equal(task['state'], 'closed');
    const tokens = task['tokens'] as Array<{ revoked: boolean; exp: number }>;
    assert.equal(tokens.length, 2);
    assert.ok(
      tokens.every((t) => t.revoked || t.exp <= clock.now() / 1000),
      'every elevated token is revoked or expired',
    );
    const [ended] = await h.auditEvents('breakglass.ended');
    assert.equal(ended?.data['cause'], 'expired');
    assert.equal(h.writ.ctx.detection.engine.heightened(WORKLOAD, clock.now()), false);
    await expectRefusal(h, elevated, {
      status: 400,
      error: 'invalid_target',
      reason: 'audience_not_allowed',
    });
    assert.deepEqual(await openReviews(), [id], 'ended, but not closed with a review');
  });

  it('closing with a review note closes it, audited with the operator; it is no longer open', async () => {
    const r = await h.admin('POST', `/breakglass/${id}/close`, { review: 'job fixed; grant was used twice' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body['review'], {
      note: 'job fixed; grant was used twice',
      by: 'operator:ops',
      at: START + 1800_000,
    });
    const [closed] = await h.auditEvents('breakglass.closed');
    assert.equal(closed?.actor, 'operator:ops');
    assert.deepEqual(await openReviews(), []);
    const again = await h.admin('POST', `/breakglass/${id}/close`, { review: 'again' });
    assert.equal(again.status, 400);
  });

  it('the emergency path grants at once, owes a review within 24 h, and stays an open review until closed', async () => {
    const r = await asBob('POST', '/breakglass', {
      workload: WORKLOAD,
      class: 'billing-write',
      reason: 'outage, nobody else awake',
      duration: 900,
      emergency: true,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body['state'], 'active');
    assert.equal(r.body['approvedBy'], undefined);
    assert.equal(r.body['reviewDue'], clock.now() + 24 * 3_600_000);
    const eid = r.body['id'] as string;
    const t = await elevated();
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.deepEqual(await openReviews(), [eid]);
    clock.advance(60_000);
    await sweepGovernance(h.writ.ctx);
    assert.deepEqual(await openReviews(), [eid], 'still active and unreviewed');
    // Closing an active grant ends it now and revokes its tokens.
    const c = await asBob('POST', `/breakglass/${eid}/close`, { review: 'post-incident review: PIR-7' });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    assert.equal(c.body['endCause'], 'closed');
    const etid = c.body['taskId'] as string;
    const tokens = (await h.admin('GET', `/tasks/${etid}`)).body['tokens'] as Array<{ revoked: boolean }>;
    assert.ok(tokens.length === 1 && tokens[0]?.revoked);
    assert.deepEqual(await openReviews(), []);
    await expectRefusal(h, elevated, {
      status: 400,
      error: 'invalid_target',
      reason: 'audience_not_allowed',
    });
  });
});
