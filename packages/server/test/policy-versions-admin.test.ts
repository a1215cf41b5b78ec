import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Harness, startHarness } from './helpers/harness.js';
import { applyPolicies } from './helpers/policy.js';
import { expectRefusal } from './helpers/refusals.js';

// `GET /admin/v1/policy/versions` and `/policy/versions/{id}`: the applied policy versions the store
// keeps with their sources (the console's Policy view diffs two), behind the admin authentication.

const FIRST = `@id("token-baseline")
permit(principal is Workload, action in Action::"token", resource);
`;
const SECOND = `${FIRST}
@id("reads")
permit(principal is Workload, action == Action::"read", resource);
`;

interface Summary {
  id: string;
  counter: number;
  created: number;
  applied_by: string | null;
  built_in: boolean;
  policies: number;
}

describe('admin API: policy versions and their sources', () => {
  let h: Harness;
  let first: string;
  let second: string;
  before(async () => {
    h = await startHarness();
    for (const text of [FIRST, SECOND]) {
      const r = await applyPolicies(h, { files: [{ file: 'policies/main.cedar', text }] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const running = await h.admin('GET', '/policy');
    second = (running.body['version'] as { id: string }).id;
  });
  after(() => h.close());

  it('lists two applies as two versions, newest first, with who applied them', async () => {
    const r = await h.admin('GET', '/policy/versions');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const versions = r.body['versions'] as Summary[];
    assert.equal(r.body['running'], second);
    assert.equal(versions[0]!.id, second);
    assert.equal(versions[0]!.policies, 2);
    assert.match(versions[0]!.applied_by ?? '', /^operator:/);
    assert.equal(versions[0]!.built_in, false);
    first = versions[1]!.id;
    assert.equal(versions[1]!.policies, 1);
    assert.equal(versions[1]!.counter, versions[0]!.counter - 1);
    // The built-in set the harness started with is the oldest.
    assert.equal(versions.at(-1)!.built_in, true);
    assert.ok(versions.every((v, i) => i === 0 || v.counter < versions[i - 1]!.counter));
  });

  it('returns the sources of each version', async () => {
    for (const [id, text] of [
      [first, FIRST],
      [second, SECOND],
    ] as const) {
      const r = await h.admin('GET', `/policy/versions/${id}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body['id'], id);
      assert.deepEqual(r.body['files'], [{ file: 'policies/main.cedar', text }]);
    }
  });

  it('answers 404 not_found for an unknown or malformed version id', async () => {
    for (const id of ['999-0123456789ab', 'nonsense', `1-${'a'.repeat(60)}`, '1-0123456789AB']) {
      await expectRefusal(h, () => h.admin('GET', `/policy/versions/${encodeURIComponent(id)}`), {
        status: 404,
        error: 'not_found',
        event: 'admin.refused',
        reason: 'not_found',
      });
    }
  });

  it('refuses a caller without an admin token', async () => {
    for (const url of ['/admin/v1/policy/versions', `/admin/v1/policy/versions/${second}`]) {
      await expectRefusal(
        h,
        async () => {
          const res = await h.writ.app.inject({ method: 'GET', url });
          return { status: res.statusCode, body: res.json(), headers: res.headers };
        },
        { status: 401, error: 'invalid_token', event: 'admin.refused' },
      );
      const res = await h.writ.app.inject({ method: 'GET', url });
      assert.ok(!res.body.includes('permit('), 'no policy text without authentication');
    }
  });

  it("refuses a workload's access token: the versions are the operators' only", async () => {
    const issued = await h.requestToken();
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const token = String(issued.body['access_token']);
    for (const url of ['/admin/v1/policy/versions', `/admin/v1/policy/versions/${second}`]) {
      const { reply, event } = await expectRefusal(
        h,
        async () => {
          const res = await h.writ.app.inject({
            method: 'GET',
            url,
            headers: { authorization: `Bearer ${token}` },
          });
          return { status: res.statusCode, body: res.json(), headers: res.headers };
        },
        { status: 401, error: 'invalid_token', event: 'admin.refused' },
      );
      assert.ok(!JSON.stringify(reply.body).includes('permit('), 'no policy text for a workload');
      assert.equal(event.actor, 'anonymous', 'a workload token proves no operator');
      assert.ok(!JSON.stringify(event).includes(token), 'the token is not audited');
    }
  });
});
