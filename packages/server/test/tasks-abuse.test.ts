import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateDpopKey } from '@writ/sdk/dpop';
import { fakeClock } from '../src/clock.js';
import { sweepTasks } from '../src/tasks/sweeper.js';
import type { Task } from '../src/tasks/task.js';
import {
  classDoc,
  clientAuth,
  decodeClaims,
  dpopTokenRequest,
  injectForm,
  introspect,
  workloadDoc,
} from './helpers/dpop.js';
import { type Harness, type Reply, startHarness, testKey } from './helpers/harness.js';

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

describe('the sweeper under a flood of due tasks (fake clock)', () => {
  const clock = fakeClock(Date.UTC(2026, 4, 1, 9));
  const victimKey = testKey();
  const attackerKey = testKey();
  let h: Harness;
  const victim = workloadOf(() => h, VICTIM, victimKey);

  before(async () => {
    // The server's own timer stays out of the way (a minute apart); each tick below is one sweep.
    h = await startHarness({
      clock,
      settings: { 'tasks.sweep_interval': 60 },
      extraDocs: docs(victimKey, attackerKey),
    });
  });
  after(() => h.close());

  it('a lapsed lease is closed, and its token revoked, within two sweep intervals with 3,000 other tasks due', async () => {
    const interval = h.settings.tasks.sweepInterval * 1000;
    const task = ok(await victim.open({ purpose: 'victim job', duration: '3000', lease: '30' }), 201);
    const id = task['id'] as string;
    const token = ok(await victim.token(id))['access_token'] as string;
    assert.equal(decodeClaims(token)['tid'], id);
    const leaseEnd = task['lease_until'] as number;
    // The attacker's tasks all reach their deadline before the victim's lease runs out; the victim's
    // own deadline is most of an hour later.
    await flood(h, 3000, (i) => ({ deadline: leaseEnd - 1 - (i % 20_000) }));

    let ticks = 0;
    clock.set(leaseEnd);
    while (ticks < 2) {
      clock.advance(interval);
      ticks++;
      await sweepTasks(h.writ.ctx);
      if (ok(await h.admin('GET', `/tasks/${id}`))['state'] === 'closed') break;
    }
    const view = ok(await h.admin('GET', `/tasks/${id}`));
    assert.equal(view['state'], 'closed', `still open after ${ticks} sweeps`);
    assert.equal(view['close_reason'], 'lease expired (owner stopped renewing)');
    assert.ok((view['closed_at'] as number) - leaseEnd <= 2 * interval);
    assert.deepEqual(await introspect(h, token), { active: false });
    // Every task that was due is closed too: the sweep ran until none was left.
    assert.deepEqual(await h.store.dueTasks(clock.now(), 1), []);
  });
});
