import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AUDIENCE, type Harness, startHarness, WORKLOAD } from './helpers/harness.js';
import { applyPolicies } from './helpers/policy.js';
import { expectRefusal } from './helpers/refusals.js';

// `POST /admin/v1/policy/explain`: why the running policies allow or deny a request an operator types
// (the console's Policy view), with the policies that determined it; behind the admin authentication.

const POLICIES = `
@id("token-baseline")
permit(principal is Workload, action in Action::"token", resource);

@id("reads")
permit(principal is Workload, action == Action::"read", resource);

@id("risk-ceiling")
forbid(principal, action in Action::"request", resource) when { context.risk >= 80 };
`;

interface Explained {
  decision: string;
  reasons: string[];
  determining: Array<{ id: string; text: string }>;
  considered: Array<{ id: string }>;
  policy_version: string;
}

describe('admin API: explain a policy decision', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    const applied = await applyPolicies(h, { files: [{ file: 'policies/main.cedar', text: POLICIES }] });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
  });
  after(() => h.close());

  const explain = async (b: unknown) => {
    const r = await h.admin('POST', '/policy/explain', b);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as unknown as Explained;
  };

  it('allows a read and names the policy that allowed it, with its text', async () => {
    const e = await explain({ workload: WORKLOAD, action: 'read', resource: AUDIENCE });
    assert.equal(e.decision, 'allow');
    assert.deepEqual(e.reasons, ['reads']);
    assert.match(e.determining[0]!.text, /action == Action::"read"/);
    assert.ok(e.considered.some((p) => p.id === 'risk-ceiling'));
    assert.equal(typeof e.policy_version, 'string');
  });

  it('denies the same read at risk 90 and names the forbid that decided it', async () => {
    const e = await explain({
      workload: WORKLOAD,
      action: 'read',
      resource: AUDIENCE,
      context: { risk: 90 },
    });
    assert.equal(e.decision, 'deny');
    assert.deepEqual(e.reasons, ['risk-ceiling']);
  });

  it('denies an action no policy permits, with no determining policy', async () => {
    const e = await explain({ workload: WORKLOAD, action: 'delete', resource: AUDIENCE });
    assert.equal(e.decision, 'deny');
    assert.deepEqual(e.reasons, []);
  });

  it('refuses an unknown action, an unknown workload, a bad context and extra fields', async () => {
    for (const [b, status, reason] of [
      [{ workload: WORKLOAD, action: 'fly', resource: AUDIENCE }, 400, 'malformed_body'],
      [{ workload: 'spiffe://test.writ/nobody', action: 'read', resource: AUDIENCE }, 404, 'not_found'],
      [
        { workload: WORKLOAD, action: 'read', resource: AUDIENCE, context: { risk: 101 } },
        400,
        'malformed_body',
      ],
      [
        { workload: WORKLOAD, action: 'read', resource: AUDIENCE, context: { source_ip: 'not-an-ip' } },
        400,
        'policy_context',
      ],
      [{ workload: WORKLOAD, action: 'read', resource: AUDIENCE, principal: 'x' }, 400, 'malformed_body'],
    ] as const) {
      await expectRefusal(h, () => h.admin('POST', '/policy/explain', b), {
        status,
        error: status === 404 ? 'not_found' : 'invalid_request',
        event: 'admin.refused',
        reason,
      });
    }
  });

  it('refuses a caller without an admin token', async () => {
    await expectRefusal(
      h,
      async () => {
        const res = await h.writ.app.inject({
          method: 'POST',
          url: '/admin/v1/policy/explain',
          payload: { workload: WORKLOAD, action: 'read', resource: AUDIENCE },
        });
        return { status: res.statusCode, body: res.json(), headers: res.headers };
      },
      { status: 401, error: 'invalid_token', event: 'admin.refused' },
    );
  });
});
