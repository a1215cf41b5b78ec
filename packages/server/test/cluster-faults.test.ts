import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { createDpopProof } from '@writ/sdk/dpop';
import { createVerifier, RequestRefusal, type Verifier } from '@writ/sdk/verifier';
import {
  adminClient,
  type ClusterClient,
  type ClusterConfig,
  clientAssertion,
  clusterConfig,
  clusterNames,
  decodeJwt,
  describeOnPostgres,
  eventually,
  freshDatabase,
  getJson,
  introspect,
  POSTGRES_URL,
  postForm,
  REQUEST_BOUND_MS,
  requestToken,
  routedFetch,
  sql,
  startNode,
  startProxy,
  verifyAuditOffline,
  type WritNode,
  workloadClientAt,
} from './helpers/cluster.js';

/**
 * Faults with PostgreSQL for real: a TCP proxy between a node and the database whose connections are
 * refused or go silent (the shared PostgreSQL service keeps running for the other tests), and a node
 * killed with SIGKILL in the middle of issuing.
 */

const NAMES = clusterNames('faults.test');
const { issuer: ISSUER, events: EVENTS, api: API, client } = NAMES;

/** Answers and failures of requests sent while faults happen; nothing may hang. */
interface Tally {
  tokens: string[];
  statuses: number[];
  /** Requests that got no HTTP answer (connection reset by a killed node, or the bound passed). */
  failures: string[];
}

/** A test that has not finished by then has hung: fail it (and clean up) rather than wait forever. */
const TEST_BOUND_MS = 180_000;

describeOnPostgres('cluster-faults', 'faults: PostgreSQL cut off, a node killed', () => {
  const checker = client('checker');
  const watcher = client('watcher');
  const load = Array.from({ length: 8 }, (_, i) => client(`load-${i}`));
  const kek = randomBytes(32).toString('base64');
  const pgAddress = new URL(POSTGRES_URL);
  let config: ClusterConfig;
  const cleanups: Array<() => Promise<void>> = [];

  before(() => {
    config = clusterConfig(NAMES, {
      settings: { events: { heartbeat: 1 } },
      workloads: [
        ...load.map((c) => ({ ...c, classes: ['items'] })),
        // Introspects everyone's tokens for the API: it serves the API.
        { ...checker, classes: ['items'], serves: [API] },
        { ...watcher, classes: ['verifier'] },
      ],
    });
  });
  after(() => rmSync(config.dir, { recursive: true, force: true }));

  /** A fresh database, a proxy to PostgreSQL, and node starting; all undone after the test. */
  const setup = async () => {
    const db = await freshDatabase(POSTGRES_URL);
    const proxy = await startProxy({
      host: pgAddress.hostname,
      port: Number(pgAddress.port || 5432),
    });
    const nodes: WritNode[] = [];
    const verifiers: Verifier[] = [];
    const aborts: AbortController[] = [];
    const cleanup = async () => {
      for (const v of verifiers) v.close();
      for (const a of aborts) a.abort();
      await proxy.restore().catch(() => undefined);
      await Promise.all(nodes.map((n) => n.stop()));
      await proxy.close();
      await db.drop();
    };
    cleanups.push(cleanup);
    const node = async (name: string, via: 'proxy' | 'direct') => {
      const n = await startNode({
        name,
        storeUrl: via === 'proxy' ? proxy.url(db.url) : db.url,
        kek,
        config,
      });
      nodes.push(n);
      return n;
    };
    return { db, proxy, node, verifiers, aborts, cleanup };
  };
  after(async () => {
    for (const c of cleanups) await c().catch(() => undefined);
  });

  const tokenAt = async (n: WritNode, c: ClusterClient = load[0]!) => {
    const r = await requestToken(n, ISSUER, c, API);
    assert.equal(r.status, 200, `${n.name}: ${JSON.stringify(r.body)}`);
    return r.body['access_token'] as string;
  };
  const jtiOf = (token: string) => decodeJwt(token).claims['jti'] as string;
  const activeAt = async (n: WritNode, token: string) => {
    const r = await introspect(n, ISSUER, checker, token);
    if (r.status !== 200) return undefined;
    return r.body['active'] === true;
  };
  const unavailable = (a: { status: number; body: Record<string, unknown> }, what: string) => {
    assert.equal(a.status, 503, `${what}: ${a.status} ${JSON.stringify(a.body)}`);
    assert.equal(a.body['error'], 'temporarily_unavailable', what);
  };
  const watcherClient = (n: WritNode) => workloadClientAt(ISSUER, watcher, n);
  const bearer = (token: string) => ({
    authorization: `Bearer ${token}`,
    dpop: [],
    method: 'GET',
    url: `${API}/items`,
  });
  const verdict = async (v: Verifier, token: string) => {
    try {
      await v.verify(bearer(token));
      return 'ok';
    } catch (err) {
      if (err instanceof RequestRefusal) return err.reason;
      throw err;
    }
  };

  /** Issues tokens from `workers` loops at `n` until `stop()`; every request is bounded. */
  const issueUntilStopped = (n: WritNode, workers: number) => {
    const tally: Tally = { tokens: [], statuses: [], failures: [] };
    let stopped = false;
    const loops = Array.from({ length: workers }, async (_, w) => {
      while (!stopped) {
        try {
          const r = await requestToken(n, ISSUER, load[w % load.length]!, API);
          tally.statuses.push(r.status);
          if (r.status === 200) tally.tokens.push(r.body['access_token'] as string);
          else if (r.status !== 503) tally.failures.push(`HTTP ${r.status} ${JSON.stringify(r.body)}`);
        } catch (err) {
          tally.failures.push(String((err as Error).cause ?? err));
          // A dead node refuses at once: do not spin.
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    });
    return {
      tally,
      stop: async () => {
        stopped = true;
        await Promise.all(loops);
      },
    };
  };

  /** jtis among `jtis` with a `token.issued` audit event in the database. */
  const auditedJtis = async (databaseUrl: string, jtis: string[]) =>
    new Set(
      (
        await sql<{ jti: string }>(
          databaseUrl,
          `SELECT jti FROM audit_events WHERE type = 'token.issued' AND jti = ANY($1)`,
          [jtis],
        )
      ).map((r) => r.jti),
    );

  it('connections refused: 503 at once for issuance, revocation and admin calls, /readyz says so, the stream ends; all recovers by itself', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const { db, proxy, node, verifiers, aborts } = await setup();
    const a = await node('a', 'proxy');
    const b = await node('b', 'direct');
    const adminA = adminClient(a, config);
    const adminSession = await adminA.session();
    const t1 = await tokenAt(a);
    const t2 = await tokenAt(a);

    // A verifier following node A, with a short staleness bound, and a raw stream from node A.
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: API,
      client: watcherClient(a),
      fetch: routedFetch(ISSUER, a),
      stalenessMs: 4000,
    });
    verifiers.push(verifier);
    await eventually('the verifier to be in sync', () => (verifier.status().synced ? true : undefined));
    const wc = watcherClient(a);
    const streamToken = await wc.token({ audience: EVENTS });
    const abort = new AbortController();
    aborts.push(abort);
    const stream = await fetch(`${a.origin}/v1/events?revocations=sha256`, {
      headers: {
        authorization: `DPoP ${streamToken}`,
        dpop: createDpopProof(wc.dpopKey, { method: 'GET', url: EVENTS, accessToken: streamToken }),
      },
      signal: abort.signal,
    });
    assert.equal(stream.status, 200);
    const streamEnded = (async () => {
      for await (const _ of stream.body as unknown as AsyncIterable<Uint8Array>) {
        // drain
      }
      return true;
    })().catch(() => true);

    await proxy.cut('refuse');

    // Tokens already issued keep verifying at the verifier until its staleness bound.
    assert.equal(await verdict(verifier, t1), 'ok');

    const ready = await eventually('node A to report the store unreachable', async () => {
      const r = await getJson(a.origin, '/readyz');
      return r.status === 503 ? r : undefined;
    });
    assert.equal(ready.body['store'], 'unreachable');
    unavailable(await requestToken(a, ISSUER, load[0]!, API), 'token request');
    // A new admin session needs the store (its assertion is single-use); the one from before still works.
    const session = await adminA.session().then(
      () => undefined,
      (err: { answer?: { status: number; body: Record<string, unknown> } }) => err.answer,
    );
    assert.ok(session, 'no admin session without the store');
    unavailable(session, 'admin token');
    const direct = await fetch(`${a.origin}/admin/v1/revocations`, {
      method: 'POST',
      headers: {
        ...adminSession.headers('POST', '/admin/v1/revocations'),
        'content-type': 'application/json',
      },
      body: JSON.stringify({ kind: 'jti', value: jtiOf(t1), reason: 'during the cut' }),
      signal: AbortSignal.timeout(REQUEST_BOUND_MS),
    });
    unavailable(
      { status: direct.status, body: (await direct.json()) as Record<string, unknown> },
      'admin revocation',
    );
    unavailable(
      await postForm(a.origin, '/oauth2/revoke', {
        token: t1,
        client_id: load[0]!.id,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: clientAssertion(ISSUER, load[0]!.id, load[0]!.key),
      }),
      'RFC 7009 revocation',
    );
    const closeTask = await fetch(`${a.origin}/admin/v1/tasks`, {
      method: 'POST',
      headers: { ...adminSession.headers('POST', '/admin/v1/tasks'), 'content-type': 'application/json' },
      body: JSON.stringify({ workload: load[0]!.id, purpose: 'during the cut' }),
      signal: AbortSignal.timeout(REQUEST_BOUND_MS),
    });
    assert.equal(closeTask.status, 503, 'admin: opening a task');
    // Nothing reported as refused was stored.
    assert.deepEqual(
      await sql(db.url, 'SELECT seq FROM revocations WHERE value = $1', [jtiOf(t1)]),
      [],
      'a revocation refused with 503 is not in the store',
    );

    // Node A no longer vouches for the log: its stream ends, and the verifier goes stale (fails closed).
    assert.equal(await streamEnded, true);
    await eventually('the verifier on node A to go stale', async () =>
      (await verdict(verifier, t1)) === 'stale' ? true : undefined,
    );

    // Meanwhile node B, which still reaches PostgreSQL, revokes t2. Node A hears no notification.
    const revokedOnB = await adminClient(b, config).call('POST', '/revocations', {
      kind: 'jti',
      value: jtiOf(t2),
      reason: 'while node A is cut off',
    });
    assert.equal(revokedOnB.status, 201, JSON.stringify(revokedOnB.body));

    await proxy.restore();

    await eventually('node A to be ready again', async () =>
      (await getJson(a.origin, '/readyz')).status === 200 ? true : undefined,
    );
    await eventually("node A to enforce node B's revocation made while it was cut off", async () =>
      (await activeAt(a, t2)) === false ? true : undefined,
    );
    assert.equal(await activeAt(a, t1), true);
    const t3 = await tokenAt(a);
    const revoked = await adminA.call('POST', '/revocations', {
      kind: 'jti',
      value: jtiOf(t1),
      reason: 'after the cut',
    });
    assert.equal(revoked.status, 201, JSON.stringify(revoked.body));
    await eventually('node B to enforce it', async () =>
      (await activeAt(b, t1)) === false ? true : undefined,
    );
    // The verifier reconnects by itself and is current again: t3 passes, t1 and t2 are revoked.
    await eventually('the verifier to be current again', async () =>
      (await verdict(verifier, t3)) === 'ok' ? true : undefined,
    );
    assert.equal(await verdict(verifier, t1), 'revoked');
    assert.equal(await verdict(verifier, t2), 'revoked');
  });

  it('a link that goes silent (no answer, no reset): 503 within bounds rather than a hang, then recovery', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const { proxy, node } = await setup();
    const a = await node('a', 'proxy');
    const adminSession = await adminClient(a, config).session();
    const t1 = await tokenAt(a);

    await proxy.cut('stall');
    const [issued, revoked, ready] = await Promise.all([
      requestToken(a, ISSUER, load[1]!, API),
      fetch(`${a.origin}/admin/v1/revocations`, {
        method: 'POST',
        headers: {
          ...adminSession.headers('POST', '/admin/v1/revocations'),
          'content-type': 'application/json',
        },
        body: JSON.stringify({ kind: 'jti', value: jtiOf(t1), reason: 'during the stall' }),
        signal: AbortSignal.timeout(REQUEST_BOUND_MS),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> })),
      getJson(a.origin, '/readyz'),
    ]);
    unavailable(issued, 'token request');
    unavailable(revoked, 'admin revocation');
    assert.equal(ready.status, 503, '/readyz');

    await proxy.restore();
    await eventually('node A to be ready again', async () =>
      (await getJson(a.origin, '/readyz')).status === 200 ? true : undefined,
    );
    await eventually('node A to issue again', async () =>
      (await requestToken(a, ISSUER, load[1]!, API)).status === 200 ? true : undefined,
    );
  });

  it('cut mid-load: every request is answered (200 or 503), every token a client holds has its audit event, revocations answered 201 are stored', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const { db, proxy, node } = await setup();
    const a = await node('a', 'proxy');
    const admin = adminClient(a, config);
    const adminSession = await admin.session();
    const load1 = issueUntilStopped(a, 8);
    const revocations: Array<{ status: number; seq?: number; value: string }> = [];
    let revoking = true;
    const revoker = (async () => {
      while (revoking) {
        const value = `jti-${randomBytes(6).toString('hex')}`;
        const r = await fetch(`${a.origin}/admin/v1/revocations`, {
          method: 'POST',
          headers: {
            ...adminSession.headers('POST', '/admin/v1/revocations'),
            'content-type': 'application/json',
          },
          body: JSON.stringify({ kind: 'jti', value, reason: 'under load' }),
          signal: AbortSignal.timeout(REQUEST_BOUND_MS),
        });
        const body = (await r.json()) as { seq?: number };
        revocations.push({ status: r.status, value, ...(body.seq !== undefined ? { seq: body.seq } : {}) });
      }
    })();

    await eventually('some tokens issued under load', () =>
      load1.tally.tokens.length >= 40 ? true : undefined,
    );
    await proxy.cut('refuse');
    await eventually('refusals while cut off', () =>
      load1.tally.statuses.filter((s) => s === 503).length >= 20 ? true : undefined,
    );
    const before = load1.tally.tokens.length;
    await proxy.restore();
    await eventually('issuance to resume', () =>
      load1.tally.tokens.length >= before + 40 ? true : undefined,
    );
    revoking = false;
    await Promise.all([load1.stop(), revoker]);

    assert.deepEqual(load1.tally.failures, [], 'every request got an HTTP answer');
    const jtis = load1.tally.tokens.map(jtiOf);
    const audited = await auditedJtis(db.url, jtis);
    assert.deepEqual(
      jtis.filter((j) => !audited.has(j)),
      [],
      'no token without its audit event',
    );
    const done = revocations.filter((r) => r.status === 201);
    assert.ok(
      done.length > 0 && revocations.some((r) => r.status === 503),
      JSON.stringify(revocations.map((r) => r.status)),
    );
    for (const r of revocations)
      assert.ok(r.status === 201 || r.status === 503, `revocation answered ${r.status}`);
    const stored = new Set(
      (
        await sql<{ value: string }>(db.url, 'SELECT value FROM revocations WHERE value = ANY($1)', [
          done.map((r) => r.value),
        ])
      ).map((r) => r.value),
    );
    assert.deepEqual(
      done.filter((r) => !stored.has(r.value)).map((r) => r.value),
      [],
      'every revocation reported done is stored',
    );
    assert.match(await verifyAuditOffline(db.url), /^audit chain OK/);
  });

  it('a node killed with SIGKILL mid-issuance leaves no client holding a token without an audit event', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const { db, node } = await setup();
    const a = await node('a', 'direct');
    const load1 = issueUntilStopped(a, 8);
    await eventually('tokens issued under load', () => (load1.tally.tokens.length >= 60 ? true : undefined));
    await a.kill();
    await load1.stop();
    assert.ok(load1.tally.failures.length > 0, 'requests in flight lost their node');

    // Restarted on the same database: the node starts, its audit chain is whole, and every token a
    // client received is in it.
    const restarted = await node('a2', 'direct');
    const admin = adminClient(restarted, config);
    const jtis = load1.tally.tokens.map(jtiOf);
    for (const jti of jtis.slice(-5)) {
      const r = await admin.call('GET', `/audit?jti=${encodeURIComponent(jti)}&type=token.issued`);
      assert.equal((r.body['events'] as unknown[]).length, 1, jti);
    }
    const audited = await auditedJtis(db.url, jtis);
    assert.deepEqual(
      jtis.filter((j) => !audited.has(j)),
      [],
      'no token without its audit event',
    );
    assert.match(await verifyAuditOffline(db.url), /^audit chain OK/);
    await tokenAt(restarted);
  });
});
