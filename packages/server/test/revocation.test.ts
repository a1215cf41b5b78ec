import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { GrantType, TokenType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import type { AdminSession } from './helpers/admin-session.js';
import { type OperatorCli, operatorCli } from './helpers/cli.js';
import { classDoc, clientAuth, httpForm, injectForm, workloadDoc } from './helpers/dpop.js';
import {
  AUDIENCE,
  type Harness,
  OTHER_AUDIENCE,
  OTHER_WORKLOAD,
  startHarness,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';
import { decodeJwt } from './helpers/refusals.js';
import {
  jti,
  type PredicateCase,
  predicateCases,
  STAMPED_NOW,
  type Tasks,
  TOKEN_NAMES,
  type World,
} from './helpers/revocation-cases.js';

const OWNER = 'spiffe://test.writ/jobs/owner';
const RUNNER = 'spiffe://test.writ/jobs/runner';
const JOBS_API = 'https://jobs.revocation.test';
const AUDIT_API = 'https://audit.revocation.test';

const NAMES = TOKEN_NAMES;
const CASES = predicateCases(OWNER, 'audit-read');

describe('revocation by predicate: introspection of the affected tokens says {active:false}, others stay active', () => {
  const ownerKey = testKey();
  const runnerKey = testKey('EdDSA');
  let clock: ReturnType<typeof fakeClock>;
  let h: Harness;
  let admin: AdminSession;

  beforeEach(async () => {
    clock = fakeClock(Date.UTC(2026, 5, 1, 12));
    h = await startHarness({
      clock,
      extraDocs: [
        classDoc({
          name: 'jobs',
          binding: 'bearer',
          audiences: [JOBS_API],
          scopes: ['jobs:run'],
          default_scopes: ['jobs:run'],
          renewal: { max_lifetime: '1h' },
          delegation: { actors: [RUNNER] },
        }),
        classDoc({
          name: 'audit-read',
          binding: 'bearer',
          audiences: [AUDIT_API],
          scopes: ['audit:read'],
          default_scopes: ['audit:read'],
        }),
        workloadDoc(OWNER, ownerKey, ['jobs', 'audit-read']),
        workloadDoc(RUNNER, runnerKey, ['jobs']),
      ],
    });
    admin = await h.adminSession();
  });
  afterEach(() => h.close());

  const tokenOf = (r: { status: number; body: Record<string, unknown> }): string => {
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };

  const issue = (
    client: string,
    key: typeof ownerKey,
    resource: string,
    extra: Record<string, string> = {},
  ) =>
    injectForm(h, '/oauth2/token', {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(h, client, key),
      resource,
      ...extra,
    }).then(tokenOf);

  const openTask = async (purpose: string): Promise<string> => {
    const r = await h.admin('POST', '/tasks', { workload: OWNER, purpose });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body['id'] as string;
  };

  /** Issues every token of a world at the clock's current instant. */
  const issueWorld = async (label: string, tasks: Tasks, exchange = true): Promise<World> => {
    const tokens: World['tokens'] = {
      ownerJobs: await issue(OWNER, ownerKey, JOBS_API),
      ownerJobsA: await issue(OWNER, ownerKey, JOBS_API, { task_id: tasks.a }),
      ownerJobsB: await issue(OWNER, ownerKey, JOBS_API, { task_id: tasks.b }),
      ownerOtherClass: await issue(OWNER, ownerKey, AUDIT_API),
      runnerJobs: await issue(RUNNER, runnerKey, JOBS_API),
    };
    if (exchange) {
      tokens.exchangedA = tokenOf(
        await injectForm(h, '/oauth2/token', {
          grant_type: GrantType.tokenExchange,
          ...clientAuth(h, RUNNER, runnerKey),
          subject_token: tokens.ownerJobsA!,
          subject_token_type: TokenType.accessToken,
        }),
      );
      // RUNNER narrows what it holds: a second exchange, from the first.
      tokens.exchangedTwice = tokenOf(
        await injectForm(h, '/oauth2/token', {
          grant_type: GrantType.tokenExchange,
          ...clientAuth(h, RUNNER, runnerKey),
          subject_token: tokens.exchangedA,
          subject_token_type: TokenType.accessToken,
        }),
      );
    }
    const kids = new Set(Object.values(tokens).map((t) => decodeJwt(t).header['kid'] as string));
    assert.equal(kids.size, 1, 'one world, one signing key');
    return { label, kid: [...kids][0]!, tokens };
  };

  const introspect = async (token: string): Promise<Record<string, unknown>> => {
    const r = await h.post('/oauth2/introspect', { token }, admin.headers('POST', '/oauth2/introspect'));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };

  const revoke = async (body: Record<string, unknown>) => {
    const r = await h.admin('POST', '/revocations', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    // An admin token signed by a now-revoked key would be refused too: take a fresh one.
    admin = await h.adminSession();
    return r.body;
  };

  /**
   * Builds four worlds: w1 at t0, w2 at t0+10s (same key), then a rotation and w3 at t0+20s under
   * the new key; the revocation is made at t0+20s, and w4 is issued after it, at t0+21s.
   */
  const scenario = async (c: PredicateCase, withCutoff: boolean) => {
    const t0 = Math.floor(clock.now() / 1000);
    const tasks = { a: await openTask('task A'), b: await openTask('task B') };
    const w1 = await issueWorld('w1', tasks);
    clock.advance(10_000);
    const w2 = await issueWorld('w2', tasks);
    const rotated = await h.admin('POST', '/keys/rotate');
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    clock.advance(10_000);
    const w3 = await issueWorld('w3', tasks);
    assert.equal(w2.kid, w1.kid);
    assert.notEqual(w3.kid, w1.kid, 'the rotation changed the signing key');
    assert.equal(rotated.body['retired'], w1.kid);
    assert.equal(rotated.body['activated'], w3.kid);

    const cutoff = t0 + 5;
    // With a cutoff, the value as it reads in w2 is revoked too: for jti that is another token, one
    // issued after the cutoff, which must stay active.
    const values = [...new Set([c.valueOf(w1, tasks), ...(withCutoff ? [c.valueOf(w2, tasks)] : [])])];
    for (const value of values) {
      const stored = await revoke({
        kind: c.kind,
        value,
        reason: `test ${c.kind}`,
        ...(withCutoff ? { issued_before: cutoff } : {}),
      });
      assert.equal(stored['kind'], c.kind);
      assert.equal(stored['value'], value);
      const expectedBound = withCutoff ? cutoff : STAMPED_NOW.has(c.kind) ? t0 + 20 : null;
      assert.equal(stored['issued_before'], expectedBound, 'issued_before as stored');
    }
    clock.advance(1000);
    const w4 = await issueWorld('w4', tasks, false);

    const revoked = new Set(values);
    let inactive = 0;
    let active = 0;
    for (const w of [w1, w2, w3, w4]) {
      for (const name of NAMES) {
        const token = w.tokens[name];
        if (token === undefined) continue;
        const valueRevoked = revoked.has(c.valueOf(w, tasks));
        const iat = decodeJwt(token).claims['iat'] as number;
        const bound = withCutoff ? cutoff : STAMPED_NOW.has(c.kind) ? t0 + 20 : Number.POSITIVE_INFINITY;
        const expectRevoked =
          valueRevoked && (c.names.includes(name) || !!c.descendants?.includes(name)) && iat <= bound;
        const r = await introspect(token);
        const what = `${c.kind}${withCutoff ? ' issued_before' : ''}: ${w.label}.${name}`;
        if (expectRevoked) {
          assert.deepEqual(r, { active: false }, `${what} must be revoked`);
          inactive++;
        } else {
          assert.equal(r['active'], true, `${what} must stay active: ${JSON.stringify(r)}`);
          assert.equal(r['jti'], jti(token), what);
          active++;
        }
      }
    }
    // Each scenario must both revoke something and leave something active.
    assert.ok(inactive > 0 && active > 0, `revoked ${inactive}, active ${active}`);

    const events = (await h.auditEvents('revocation.created')).filter((e) => e.data['kind'] === c.kind);
    assert.deepEqual(
      events.map((e) => e.data['value']),
      values,
      'one revocation.created event per revocation',
    );
    return { w1, w2, w3, w4, tasks };
  };

  for (const c of CASES) {
    it(`${c.label ?? c.kind}: revokes exactly the tokens carrying the value`, async () => {
      const { w4, w2 } = await scenario(c, false);
      if (c.kind === 'tid') {
        // An open-ended tid revocation also covers tokens issued later in the same task.
        assert.deepEqual(await introspect(w4.tokens.ownerJobsA!), { active: false });
      }
      if (STAMPED_NOW.has(c.kind) && c.kind !== 'kid') {
        // Stamped "before now": a token issued after the revocation with the same value is active.
        const later = c.kind === 'cls' ? w4.tokens.ownerOtherClass! : w4.tokens.ownerJobs!;
        assert.equal((await introspect(later))['active'], true);
      }
      if (c.kind === 'jti') assert.equal((await introspect(w2.tokens.ownerJobs!))['active'], true);
    });

    it(`${c.label ?? c.kind} with issued_before: tokens issued after the cutoff stay active`, async () => {
      const { w1, w2 } = await scenario(c, true);
      // The pair that differs only in time: same dimension value, one before and one after the cutoff.
      const name = c.names[0]!;
      assert.deepEqual(await introspect(w1.tokens[name]!), { active: false });
      assert.equal((await introspect(w2.tokens[name]!))['active'], true);
    });
  }

  describe('a malformed revocation request is refused, audited, and revokes nothing', () => {
    const bad: Array<[string, Record<string, unknown>, RegExp]> = [
      ['unknown kind', { kind: 'aud', value: AUDIENCE }, /^kind: /],
      ['empty value', { kind: 'sub', value: '' }, /^value: /],
      ['missing kind', { value: WORKLOAD }, /^kind: /],
      ['missing value', { kind: 'sub' }, /^value: /],
      ['negative issued_before', { kind: 'sub', value: WORKLOAD, issued_before: -1 }, /^issued_before: /],
      ['issued_before as a string', { kind: 'sub', value: WORKLOAD, issued_before: '1' }, /^issued_before: /],
      ['unknown field', { kind: 'sub', value: WORKLOAD, scope: 'all' }, /^body: /],
    ];
    for (const [what, body, description] of bad) {
      it(what, async () => {
        const token = await issue(OWNER, ownerKey, JOBS_API);
        const [last] = await h.store.queryAudit({ limit: 1, order: 'desc' });
        const setSize = h.writ.ctx.revocations.size;

        const r = await h.admin('POST', '/revocations', body);
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.equal(r.body['error'], 'invalid_request');
        assert.match(String(r.body['error_description']), description);
        assert.equal(r.body['seq'], undefined);

        const refused = await h.store.queryAudit({ afterSeq: last!.seq, type: 'admin.refused', limit: 10 });
        assert.equal(refused.length, 1, 'exactly one admin.refused event');
        const e = refused[0]!;
        assert.equal(e.outcome, 'refused');
        assert.equal(e.actor, 'operator:ops');
        assert.equal(e.data['error'], 'invalid_request');
        assert.equal(e.data['status'], 400);
        assert.equal(e.data['path'], '/admin/v1/revocations');

        assert.equal((await h.auditEvents('revocation.created')).length, 0);
        assert.equal(h.writ.ctx.revocations.size, setSize);
        assert.equal((await h.store.listRevocations(0, 0)).length, 0, 'no revocation stored');
        assert.equal((await introspect(token))['active'], true);
      });
    }
  });
});

describe('writ revoke (the CLI) over real HTTP', () => {
  let h: Harness;
  let writ: OperatorCli;
  before(async () => {
    h = await startHarness({ listen: true });
    writ = operatorCli(h, { timeoutMs: 20_000 });
  });
  after(async () => {
    await h.close();
  });

  const token = async (client: string, key: typeof h.workloadKey, resource: string, scope?: string) => {
    const r = await httpForm(`${h.issuer}/oauth2/token`, {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(h, client, key),
      resource,
      ...(scope ? { scope } : {}),
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };

  const active = async (t: string): Promise<unknown> => {
    const r = await httpForm(
      `${h.issuer}/oauth2/introspect`,
      { token: t },
      await h.adminHeaders('POST', '/oauth2/introspect'),
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['active'];
  };

  it('refuses two predicates at once and revokes nothing', async () => {
    const mine = await token(WORKLOAD, h.workloadKey, AUDIENCE);
    const r = await writ(['revoke', '--sub', WORKLOAD, '--cls', 'reports-read']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /give exactly one of/);
    assert.equal(await active(mine), true);
    assert.equal((await h.auditEvents('revocation.created')).length, 0);
  });

  it('--client-id revokes that client’s tokens and leaves another client’s active', async () => {
    const mine = await token(WORKLOAD, h.workloadKey, AUDIENCE);
    const theirs = await token(OTHER_WORKLOAD, h.otherKey, OTHER_AUDIENCE, 'billing:write');
    const r = await writ(['revoke', '--client-id', WORKLOAD, '--reason', 'cli test']);
    assert.equal(r.code, 0, r.stderr);
    const stored = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(stored['kind'], 'client_id');
    assert.equal(stored['value'], WORKLOAD);
    assert.equal(stored['reason'], 'cli test');
    assert.equal(await active(mine), false);
    assert.equal(await active(theirs), true);
    const [event] = await h.auditEvents('revocation.created');
    assert.equal(event?.actor, 'operator:ops');
  });
});
