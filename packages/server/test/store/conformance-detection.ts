import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DetectionConfig } from '../../src/detection/detection-config.js';
import type {
  DetectionControl,
  Finding,
  FindingQuery,
  StoredBaseline,
  WorkloadRisk,
} from '../../src/detection/finding.js';
import type { Store } from '../../src/store/store.js';

/**
 * Store contract cases for detection: baselines, risk, findings, the operator's pause switch and the
 * applied detection config; part of `runStoreConformance`.
 */

const NOW = 1_700_000_000_000;
const W1 = 'spiffe://test/w1';
const W2 = 'spiffe://test/w2';

/** A detection config with every field of a rule set, two rules and two ranges, unicode included. */
const DETECTION_CONFIG: DetectionConfig = {
  rules: [
    {
      id: 'token-two-networks',
      description: 'override: observe only ✓',
      signal: 'usage',
      condition: 'token.networks > 2 && event.user_agent != "ünïcødé"',
      severity: 'medium',
      response: 'raise_risk',
      mode: 'observe',
      cooldown: '5m',
      enabled: true,
      source: 'detections/overrides.yaml',
    },
    {
      id: 'ci-from-laptop',
      description: '',
      signal: 'token.issued',
      condition: 'event.source.startsWith("192.168.")',
      severity: 'low',
      response: 'alert',
      mode: 'enforce',
      cooldown: 600,
      enabled: false,
      source: 'detections/ci.yaml',
    },
  ],
  networks: [
    { cidr: '10.1.0.0/16', environment: 'prod' },
    { cidr: '2001:db8::/32', environment: 'dev' },
  ],
};

interface Harness {
  store: Store;
  openPeer(): Promise<Store>;
}

/** A finding with every field set, and no two fields alike, so a column read into another shows. */
function finding(id: string, extra: Partial<Finding> = {}): Finding {
  return {
    id,
    rule: 'usage.new-network',
    severity: 'high',
    mode: 'enforce',
    workload: W1,
    jti: `jti-${id}`,
    tid: 'task-7',
    createdAt: NOW,
    evidence: {
      signals: [
        {
          kind: 'token.issued',
          time: NOW - 5000,
          data: {
            sub: W1,
            jti: `jti-${id}`,
            aud: 'https://reports.test',
            cls: 'reports-read',
            tid: 'task-7',
            source: '10.0.0.7',
          },
        },
        {
          kind: 'usage',
          time: NOW - 1000,
          data: {
            sub: W1,
            jti: `jti-${id}`,
            tid: 'task-7',
            aud: 'https://reports.test',
            reporter: 'spiffe://test/api',
            operation: 'GET /reports/:id',
            source: '203.0.113.9',
            network: '203.0.113.0/24',
            network_environment: '',
            user_agent: 'curl/8.5',
            user_agent_kind: 'interactive',
            decision: 'deny',
            reason: 'dpop_jkt',
            signal: 'key_mismatch',
            token_revoked: false,
          },
        },
      ],
      source: '203.0.113.9',
      read: {
        baseline: { networks: ['10.0.0.0/24'], learning: false },
        token: { age_s: 12.5 },
        label: 'ünïcødé ✓',
      },
    },
    response: 'quarantine',
    outcome: 'paused',
    risk: 62.5,
    state: 'open',
    stateBy: null,
    stateAt: null,
    note: '',
    ...extra,
  };
}

const ids = (fs: Finding[]) => fs.map((f) => f.id);
/** The place before every finding of millisecond `ms`: "created before `ms`". */
const startOf = (ms: number) => ({ createdAt: ms, id: '' });

/** The ids of each page of `q`, `limit` a page, each page continuing after the last one's finding. */
async function pagesOf(store: Store, q: Omit<FindingQuery, 'limit' | 'before'>, limit: number) {
  const pages: string[][] = [];
  let before: Finding | undefined;
  // Bounded: a store that kept returning the same page must fail here, not loop.
  for (let n = 0; n < 10; n++) {
    const page = await store.listFindings({ ...q, before, limit });
    pages.push(ids(page));
    if (page.length === 0) break;
    before = page.at(-1);
  }
  return pages;
}
const byWorkload = <T extends { workload: string }>(rows: T[]) =>
  [...rows].sort((a, b) => (a.workload < b.workload ? -1 : a.workload > b.workload ? 1 : 0));

export function detectionConformanceCases(withStore: (fn: (t: Harness) => Promise<void>) => Promise<void>) {
  describe('detection: baselines and risk', () => {
    it('putBaselines creates and replaces by workload, the last of a batch winning; a peer reads them all', () =>
      withStore(async ({ store, openPeer }) => {
        assert.deepEqual(await store.listBaselines(), []);
        // A large document is stored as given.
        const big = JSON.stringify({
          networks: Array.from({ length: 5000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`),
        });
        const b = (workload: string, data: string, updatedAt: number): StoredBaseline => ({
          workload,
          data,
          updatedAt,
        });
        await store.putBaselines([b(W2, '{"v":1}', NOW), b(W1, big, NOW)]);
        assert.deepEqual(byWorkload(await store.listBaselines()), [b(W1, big, NOW), b(W2, '{"v":1}', NOW)]);

        await store.putBaselines([
          b(W2, '{"v":2}', NOW + 1),
          b('spiffe://test/w3', '{"ü":"✓"}', NOW + 1),
          b(W2, '{"v":3}', NOW + 2),
        ]);
        await store.putBaselines([]);
        const expected = [
          b(W1, big, NOW),
          b(W2, '{"v":3}', NOW + 2),
          b('spiffe://test/w3', '{"ü":"✓"}', NOW + 1),
        ];
        assert.deepEqual(byWorkload(await store.listBaselines()), expected);
        const peer = await openPeer();
        assert.deepEqual(byWorkload(await peer.listBaselines()), expected);
      }));

    it('putRisk creates and replaces a workload’s risk, keeping fractions exactly', () =>
      withStore(async ({ store, openPeer }) => {
        assert.deepEqual(await store.listRisks(), []);
        const r = (workload: string, score: number, at: number): WorkloadRisk => ({ workload, score, at });
        await store.putRisk(r(W2, 7, NOW));
        await store.putRisk(r(W1, 42.1, NOW));
        assert.deepEqual(byWorkload(await store.listRisks()), [r(W1, 42.1, NOW), r(W2, 7, NOW)]);
        await store.putRisk(r(W1, 12.345678901234, NOW + 60_000));
        const expected = [r(W1, 12.345678901234, NOW + 60_000), r(W2, 7, NOW)];
        assert.deepEqual(byWorkload(await store.listRisks()), expected);
        const peer = await openPeer();
        assert.deepEqual(byWorkload(await peer.listRisks()), expected);
      }));
  });

  describe('detection: findings', () => {
    it('round-trips every field, the evidence included; absent fields stay absent; unknown ids are undefined', () =>
      withStore(async ({ store, openPeer }) => {
        const full = finding('f-full', {
          risk: 42.1,
          state: 'acknowledged',
          stateBy: 'operator:alice',
          stateAt: NOW + 10,
          note: 'looking into it ✓',
        });
        const bare = finding('f-bare', {
          rule: 'refusals.burst',
          severity: 'low',
          mode: 'observe',
          workload: '',
          jti: null,
          tid: null,
          createdAt: NOW + 1,
          evidence: {
            signals: [
              {
                kind: 'token.refused',
                time: NOW + 1,
                data: { client_id: 'claimed', reason: 'invalid_client', source: '::1' },
              },
            ],
          },
          response: 'alert',
          outcome: 'observe',
          risk: 0,
        });
        await store.addFinding(full);
        await store.addFinding(bare);
        assert.deepEqual(await store.getFinding(full.id), full);
        assert.deepEqual(await store.getFinding(bare.id), bare);
        assert.equal(await store.getFinding('f-none'), undefined);
        const peer = await openPeer();
        assert.deepEqual(await peer.getFinding(full.id), full);
        assert.deepEqual(await peer.listFindings({ limit: 10 }), [bare, full]);
      }));

    it('refuses a second finding with the same id and keeps the first', () =>
      withStore(async ({ store }) => {
        await store.addFinding(finding('f-1'));
        await assert.rejects(store.addFinding(finding('f-1', { rule: 'other', createdAt: NOW + 5 })));
        assert.deepEqual(await store.listFindings({ limit: 10 }), [finding('f-1')]);
      }));

    it('lists newest first by creation time, then by id', () =>
      withStore(async ({ store }) => {
        // Stored in an order that is neither the listing's nor its reverse.
        await store.addFinding(finding('f-c', { createdAt: NOW + 2 }));
        await store.addFinding(finding('f-a', { createdAt: NOW + 1 }));
        await store.addFinding(finding('f-d', { createdAt: NOW + 3 }));
        await store.addFinding(finding('f-b', { createdAt: NOW + 3 }));
        assert.deepEqual(ids(await store.listFindings({ limit: 10 })), ['f-d', 'f-b', 'f-c', 'f-a']);
        assert.deepEqual(ids(await store.listFindings({ limit: 2 })), ['f-d', 'f-b']);
      }));

    it('filters by state, workload, rule and time (strictly before), alone and together', () =>
      withStore(async ({ store }) => {
        // id, workload, rule, state; created one millisecond apart in this order.
        const rows: Array<[string, string, string, Finding['state']]> = [
          ['f-1', W1, 'r1', 'open'],
          ['f-2', W1, 'r2', 'acknowledged'],
          ['f-3', W2, 'r1', 'open'],
          ['f-4', W2, 'r2', 'resolved'],
          ['f-5', W1, 'r1', 'false_positive'],
          ['f-6', '', 'r3', 'open'],
        ];
        for (const [i, [id, workload, rule, state]] of rows.entries())
          await store.addFinding(finding(id, { workload, rule, state, createdAt: NOW + i + 1 }));
        const list = async (q: Omit<FindingQuery, 'limit'>) =>
          ids(await store.listFindings({ limit: 100, ...q }));

        assert.deepEqual(await list({}), ['f-6', 'f-5', 'f-4', 'f-3', 'f-2', 'f-1']);
        assert.deepEqual(await list({ state: undefined, workload: undefined }), [
          'f-6',
          'f-5',
          'f-4',
          'f-3',
          'f-2',
          'f-1',
        ]);
        assert.deepEqual(await list({ state: 'open' }), ['f-6', 'f-3', 'f-1']);
        assert.deepEqual(await list({ state: 'false_positive' }), ['f-5']);
        assert.deepEqual(await list({ workload: W1 }), ['f-5', 'f-2', 'f-1']);
        // The empty workload (a claimed identity) is a filter like any other, not "no filter".
        assert.deepEqual(await list({ workload: '' }), ['f-6']);
        assert.deepEqual(await list({ rule: 'r1' }), ['f-5', 'f-3', 'f-1']);
        assert.deepEqual(await list({ before: startOf(NOW + 4) }), ['f-3', 'f-2', 'f-1']);
        assert.deepEqual(await list({ before: startOf(NOW + 1) }), []);
        assert.deepEqual(await list({ state: 'open', workload: W2 }), ['f-3']);
        assert.deepEqual(await list({ workload: W1, rule: 'r1', before: startOf(NOW + 5) }), ['f-1']);
        assert.deepEqual(await list({ state: 'open', workload: W1, rule: 'r1', before: startOf(NOW + 2) }), [
          'f-1',
        ]);
        assert.deepEqual(await list({ state: 'resolved', workload: W1 }), []);
        assert.deepEqual(await list({ rule: 'none' }), []);
      }));

    it('pages newest first: each page continues after the last one’s finding', () =>
      withStore(async ({ store }) => {
        for (const i of [4, 1, 7, 3, 6, 2, 5])
          await store.addFinding(finding(`f-${i}`, { createdAt: NOW + i * 1000 }));
        assert.deepEqual(await pagesOf(store, { workload: W1 }, 3), [
          ['f-7', 'f-6', 'f-5'],
          ['f-4', 'f-3', 'f-2'],
          ['f-1'],
          [],
        ]);
      }));

    it('pages through findings of one millisecond across a page boundary, each listed once', () =>
      withStore(async ({ store }) => {
        // f-b and f-c share a millisecond, and a page of two ends between them.
        await store.addFinding(finding('f-c', { createdAt: NOW + 1 }));
        await store.addFinding(finding('f-a', { createdAt: NOW }));
        await store.addFinding(finding('f-d', { createdAt: NOW + 2 }));
        await store.addFinding(finding('f-b', { createdAt: NOW + 1 }));
        assert.deepEqual(await pagesOf(store, {}, 2), [['f-d', 'f-c'], ['f-b', 'f-a'], []]);
        // A whole page in one millisecond, and filters alongside the cursor.
        for (const id of ['f-e', 'f-f', 'f-g', 'f-h'])
          await store.addFinding(finding(id, { createdAt: NOW + 5, rule: 'r-same-ms' }));
        assert.deepEqual(await pagesOf(store, { rule: 'r-same-ms', workload: W1 }, 3), [
          ['f-h', 'f-g', 'f-f'],
          ['f-e'],
          [],
        ]);
        assert.deepEqual(
          ids(await store.listFindings({ before: { createdAt: NOW + 1, id: 'f-c' }, limit: 10 })),
          ['f-b', 'f-a'],
        );
        // The start of a millisecond lists none of it; its end, all of it.
        assert.deepEqual(ids(await store.listFindings({ before: startOf(NOW + 5), limit: 10 })), [
          'f-d',
          'f-c',
          'f-b',
          'f-a',
        ]);
        assert.deepEqual(
          ids(await store.listFindings({ before: { createdAt: NOW + 5, id: 'f-z' }, limit: 10 })),
          ['f-h', 'f-g', 'f-f', 'f-e', 'f-d', 'f-c', 'f-b', 'f-a'],
        );
      }));

    it('returns at most 1000 findings, the newest, whatever the limit; no negative or fractional limit passes', () =>
      withStore(async ({ store }) => {
        const id = (i: number) => `f-${String(i).padStart(4, '0')}`;
        await store.transaction(async (tx) => {
          for (let i = 0; i < 1003; i++) await tx.addFinding(finding(id(i), { createdAt: NOW + i }));
        });
        const newest = Array.from({ length: 1000 }, (_, k) => id(1002 - k));
        assert.deepEqual(ids(await store.listFindings({ limit: 5000 })), newest);
        assert.deepEqual(ids(await store.listFindings({ limit: Number.MAX_SAFE_INTEGER })), newest);
        assert.deepEqual(ids(await store.listFindings({ limit: Number.POSITIVE_INFINITY })), newest);
        assert.equal((await store.listFindings({ limit: 1000 })).length, 1000);
        assert.deepEqual(ids(await store.listFindings({ limit: 999 })), newest.slice(0, 999));
        assert.deepEqual(ids(await store.listFindings({ limit: 2.9 })), [id(1002), id(1001)]);
        assert.deepEqual(await store.listFindings({ limit: 0 }), []);
        // SQLite reads LIMIT -1 as no limit at all.
        assert.deepEqual(await store.listFindings({ limit: -1 }), []);
        assert.deepEqual(await store.listFindings({ limit: Number.NaN }), []);
      }));

    it('setFindingState sets the state, who, when and why of that finding only; false for an unknown id', () =>
      withStore(async ({ store, openPeer }) => {
        const f1 = finding('f-1', { note: 'opened by rule' });
        const f2 = finding('f-2', { createdAt: NOW + 1 });
        await store.addFinding(f1);
        await store.addFinding(f2);
        assert.equal(
          await store.setFindingState('f-1', 'resolved', 'operator:bob', NOW + 100, 'rotated the key'),
          true,
        );
        const resolved: Finding = {
          ...f1,
          state: 'resolved',
          stateBy: 'operator:bob',
          stateAt: NOW + 100,
          note: 'rotated the key',
        };
        assert.deepEqual(await store.getFinding('f-1'), resolved);
        assert.deepEqual(await store.getFinding('f-2'), f2);
        assert.deepEqual(ids(await store.listFindings({ state: 'resolved', limit: 10 })), ['f-1']);
        assert.deepEqual(ids(await store.listFindings({ state: 'open', limit: 10 })), ['f-2']);

        assert.equal(
          await store.setFindingState('f-none', 'acknowledged', 'operator:bob', NOW + 200, ''),
          false,
        );
        assert.equal(await store.getFinding('f-none'), undefined);
        assert.deepEqual(await store.listFindings({ limit: 10 }), [f2, resolved]);

        // Set again, from another node: the latest change is the one kept.
        const peer = await openPeer();
        assert.equal(await peer.setFindingState('f-1', 'open', 'operator:carol', NOW + 300, ''), true);
        assert.deepEqual(await store.getFinding('f-1'), {
          ...f1,
          state: 'open',
          stateBy: 'operator:carol',
          stateAt: NOW + 300,
          note: '',
        });
      }));
  });

  describe('detection: the pause switch', () => {
    it('is undefined until set, then round-trips and is replaced; a peer reads it', () =>
      withStore(async ({ store, openPeer }) => {
        assert.equal(await store.getDetectionControl(), undefined);
        const paused: DetectionControl = {
          paused: true,
          by: 'operator:alice',
          at: NOW,
          reason: 'incident 42 ✓',
        };
        await store.putDetectionControl(paused);
        assert.deepEqual(await store.getDetectionControl(), paused);
        const peer = await openPeer();
        assert.deepEqual(await peer.getDetectionControl(), paused);
        const resumed: DetectionControl = { paused: false, by: 'operator:bob', at: NOW + 1, reason: '' };
        await peer.putDetectionControl(resumed);
        assert.deepEqual(await store.getDetectionControl(), resumed);
      }));
  });

  describe('detection: the applied config', () => {
    it('is undefined until put, then round-trips as written and is replaced whole; a peer reads it', () =>
      withStore(async ({ store, openPeer }) => {
        assert.equal(await store.getDetectionConfig(), undefined);
        await store.putDetectionConfig(DETECTION_CONFIG, NOW);
        assert.deepEqual(await store.getDetectionConfig(), DETECTION_CONFIG);
        const peer = await openPeer();
        assert.deepEqual(await peer.getDetectionConfig(), DETECTION_CONFIG);
        const fewer: DetectionConfig = { rules: [DETECTION_CONFIG.rules[1]!], networks: [] };
        await peer.putDetectionConfig(fewer, NOW + 1);
        assert.deepEqual(await store.getDetectionConfig(), fewer, 'no rule or range of the first is left');
        await store.putDetectionConfig({ rules: [], networks: [] }, NOW + 2);
        assert.deepEqual(await peer.getDetectionConfig(), { rules: [], networks: [] });
      }));
  });

  describe('detection: transactions', () => {
    const write = async (tx: Store) => {
      await tx.putBaselines([{ workload: W1, data: '{"v":1}', updatedAt: NOW }]);
      await tx.putRisk({ workload: W1, score: 30, at: NOW });
      await tx.addFinding(finding('f-1'));
      assert.equal(await tx.setFindingState('f-1', 'acknowledged', 'operator:alice', NOW + 1, 'mine'), true);
      await tx.putDetectionControl({ paused: true, by: 'operator:alice', at: NOW, reason: 'drill' });
      await tx.putDetectionConfig(DETECTION_CONFIG, NOW);
    };
    const acknowledged = finding('f-1', {
      state: 'acknowledged',
      stateBy: 'operator:alice',
      stateAt: NOW + 1,
      note: 'mine',
    });
    const expectWritten = async (s: Store) => {
      assert.deepEqual(await s.listBaselines(), [{ workload: W1, data: '{"v":1}', updatedAt: NOW }]);
      assert.deepEqual(await s.listRisks(), [{ workload: W1, score: 30, at: NOW }]);
      assert.deepEqual(await s.getFinding('f-1'), acknowledged);
      assert.deepEqual(await s.listFindings({ limit: 10 }), [acknowledged]);
      assert.deepEqual(await s.getDetectionControl(), {
        paused: true,
        by: 'operator:alice',
        at: NOW,
        reason: 'drill',
      });
      assert.deepEqual(await s.getDetectionConfig(), DETECTION_CONFIG);
    };

    it('a rolled-back transaction leaves no detection write behind; the callback read its own writes', () =>
      withStore(async ({ store }) => {
        await assert.rejects(
          store.transaction(async (tx) => {
            await write(tx);
            await expectWritten(tx);
            throw new Error('roll back');
          }),
          /^Error: roll back$/,
        );
        assert.deepEqual(await store.listBaselines(), []);
        assert.deepEqual(await store.listRisks(), []);
        assert.equal(await store.getFinding('f-1'), undefined);
        assert.deepEqual(await store.listFindings({ limit: 10 }), []);
        assert.equal(await store.getDetectionControl(), undefined);
        assert.equal(await store.getDetectionConfig(), undefined);
      }));

    it('a committed transaction keeps every detection write, and a peer reads them', () =>
      withStore(async ({ store, openPeer }) => {
        await store.transaction(write);
        await expectWritten(store);
        await expectWritten(await openPeer());
      }));
  });
}
