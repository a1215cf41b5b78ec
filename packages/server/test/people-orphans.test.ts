import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { quarantineOrphans } from '../src/admin/orphan-quarantine.js';
import { fakeClock } from '../src/clock.js';
import type { RawDocument } from '../src/config/config-dir.js';
import { operatorCli } from './helpers/cli.js';
import { type Harness, harnessDocuments, startHarness, testKey } from './helpers/harness.js';

// Orphaned workloads: listed for reassignment (admin API and CLI), and, when the operator opts in,
// quarantined once their owner has been gone for the grace period, by the injected clock: not before.

const JOB = 'spiffe://test.writ/alice/job';
const DAY = 86_400_000;

describe('orphaned workloads', () => {
  const clock = fakeClock(Date.now());
  const key = testKey();
  let h: Harness;
  const docs = (aliceActive: boolean): RawDocument[] => [
    {
      kind: 'people',
      file: 'people/alice.yaml',
      index: 0,
      doc: { id: 'alice', name: 'Alice', active: aliceActive },
    },
    {
      kind: 'workload',
      file: 'workloads/job.yaml',
      index: 0,
      doc: {
        id: JOB,
        owner: 'alice',
        environment: 'prod',
        classes: ['reports-read'],
        jwks: { keys: [key.publicJwk] },
      },
    },
  ];
  before(async () => {
    h = await startHarness({
      clock,
      listen: true,
      extraDocs: docs(true),
      settings: { 'governance.orphan_quarantine_after': '7d' },
    });
  });
  after(() => h.close());

  it('a workload of an active owner is not orphaned and the rule leaves it alone', async () => {
    assert.deepEqual((await h.admin('GET', '/workloads/orphaned')).body['workloads'], []);
    assert.deepEqual(await quarantineOrphans(h.writ.ctx), []);
  });

  it('its owner made inactive: listed (API and CLI) with reason and time, not quarantined before the grace ends', async () => {
    const left = clock.now();
    const applied = await h.admin('POST', '/config', { documents: harnessDocuments(h, docs(false)) });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const r = await h.admin('GET', '/workloads/orphaned');
    assert.deepEqual(r.body['workloads'], [
      {
        id: JOB,
        owner: 'alice',
        environment: 'prod',
        state: 'active',
        reason: 'person_inactive',
        since: left,
      },
    ]);
    assert.equal(r.body['quarantine_after'], 7 * 86_400);

    const cli = await operatorCli(h)(['workloads', 'orphaned']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(
      cli.stdout,
      new RegExp(`active\\s+${JOB}  owner=alice person_inactive since=${new Date(left).toISOString()}`),
    );
    assert.match(cli.stdout, /quarantined 604800s after the owner left/);

    assert.deepEqual(await quarantineOrphans(h.writ.ctx), []);
    clock.advance(7 * DAY - 1000);
    assert.deepEqual(await quarantineOrphans(h.writ.ctx), [], 'one second before the grace ends');
    assert.equal(h.writ.ctx.registry.workload(JOB)?.state, 'active');
    const token = await h.requestToken({}, { clientId: JOB, key });
    assert.equal(token.status, 200, 'it still works meanwhile');
  });

  it('after the grace period it is quarantined, audited, and gets no token', async () => {
    clock.advance(1000);
    assert.deepEqual(await quarantineOrphans(h.writ.ctx), [JOB]);
    assert.equal(h.writ.ctx.registry.workload(JOB)?.state, 'quarantined');
    const event = (await h.auditEvents('workload.quarantined')).at(-1);
    assert.equal(event?.actor, 'governance');
    assert.equal(event?.subject, JOB);
    assert.match(
      String(event?.data['reason']),
      /owner alice is person inactive since .*governance\.orphan_quarantine_after/,
    );
    const token = await h.requestToken({}, { clientId: JOB, key });
    assert.notEqual(token.status, 200);
    // Once quarantined it is not quarantined again.
    clock.advance(DAY);
    assert.deepEqual(await quarantineOrphans(h.writ.ctx), []);
  });
});

describe('orphaned workloads without the opt-in', () => {
  const clock = fakeClock(Date.now());
  let h: Harness;
  before(async () => {
    h = await startHarness({
      clock,
      extraDocs: [
        { kind: 'people', file: 'people/bob.yaml', index: 0, doc: { id: 'bob', name: 'Bob', active: false } },
        {
          kind: 'workload',
          file: 'workloads/job.yaml',
          index: 0,
          doc: {
            id: JOB,
            owner: 'bob',
            environment: 'prod',
            classes: ['reports-read'],
            jwks: { keys: [testKey().publicJwk] },
          },
        },
      ],
    });
  });
  after(() => h.close());

  it('lists them but never quarantines', async () => {
    assert.equal(((await h.admin('GET', '/workloads/orphaned')).body['workloads'] as unknown[]).length, 1);
    clock.advance(400 * DAY);
    assert.deepEqual(await quarantineOrphans(h.writ.ctx), []);
    assert.equal(h.writ.ctx.registry.workload(JOB)?.state, 'active');
  });
});
