import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { createDpopProof } from '@writ/sdk/dpop';
import { importPublicJwk } from '@writ/sdk/jose';
import {
  createVerifier,
  RequestRefusal,
  revocationDigest,
  SseParser,
  type Verifier,
  verifyAccessTokenJwt,
} from '@writ/sdk/verifier';
import pg from 'pg';
import {
  adminClient,
  type Cluster,
  type ClusterClient,
  type ClusterConfig,
  clusterNames,
  decodeJwt,
  describeOnPostgres,
  eventually,
  type FreshDatabase,
  getJson,
  introspect,
  requestToken,
  routedFetch,
  sql,
  startCluster,
  stopCluster,
  verifyAuditOffline,
  type WritNode,
  workloadClientAt,
} from './helpers/cluster.js';

/**
 * Three `writ serve` processes on one PostgreSQL database with one WRIT_KEK, as behind a load balancer:
 * they share one issuer name, and a test reaches a given node directly (the balancer's choice).
 */

const NAMES = clusterNames('cluster.test');
const { issuer: ISSUER, events: EVENTS, api: API, client } = NAMES;

/** A test that has not finished by then has hung: fail it (and clean up) rather than wait forever. */
const TEST_BOUND_MS = 180_000;

describeOnPostgres('cluster-nodes', 'three nodes on one PostgreSQL', () => {
  const reader = client('reader');
  const checker = client('checker');
  const watcher = client('watcher');
  const limited = client('limited');
  const load = Array.from({ length: 6 }, (_, i) => client(`load-${i}`));
  let cluster: Cluster | undefined;
  let db: FreshDatabase;
  let config: ClusterConfig;
  let nodes: WritNode[] = [];
  const verifiers: Verifier[] = [];
  const streams: AbortController[] = [];

  before(async () => {
    cluster = await startCluster(NAMES, {
      // Started together: they migrate the new database and create one key set between them.
      nodes: ['a', 'b', 'c'],
      // A small budget per client, so that a limit held per node (three times the budget) shows.
      settings: { limits: { client_rate: 1, client_burst: 20 }, events: { heartbeat: 1 } },
      workloads: [
        ...[reader, limited, ...load].map((c) => ({ ...c, classes: ['items'] })),
        // Introspects everyone's tokens for the API: it serves the API.
        { ...checker, classes: ['items'], serves: [API] },
        { ...watcher, classes: ['verifier'] },
      ],
    });
    ({ db, config, nodes } = cluster);
  });

  after(async () => {
    for (const v of verifiers) v.close();
    for (const s of streams) s.abort();
    await stopCluster(cluster);
  });

  const node = (i: number) => nodes[i]!;
  const tokenAt = async (n: WritNode, c: ClusterClient): Promise<string> => {
    const r = await requestToken(n, ISSUER, c, API);
    assert.equal(r.status, 200, `${n.name}: ${JSON.stringify(r.body)}`);
    return r.body['access_token'] as string;
  };
  const activeAt = async (n: WritNode, token: string): Promise<boolean> => {
    const r = await introspect(n, ISSUER, checker, token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['active'] === true;
  };
  const jwksOf = async (n: WritNode) => {
    const r = await getJson(n.origin, '/.well-known/jwks.json');
    assert.equal(r.status, 200);
    return (r.body['keys'] as Array<Record<string, unknown>>).map((k) => importPublicJwk(k));
  };
  const verifyAgainst = async (n: WritNode, token: string) =>
    verifyAccessTokenJwt(token, {
      keys: await jwksOf(n),
      issuer: ISSUER,
      audience: API,
      nowSeconds: Math.floor(Date.now() / 1000),
      leeway: 5,
      maxBytes: 8192,
    });

  /** A workload client whose requests for the issuer all go to `n`. */
  const watcherClient = (n: WritNode) => workloadClientAt(ISSUER, watcher, n);

  /** The raw event stream of node `n`, as a verifier without the SDK would read it. */
  const rawStream = async (n: WritNode) => {
    const wc = watcherClient(n);
    const token = await wc.token({ audience: EVENTS });
    const abort = new AbortController();
    streams.push(abort);
    const res = await fetch(`${n.origin}/v1/events?revocations=sha256`, {
      headers: {
        authorization: `DPoP ${token}`,
        dpop: createDpopProof(wc.dpopKey, { method: 'GET', url: EVENTS, accessToken: token }),
        accept: 'text/event-stream',
      },
      signal: abort.signal,
    });
    assert.equal(res.status, 200);
    const received: Array<{ event: string; data: Record<string, unknown> }> = [];
    const parser = new SseParser(
      (m) => received.push({ event: m.event, data: JSON.parse(m.data) as Record<string, unknown> }),
      () => undefined,
    );
    (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
        parser.push(decoder.decode(chunk, { stream: true }));
    })().catch(() => undefined);
    return received;
  };

  it('tokens issued on every node verify against the JWKS of every node, and introspect active on each', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    for (const issuing of nodes) {
      const token = await tokenAt(issuing, reader);
      for (const n of nodes) {
        const { claims } = await verifyAgainst(n, token);
        assert.equal(claims.sub, reader.id, `${issuing.name}'s token at ${n.name}`);
        assert.equal(await activeAt(n, token), true, `${issuing.name}'s token introspected at ${n.name}`);
      }
    }
  });

  it('a revocation on node A is enforced by introspection on B and C and by verifiers streaming from B and C', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: API,
      client: watcherClient(node(1)),
      fetch: routedFetch(ISSUER, node(1)),
      stalenessMs: 60_000,
    });
    verifiers.push(verifier);
    await eventually('the verifier on node B to be in sync', () =>
      verifier.status().connected && verifier.status().synced && verifier.status().keys > 0
        ? true
        : undefined,
    );
    const events = await rawStream(node(2));
    await eventually('the stream from node C to open', () =>
      events.some((e) => e.event === 'snapshot') ? true : undefined,
    );

    const token = await tokenAt(node(0), reader);
    const { jti } = decodeJwt(token).claims as { jti: string };
    const bearer = { authorization: `Bearer ${token}`, dpop: [], method: 'GET', url: `${API}/items` };
    const accepted = await verifier.verify(bearer);
    assert.equal(accepted.claims.jti, jti);

    const revoked = await adminClient(node(0), config).call('POST', '/revocations', {
      kind: 'jti',
      value: jti,
      reason: 'cluster test',
    });
    assert.equal(revoked.status, 201, JSON.stringify(revoked.body));

    for (const n of [node(1), node(2)])
      await eventually(`node ${n.name} to refuse the revoked token`, async () =>
        (await activeAt(n, token)) ? undefined : true,
      );
    await eventually('the verifier on node B to refuse the token', async () => {
      try {
        await verifier.verify(bearer);
        return undefined;
      } catch (err) {
        return err instanceof RequestRefusal && err.reason === 'revoked' ? true : undefined;
      }
    });
    const delivered = await eventually('node C to stream the revocation', () =>
      events.find(
        (e) =>
          e.event === 'revocation' &&
          (e.data['revocation'] as { value_sha256: string }).value_sha256 === revocationDigest(jti),
      ),
    );
    assert.equal((delivered.data['revocation'] as { seq: number }).seq, revoked.body['seq']);
  });

  it('a revocation whose notification was lost still reaches every node (the log is the truth)', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const token = await tokenAt(node(1), reader);
    const { jti } = decodeJwt(token).claims as { jti: string };
    const events = await rawStream(node(2));
    await eventually('the stream from node C to open', () =>
      events.some((e) => e.event === 'snapshot') ? true : undefined,
    );
    // Another writer that sends no NOTIFY: the rows are there, no node is woken. Same locking and
    // numbering as the store's own writes.
    const now = Date.now();
    const conn = new pg.Client({ connectionString: db.url });
    await conn.connect();
    try {
      await conn.query('BEGIN');
      await conn.query('SELECT 1 FROM write_head WHERE id = 1 FOR UPDATE');
      const seq = (
        await conn.query<{ seq: string }>(
          'UPDATE write_head SET revocation_seq = revocation_seq + 1 WHERE id = 1 RETURNING revocation_seq AS seq',
        )
      ).rows[0]!.seq;
      const revocation = {
        seq: Number(seq),
        kind: 'jti',
        value: jti,
        issued_before: null,
        created_at: now,
        reason: 'written without a notification',
        expires_at: now + 3_600_000,
      };
      await conn.query(
        `INSERT INTO revocations (seq, kind, value, issued_before, created_at, reason, actor, expires_at)
           VALUES ($1, 'jti', $2, NULL, $3, $4, 'test', $5)`,
        [seq, jti, now, revocation.reason, revocation.expires_at],
      );
      const eventSeq = (
        await conn.query<{ seq: string }>(
          'UPDATE write_head SET event_seq = event_seq + 1 WHERE id = 1 RETURNING event_seq AS seq',
        )
      ).rows[0]!.seq;
      await conn.query(`INSERT INTO events (seq, ts, type, data) VALUES ($1, $2, 'revocation', $3)`, [
        eventSeq,
        now,
        JSON.stringify({ revocation }),
      ]);
      await conn.query('COMMIT');
    } finally {
      await conn.end();
    }
    for (const n of nodes)
      await eventually(`node ${n.name} to read the revocation from the log`, async () =>
        (await activeAt(n, token)) ? undefined : true,
      );
    await eventually('node C to stream it', () =>
      events.find(
        (e) =>
          e.event === 'revocation' &&
          (e.data['revocation'] as { value_sha256: string }).value_sha256 === revocationDigest(jti),
      ),
    );
  });

  it('a key rotation on node A is seen by all: every node publishes the new keys and signs with the new active key', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const before = await adminClient(node(0), config).call('GET', '/keys');
    const rotated = await adminClient(node(0), config).call('POST', '/keys/rotate');
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    const { activated, retired, next } = rotated.body as Record<string, string>;
    assert.equal(retired, before.body['active']);
    for (const n of nodes) {
      await eventually(`node ${n.name} to sign with ${activated}`, async () => {
        const keys = await adminClient(n, config).call('GET', '/keys');
        return keys.body['active'] === activated ? true : undefined;
      });
      const published = (await getJson(n.origin, '/.well-known/jwks.json')).body['keys'] as Array<{
        kid: string;
      }>;
      // The old key stays published until its last token has expired; the new next key is there too.
      assert.deepEqual(published.map((k) => k.kid).sort(), [activated, retired, next].sort(), n.name);
    }
    for (const issuing of nodes) {
      const token = await tokenAt(issuing, reader);
      assert.equal(decodeJwt(token).header['kid'], activated, `${issuing.name} signs with the new key`);
      for (const n of nodes) await verifyAgainst(n, token);
    }
    const stored = await sql<{ state: string; n: string }>(
      db.url,
      'SELECT state, count(*) AS n FROM signing_keys GROUP BY state ORDER BY state',
    );
    assert.deepEqual(
      stored.map((r) => [r.state, Number(r.n)]),
      [
        ['active', 1],
        ['next', 1],
        ['retired', 1],
      ],
      'one rotation, not one per node',
    );
  });

  it('the rate limit of a client holds across nodes, not once per node', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    // 45 requests, 15 at each node: each node alone would allow all of them (burst 20).
    const answers = await Promise.all(
      Array.from({ length: 45 }, (_, i) => requestToken(node(i % 3), ISSUER, limited, API)),
    );
    const ok = answers.filter((a) => a.status === 200).length;
    const limitedAnswers = answers.filter((a) => a.status === 429);
    assert.equal(ok + limitedAnswers.length, 45, JSON.stringify(answers.map((a) => a.status)));
    assert.ok(ok >= 20, `the burst is allowed (${ok})`);
    // The refill (1/s) may add a few during the run; a budget per node would have allowed all 45.
    assert.ok(ok < 30, `one budget shared by the nodes (${ok} allowed)`);
    for (const a of limitedAnswers) {
      assert.equal(a.body['error'], 'temporarily_unavailable');
      assert.match(a.headers.get('retry-after') ?? '', /^\d+$/);
    }
    // Each node audits the first refusal of its kind in its window (the rest are counted for the
    // window's summary): the refusal is in the shared audit log, naming the client and the reason.
    const refused = await sql<{ data: string }>(
      db.url,
      `SELECT data FROM audit_events WHERE type = 'token.refused' AND actor = $1`,
      [limited.id],
    );
    assert.ok(
      refused.some((r) => (JSON.parse(r.data) as Record<string, unknown>)['reason'] === 'rate_limited'),
      JSON.stringify(refused),
    );
  });

  it('after concurrent issuance on all three nodes the audit chain verifies, with an event for every token', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const answers = await Promise.all(
      Array.from({ length: 90 }, (_, i) => requestToken(node(i % 3), ISSUER, load[i % load.length]!, API)),
    );
    for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
    const jtis = answers.map((a) => decodeJwt(a.body['access_token'] as string).claims['jti'] as string);
    const audited = await sql<{ jti: string }>(
      db.url,
      `SELECT jti FROM audit_events WHERE type = 'token.issued' AND jti = ANY($1)`,
      [jtis],
    );
    assert.equal(audited.length, jtis.length);
    const verified = await verifyAuditOffline(db.url);
    assert.match(verified, /^audit chain OK: [1-9]\d* events/);
    const gaps = await sql<{ n: string; max: string }>(
      db.url,
      'SELECT count(*) AS n, max(seq) AS max FROM audit_events',
    );
    assert.equal(gaps[0]!.n, gaps[0]!.max, 'one chain, no gaps');
  });

  it('every node reports the store reachable on /readyz', { timeout: TEST_BOUND_MS }, async () => {
    for (const n of nodes) {
      const r = await getJson(n.origin, '/readyz');
      assert.equal(r.status, 200);
      assert.equal(r.body['store'], 'reachable');
    }
  });
});
