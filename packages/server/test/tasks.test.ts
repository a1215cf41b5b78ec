import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkloadClient } from '@writ/sdk/client';
import { generateDpopKey } from '@writ/sdk/dpop';
import { fakeClock } from '../src/clock.js';
import {
  classDoc,
  clientAuth,
  count,
  decodeClaims,
  dpopTokenRequest,
  httpForm,
  injectForm,
  introspect,
  lastEvent,
  nowSeconds,
  workloadDoc,
} from './helpers/dpop.js';
import { type Harness, type Reply, startHarness, testKey } from './helpers/harness.js';

const WORKER = 'spiffe://test.writ/ci/deployer';
const STRANGER = 'spiffe://test.writ/ci/other';
const LONG_API = 'https://deploy.test';
const SHORT_API = 'https://secrets.test';

/** Two dpop classes: `deploy` renews for an hour, `secrets` for ten minutes. */
function docs(workerKey: ReturnType<typeof testKey>, strangerKey: ReturnType<typeof testKey>) {
  return [
    classDoc({
      name: 'deploy',
      max_ttl: '10m',
      default_ttl: '5m',
      audiences: [LONG_API],
      scopes: ['deploy:run'],
      default_scopes: ['deploy:run'],
      renewal: { max_lifetime: '1h' },
    }),
    classDoc({
      name: 'secrets',
      max_ttl: '5m',
      default_ttl: '5m',
      audiences: [SHORT_API],
      scopes: ['secrets:read'],
      default_scopes: ['secrets:read'],
      renewal: { max_lifetime: '10m' },
    }),
    workloadDoc(WORKER, workerKey, ['deploy', 'secrets']),
    workloadDoc(STRANGER, strangerKey, ['deploy']),
  ];
}

/** Task and token calls of one workload against an in-process harness. */
function workerOf(h: () => Harness, id: string, key: ReturnType<typeof testKey>) {
  const holder = generateDpopKey();
  return {
    open: (fields: Record<string, string>) =>
      injectForm(h(), '/v1/tasks', { ...clientAuth(h(), id, key), ...fields }),
    close: (taskId: string, reason = 'done') =>
      injectForm(h(), `/v1/tasks/${taskId}/close`, { ...clientAuth(h(), id, key), reason }),
    token: (taskId: string | undefined, resource = LONG_API): Promise<Reply> =>
      dpopTokenRequest(
        h(),
        () => ({
          grant_type: 'client_credentials',
          ...clientAuth(h(), id, key),
          resource,
          ...(taskId ? { task_id: taskId } : {}),
        }),
        holder,
      ),
  };
}

const ok = (r: Reply, status = 200): Record<string, unknown> => {
  assert.equal(r.status, status, JSON.stringify(r.body));
  return r.body;
};
const tokenOf = (r: Reply) => ok(r)['access_token'] as string;

describe('tasks: opened, token-bound, closed with every token', () => {
  const clock = fakeClock(Date.UTC(2026, 3, 1, 9));
  const workerKey = testKey();
  const strangerKey = testKey();
  let h: Harness;
  const worker = workerOf(() => h, WORKER, workerKey);
  const stranger = workerOf(() => h, STRANGER, strangerKey);

  before(async () => {
    h = await startHarness({
      clock,
      settings: { 'tasks.sweep_interval': 60 },
      extraDocs: docs(workerKey, strangerKey),
    });
  });
  after(() => h.close());

  it('a workload opens a task with a purpose, duration, lease and labels; it is audited', async () => {
    const t = ok(
      await worker.open({
        purpose: 'deploy build 812',
        duration: '600',
        lease: '120',
        labels: JSON.stringify({ ci_run: '812', job: 'deploy' }),
      }),
      201,
    );
    assert.match(t['id'] as string, /^task_/);
    assert.equal(t['workload'], WORKER);
    assert.equal(t['state'], 'open');
    assert.equal(t['opened_at'], clock.now());
    assert.equal(t['deadline'], clock.now() + 600_000);
    assert.equal(t['lease_until'], clock.now() + 120_000);
    assert.deepEqual(t['labels'], { ci_run: '812', job: 'deploy' });
    const opened = await lastEvent(h, 'task.opened');
    assert.equal(opened.data['tid'], t['id']);
    assert.equal(opened.data['purpose'], 'deploy build 812');
    assert.equal(opened.actor, WORKER);
  });

  it('refuses a task without a purpose, and caps the duration at the classes’ longest renewal', async () => {
    const r = await worker.open({ duration: '60' });
    assert.equal(r.status, 400);
    assert.equal(r.body['error'], 'invalid_request');
    assert.equal((await lastEvent(h, 'task.refused')).data['error'], 'invalid_request');
    const t = ok(await worker.open({ purpose: 'too long', duration: '86400' }), 201);
    assert.equal((t['deadline'] as number) - (t['opened_at'] as number), 3600_000);
  });

  it('a client assertion opens one task: sent again it is refused as a replay, also after a refused open', async () => {
    const auth = clientAuth(h, WORKER, workerKey);
    const before = await count(h, 'task.opened');
    ok(await injectForm(h, '/v1/tasks', { ...auth, purpose: 'once' }), 201);
    const again = await injectForm(h, '/v1/tasks', { ...auth, purpose: 'twice' });
    assert.equal(again.status, 401, JSON.stringify(again.body));
    assert.equal(again.body['error'], 'invalid_client');
    assert.equal((await lastEvent(h, 'task.refused')).data['reason'], 'replay');
    assert.equal(await count(h, 'task.opened'), before + 1);
    // Refused after the client authenticated (no purpose): its assertion is spent all the same.
    const refusedAuth = clientAuth(h, WORKER, workerKey);
    assert.equal((await injectForm(h, '/v1/tasks', { ...refusedAuth, labels: '[]' })).status, 400);
    const retried = await injectForm(h, '/v1/tasks', { ...refusedAuth, purpose: 'retry' });
    assert.equal(retried.status, 401, JSON.stringify(retried.body));
    assert.equal((await lastEvent(h, 'task.refused')).data['reason'], 'replay');
    assert.equal(await count(h, 'task.opened'), before + 1);
  });

  it('tokens for a task carry its tid and never expire after the task ends', async () => {
    const short = ok(await worker.open({ purpose: 'quick job', duration: '120' }), 201);
    const claims = decodeClaims(tokenOf(await worker.token(short['id'] as string)));
    assert.equal(claims['tid'], short['id']);
    // The class default is 5 minutes; the task's end (2 minutes) wins.
    assert.equal(claims['exp'], Math.floor((short['deadline'] as number) / 1000));
    assert.ok((claims['exp'] as number) < (claims['iat'] as number) + 300);

    const long = ok(await worker.open({ purpose: 'long job', duration: '3000' }), 201);
    const c2 = decodeClaims(tokenOf(await worker.token(long['id'] as string)));
    assert.equal(c2['tid'], long['id']);
    assert.equal(c2['exp'], (c2['iat'] as number) + 300);
    assert.ok((c2['exp'] as number) * 1000 <= (long['deadline'] as number));
  });

  it('closing a task revokes all its tokens with one tid revocation; other tasks keep theirs', async () => {
    const a = ok(await worker.open({ purpose: 'task a', duration: '900' }), 201)['id'] as string;
    const b = ok(await worker.open({ purpose: 'task b', duration: '900' }), 201)['id'] as string;
    const inA = [
      tokenOf(await worker.token(a)),
      tokenOf(await worker.token(a, SHORT_API)),
      tokenOf(await worker.token(a)),
    ];
    const inB = tokenOf(await worker.token(b));
    const noTask = tokenOf(await worker.token(undefined));
    for (const t of [...inA, inB, noTask]) assert.equal((await introspect(h, t))['active'], true);

    const closed = ok(await worker.close(a, 'build finished'));
    assert.deepEqual(closed, { id: a, closed: true, already_closed: false });

    for (const t of inA) assert.deepEqual(await introspect(h, t), { active: false });
    const other = await introspect(h, inB);
    assert.equal(other['active'], true);
    assert.equal(other['tid'], b);
    assert.equal((await introspect(h, noTask))['active'], true);

    const revocations = ok(await h.admin('GET', '/revocations'))['revocations'] as Array<
      Record<string, unknown>
    >;
    assert.equal(revocations.filter((r) => r['kind'] === 'tid' && r['value'] === a).length, 1);
    assert.equal(revocations.filter((r) => r['kind'] === 'tid' && r['value'] === b).length, 0);
    const event = await lastEvent(h, 'task.closed');
    assert.equal(event.data['tid'], a);
    assert.equal(event.data['reason'], 'build finished');
    assert.equal(event.actor, WORKER);

    // Closing twice changes nothing; the task gives no more tokens.
    assert.equal(ok(await worker.close(a))['already_closed'], true);
    const again = ok(await h.admin('GET', '/revocations'))['revocations'] as Array<Record<string, unknown>>;
    assert.equal(again.filter((r) => r['kind'] === 'tid' && r['value'] === a).length, 1);
    const issued = await count(h, 'token.issued');
    const refused = await worker.token(a);
    assert.equal(refused.status, 400);
    assert.equal(refused.body['error'], 'invalid_grant');
    assert.equal(await count(h, 'token.issued'), issued);

    // The admin view lists the task's tokens, all revoked, and why it closed.
    const view = ok(await h.admin('GET', `/tasks/${a}`));
    assert.equal(view['state'], 'closed');
    assert.equal(view['close_reason'], 'build finished');
    const tokens = view['tokens'] as Array<Record<string, unknown>>;
    assert.deepEqual(tokens.map((t) => t['jti']).sort(), inA.map((t) => decodeClaims(t)['jti']).sort());
    assert.ok(tokens.every((t) => t['revoked'] === true));
    const viewB = ok(await h.admin('GET', `/tasks/${b}`));
    assert.equal(viewB['state'], 'open');
    assert.deepEqual(
      (viewB['tokens'] as Array<Record<string, unknown>>).map((t) => [t['jti'], t['revoked']]),
      [[decodeClaims(inB)['jti'], false]],
    );
  });

  it('an operator opens and closes a task for a workload through the admin API', async () => {
    const t = ok(
      await h.admin('POST', '/tasks', {
        workload: WORKER,
        purpose: 'incident 42 hotfix',
        duration: 300,
        labels: { ticket: 'INC-42' },
      }),
      201,
    );
    assert.equal(t['opened_by'], 'operator:ops');
    assert.equal(t['workload'], WORKER);
    const token = tokenOf(await worker.token(t['id'] as string));
    assert.equal(decodeClaims(token)['tid'], t['id']);
    const listed = ok(await h.admin('GET', `/tasks?workload=${encodeURIComponent(WORKER)}&state=open`));
    assert.ok((listed['tasks'] as Array<Record<string, unknown>>).some((x) => x['id'] === t['id']));
    ok(await h.admin('POST', `/tasks/${t['id'] as string}/close`, { reason: 'hotfix shipped' }));
    assert.deepEqual(await introspect(h, token), { active: false });
    assert.equal((await lastEvent(h, 'task.closed')).actor, 'operator:ops');
  });

  it("a task is its workload's: another workload can neither use nor close it", async () => {
    const t = ok(await worker.open({ purpose: 'private', duration: '300' }), 201)['id'] as string;
    const r = await stranger.token(t);
    assert.equal(r.status, 400);
    assert.equal(r.body['error'], 'invalid_grant');
    const c = await stranger.close(t);
    assert.equal(c.status, 404);
    assert.equal(ok(await h.admin('GET', `/tasks/${t}`))['state'], 'open');
    assert.equal(decodeClaims(tokenOf(await worker.token(t)))['tid'], t);
  });

  it('renewal: each token request in a task is a new token, audited as a renewal after the first', async () => {
    const t = ok(await worker.open({ purpose: 'renewing', duration: '1800' }), 201)['id'] as string;
    const jtis: string[] = [];
    for (let i = 0; i < 3; i++) jtis.push(decodeClaims(tokenOf(await worker.token(t)))['jti'] as string);
    assert.equal(new Set(jtis).size, 3);
    const events = (await h.auditEvents('token.issued')).filter((e) => e.data['tid'] === t);
    assert.deepEqual(
      events.map((e) => [e.jti, e.data['renewal']]),
      [
        [jtis[0], false],
        [jtis[1], true],
        [jtis[2], true],
      ],
    );
    const view = ok(await h.admin('GET', `/tasks/${t}`));
    assert.equal((view['tokens'] as unknown[]).length, 3);
  });
});

describe('renewal limits', () => {
  const clock = fakeClock(Date.UTC(2026, 3, 2, 9));
  const workerKey = testKey();
  const strangerKey = testKey();
  let h: Harness;
  const worker = workerOf(() => h, WORKER, workerKey);

  before(async () => {
    h = await startHarness({
      clock,
      settings: { 'tasks.sweep_interval': 60 },
      extraDocs: docs(workerKey, strangerKey),
    });
  });
  after(() => h.close());

  it("stops at the class's renewal.max_lifetime, counted from the task's start", async () => {
    const t = ok(await worker.open({ purpose: 'long running' }), 201);
    const id = t['id'] as string;
    const openedS = Math.floor((t['opened_at'] as number) / 1000);
    assert.equal((t['deadline'] as number) - (t['opened_at'] as number), 3600_000);

    clock.advance(9 * 60_000);
    const late = decodeClaims(tokenOf(await worker.token(id, SHORT_API)));
    assert.equal(late['exp'], openedS + 600, 'the last secrets token ends at 10 minutes');

    clock.advance(60_000 + 1000);
    const issued = await count(h, 'token.issued');
    const refused = await worker.token(id, SHORT_API);
    assert.equal(refused.status, 400);
    assert.equal(refused.body['error'], 'invalid_grant');
    assert.match(refused.body['error_description'] as string, /maximum lifetime/);
    assert.equal(await count(h, 'token.issued'), issued);
    assert.equal((await lastEvent(h, 'token.refused')).data['error'], 'invalid_grant');

    // The task itself is still open: the deploy class renews for an hour.
    assert.equal(decodeClaims(tokenOf(await worker.token(id, LONG_API)))['tid'], id);
    clock.advance(50 * 60_000);
    const end = await worker.token(id, LONG_API);
    assert.equal(end.status, 400);
    assert.equal(end.body['error'], 'invalid_grant');
  });

  it('stops once the workload is disabled, and its task tokens die with it', async () => {
    const id = ok(await worker.open({ purpose: 'before disable', duration: '1200' }), 201)['id'] as string;
    const token = tokenOf(await worker.token(id));
    assert.equal((await introspect(h, token))['active'], true);
    ok(await h.admin('POST', `/workloads/${encodeURIComponent(WORKER)}/disable`, { reason: 'compromised' }));
    const issued = await count(h, 'token.issued');
    const refused = await worker.token(id);
    assert.ok(refused.status === 400 || refused.status === 401, JSON.stringify(refused.body));
    assert.equal(refused.body['access_token'], undefined);
    assert.ok(
      ['invalid_client', 'invalid_grant', 'unauthorized_client'].includes(refused.body['error'] as string),
    );
    assert.equal(await count(h, 'token.issued'), issued);
    assert.deepEqual(await introspect(h, token), { active: false });
  });
});

describe('the server closes tasks on its own (sweeper, real clock)', () => {
  const workerKey = testKey();
  const strangerKey = testKey();
  let h: Harness;
  let client: WorkloadClient;
  // Both tasks run out together (one by deadline, one by lease), so the file waits for one sweep only.
  let deadlineTask: { id: string; token: string };
  let leaseTask: { id: string; token: string };

  before(async () => {
    h = await startHarness({
      listen: true,
      settings: { 'tasks.sweep_interval': 1 },
      extraDocs: docs(workerKey, strangerKey),
    });
    client = new WorkloadClient({
      issuer: h.issuer,
      clientId: WORKER,
      privateJwk: { ...workerKey.privateKey.export({ format: 'jwk' }), kid: workerKey.kid },
    });
    const a = await client.openTask('two-second job', { duration: 2 });
    const b = await client.openTask('leased job', { duration: 600, lease: 2 });
    deadlineTask = {
      id: a.id,
      token: (await client.requestToken({ audience: LONG_API, taskId: a.id })).access_token,
    };
    leaseTask = {
      id: b.id,
      token: (await client.requestToken({ audience: LONG_API, taskId: b.id })).access_token,
    };
    for (const t of [deadlineTask, leaseTask]) assert.equal((await introspectHttp(t.token))['active'], true);
  });
  after(() => h.close());

  async function introspectHttp(token: string): Promise<Record<string, unknown>> {
    const r = await httpForm(
      `${h.issuer}/oauth2/introspect`,
      { token },
      await h.adminHeaders('POST', '/oauth2/introspect'),
    );
    return r.body;
  }
  const task = async (id: string) => ok(await h.admin('GET', `/tasks/${id}`));
  /** Polls (bounded) until the task is closed; returns its view. */
  const closedTask = async (id: string) => {
    for (let i = 0; i < 100; i++) {
      const t = await task(id);
      if (t['state'] === 'closed') return t;
      await new Promise((r) => setTimeout(r, 100));
    }
    return task(id);
  };

  it('closes a task past its deadline without anyone calling close; its token ended with it', async () => {
    const t = deadlineTask;
    const res = { access_token: t.token };
    assert.equal(decodeClaims(res.access_token)['tid'], t.id);

    const view = await closedTask(t.id);
    assert.equal(view['state'], 'closed');
    assert.equal(view['close_reason'], 'deadline reached');
    const closed = (await h.auditEvents('task.closed')).filter((e) => e.data['tid'] === t.id);
    assert.deepEqual(
      closed.map((e) => e.actor),
      ['system'],
    );
    // Its token ended with the task (`exp` is the deadline): nothing live is left to revoke, so no
    // revocation joins the set verifiers hold.
    assert.ok((decodeClaims(res.access_token)['exp'] as number) * 1000 <= (view['closed_at'] as number));
    const revocations = ok(await h.admin('GET', '/revocations'))['revocations'] as Array<
      Record<string, unknown>
    >;
    assert.equal(revocations.filter((r) => r['kind'] === 'tid' && r['value'] === t.id).length, 0);
    assert.equal(closed[0]?.data['revocation'], null);
    assert.deepEqual(await introspectHttp(res.access_token), { active: false });
  });

  it('closes a task whose lease ran out (its owner stopped renewing): its live token goes inactive', async () => {
    const t = leaseTask;
    const res = { access_token: t.token };
    const claims = decodeClaims(res.access_token);
    assert.equal(claims['tid'], t.id);
    // The token would live for minutes: only the task's end can make it inactive this soon.
    assert.ok((claims['exp'] as number) - nowSeconds(h) > 60);

    let body: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) {
      body = await introspectHttp(res.access_token);
      if (body['active'] === false) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(body, { active: false });
    const view = await task(t.id);
    assert.equal(view['state'], 'closed');
    assert.equal(view['close_reason'], 'lease expired (owner stopped renewing)');
    const closed = (await h.auditEvents('task.closed')).filter((e) => e.data['tid'] === t.id);
    assert.deepEqual(
      closed.map((e) => e.actor),
      ['system'],
    );
  });
});
