import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, it } from 'node:test';
import {
  type Answer,
  type Cluster,
  type ClusterClient,
  type ClusterConfig,
  clusterNames,
  decodeJwt,
  describeOnPostgres,
  eventually,
  introspect,
  REQUEST_BOUND_MS,
  requestToken,
  startCluster,
  stopCluster,
  type WritNode,
} from './helpers/cluster.js';
import { signJwt } from './helpers/harness.js';

// The console on three `writ serve` processes sharing one PostgreSQL database (docs/console.md, "A
// cluster"): a session opened on node A is good on B and C; a revocation and a disable made through B's
// admin API with the session's cookie and CSRF token show on C (overview, token trace, workload state,
// introspection); signing out on B ends the session on every node.

const NAMES = clusterNames('console-cluster.test');
const { issuer: ISSUER, api: API, client } = NAMES;

describeOnPostgres('console-cluster', 'the console on three nodes', () => {
  const reader = client('reader');
  const doomed = client('doomed');
  const checker = client('checker');
  let cluster: Cluster | undefined;
  let config: ClusterConfig;
  let nodes: WritNode[] = [];
  let cookie = '';
  let csrf = '';

  before(async () => {
    cluster = await startCluster(NAMES, {
      // One after the other: the first migrates the new database, and a loaded machine (CI, other
      // tests) connects to PostgreSQL more surely one node at a time.
      nodes: ['a', 'b', 'c'],
      oneAtATime: true,
      workloads: [
        { ...reader, classes: ['items'] },
        { ...doomed, classes: ['items'] },
        { ...checker, classes: ['items'], serves: [API] },
      ],
    });
    ({ config, nodes } = cluster);
  });
  after(() => stopCluster(cluster));

  const A = () => nodes[0]!;
  const B = () => nodes[1]!;
  const C = () => nodes[2]!;
  /** A request through the console session at node `n`, as the page sends it (same origin). */
  const console_ = async (
    n: WritNode,
    method: 'GET' | 'POST',
    path: string,
    o: { body?: unknown; csrf?: string | null; cookie?: string } = {},
  ): Promise<Answer> => {
    const token = o.csrf === undefined ? csrf : o.csrf;
    const res = await fetch(`${n.origin}${path}`, {
      method,
      headers: {
        cookie: o.cookie ?? cookie,
        origin: ISSUER,
        ...(token && method !== 'GET' ? { 'x-writ-csrf': token } : {}),
        ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
      signal: AbortSignal.timeout(REQUEST_BOUND_MS),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : {}, headers: res.headers };
  };
  const tokenAt = async (n: WritNode, c: ClusterClient) => {
    const r = await requestToken(n, ISSUER, c, API);
    assert.equal(r.status, 200, `${n.name}: ${JSON.stringify(r.body)}`);
    return r.body['access_token'] as string;
  };

  it('a session opened on node A is good on B and C', async () => {
    const now = Math.floor(Date.now() / 1000);
    const link = signJwt(
      config.operatorKey,
      {
        sub: 'operator:ops',
        aud: `${ISSUER}/console`,
        iat: now,
        exp: now + 60,
        jti: randomBytes(24).toString('base64url'),
      },
      { typ: 'writ-console-link+jwt' },
    );
    const signIn = await fetch(`${A().origin}/console/api/signin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: ISSUER },
      body: JSON.stringify({ link }),
    });
    const view = (await signIn.json()) as Record<string, unknown>;
    assert.equal(signIn.status, 200, JSON.stringify(view));
    cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0]!;
    assert.match(cookie, /^writ_console=[A-Za-z0-9_-]{40,}$/);
    csrf = String(view['csrf']);

    // The same link is spent for the whole cluster.
    const again = await fetch(`${C().origin}/console/api/signin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: ISSUER },
      body: JSON.stringify({ link }),
    });
    assert.equal(again.status, 401);

    for (const n of [B(), C()]) {
      const me = await console_(n, 'GET', '/console/api/session');
      assert.equal(me.status, 200, `${n.name}: ${JSON.stringify(me.body)}`);
      assert.equal(me.body['operator'], 'operator:ops');
      assert.equal(me.body['csrf'], csrf, `${n.name} answers the session's CSRF token`);
      const overview = await console_(n, 'GET', '/admin/v1/overview');
      assert.equal(overview.status, 200, JSON.stringify(overview.body));
    }
    // The console page itself is served by any node.
    const page = await fetch(`${C().origin}/console/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script/);
  });

  it('a revocation through node B with the CSRF token shows on node C; without the token it is refused', async () => {
    const token = await tokenAt(A(), reader);
    const jti = String(decodeJwt(token).claims['jti']);

    const forged = await console_(B(), 'POST', '/admin/v1/revocations', {
      body: { kind: 'jti', value: jti, reason: 'no csrf token' },
      csrf: null,
    });
    assert.equal(forged.status, 403, JSON.stringify(forged.body));
    assert.equal(forged.body['error'], 'access_denied');
    assert.match(String(forged.body['error_description']), /CSRF|csrf/);
    const wrong = await console_(B(), 'POST', '/admin/v1/revocations', {
      body: { kind: 'jti', value: jti, reason: 'wrong csrf token' },
      csrf: `${csrf.slice(0, -2)}xx`,
    });
    assert.equal(wrong.status, 403, JSON.stringify(wrong.body));
    const r = await introspect(C(), ISSUER, checker, token);
    assert.equal(r.body['active'], true, 'the refused calls revoked nothing');

    const before = await console_(C(), 'GET', '/admin/v1/overview');
    const revocationsBefore = (before.body['revocations'] as { total: number }).total;
    const revoke = await console_(B(), 'POST', '/admin/v1/revocations', {
      body: { kind: 'jti', value: jti, reason: 'revoked from the console on node b' },
    });
    assert.ok(revoke.status < 300, JSON.stringify(revoke.body));

    // Node C: the token is inactive, its trace shows the revocation, the overview counts it.
    await eventually('node c to see the revocation', async () => {
      const i = await introspect(C(), ISSUER, checker, token);
      return i.body['active'] === false ? true : undefined;
    });
    const trace = await console_(C(), 'GET', `/admin/v1/audit/trace/${jti}`);
    assert.equal(trace.status, 200, JSON.stringify(trace.body));
    const revocations = trace.body['revocations'] as Array<{ kind: string; reason: string }>;
    assert.equal(revocations.length, 1);
    assert.equal(revocations[0]!.reason, 'revoked from the console on node b');
    const after = await console_(C(), 'GET', '/admin/v1/overview');
    assert.equal((after.body['revocations'] as { total: number }).total, revocationsBefore + 1);
    const recent = after.body['recent_tokens'] as Array<{ jti: string; revoked: boolean }>;
    const row = recent.find((t) => t.jti === jti);
    assert.ok(row, 'the token is among the recent ones');
    assert.equal(row.revoked, true);
    // The action was audited as the session's, once, with the node it went through in the path.
    const actions = await console_(C(), 'GET', '/admin/v1/audit?type=console.action&limit=50');
    const mine = (actions.body['events'] as Array<{ data?: Record<string, unknown> }>).filter(
      (e) => e.data?.['path'] === '/admin/v1/revocations',
    );
    assert.equal(mine.length, 1, JSON.stringify(actions.body));
    assert.equal(mine[0]!.data?.['operator'], 'operator:ops');
  });

  it('a workload disabled through node B is disabled on node C: its state, and no token there', async () => {
    await tokenAt(C(), doomed);
    const id = encodeURIComponent(doomed.id);
    const disable = await console_(B(), 'POST', `/admin/v1/workloads/${id}/disable`, {
      body: { reason: 'disabled from the console on node b' },
    });
    assert.ok(disable.status < 300, JSON.stringify(disable.body));
    // Each node holds the registry in memory and reloads it when it reads the change from the store.
    await eventually('node c to show the workload disabled', async () => {
      const state = await console_(C(), 'GET', `/admin/v1/workloads/${id}`);
      assert.equal(state.status, 200, JSON.stringify(state.body));
      return state.body['state'] === 'disabled' ? true : undefined;
    });
    await eventually('node c to refuse the disabled workload', async () => {
      const r = await requestToken(C(), ISSUER, doomed, API);
      return r.status >= 400 ? r : undefined;
    });
    await eventually('node a to count it disabled on its overview', async () => {
      const o = await console_(A(), 'GET', '/admin/v1/overview');
      return (o.body['workloads'] as Record<string, number>)['disabled'] === 1 ? true : undefined;
    });
  });

  it('signing out on node B ends the session on A and C', async () => {
    const out = await console_(B(), 'POST', '/console/api/signout');
    assert.equal(out.status, 204, JSON.stringify(out.body));
    for (const n of [A(), C()]) {
      const me = await console_(n, 'GET', '/console/api/session');
      assert.equal(me.status, 401, `${n.name}: ${JSON.stringify(me.body)}`);
      const admin = await console_(n, 'GET', '/admin/v1/overview');
      assert.equal(admin.status, 401);
      assert.equal(admin.body['error'], 'invalid_token');
    }
  });
});
