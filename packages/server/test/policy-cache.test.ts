import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fakeClock } from '../src/clock.js';
import { compilePolicies } from '../src/policy/compile.js';
import { PolicyEngine } from '../src/policy/engine.js';
import {
  buildContext,
  type DecisionRequest,
  humanPrincipal,
  type PolicyAction,
} from '../src/policy/request.js';
import type { AdminSession } from './helpers/admin-session.js';
import { rawDoc } from './helpers/dpop.js';
import { AUDIENCE, type Harness, startHarness, testKey } from './helpers/harness.js';
import { applyPolicies, putResource } from './helpers/policy.js';

/** A deterministic pseudo-random sequence, so a failing run can be repeated. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('slicing gives the same decisions as the whole set', () => {
  it('on a generated set of per-workload, per-resource and global policies', () => {
    const rnd = random(42);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const workloads = Array.from({ length: 20 }, (_, i) => `spiffe://t/w${i}`);
    const apis = Array.from({ length: 10 }, (_, i) => `https://api${i}.test`);
    const actions: PolicyAction[] = ['issue', 'renew', 'read', 'write', 'export'];
    const text: string[] = [];
    for (let i = 0; i < 150; i++) {
      const effect = rnd() < 0.9 ? 'permit' : 'forbid';
      const principal =
        rnd() < 0.5
          ? `principal == Workload::"${pick(workloads)}"`
          : rnd() < 0.5
            ? 'principal is Workload'
            : 'principal';
      const action =
        rnd() < 0.3
          ? `action == Action::"${pick(actions)}"`
          : rnd() < 0.5
            ? 'action in Action::"request"'
            : 'action';
      const resource = rnd() < 0.5 ? `resource == Api::"${pick(apis)}"` : 'resource';
      const cond = pick([
        ...(effect === 'permit' ? [''] : []),
        ` when { context.hour >= ${Math.floor(rnd() * 24)} }`,
        ` when { context.risk > ${Math.floor(rnd() * 100)} }`,
        ` when { resource.sensitivity == "${pick(['internal', 'restricted'])}" }`,
        ' when { context.source_ip.isInRange(ip("10.0.0.0/8")) }',
        ' when { principal is Workload && principal.hasTag("team") && principal.getTag("team") == "blue" }',
        ' when { principal is Workload && principal.owner == resource.owner }',
        ' when { context has purpose && context.purpose == "audit" }',
      ]);
      text.push(`${effect} (${principal}, ${action}, ${resource})${cond};`);
    }
    const set = compilePolicies({
      files: [{ file: 'policies/generated.cedar', text: text.join('\n') }],
      resources: apis.map((id, i) => ({
        id,
        sensitivity: i % 3 ? 'internal' : 'restricted',
        environment: 'prod',
        owner: 'o',
      })),
    });
    const sliced = new PolicyEngine({ set });
    const whole = new PolicyEngine({ set, slicing: false });
    const requests: DecisionRequest[] = Array.from({ length: 400 }, () => {
      const owner = pick(['o', 'p']);
      const tags: Record<string, string> = rnd() < 0.5 ? { team: pick(['blue', 'red']) } : {};
      return {
        principal: {
          type: 'Workload',
          id: pick(workloads),
          attrs: { owner, environment: 'prod', state: 'active', classes: [] },
          tags,
          // The entity version changes with the entity data, as the registry generation does.
          version: JSON.stringify([owner, tags]),
        },
        action: pick(actions),
        resource: pick(apis),
        context: buildContext(Date.UTC(2026, 0, 1, Math.floor(rnd() * 24)), {
          risk: Math.floor(rnd() * 100),
          source_ip: rnd() < 0.5 ? '10.1.2.3' : '192.0.2.1',
          purpose: pick(['audit', 'sync']),
        }),
      };
    });
    let allowed = 0;
    for (const req of requests) {
      const a = sliced.decide(req);
      const b = whole.decide(req);
      assert.equal(a.decision, b.decision, JSON.stringify(req));
      assert.deepEqual(a.reasons, b.reasons, JSON.stringify(req));
      if (a.decision === 'allow') allowed++;
    }
    for (const req of requests) {
      const again = sliced.decide(req);
      assert.equal(again.cached, true);
      assert.equal(again.decision, whole.decide(req).decision);
    }
    assert.ok(allowed > 40 && allowed < 360, `a mix of decisions (${allowed} allowed)`);
  });
});

describe('decision cache under change', () => {
  const clock = fakeClock(Date.UTC(2026, 4, 6, 10));
  const key = testKey();
  const owner = (team: string) =>
    rawDoc('workload', {
      id: 'spiffe://test.writ/edge/reader',
      owner: team,
      environment: 'prod',
      classes: ['reports-read'],
      jwks: { keys: [key.publicJwk] },
    });
  const POLICIES = `
@id("token-baseline")
permit (principal is Workload, action in Action::"token", resource);
@id("viewer-read")
permit (principal is Human, action == Action::"read", resource) when { principal.roles.contains("viewer") };
@id("restricted-needs-mfa")
forbid (principal is Human, action, resource) when { resource.sensitivity == "restricted" && !principal.mfa };
@id("owner-read")
permit (principal is Workload, action == Action::"read", resource) when { principal.owner == resource.owner };
`;
  const REPORTS = { id: AUDIENCE, sensitivity: 'internal', environment: 'prod', owner: 'team-reports' };
  let h: Harness;
  let admin: AdminSession;
  before(async () => {
    // Thousands of evaluations by one operator on a clock that never moves: a budget no test run uses up
    // (AuthZEN calls draw on the caller's budget like every endpoint; a busy PEP gets a larger one).
    h = await startHarness({
      clock,
      extraDocs: [owner('team-reports')],
      settings: { 'limits.client_rate': 1_000_000, 'limits.client_burst': 1_000_000 },
    });
    const r = await applyPolicies(
      h,
      { files: [{ file: 'policies/p.cedar', text: POLICIES }], resources: [REPORTS] },
      [owner('team-reports')],
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    admin = await h.adminSession();
  });
  after(() => h.close());

  const ask = async (subject: unknown): Promise<boolean> => {
    const res = await h.writ.app.inject({
      method: 'POST',
      url: '/access/v1/evaluation',
      headers: { ...admin.headers('POST', '/access/v1/evaluation'), 'content-type': 'application/json' },
      payload: JSON.stringify({ subject, action: { name: 'read' }, resource: { type: 'api', id: AUDIENCE } }),
    });
    assert.equal(res.statusCode, 200, res.body);
    return (JSON.parse(res.body) as { decision: boolean }).decision;
  };
  const viewer = { type: 'user', id: 'alice', properties: { roles: ['viewer'] } };
  const reader = { type: 'workload', id: 'spiffe://test.writ/edge/reader' };

  /**
   * Runs `workers` loops of evaluations while `change` runs once. Every evaluation that started after
   * `change` resolved must see `expectedAfter`; returns how many did, and how many were served at all.
   */
  const underLoad = async (subject: unknown, change: () => Promise<void>, expectedAfter: boolean) => {
    let acknowledged = false;
    let stop = false;
    const after: boolean[] = [];
    let total = 0;
    const worker = async () => {
      while (!stop) {
        const startedAfterAck = acknowledged;
        const d = await ask(subject);
        total++;
        if (startedAfterAck) after.push(d);
      }
    };
    const workers = Array.from({ length: 16 }, worker);
    // Let the workers fill the cache with the old decision before the change.
    while (total < 200) await new Promise((r) => setImmediate(r));
    await change();
    acknowledged = true;
    while (after.length < 400) await new Promise((r) => setImmediate(r));
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(
      after.filter((d) => d !== expectedAfter),
      [],
      'no decision made before the change is served after it',
    );
    return total;
  };

  it('a resource attribute change is seen by every evaluation started after the PUT returned', async () => {
    assert.equal(await ask(viewer), true);
    const hitsBefore = h.writ.ctx.policy.stats.cacheHits;
    await underLoad(
      viewer,
      async () => {
        const r = await putResource(h, { ...REPORTS, sensitivity: 'restricted' });
        assert.equal(r.status, 200);
      },
      false,
    );
    assert.ok(
      h.writ.ctx.policy.stats.cacheHits - hitsBefore > 100,
      'the load was served mostly from the cache',
    );
  });

  it('a policy change is seen by every evaluation started after the apply returned', async () => {
    assert.equal(await ask(viewer), false);
    await underLoad(
      viewer,
      async () => {
        const r = await applyPolicies(
          h,
          {
            files: [
              {
                file: 'policies/p.cedar',
                text: POLICIES.replace('resource.sensitivity == "restricted"', 'false'),
              },
            ],
            resources: [REPORTS],
          },
          [owner('team-reports')],
        );
        assert.equal(r.status, 200, JSON.stringify(r.body));
      },
      true,
    );
  });

  it("a workload's attributes changed by config are seen by every evaluation started after the apply returned", async () => {
    assert.equal(await ask(reader), true);
    await underLoad(
      reader,
      async () => {
        const r = await applyPolicies(
          h,
          {
            files: [
              {
                file: 'policies/p.cedar',
                text: POLICIES.replace('resource.sensitivity == "restricted"', 'false'),
              },
            ],
            resources: [REPORTS],
          },
          [owner('team-billing')],
        );
        assert.equal(r.status, 200, JSON.stringify(r.body));
      },
      false,
    );
  });

  it('cached decisions are keyed by what the policies read: a context field they read splits the cache', () => {
    const set = compilePolicies({
      files: [
        {
          file: 'policies/risk.cedar',
          text: 'permit (principal, action == Action::"read", resource);\nforbid (principal, action, resource) when { context.risk >= 50 };',
        },
      ],
      resources: [],
    });
    const engine = new PolicyEngine({ set });
    const req = (risk: number, purpose: string): DecisionRequest => ({
      principal: humanPrincipal('bob', [], false),
      action: 'read',
      resource: 'https://x.test',
      context: buildContext(Date.UTC(2026, 0, 1), { risk, purpose }),
    });
    assert.equal(engine.decide(req(10, 'a')).cached, false);
    assert.equal(engine.decide(req(10, 'b')).cached, true, 'purpose is read by no policy: same entry');
    const high = engine.decide(req(60, 'a'));
    assert.equal(high.decision, 'deny');
    assert.equal(high.cached, false, 'risk is read: a different entry');
    assert.equal(engine.decide(req(10, 'a')).decision, 'allow');
  });
});
