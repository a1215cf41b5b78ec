import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateDpopKey } from '@writ/sdk/dpop';
import { fakeClock } from '../../src/clock.js';
import type { Store } from '../../src/store/store.js';
import { sweepTasks } from '../../src/tasks/sweeper.js';
import type { Task } from '../../src/tasks/task.js';
import { closeTask, pruneClosedTasks } from '../../src/tasks/tasks.js';
import {
  classDoc,
  clientAuth,
  decodeClaims,
  dpopTokenRequest,
  injectForm,
  introspect,
  proofParts,
  serverNonce,
  signProof,
  workloadDoc,
} from '../helpers/dpop.js';
import { type Harness, type Reply, startHarness, TEST_STORE, testKey } from '../helpers/harness.js';
import { expectRefusal } from '../helpers/refusals.js';

// Tasks as an attacker would use them: to starve the sweeper that ends other workloads' tasks, to grow
// the revocation set until verifiers refuse it, and to hold more open tasks than anyone needs.

const VICTIM = 'spiffe://test.writ/ci/victim';
const ATTACKER = 'spiffe://test.writ/ci/flooder';
const API = 'https://deploy.test';

function docs(victimKey: ReturnType<typeof testKey>, attackerKey: ReturnType<typeof testKey>) {
  return [
    classDoc({
      name: 'deploy',
      max_ttl: '10m',
      default_ttl: '10m',
      audiences: [API],
      scopes: ['deploy:run'],
      default_scopes: ['deploy:run'],
      renewal: { max_lifetime: '1h' },
    }),
    workloadDoc(VICTIM, victimKey, ['deploy']),
    workloadDoc(ATTACKER, attackerKey, ['deploy']),
  ];
}

function workloadOf(h: () => Harness, id: string, key: ReturnType<typeof testKey>) {
  const holder = generateDpopKey();
  return {
    open: (fields: Record<string, string>) =>
      injectForm(h(), '/v1/tasks', { ...clientAuth(h(), id, key), ...fields }),
    close: (taskId: string) =>
      injectForm(h(), `/v1/tasks/${taskId}/close`, { ...clientAuth(h(), id, key), reason: 'done' }),
    token: (taskId: string): Promise<Reply> =>
      dpopTokenRequest(
        h(),
        () => ({
          grant_type: 'client_credentials',
          ...clientAuth(h(), id, key),
          resource: API,
          task_id: taskId,
        }),
        holder,
      ),
  };
}

const ok = (r: Reply, status = 200): Record<string, unknown> => {
  assert.equal(r.status, status, JSON.stringify(r.body));
  return r.body;
};

/** Open tasks written straight to the store, in pages of one transaction each (the fast path). */
async function flood(h: Harness, n: number, make: (i: number) => Partial<Task>): Promise<void> {
  const now = h.writ.ctx.clock.now();
  for (let from = 0; from < n; from += 5000) {
    await h.store.transaction(async (tx) => {
      for (let i = from; i < Math.min(n, from + 5000); i++)
        await tx.createTask({
          id: `flood-${i}`,
          workload: ATTACKER,
          purpose: 'flood',
          labels: {},
          openedBy: ATTACKER,
          openedAt: now,
          deadline: now + 3_600_000,
          leaseUntil: null,
          closedAt: null,
          closeReason: null,
          ...make(i),
        });
    });
  }
}

/**
 * A server on a fake clock from `start`, with the victim's and the attacker's workloads. Its own sweeper
 * runs a minute apart (`tasks.sweep_interval`), so each sweep a test makes is one tick.
 */
function fakeClockScene(start: number, settings: Record<string, number> = {}) {
  const clock = fakeClock(start);
  const victimKey = testKey();
  const attackerKey = testKey();
  let harness: Harness | undefined;
  const h = (): Harness => {
    if (harness === undefined) throw new Error('the scene starts in before()');
    return harness;
  };
  before(async () => {
    harness = await startHarness({
      clock,
      settings: { 'tasks.sweep_interval': 60, ...settings },
      extraDocs: docs(victimKey, attackerKey),
    });
  });
  after(() => h().close());
  return {
    clock,
    victimKey,
    get h(): Harness {
      return h();
    },
    victim: workloadOf(h, VICTIM, victimKey),
    attacker: workloadOf(h, ATTACKER, attackerKey),
  };
}

describe('the sweeper under a flood of due tasks (fake clock)', () => {
  const s = fakeClockScene(Date.UTC(2026, 4, 1, 9));

  it('a lapsed lease is closed, and its token revoked, within two sweep intervals with 3,000 other tasks due', async () => {
    const interval = s.h.settings.tasks.sweepInterval * 1000;
    const task = ok(await s.victim.open({ purpose: 'victim job', duration: '3000', lease: '30' }), 201);
    const id = task['id'] as string;
    const token = ok(await s.victim.token(id))['access_token'] as string;
    assert.equal(decodeClaims(token)['tid'], id);
    const leaseEnd = task['lease_until'] as number;
    // The attacker's tasks all reach their deadline before the victim's lease runs out; the victim's
    // own deadline is most of an hour later.
    await flood(s.h, 3000, (i) => ({ deadline: leaseEnd - 1 - (i % 20_000) }));

    let ticks = 0;
    s.clock.set(leaseEnd);
    while (ticks < 2) {
      s.clock.advance(interval);
      ticks++;
      await sweepTasks(s.h.writ.ctx);
      if (ok(await s.h.admin('GET', `/tasks/${id}`))['state'] === 'closed') break;
    }
    const view = ok(await s.h.admin('GET', `/tasks/${id}`));
    assert.equal(view['state'], 'closed', `still open after ${ticks} sweeps`);
    assert.equal(view['close_reason'], 'lease expired (owner stopped renewing)');
    assert.ok((view['closed_at'] as number) - leaseEnd <= 2 * interval);
    assert.deepEqual(await introspect(s.h, token), { active: false });
    // Every task that was due is closed too: the sweep ran until none was left.
    assert.deepEqual(await s.h.store.dueTasks(s.clock.now(), 1), []);
  });
});

/**
 * Tasks closed without a token in the flood case: more than the ~86,000 revocations that made a
 * snapshot pass the 16 MiB verifiers accept. On PostgreSQL, where writing each task is a round trip,
 * a tenth as many (the property does not depend on the count).
 */
const TASK_FLOOD = TEST_STORE === 'postgres' ? 10_000 : 100_000;

describe('closed tasks and the revocation set (fake clock)', () => {
  const s = fakeClockScene(Date.UTC(2026, 4, 2, 9));

  it('100,000 tasks closed without a token add no revocation: the snapshot verifiers load stays empty', async () => {
    const before = await s.h.countRows('revocations');
    const n = TASK_FLOOD;
    let started = Date.now();
    await flood(s.h, n, (i) => ({ id: `tokenless-${i}`, deadline: s.clock.now() - 1 - (i % 1000) }));
    console.log(`flood ${n} in ${Date.now() - started} ms`);
    s.clock.advance(1000);
    started = Date.now();
    await sweepTasks(s.h.writ.ctx);
    console.log(`closed ${n} in ${Date.now() - started} ms`);
    // Every one of them is closed and audited (by this sweep, or by the server's own timer had it fired).
    assert.deepEqual(await s.h.store.dueTasks(s.clock.now(), 1), []);
    assert.equal(await s.h.countRows('revocations'), before);
    assert.deepEqual(await s.h.store.listRevocations(0, s.clock.now()), []);
    assert.equal(s.h.writ.ctx.revocations.size, 0);
  });

  it("a task that issued tokens: its tid revocation lasts exactly until its last token's exp", async () => {
    const id = ok(await s.victim.open({ purpose: 'two tokens', duration: '3000' }), 201)['id'] as string;
    const first = decodeClaims(ok(await s.victim.token(id))['access_token'] as string);
    s.clock.advance(120_000);
    const second = decodeClaims(ok(await s.victim.token(id))['access_token'] as string);
    assert.ok((second['exp'] as number) > (first['exp'] as number));
    ok(await s.victim.close(id));
    const [r] = (await s.h.store.listRevocations(0, s.clock.now())).filter(
      (x) => x.kind === 'tid' && x.value === id,
    );
    assert.ok(r, 'the task is revoked');
    assert.equal(r.expires_at, (second['exp'] as number) * 1000);
    // Verifiers may forget it the moment that token expires, and not before.
    const lastMs = (second['exp'] as number) * 1000;
    assert.equal((await s.h.store.listRevocations(r.seq - 1, lastMs - 1)).length, 1);
    assert.equal((await s.h.store.listRevocations(r.seq - 1, lastMs)).length, 0);
  });

  it('a swept task with a live token is revoked until that exp; one whose tokens expired adds nothing', async () => {
    const live = ok(await s.victim.open({ purpose: 'leased', duration: '3000', lease: '30' }), 201)[
      'id'
    ] as string;
    const liveExp = decodeClaims(ok(await s.victim.token(live))['access_token'] as string)['exp'] as number;
    const spent = ok(await s.victim.open({ purpose: 'spent', duration: '3000', lease: '30' }), 201)[
      'id'
    ] as string;
    await s.h.store.recordToken({
      jti: `spent-${spent}`,
      sub: VICTIM,
      clientId: VICTIM,
      cls: 'deploy',
      aud: API,
      scope: 'deploy:run',
      kid: 'k',
      tid: spent,
      iat: Math.floor(s.clock.now() / 1000) - 600,
      exp: Math.floor(s.clock.now() / 1000) - 1,
      fingerprint: 'fp',
    });
    s.clock.advance(31_000);
    await sweepTasks(s.h.writ.ctx);
    const revocations = await s.h.store.listRevocations(0, 0);
    const of = (tid: string) => revocations.filter((x) => x.kind === 'tid' && x.value === tid);
    assert.deepEqual(
      of(live).map((x) => x.expires_at),
      [liveExp * 1000],
    );
    assert.deepEqual(of(spent), []);
    for (const tid of [live, spent])
      assert.equal(ok(await s.h.admin('GET', `/tasks/${tid}`))['state'], 'closed');
  });

  it('RFC 7009: a revoked token is remembered until its own exp, not for tokens.max_lifetime', async () => {
    const id = ok(await s.victim.open({ purpose: 'revoke one', duration: '3000' }), 201)['id'] as string;
    const token = ok(await s.victim.token(id))['access_token'] as string;
    const claims = decodeClaims(token);
    const r = await injectForm(s.h, '/oauth2/revoke', { ...clientAuth(s.h, VICTIM, s.victimKey), token });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [stored] = (await s.h.store.listRevocations(0, s.clock.now())).filter(
      (x) => x.kind === 'jti' && x.value === claims['jti'],
    );
    assert.equal(stored?.expires_at, (claims['exp'] as number) * 1000);
  });

  it('a class revocation lasts as long as that class’s tokens can, or longer when a recorded token says so', async () => {
    const nowS = Math.floor(s.clock.now() / 1000);
    const made = ok(
      await s.h.admin('POST', '/revocations', { kind: 'cls', value: 'deploy', reason: 'test' }),
      201,
    );
    // `deploy` tokens live at most 10 minutes: not the hour of tokens.max_lifetime.
    assert.equal(made['expires_at'], (made['issued_before'] as number) * 1000 + 600_000);
    // A token issued before the class was shortened outlives that bound: the revocation waits for it.
    await s.h.store.recordToken({
      jti: 'long-lived',
      sub: VICTIM,
      clientId: VICTIM,
      cls: 'reports-read',
      aud: API,
      scope: 'deploy:run',
      kid: 'k',
      iat: nowS - 10,
      exp: nowS + 3000,
      fingerprint: 'fp',
    });
    const wide = ok(
      await s.h.admin('POST', '/revocations', { kind: 'cls', value: 'reports-read', reason: 'test' }),
      201,
    );
    assert.equal(wide['expires_at'], (nowS + 3000) * 1000);
  });

  it('a token request that loses the race with its task closing is refused (its tid revocation would miss it)', async () => {
    const id = ok(await s.victim.open({ purpose: 'racing', duration: '3000' }), 201)['id'] as string;
    const ctx = s.h.writ.ctx;
    const store = ctx.store;
    const transaction = store.transaction;
    const recordIssuance = store.recordIssuance;
    // One request, its DPoP nonce already in hand (the nonce round trip is a refusal of its own).
    const holder = generateDpopKey();
    const nonce = await serverNonce(s.h, VICTIM, s.victimKey, API);
    const request = () =>
      injectForm(
        s.h,
        '/oauth2/token',
        {
          grant_type: 'client_credentials',
          ...clientAuth(s.h, VICTIM, s.victimKey),
          resource: API,
          task_id: id,
        },
        {
          dpop: signProof(
            holder,
            proofParts(holder, {
              htu: `${s.h.issuer}/oauth2/token`,
              iat: Math.floor(s.clock.now() / 1000),
              nonce,
            }),
          ),
        },
      );
    // The close commits after the request found the task open and before the issuance's write: a
    // transaction (SQLite) or a group-committed batch (PostgreSQL, `recordIssuance`), whichever the store
    // reaches first, and once only.
    let closed = false;
    const closeFirst = async () => {
      if (closed) return;
      closed = true;
      store.transaction = transaction;
      store.recordIssuance = recordIssuance;
      assert.equal(await closeTask(ctx, id, 'done elsewhere', VICTIM), true);
    };
    store.transaction = async <T>(fn: (tx: Store) => Promise<T>): Promise<T> => {
      await closeFirst();
      return transaction.call(store, fn) as Promise<T>;
    };
    store.recordIssuance = async (...args: Parameters<Store['recordIssuance']>) => {
      await closeFirst();
      return recordIssuance.apply(store, args);
    };
    try {
      const { reply } = await expectRefusal(s.h, request, { status: 400, error: 'invalid_grant' });
      assert.match(reply.body['error_description'] as string, /task is closed/);
    } finally {
      store.transaction = transaction;
      store.recordIssuance = recordIssuance;
    }
    assert.equal(closed, true, 'the close was injected before the issuance wrote');
    assert.deepEqual(await s.h.store.tokensForTask(id, 10), []);
  });
});

describe('open tasks per workload, and closed tasks kept for tasks.retention (fake clock)', () => {
  const s = fakeClockScene(Date.UTC(2026, 4, 3, 9), {
    'tasks.max_open_per_workload': 3,
    'tasks.retention': 3600,
  });

  it('the open-task limit refuses the N+1th open, audited, naming the limit and how many are open', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(ok(await s.attacker.open({ purpose: `hold ${i}` }), 201)['id'] as string);
    const rows = await s.h.countRows('tasks');
    const { reply, event } = await expectRefusal(s.h, () => s.attacker.open({ purpose: 'one too many' }), {
      status: 429,
      error: 'temporarily_unavailable',
      event: 'task.refused',
      reason: 'open_task_limit',
    });
    assert.match(
      reply.body['error_description'] as string,
      /3 open tasks.*tasks\.max_open_per_workload is 3/,
    );
    assert.equal(event.data['open'], 3);
    assert.equal(event.data['limit'], 3);
    assert.equal(await s.h.countRows('tasks'), rows, 'nothing opened');
    // Another workload is not held back by the attacker's tasks.
    ok(await s.victim.open({ purpose: 'unrelated' }), 201);
    // Room comes back when one closes.
    ok(await s.attacker.close(ids[0]!));
    ok(await s.attacker.open({ purpose: 'after a close' }), 201);
  });

  it('an operator opening a task for a workload at its limit is refused too', async () => {
    const r = await s.h.admin('POST', '/tasks', {
      workload: ATTACKER,
      purpose: 'operator open',
      duration: 300,
    });
    assert.equal(r.status, 429, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'temporarily_unavailable');
  });

  it('closed tasks are deleted tasks.retention after they closed; open ones never', async () => {
    const closed = ok(await s.victim.open({ purpose: 'short-lived' }), 201)['id'] as string;
    const open = ok(await s.victim.open({ purpose: 'long-lived', duration: '3600' }), 201)['id'] as string;
    ok(await s.victim.close(closed));
    s.clock.advance(3600_000);
    await pruneClosedTasks(s.h.writ.ctx);
    assert.ok(await s.h.store.getTask(closed), 'kept for the whole retention');
    s.clock.advance(1);
    await pruneClosedTasks(s.h.writ.ctx);
    assert.equal(await s.h.store.getTask(closed), undefined);
    assert.ok(await s.h.store.getTask(open));
    // Its history is in the audit log still.
    assert.ok((await s.h.auditEvents('task.closed')).some((e) => e.data['tid'] === closed));
  });
});
