import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type DpopKey, generateDpopKey } from '@writ/sdk/dpop';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import pino from 'pino';
import { applyConfig } from '../../src/admin/operations.js';
import { type Clock, fakeClock, seconds, systemClock } from '../../src/clock.js';
import { validateConfig } from '../../src/config/config-dir.js';
import { resolveSettings } from '../../src/config/settings.js';
import { kekFromBytes } from '../../src/keys/kek.js';
import { revoke } from '../../src/revocation/revoke.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.js';
import type { Store } from '../../src/store/store.js';
import { sweepTasks } from '../../src/tasks/sweeper.js';
import { createWrit, type Writ } from '../../src/writ.js';
import { eventually, freshDatabase, POSTGRES_URL, sql } from '../helpers/cluster.js';
import { classDoc, proofParts, rawDoc, signProof, workloadDoc } from '../helpers/dpop.js';
import { signJwt, startHarness, testKey } from '../helpers/harness.js';
import { expectRefusal, type RefusalScene } from '../helpers/refusals.js';

/**
 * Nodes whose clocks disagree, on one PostgreSQL database. Each node writes its own time into shared
 * rows; a node running ahead must not expire what other nodes still rely on (replay entries, task
 * leases), a node running behind must not let "issued before now" miss what other nodes just issued,
 * and a node past `cluster.max_clock_skew` must stop issuing and say it is not ready.
 */

const ISSUER = 'https://writ.skew.test';
const API = 'https://items.skew.test';
const WORKER = 'spiffe://skew.test/worker';
/** How far the skewed nodes' clocks are off: well past the 2 s bound and every replay window here. */
const SKEW_MS = 30_000;
const FORM = 'application/x-www-form-urlencoded';

const silent = pino({ level: 'silent' });
/** The system clock off by `offset` ms; the offset can be changed, as when NTP steps a clock back. */
const offsetClock = (offset: number): Clock & { offset: number } => {
  const clock = { offset, now: () => Date.now() + clock.offset };
  return clock;
};

if (POSTGRES_URL === '') {
  const reason = 'WRIT_TEST_POSTGRES_URL is not set';
  console.log(`cluster-clock-skew: skipped: ${reason} (CI sets it to a throwaway database)`);
  describe('nodes whose clocks disagree', { skip: reason }, () => {});
} else {
  describe('nodes whose clocks disagree', () => {
    const workerKey = testKey();
    const operatorKey = testKey();
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    /** Right on time, 30 s ahead, 30 s behind. */
    let right: Writ;
    let fast: Writ;
    let slow: Writ;
    /** 1.5 s ahead: within `cluster.max_clock_skew` (2 s), so it issues tokens. */
    let near: Writ;
    const slowClock = offsetClock(-SKEW_MS);

    before(async () => {
      db = await freshDatabase(POSTGRES_URL);
      const settings = resolveSettings(
        undefined,
        {},
        {
          issuer: ISSUER,
          'log.level': 'silent',
          'dpop.require_nonce': false,
          // Replay entries then last exactly as long as the assertion or the proof window: 20 s, less
          // than the skew, so a node 30 s ahead takes them for expired.
          'client_assertion.clock_skew': 0,
          'dpop.iat_window': 20,
        },
      );
      const kek = randomBytes(32);
      const node = async (clock: Clock) =>
        createWrit({
          settings,
          store: await openPostgresStore(db.url),
          kek: kekFromBytes(kek, 'test'),
          clock,
          logger: silent,
        });
      right = await node(systemClock);
      const bundle = validateConfig(
        [
          classDoc({
            name: 'items',
            audiences: [API],
            scopes: ['items:read'],
            default_scopes: ['items:read'],
          }),
          workloadDoc(WORKER, workerKey, ['items']),
          rawDoc('operator', { name: 'ops', jwks: { keys: [operatorKey.publicJwk] } }),
        ],
        settings.tokens.maxLifetime,
      );
      await applyConfig(right.ctx, bundle, 'operator:test', false);
      // Started after the config is stored: they load it as they start.
      fast = await node(offsetClock(SKEW_MS));
      slow = await node(slowClock);
      near = await node(offsetClock(1500));
    });
    after(async () => {
      await Promise.all([right?.close(), fast?.close(), slow?.close(), near?.close()]);
      await db?.drop();
    });

    /** The workload's client assertion, on the workload's own (correct) clock; expires in 20 s. */
    const assertion = (): string => {
      const now = seconds(Date.now());
      return signJwt(workerKey, {
        iss: WORKER,
        sub: WORKER,
        aud: ISSUER,
        iat: now,
        exp: now + 20,
        jti: randomBytes(12).toString('base64url'),
      });
    };
    const proof = (holder: DpopKey): string =>
      signProof(holder, proofParts(holder, { htu: `${ISSUER}/oauth2/token`, iat: seconds(Date.now()) }));
    const reply = (r: { statusCode: number; body: string; headers: Record<string, unknown> }) => ({
      status: r.statusCode,
      body: r.body ? (JSON.parse(r.body) as Record<string, unknown>) : {},
      headers: r.headers as Record<string, string>,
    });
    const askToken = async (node: Writ, clientAssertion: string, dpop: string) =>
      reply(
        await node.app.inject({
          method: 'POST',
          url: '/oauth2/token',
          headers: { 'content-type': FORM, dpop },
          payload: new URLSearchParams({
            grant_type: GrantType.clientCredentials,
            client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
            client_assertion: clientAssertion,
            resource: API,
          }).toString(),
        }),
      );
    const post = async (node: Writ, url: string, form: Record<string, string>) =>
      reply(
        await node.app.inject({
          method: 'POST',
          url,
          headers: { 'content-type': FORM },
          payload: new URLSearchParams(form).toString(),
        }),
      );
    const get = async (node: Writ, url: string) => reply(await node.app.inject({ method: 'GET', url }));
    /** A node's view for `expectRefusal`: its store, and the shared tables counted on their own connection. */
    const scene = (node: Writ): RefusalScene => ({
      writ: node,
      store: node.ctx.store,
      auditEvents: (type) => node.ctx.store.queryAudit({ limit: 100_000, ...(type ? { type } : {}) }),
      countRows: async (table) =>
        Number((await sql<{ n: string }>(db.url, `SELECT count(*) AS n FROM ${table}`))[0]!.n),
    });
    /** What every node's prune timer runs, on that node's clock. */
    const pruneOn = (node: Writ) => node.ctx.store.prune(node.ctx.clock.now());

    it('a token a node 1.5 s ahead issued is live at once on a node on time (nbf within the allowed skew)', async () => {
      const issued = await askToken(near, assertion(), proof(generateDpopKey()));
      assert.equal(issued.status, 200, JSON.stringify(issued.body));
      const token = issued.body['access_token'] as string;
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
        nbf: number;
      };
      assert.ok(claims.nbf > seconds(Date.now()), 'the token is from the on-time node’s future');
      const introspected = await post(right, '/oauth2/introspect', {
        token,
        client_id: WORKER,
        client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
        client_assertion: assertion(),
      });
      assert.equal(introspected.status, 200);
      assert.equal(introspected.body['active'], true, JSON.stringify(introspected.body));
    });

    it('a node 30 s ahead does not expire a client assertion another node consumed: its replay is still refused', async () => {
      const stolen = assertion();
      assert.equal((await askToken(right, stolen, proof(generateDpopKey()))).status, 200);
      await pruneOn(fast);
      const { reply: replay } = await expectRefusal(
        scene(right),
        () => askToken(right, stolen, proof(generateDpopKey())),
        { status: 401, error: 'invalid_client', reason: 'replay' },
      );
      assert.match(String(replay.body['error_description']), /already been used/);
    });

    it('a node 30 s ahead does not expire a DPoP proof another node consumed: its replay is still refused', async () => {
      const holder = generateDpopKey();
      const captured = proof(holder);
      assert.equal((await askToken(right, assertion(), captured)).status, 200);
      await pruneOn(fast);
      await expectRefusal(scene(right), () => askToken(right, assertion(), captured), {
        status: 400,
        error: 'invalid_dpop_proof',
        reason: 'dpop_replay',
      });
    });

    it('a node 30 s ahead does not close other nodes’ tasks before their lease or deadline', async () => {
      const open = async (form: Record<string, string>) => {
        const r = await post(right, '/v1/tasks', {
          client_id: WORKER,
          client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
          client_assertion: assertion(),
          purpose: 'nightly export',
          ...form,
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        return r.body['id'] as string;
      };
      // Both end 20 s from now on the database's clock: already past on the fast node's.
      const leased = await open({ lease: '20' });
      const bounded = await open({ duration: '20' });
      assert.equal(await sweepTasks(fast.ctx), 0, 'the fast node closed no task');
      for (const id of [leased, bounded]) {
        const task = await right.ctx.store.getTask(id);
        assert.equal(task?.closedAt, null, `${id} is still open`);
      }
      const revoked = await right.ctx.store.listRevocations(0, Date.now());
      assert.deepEqual(
        revoked.filter((r) => r.kind === 'tid' && [leased, bounded].includes(r.value)),
        [],
        'no task revocation',
      );
    });

    it('"issued before now" on a node 30 s behind still revokes a token another node just issued', async () => {
      const issued = await askToken(right, assertion(), proof(generateDpopKey()));
      assert.equal(issued.status, 200);
      const token = issued.body['access_token'] as string;
      const introspect = async () =>
        (
          await post(right, '/oauth2/introspect', {
            token,
            client_id: WORKER,
            client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
            client_assertion: assertion(),
          })
        ).body['active'];
      assert.equal(await introspect(), true);
      // The operator's call on the slow node (what `writ revoke --sub` sends to whichever node the
      // balancer picks): every token the workload holds.
      const stored = await revoke(slow.ctx, {
        kind: 'sub',
        value: WORKER,
        issuedBefore: null,
        reason: 'key compromised',
        actor: 'operator:ops',
      });
      const iat = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).iat as number;
      assert.ok(
        stored.issued_before !== null && stored.issued_before >= iat,
        `issued_before ${stored.issued_before} covers iat ${iat}`,
      );
      const [event] = await right.ctx.store.queryAudit({
        type: 'revocation.created',
        order: 'desc',
        limit: 1,
      });
      assert.equal(event?.data['issued_before'], stored.issued_before, 'the audit says what was stored');
      await eventually('the right node to apply the revocation', () =>
        right.ctx.revocations.seq >= stored.seq ? true : undefined,
      );
      assert.equal(await introspect(), false);
    });

    it('a node past the bound reports not ready, says so in metrics, and issues nothing', async () => {
      const ready = await get(right, '/readyz');
      assert.equal(ready.status, 200);
      const clock = ready.body['clock'] as { reference: string; skew_ms: number; max_skew_ms: number };
      assert.equal(clock.reference, 'database');
      assert.ok(Math.abs(clock.skew_ms) < 2000, `right node skew ${clock.skew_ms} ms`);
      assert.equal(clock.max_skew_ms, 2000);

      for (const [node, sign, word] of [
        [fast, 1, 'ahead of'],
        [slow, -1, 'behind'],
      ] as const) {
        const r = await get(node, '/readyz');
        assert.equal(r.status, 503);
        assert.equal(r.body['status'], 'unavailable');
        assert.equal(r.body['store'], 'reachable');
        const skew = (r.body['clock'] as { skew_ms: number }).skew_ms;
        assert.ok(sign * skew > SKEW_MS - 2000 && sign * skew < SKEW_MS + 2000, `skew ${skew} ms`);
        assert.match(String(r.body['reason']), new RegExp(`${word} the database's`));
      }
      const exported = (await fast.app.inject({ method: 'GET', url: '/metrics' })).body;
      const metrics = exported.match(/^writ_clock_skew_seconds ([\d.e+-]+)$/m);
      assert.ok(metrics, 'writ_clock_skew_seconds is exported');
      assert.ok(Math.abs(Number(metrics[1]) - SKEW_MS / 1000) < 2, `metric ${metrics[1]}`);

      const { reply: refused, event } = await expectRefusal(
        scene(fast),
        () => askToken(fast, assertion(), proof(generateDpopKey())),
        { status: 503, error: 'temporarily_unavailable', reason: 'clock_skew' },
      );
      assert.match(
        String(refused.body['error_description']),
        /^this node's clock is \d+\.\ds ahead of the database's, more than the 2s allowed \(cluster\.max_clock_skew\)/,
      );
      assert.ok(Number(event.data['skew_ms']) > SKEW_MS - 2000);
      // Nor an admin session, whose token would carry the same wrong times.
      const now = seconds(Date.now());
      const admin = await post(fast, '/admin/v1/token', {
        grant_type: GrantType.jwtBearer,
        assertion: signJwt(operatorKey, {
          iss: 'ops',
          sub: 'ops',
          aud: ISSUER,
          iat: now,
          exp: now + 20,
          jti: randomBytes(12).toString('base64url'),
        }),
      });
      assert.equal(admin.status, 503);
      assert.equal(admin.body['error'], 'temporarily_unavailable');
    });

    it('once its clock is back in step, the node is ready and issues again at its next measurement', async () => {
      assert.equal((await get(slow, '/readyz')).status, 503);
      slowClock.offset = 0;
      // What its 15 s timer runs.
      await slow.ctx.clockSkew.measure();
      const ready = await get(slow, '/readyz');
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
      assert.ok(Math.abs((ready.body['clock'] as { skew_ms: number }).skew_ms) < 2000);
      assert.equal((await askToken(slow, assertion(), proof(generateDpopKey()))).status, 200);
    });
  });

  describe('the database clock in shared rows (PostgreSQL store)', () => {
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let node: Store;
    let peer: Store;
    before(async () => {
      db = await freshDatabase(POSTGRES_URL);
      node = await openPostgresStore(db.url);
      peer = await openPostgresStore(db.url);
    });
    after(async () => {
      await Promise.all([node?.close(), peer?.close()]);
      await db?.drop();
    });
    /** A time ahead of the database by the skew, as a fast node's clock reads. */
    const ahead = () => Date.now() + SKEW_MS;
    const behind = () => Date.now() - SKEW_MS;

    it('databaseTime reads the server clock, and never goes back', async () => {
      const first = await node.cluster!.databaseTime();
      const second = await peer.cluster!.databaseTime();
      assert.ok(first !== undefined && second !== undefined && second >= first);
      // The test database runs with a synchronized clock, like any production one.
      assert.ok(Math.abs(first - Date.now()) < 60_000);
      const caller = await openPostgresStore(db.url, { time: 'caller' });
      try {
        assert.equal(
          await caller.cluster!.databaseTime(),
          undefined,
          'a store on the callers’ times has none',
        );
      } finally {
        await caller.close();
      }
    });

    it('a replay entry stays remembered for a caller ahead of the database, and prune keeps it', async () => {
      assert.equal(await node.consume('dpop', 'j', Date.now() + 20_000, Date.now()), true);
      assert.equal(await peer.prune(ahead()), 0);
      assert.equal(await peer.consume('dpop', 'j', ahead() + 20_000, ahead()), false);
      // A caller behind the database keeps it at least as long (its own clock says live).
      assert.equal(await peer.consume('dpop', 'j', behind() + 20_000, behind()), false);
    });

    it('tasks are due by the database clock, not by a caller ahead of it', async () => {
      const now = Date.now();
      const base = {
        workload: WORKER,
        purpose: 'p',
        labels: {},
        openedBy: WORKER,
        openedAt: now,
        closedAt: null,
        closeReason: null,
      };
      await node.createTask({ ...base, id: 'leased', deadline: now + 3_600_000, leaseUntil: now + 20_000 });
      await node.createTask({ ...base, id: 'ending', deadline: now + 20_000, leaseUntil: null });
      await node.createTask({ ...base, id: 'over', deadline: now - 1, leaseUntil: null });
      assert.deepEqual(
        (await peer.dueTasks(ahead(), 10)).map((t) => t.id),
        ['over'],
      );
    });

    it('a rate bucket gets no refill from a caller ahead of the database', async () => {
      // 0.2 per second: 30 s would refill six, the test's own second refills none.
      const takes = [];
      for (let i = 0; i < 4; i++) takes.push(await node.rateLimit('client:w', 0.2, 3, Date.now()));
      assert.deepEqual(takes, [0, 0, 0, 5]);
      assert.ok((await peer.rateLimit('client:w', 0.2, 3, ahead())) > 0, 'still empty');
      assert.equal(await peer.prune(ahead()), 0, 'the bucket is not dropped as if full');
    });

    it('revocations: "issued before now" from a caller behind is the database time; none expires early', async () => {
      const r = await peer.addRevocation({
        kind: 'sub',
        value: WORKER,
        issued_before: 'now',
        created_at: behind(),
        reason: 'r',
        actor: 'operator:ops',
        expires_at: behind() + 60_000,
      });
      assert.ok(r.issued_before !== null && r.issued_before >= seconds(Date.now()) - 1);
      assert.ok(r.created_at >= Date.now() - 1000, 'stored at the database time');
      assert.equal(r.expires_at, r.created_at + 60_000, 'the lifetime is kept');
      // A caller ahead by more than the lifetime's remainder still lists it.
      assert.deepEqual(
        (await node.listRevocations(0, Date.now() + 120_000)).map((x) => x.seq),
        [r.seq],
      );
    });
  });
}

describe('one process: the embedded store', () => {
  it('its clock is the reference: a node on any clock is ready and says so', async () => {
    const h = await startHarness({ clock: fakeClock(Date.UTC(2031, 0, 1)) });
    try {
      const r = await h.writ.app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(r.statusCode, 200);
      assert.deepEqual(JSON.parse(r.body)['clock'], { reference: 'node', skew_ms: null, max_skew_ms: 2000 });
      assert.equal((await h.requestToken()).status, 200);
    } finally {
      await h.close();
    }
  });
});
