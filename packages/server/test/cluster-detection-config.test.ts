import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { readConfigDir } from '../src/config/config-dir.js';
import type { Finding } from '../src/detection/finding.js';
import {
  adminClient,
  type Cluster,
  type ClusterConfig,
  clusterNames,
  describeOnPostgres,
  eventually,
  requestToken,
  startCluster,
  stopCluster,
  type WritNode,
} from './helpers/cluster.js';
import { testKey } from './helpers/harness.js';

/**
 * Detection rules and networks in a cluster: two `writ serve --config` processes on one PostgreSQL
 * database. Both put the directory's rules in force at start; rules applied through node A are in force
 * on node B once B reads the `config.applied` event, and fire there.
 */

const NAMES = clusterNames('detection-cluster.test');
const { issuer: ISSUER, api: API } = NAMES;
const TEST_BOUND_MS = 180_000;
/** Polls of a node before a test gives up (50 ms apart): bounded by count, not by time. */
const POLLS = 400;

const reader = NAMES.client('reader');

/** A rule on refused client authentication naming the reader: alerts only (the id is only claimed). */
const PROBE_RULE = {
  id: 'reader-key-probe',
  signal: 'token.refused',
  condition: `event.client_id == "${reader.id}"`,
  severity: 'low',
  response: 'alert',
  mode: 'enforce',
  cooldown: '1m',
};

interface DetectionsView {
  rules: Array<{ id: string; source: string; enabled: boolean }>;
  networks: Array<{ cidr: string; environment: string }>;
}

describeOnPostgres('cluster-detection-config', 'detection config across nodes on one PostgreSQL', () => {
  let cluster: Cluster | undefined;
  let config: ClusterConfig;
  let nodes: WritNode[] = [];

  before(async () => {
    cluster = await startCluster(NAMES, {
      nodes: ['a', 'b'],
      workloads: [{ ...reader, classes: ['items'] }],
      prepare: (c) => {
        mkdirSync(join(c.dir, 'detections'));
        writeFileSync(join(c.dir, 'detections', 'base.yaml'), 'id: many-hosts\nmode: observe\n');
        writeFileSync(
          join(c.dir, 'networks.yaml'),
          'networks:\n  - cidr: 10.20.0.0/16\n    environment: prod\n',
        );
      },
    });
    ({ config, nodes } = cluster);
  });

  after(() => stopCluster(cluster));

  const [a, b] = [() => nodes[0]!, () => nodes[1]!];
  const admin = (n: WritNode) => adminClient(n, config);
  const detectionsAt = async (n: WritNode): Promise<DetectionsView> => {
    const r = await admin(n).call('GET', '/detections');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as unknown as DetectionsView;
  };
  const ruleAt = async (n: WritNode, id: string) => (await detectionsAt(n)).rules.find((r) => r.id === id);
  const probeFindings = async (n: WritNode): Promise<Finding[]> => {
    const r = await admin(n).call('GET', `/detections/findings?rule=${PROBE_RULE.id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['findings'] as Finding[];
  };
  /** A client assertion signed with a key that is not the reader's, at node `n`: invalid_client. */
  const wrongKeyAt = async (n: WritNode) => {
    const r = await requestToken(n, ISSUER, { id: reader.id, key: testKey() }, API);
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'invalid_client');
  };

  it('writ serve --config puts the directory’s rules and networks in force on every node', async () => {
    for (const n of nodes) {
      const view = await detectionsAt(n);
      const manyHosts = view.rules.find((r) => r.id === 'many-hosts');
      assert.equal(manyHosts?.source, 'detections/base.yaml', n.name);
      assert.deepEqual(view.networks, [{ cidr: '10.20.0.0/16', environment: 'prod' }], n.name);
    }
  });

  it('rules applied through node A are in force on node B, and fire there', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    // Before: node B has no such rule, and the refusal it sees fires nothing of it.
    assert.equal(await ruleAt(b(), PROBE_RULE.id), undefined);
    await wrongKeyAt(b());

    writeFileSync(
      join(config.dir, 'detections', 'probe.yaml'),
      `${JSON.stringify(PROBE_RULE)}\n---\nid: human-user-agent\nenabled: false\n`,
    );
    writeFileSync(
      join(config.dir, 'networks.yaml'),
      'networks:\n  - cidr: 10.20.0.0/16\n    environment: prod\n  - cidr: 10.30.0.0/16\n    environment: dev\n',
    );
    const r = await admin(a()).call('POST', '/config', { documents: readConfigDir(config.dir).documents });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['applied'], true);
    assert.match(String(r.body['diff']), /^\+ detection reader-key-probe$/m);
    assert.match(String(r.body['diff']), /^\+ detection human-user-agent$/m);
    assert.match(String(r.body['diff']), /^\+ network 10\.30\.0\.0\/16$/m);

    const onB = await eventually(
      'node B to hold the rules applied on node A',
      async () => {
        const view = await detectionsAt(b());
        const probe = view.rules.find((x) => x.id === PROBE_RULE.id);
        return probe && view.networks.length === 2 ? view : undefined;
      },
      { attempts: POLLS },
    );
    assert.equal(onB.rules.find((x) => x.id === PROBE_RULE.id)?.source, 'detections/probe.yaml');
    const human = onB.rules.find((x) => x.id === 'human-user-agent');
    assert.equal(human?.enabled, false);
    assert.equal(human?.source, 'detections/probe.yaml');
    assert.deepEqual((await probeFindings(a())).length, 0, 'nothing fired before the rule existed');

    // The rule is in force on B: a refusal there fires it (its finding is in the shared store).
    await wrongKeyAt(b());
    const [found] = await eventually(
      'the rule to fire on node B',
      async () => {
        const f = await probeFindings(a());
        return f.length > 0 ? f : undefined;
      },
      { attempts: POLLS },
    );
    assert.equal(found?.workload, '', 'a claimed client id names no workload');
    assert.equal(found?.outcome, 'alert');
  });
});
