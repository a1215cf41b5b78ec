import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import {
  type ClusterClient,
  type ClusterConfig,
  clusterConfig,
  clusterNames,
  decodeJwt,
  describeOnPostgres,
  eventually,
  freshDatabase,
  MAIN,
  POSTGRES_URL,
  REQUEST_BOUND_MS,
  sql,
  startNode,
  type WritNode,
} from './helpers/cluster.js';
import { signJwt } from './helpers/harness.js';

/**
 * Issue 18's crash acceptance, for real: two `writ serve` processes on one PostgreSQL database issue
 * tokens to many concurrent clients; one is killed with SIGKILL while its requests are in flight. Every
 * token a client received has its audit event, every token the store recorded has its event and every
 * event its token (also for the requests the killed node never answered), `writ audit verify` finds the
 * chain whole, the survivor keeps issuing, and the killed node restarts on its own data directory (its
 * audit anchor kept) and issues again.
 */

const NAMES = clusterNames('kill.test');
const { issuer: ISSUER, api: API } = NAMES;
/**
 * Client assertions live this long (the most `client_assertion.max_lifetime` allows), so the replay
 * entry of every request sent during the test is still in the store when the test reads it.
 */
const ASSERTION_LIFETIME_S = 600;
/** Node start on a loaded machine can take more than a minute. */
const START_BOUND_MS = 180_000;
/** Two node starts at most one after the other, a few seconds of load, the checks. */
const TEST_BOUND_MS = 600_000;
/** Waiting for a condition on the load (tokens issued, requests in flight): 180 s at most. */
const WAIT = { attempts: 1800, everyMs: 100 };
/** Concurrent requests per node. */
const WORKERS = 12;

const clients = (phase: string, n: number): ClusterClient[] =>
  Array.from({ length: n }, (_, i) => NAMES.client(`${phase}-${i}`));

/** One token request as the client saw it. */
interface Sent {
  client: string;
  /** The client assertion's `jti`: the replay entry the issuance spends with its token and event. */
  assertionJti: string;
  /** Sent after the node was killed (refused at once; counted apart). */
  afterKill: boolean;
  status?: number;
  token?: string;
  body?: string;
  /** No HTTP answer: why. */
  error?: string;
}

/** A client assertion with a `jti` the test keeps, living `ASSERTION_LIFETIME_S`. */
function assertion(c: ClusterClient): { jti: string; jwt: string } {
  const now = Math.floor(Date.now() / 1000);
  const jti = randomBytes(12).toString('base64url');
  const jwt = signJwt(c.key, {
    iss: c.id,
    sub: c.id,
    aud: ISSUER,
    iat: now,
    exp: now + ASSERTION_LIFETIME_S,
    jti,
  });
  return { jti, jwt };
}

/**
 * POSTs a token request with node:http, so the test knows when the request has been handed to the
 * socket (`onSent`): a node killed at that moment cannot have answered it.
 */
function postToken(
  agent: Agent,
  origin: string,
  form: Record<string, string>,
  onSent: () => void,
): Promise<{ status: number; text: string }> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = request(
      new URL('/oauth2/token', origin),
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
        },
        // A node that hangs fails the request (and the test) instead of stalling it.
        timeout: REQUEST_BOUND_MS,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_BOUND_MS} ms`)));
    req.on('finish', onSent);
    req.end(body);
  });
}

/**
 * `workers` loops sending `client_credentials` requests to `node` until stopped; with `paceMs`, each
 * loop rests that long between requests (light traffic, not load). `state.onSent`, when set, is called
 * as each request has been handed to its socket.
 */
function drive(node: WritNode, cs: ClusterClient[], workers: number, paceMs = 0) {
  const sent: Sent[] = [];
  const state: { stopped: boolean; killed: boolean; inFlight: number; onSent?: (() => void) | undefined } = {
    stopped: false,
    killed: false,
    inFlight: 0,
  };
  const agent = new Agent({ keepAlive: true, maxSockets: workers });
  const loops = Array.from({ length: workers }, async (_, w) => {
    while (!state.stopped) {
      const c = cs[w % cs.length]!;
      const a = assertion(c);
      const s: Sent = { client: c.id, assertionJti: a.jti, afterKill: state.killed };
      sent.push(s);
      state.inFlight++;
      try {
        const r = await postToken(
          agent,
          node.origin,
          {
            grant_type: GrantType.clientCredentials,
            resource: API,
            client_id: c.id,
            client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
            client_assertion: a.jwt,
          },
          () => state.onSent?.(),
        );
        s.status = r.status;
        if (r.status === 200) s.token = (JSON.parse(r.text) as { access_token: string }).access_token;
        else s.body = r.text;
      } catch (err) {
        s.error = String(err);
        // A dead node refuses at once: do not spin.
        await new Promise((r) => setTimeout(r, 20));
      } finally {
        state.inFlight--;
      }
      if (paceMs > 0) await new Promise((r) => setTimeout(r, paceMs));
    }
  });
  const tokens = () => sent.filter((s) => s.token !== undefined);
  return {
    sent,
    state,
    tokens,
    /** Marks the requests sent from now on as sent to a dead node. */
    markKilled: () => {
      state.killed = true;
    },
    stop: async () => {
      state.stopped = true;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

const jtiOf = (token: string) => decodeJwt(token).claims['jti'] as string;

/** `writ audit verify --store URL [--anchor FILE]`: exit code and output, whatever the verdict. */
function auditVerify(storeUrl: string, anchor?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, 'audit', 'verify', '--store', storeUrl, ...(anchor ? ['--anchor', anchor] : [])],
      { env: { ...process.env, WRIT_STORE: '' } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
  });
}

/** What the store holds for the clients `ids`: token records, issuance events, assertion replay entries. */
async function stored(databaseUrl: string, ids: string[]) {
  const [tokens, events, replay] = await Promise.all([
    sql<{ jti: string }>(databaseUrl, 'SELECT jti FROM tokens WHERE client_id = ANY($1)', [ids]),
    sql<{ jti: string }>(
      databaseUrl,
      `SELECT jti FROM audit_events WHERE type = 'token.issued' AND actor = ANY($1)`,
      [ids],
    ),
    sql<{ id: string }>(databaseUrl, 'SELECT id FROM replay WHERE scope = ANY($1)', [
      ids.map((id) => `assertion:${id}`),
    ]),
  ]);
  return {
    tokens: tokens.map((r) => r.jti),
    events: events.map((r) => r.jti),
    replay: new Set(replay.map((r) => r.id)),
  };
}

const sorted = (xs: Iterable<string>) => [...xs].sort();

describeOnPostgres('cluster-kill', 'a node killed with SIGKILL under load', () => {
  /** Node A's clients, before the kill and again once it restarted; node B's. */
  const atA = clients('a', 6);
  const atB = clients('b', 6);
  const kek = randomBytes(32).toString('base64');
  let config: ClusterConfig;
  const cleanups: Array<() => Promise<void>> = [];

  before(() => {
    config = clusterConfig(NAMES, {
      settings: {
        client_assertion: { max_lifetime: ASSERTION_LIFETIME_S },
        // Checkpoints (and the anchor file) are written while the load runs, so the kill may meet one.
        audit: { checkpoint_every: 50, checkpoint_interval: 1 },
      },
      workloads: [...atA, ...atB].map((c) => ({ ...c, classes: ['items'] })),
    });
  });
  after(async () => {
    for (const c of cleanups) await c().catch(() => undefined);
    rmSync(config.dir, { recursive: true, force: true });
  });

  it('no issued token without its audit event, no token record without one, the chain verifies; the survivor keeps issuing and the killed node restarts', {
    timeout: TEST_BOUND_MS,
  }, async () => {
    const db = await freshDatabase(POSTGRES_URL);
    const dataA = mkdtempSync(join(tmpdir(), 'writ-kill-a-'));
    const nodes: WritNode[] = [];
    const loads: Array<ReturnType<typeof drive>> = [];
    cleanups.push(async () => {
      for (const l of loads) await l.stop();
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dataA, { recursive: true, force: true });
      await db.drop();
    });
    const node = async (name: string, dataDir?: string) => {
      const n = await startNode({
        name,
        storeUrl: db.url,
        kek,
        config,
        startBoundMs: START_BOUND_MS,
        ...(dataDir ? { dataDir } : {}),
      });
      nodes.push(n);
      return n;
    };

    // Two nodes: A migrates, B waits for it, then both apply the config.
    const a = await node('a', dataA);
    const b = await node('b');

    const loadA = drive(a, atA, WORKERS);
    const loadB = drive(b, atB, WORKERS);
    loads.push(loadA, loadB);
    const anchorA = join(dataA, 'audit-anchor.json');
    await eventually(
      'both nodes to issue under load, and node A to have signed a checkpoint',
      () =>
        loadA.tokens().length >= 60 && loadB.tokens().length >= 60 && existsSync(anchorA) ? true : undefined,
      WAIT,
    );

    // SIGKILL (no shutdown, no last checkpoint) as a request has just been handed to node A's socket,
    // with more in flight: that one at least cannot have been answered.
    let inFlightAtKill = 0;
    loadA.state.onSent = () => {
      if (loadA.state.inFlight < WORKERS / 2) return;
      loadA.state.onSent = undefined;
      inFlightAtKill = loadA.state.inFlight;
      loadA.markKilled();
      a.child.kill('SIGKILL');
    };
    await eventually('node A to be killed', () => (inFlightAtKill > 0 ? true : undefined), WAIT);
    await a.kill();
    await loadA.stop();
    const issuedByB = loadB.tokens().length;
    const lostAtA = loadA.sent.filter((s) => !s.afterKill && s.status === undefined);
    assert.ok(
      lostAtA.length > 0,
      `some requests sent to node A before the kill got no answer (${inFlightAtKill} were in flight)`,
    );

    await eventually(
      'node B to keep issuing after the kill',
      () => (loadB.tokens().length >= issuedByB + 60 ? true : undefined),
      WAIT,
    );
    // From here node B goes on issuing lightly (the token count stays small while a start takes long).
    await loadB.stop();
    const trickleB = drive(b, atB, 2, 100);
    loads.push(trickleB);

    // The chain verifies after the kill, while node B appends to it, and holds the event of the last
    // checkpoint the killed node kept in its anchor file.
    const afterKill = await auditVerify(db.url, anchorA);
    assert.equal(afterKill.code, 0, afterKill.out);
    assert.match(afterKill.out, /^audit chain OK: .*; holds the anchor's event \d+/);

    // Node A restarts on the same database and its own data directory (the anchor it wrote before it
    // was killed included) while node B issues, then both issue.
    const a2 = await node('a-restarted', dataA);
    const loadA2 = drive(a2, atA, WORKERS / 2);
    loads.push(loadA2);
    const issuedByBAtRestart = trickleB.tokens().length;
    await eventually(
      'the restarted node and node B to issue',
      () =>
        loadA2.tokens().length >= 40 && trickleB.tokens().length >= issuedByBAtRestart + 5 ? true : undefined,
      WAIT,
    );
    await Promise.all([loadA2.stop(), trickleB.stop()]);

    // (1) Every token a client received, from either node, has its issuance event.
    const received = [loadA, loadB, trickleB, loadA2].flatMap((l) => l.tokens()).map((s) => jtiOf(s.token!));
    const audited = new Set(
      (
        await sql<{ jti: string }>(
          db.url,
          `SELECT jti FROM audit_events WHERE type = 'token.issued' AND jti = ANY($1)`,
          [received],
        )
      ).map((r) => r.jti),
    );
    assert.deepEqual(
      received.filter((j) => !audited.has(j)),
      [],
      'no token a client holds without its audit event',
    );

    // Node B and the restarted node answered every request: 200, or 503 when the store was busy.
    for (const [name, load] of [
      ['node B', loadB],
      ['node B', trickleB],
      ['the restarted node', loadA2],
    ] as const) {
      const wrong = load.sent.filter((s) => s.status !== 200 && s.status !== 503);
      assert.deepEqual(
        wrong.map((s) => s.error ?? `${s.status} ${s.body}`),
        [],
        `${name}: every request answered`,
      );
    }

    // (3) The store, client by client: a token record and its event always together. At node A, the
    // requests it never answered are either absent (assertion not spent, no record, no event) or whole
    // (assertion spent, record and event); at the nodes that answered everything the store holds
    // exactly the tokens the clients received.
    const phases = [
      { name: 'node A, killed and restarted', cs: atA, of: [loadA, loadA2] },
      { name: 'node B', cs: atB, of: [loadB, trickleB] },
    ];
    const summary: string[] = [];
    for (const { name, cs, of } of phases) {
      const load = { sent: of.flatMap((l) => l.sent), tokens: () => of.flatMap((l) => l.tokens()) };
      const killed = of.includes(loadA);
      const s = await stored(
        db.url,
        cs.map((c) => c.id),
      );
      assert.deepEqual(sorted(s.events), sorted(s.tokens), `${name}: token records and issuance events`);
      assert.equal(new Set(s.tokens).size, s.tokens.length, `${name}: one record per token`);
      const got = new Set(load.tokens().map((t) => jtiOf(t.token!)));
      const unreceived = s.tokens.filter((j) => !got.has(j));
      const recorded = new Set(s.tokens);
      assert.deepEqual(
        [...got].filter((j) => !recorded.has(j)),
        [],
        `${name}: every token received is recorded`,
      );
      // Every spent assertion is one issuance, committed whole.
      assert.equal(s.replay.size, s.tokens.length, `${name}: spent assertions and token records`);
      const answered = new Set(load.tokens().map((t) => t.assertionJti));
      assert.deepEqual(
        [...answered].filter((j) => !s.replay.has(j)),
        [],
        `${name}: the assertion of every token received is spent`,
      );
      const spentUnanswered = load.sent.filter((x) => x.token === undefined && s.replay.has(x.assertionJti));
      assert.equal(
        spentUnanswered.length,
        unreceived.length,
        `${name}: tokens recorded but never received are the requests without a token whose assertion was spent`,
      );
      if (!killed)
        assert.deepEqual(
          unreceived,
          [],
          `${name}: answered every request, so recorded only what it handed out`,
        );
      else {
        const lostInTheKill = new Set(lostAtA);
        assert.deepEqual(
          spentUnanswered.filter((x) => !lostInTheKill.has(x)).map((x) => x.status ?? x.error),
          [],
          'node A: only requests in flight at the kill were committed without an answer',
        );
      }
      const statuses = new Map<string, number>();
      for (const x of load.sent) {
        const k = x.status === undefined ? 'no answer' : String(x.status);
        statuses.set(k, (statuses.get(k) ?? 0) + 1);
      }
      summary.push(
        `${name}: ${of.map((l) => l.tokens().length).join(' + ')} tokens received, ${unreceived.length} recorded but not received, ` +
          `answers ${JSON.stringify(Object.fromEntries(statuses))}`,
      );
    }
    console.log(
      `cluster-kill: ${inFlightAtKill} requests in flight at node A when it was killed; node B had issued ${issuedByB}`,
    );
    for (const line of summary) console.log(`cluster-kill: ${line}`);

    // (2) and (4): the chain verifies after the restart, from the genesis and against the anchor in
    // node A's data directory, now the restarted node's. It stops cleanly (a last checkpoint) first.
    await a2.stop();
    const end = await auditVerify(db.url, anchorA);
    assert.equal(end.code, 0, end.out);
    assert.match(end.out, /^audit chain OK: .*; holds the anchor's event \d+/);
    console.log(`cluster-kill: ${end.out.split('\n')[0]}`);

    // The same verification on this database does see a gap: one issuance event deleted (node B
    // stopped first, so no node appends after it).
    await b.stop();
    const [gone] = await sql<{ seq: string }>(
      db.url,
      `DELETE FROM audit_events WHERE jti = $1 AND type = 'token.issued' RETURNING seq`,
      [received[Math.floor(received.length / 2)]],
    );
    assert.ok(gone, 'the event deleted');
    const cut = await auditVerify(db.url);
    assert.equal(cut.code, 2, cut.out);
    assert.match(
      cut.out,
      new RegExp(`^audit chain BROKEN at event ${Number(gone.seq) + 1}: event ${gone.seq} missing`),
    );
  });
});
