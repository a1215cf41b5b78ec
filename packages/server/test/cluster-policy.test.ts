import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { createVerifier, type Verifier } from '@writ/sdk/verifier';
import { readConfigDir } from '../src/config/config-dir.js';
import {
  adminClient,
  type Cluster,
  type ClusterConfig,
  clusterNames,
  describeOnPostgres,
  eventually,
  type FreshDatabase,
  POSTGRES_URL,
  REQUEST_BOUND_MS,
  requestToken,
  routedFetch,
  startCluster,
  startNode,
  startProxy,
  stopCluster,
  type WritNode,
  workloadClientAt,
} from './helpers/cluster.js';

/**
 * Policy in a cluster: three `writ serve` processes on one PostgreSQL database. A policy set or an
 * API's attributes changed through one node decide the next request on every node, without a restart,
 * and verifiers following any node get the new bundle from that node.
 */

const NAMES = clusterNames('policy-cluster.test');
const { issuer: ISSUER, api: API, client } = NAMES;

/** Issuance only for APIs rated `internal`; reading only APIs nobody rated: both flip when either changes. */
const POLICIES = `
@id("token-internal")
permit (principal is Workload, action in Action::"token", resource)
when { resource.sensitivity == "internal" };

@id("read-unrated")
permit (principal is Workload, action == Action::"read", resource)
when { resource.sensitivity == "unrated" };
`;

const TEST_BOUND_MS = 180_000;
/** Polls of a node's decision before a test gives up (50 ms apart): bounded by count, not by time. */
const POLLS = 400;

describeOnPostgres('cluster-policy', 'policy across nodes on one PostgreSQL', () => {
  const reader = client('reader');
  const watcher = client('watcher');
  let cluster: Cluster | undefined;
  let db: FreshDatabase;
  let config: ClusterConfig;
  let kek: string;
  let nodes: WritNode[] = [];
  const verifiers: Verifier[] = [];

  before(async () => {
    cluster = await startCluster(NAMES, {
      // The config directory has no policies/: every node starts on the built-in set.
      nodes: ['a', 'b', 'c'],
      settings: { events: { heartbeat: 1 } },
      workloads: [
        { ...reader, classes: ['items'] },
        // The API's verifier: it declares the API it serves, to fetch its policy bundle.
        { ...watcher, classes: ['verifier'], serves: [API] },
      ],
    });
    ({ db, config, kek, nodes } = cluster);
  });

  after(async () => {
    for (const v of verifiers) v.close();
    await stopCluster(cluster);
  });

  const node = (i: number) => nodes[i]!;
  const admin = (n: WritNode) => adminClient(n, config);

  /** `allow` or `deny` at the token endpoint of `n` (any other answer fails the test). */
  const issuance = async (n: WritNode): Promise<'allow' | 'deny'> => {
    const r = await requestToken(n, ISSUER, reader, API);
    if (r.status === 200) return 'allow';
    assert.equal(r.body['error'], 'access_denied', `${n.name}: ${JSON.stringify(r.body)}`);
    return 'deny';
  };
  /** The AuthZEN decision of `n` on the reader reading the API. */
  const authzen = async (n: WritNode): Promise<boolean> => {
    const res = await fetch(`${n.origin}/access/v1/evaluation`, {
      method: 'POST',
      headers: {
        ...(await admin(n).session()).headers('POST', '/access/v1/evaluation'),
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        subject: { type: 'workload', id: reader.id },
        action: { name: 'read' },
        resource: { type: 'api', id: API },
      }),
      signal: AbortSignal.timeout(REQUEST_BOUND_MS),
    });
    assert.equal(res.status, 200, n.name);
    return ((await res.json()) as { decision: boolean }).decision;
  };
  const policyVersionAt = async (n: WritNode): Promise<string> => {
    const r = await admin(n).call('GET', '/policy');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return (r.body['version'] as { id: string }).id;
  };
  /** Polls `n` until both decisions are the expected ones (a bounded number of times). */
  const decidesAt = (n: WritNode, expected: { issue: 'allow' | 'deny'; read: boolean }, what: string) =>
    eventually(
      `${n.name} to decide ${what}`,
      async () =>
        (await issuance(n)) === expected.issue && (await authzen(n)) === expected.read ? true : undefined,
      { attempts: POLLS },
    );
  /** Applies the config directory's documents with `policies` through node `n` (as `writ apply`). */
  const applyAt = (n: WritNode, policies: unknown) =>
    admin(n).call('POST', '/config', { documents: readConfigDir(config.dir).documents, policies });

  /** A verifier of the API whose every request (stream, JWKS, bundle, token) goes to node `n`. */
  const verifierAt = (n: WritNode): Verifier => {
    const fetchAtNode = routedFetch(ISSUER, n);
    const v = createVerifier({
      issuer: ISSUER,
      audience: API,
      client: workloadClientAt(ISSUER, watcher, n),
      fetch: fetchAtNode,
      stalenessMs: 60_000,
      policy: {},
    });
    verifiers.push(v);
    return v;
  };
  const readAtVerifier = async (v: Verifier) =>
    (await v.policy!.decide({ principal: { type: 'Workload', id: reader.id }, action: 'read' })).decision;

  const BUILT_IN = { issue: 'allow', read: false } as const;
  const APPLIED = { issue: 'deny', read: true } as const;
  const RATED = { issue: 'allow', read: false } as const;
  let applied: string;

  it('a policy set applied on node A decides the next issuance and AuthZEN request on B and C, and reaches verifiers streaming from B and C', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    for (const n of nodes) await decidesAt(n, BUILT_IN, 'with the built-in set');
    const onB = verifierAt(node(1));
    const onC = verifierAt(node(2));
    const held = await Promise.all([onB.policy!.loaded(), onC.policy!.loaded()]);
    assert.deepEqual(
      [await readAtVerifier(onB), await readAtVerifier(onC)],
      ['deny', 'deny'],
      'the built-in set permits no request action',
    );

    const r = await applyAt(node(0), { files: [{ file: 'policies/items.cedar', text: POLICIES }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    applied = (r.body['policy'] as { version: { id: string } }).version.id;
    assert.equal(r.body['applied'], true);

    for (const n of nodes) await decidesAt(n, APPLIED, `with the set applied on ${node(0).name}`);
    for (const n of nodes) assert.equal(await policyVersionAt(n), applied, n.name);

    // Each verifier hears the announcement on its own node's stream and fetches the bundle there.
    await Promise.all([onB.policy!.loaded(held[0] + 1), onC.policy!.loaded(held[1] + 1)]);
    await eventually(
      'the verifiers to hold the applied set',
      () =>
        onB.policy!.status().policyVersion === applied && onC.policy!.status().policyVersion === applied
          ? true
          : undefined,
      { attempts: POLLS },
    );
    assert.equal(
      onB.policy!.status().version,
      onC.policy!.status().version,
      'one bundle version on every node',
    );
    assert.deepEqual([await readAtVerifier(onB), await readAtVerifier(onC)], ['allow', 'allow']);
  });

  it('an API attribute set on node A decides the next requests on B and C and in their verifiers', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const [onB, onC] = [verifiers[0]!, verifiers[1]!];
    const held = onB.policy!.status().version!;
    const r = await admin(node(0)).call('PUT', `/resources/${encodeURIComponent(API)}`, {
      sensitivity: 'internal',
      environment: 'test',
      owner: 'team-cluster',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const n of nodes) await decidesAt(n, RATED, 'with the API rated internal');
    for (const n of nodes) {
      const listed = await admin(n).call('GET', '/resources');
      assert.deepEqual(
        listed.body['resources'],
        [{ id: API, sensitivity: 'internal', environment: 'test', owner: 'team-cluster', source: 'admin' }],
        n.name,
      );
    }
    await Promise.all([onB.policy!.loaded(held + 1), onC.policy!.loaded(held + 1)]);
    await eventually(
      'the verifiers to deny reading the rated API',
      async () =>
        (await readAtVerifier(onB)) === 'deny' && (await readAtVerifier(onC)) === 'deny' ? true : undefined,
      { attempts: POLLS },
    );
    assert.equal(onB.policy!.status().version, onC.policy!.status().version);
  });

  it('a node started after the changes decides with the stored set, not its config directory', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const late = await startNode({ name: 'd', storeUrl: db.url, kek, config });
    nodes.push(late);
    assert.equal(await policyVersionAt(late), applied);
    assert.equal(await issuance(late), RATED.issue);
    assert.equal(await authzen(late), RATED.read);
    for (const n of nodes)
      assert.equal(await policyVersionAt(n), applied, `${n.name} still runs the applied set`);
  });

  it('a node cut off from PostgreSQL while the set changed decides with the new set once it is back', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const pg = new URL(POSTGRES_URL);
    const proxy = await startProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
    let cut: WritNode | undefined;
    try {
      cut = await startNode({ name: 'e', storeUrl: proxy.url(db.url), kek, config });
      nodes.push(cut);
      await decidesAt(cut, RATED, 'with the API rated internal');
      await proxy.cut('refuse');
      const r = await admin(node(0)).call('DELETE', `/resources/${encodeURIComponent(API)}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await decidesAt(node(0), APPLIED, 'with the API unrated again');
      await proxy.restore();
      await decidesAt(cut, APPLIED, 'with the API unrated again, after the link is back');
      const back = await admin(node(0)).call('PUT', `/resources/${encodeURIComponent(API)}`, {
        sensitivity: 'internal',
        environment: 'test',
        owner: 'team-cluster',
      });
      assert.equal(back.status, 200, JSON.stringify(back.body));
      for (const n of nodes) await decidesAt(n, RATED, 'with the API rated internal again');
    } finally {
      await proxy.restore().catch(() => undefined);
      if (cut) {
        nodes.splice(nodes.indexOf(cut), 1);
        await cut.stop();
      }
      await proxy.close();
    }
  });

  it('an invalid set applied on node A is refused, and every node keeps the previous version', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const r = await applyAt(node(0), {
      files: [
        { file: 'policies/items.cedar', text: `${POLICIES}\npermit (principal, action, resource) when {` },
      ],
    });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'invalid_request');
    for (const n of nodes) {
      assert.equal(await policyVersionAt(n), applied, n.name);
      assert.equal(await issuance(n), RATED.issue, n.name);
      assert.equal(await authzen(n), RATED.read, n.name);
    }
  });
});
