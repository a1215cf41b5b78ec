import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import {
  type Cluster,
  clusterNames,
  describeOnPostgres,
  type FreshDatabase,
  getJson,
  requestToken,
  sql,
  startCluster,
  stopCluster,
  type WritNode,
} from '../helpers/cluster.js';

// Two nodes append to one audit chain. Someone with access to the database deletes the newest event,
// which node b wrote: b must not continue the chain (or issue anything) without it.

const NAMES = clusterNames('cluster.test');
const { issuer: ISSUER, api: API } = NAMES;

describeOnPostgres('cluster-audit-truncation', 'audit truncation in a cluster', () => {
  const c = NAMES.client('worker');
  let cluster: Cluster | undefined;
  let db: FreshDatabase;
  let nodes: WritNode[] = [];

  before(async () => {
    cluster = await startCluster(NAMES, { nodes: ['a', 'b'], workloads: [{ ...c, classes: ['items'] }] });
    ({ db, nodes } = cluster);
  });

  after(() => stopCluster(cluster));

  const head = async () =>
    Number((await sql<{ seq: string }>(db.url, 'SELECT max(seq) AS seq FROM audit_events'))[0]!.seq);

  it('the node whose newest event was deleted refuses to issue and reports not ready; the other node’s appends do not hide it', async () => {
    const [a, b] = nodes as [WritNode, WritNode];
    assert.equal((await requestToken(a, ISSUER, c, API)).status, 200);
    assert.equal((await requestToken(b, ISSUER, c, API)).status, 200);
    const top = await head();
    const [written] = await sql<{ hash: string }>(db.url, 'SELECT hash FROM audit_events WHERE seq = $1', [
      top,
    ]);

    await sql(db.url, 'DELETE FROM audit_events WHERE seq = $1', [top]);
    await sql(db.url, 'DELETE FROM audit_checkpoints WHERE seq >= $1', [top]);

    const refused = await requestToken(b, ISSUER, c, API);
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body['access_token'], undefined);
    assert.equal(await head(), top - 1, 'b appended nothing');
    const ready = await getJson(b.origin, '/readyz');
    assert.equal(ready.status, 503);
    assert.match(String(ready.body['reason']), new RegExp(`events ${top}\\.\\.${top} deleted`));
    assert.equal((await getJson(a.origin, '/readyz')).status, 200, 'a still holds its own newest event');

    // a never held the deleted event, so it continues the chain at that number (docs/security.md says
    // so); the event there is not the one b wrote, and b stays refused.
    assert.equal((await requestToken(a, ISSUER, c, API)).status, 200);
    const [now] = await sql<{ hash: string }>(db.url, 'SELECT hash FROM audit_events WHERE seq = $1', [top]);
    assert.notEqual(now!.hash, written!.hash);
    assert.equal((await requestToken(b, ISSUER, c, API)).status, 503);
    assert.equal((await getJson(b.origin, '/readyz')).status, 503);
  });
});
