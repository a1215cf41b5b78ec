import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Finding } from '../src/detection/finding.js';
import { type Harness, startHarness, WORKLOAD } from './helpers/harness.js';
import { expectRefusal } from './helpers/refusals.js';

// `GET /admin/v1/detections/findings` pages with a cursor, the last finding's `createdAt` and id:
// findings that share a millisecond are each listed once, wherever a page ends. Its parameters are
// checked before the store is asked.

const NOW = 1_700_000_000_000;

function finding(createdAt: number): Finding {
  return {
    id: randomUUID(),
    rule: 'paging',
    severity: 'low',
    mode: 'observe',
    workload: WORKLOAD,
    jti: null,
    tid: null,
    createdAt,
    evidence: { signals: [] },
    response: 'alert',
    outcome: 'observe',
    risk: 0,
    state: 'open',
    stateBy: null,
    stateAt: null,
    note: '',
  };
}

describe('admin API: the findings query', () => {
  let h: Harness;
  /** Every finding of the test, newest first as the listing orders them. */
  let all: Finding[];
  before(async () => {
    h = await startHarness();
    // Eight findings in four milliseconds, three in each of two: pages of one, two or three each end
    // inside a millisecond somewhere.
    const times = [NOW, NOW + 1, NOW + 1, NOW + 1, NOW + 2, NOW + 2, NOW + 2, NOW + 3];
    const made = times.map(finding);
    for (const f of made) await h.store.addFinding(f);
    all = made.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
  });
  after(() => h.close());

  const list = async (query: string) => {
    const r = await h.admin('GET', `/detections/findings?rule=paging&${query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return (r.body['findings'] as Finding[]).map((f) => f.id);
  };

  it('lists each finding once, page after page, where a page ends inside a millisecond', async () => {
    for (const limit of [1, 2, 3]) {
      const seen: string[] = [];
      let cursor = '';
      // Bounded: a server that kept returning one page must fail here, not loop.
      for (let n = 0; n < all.length + 2; n++) {
        const page = await list(`limit=${limit}${cursor}`);
        if (page.length === 0) break;
        seen.push(...page);
        const last = all.find((f) => f.id === page.at(-1))!;
        cursor = `&before=${last.createdAt}&before_id=${last.id}`;
      }
      assert.deepEqual(
        seen,
        all.map((f) => f.id),
        `pages of ${limit}`,
      );
    }
  });

  it('before alone lists the findings created before that millisecond', async () => {
    assert.deepEqual(
      await list(`before=${NOW + 2}`),
      all.filter((f) => f.createdAt < NOW + 2).map((f) => f.id),
    );
    assert.deepEqual(await list(`before=${NOW}`), []);
  });

  it('refuses a malformed cursor (invalid_request, query_parameter), saying which parameter', async () => {
    const id = all[0]!.id;
    for (const [query, description] of [
      ['before=', /^before must be a time in milliseconds/],
      ['before=abc', /^before must be a time in milliseconds/],
      ['before=-1', /^before must be a time in milliseconds/],
      ['before=1e12', /^before must be a time in milliseconds/],
      ['before=%201700000000000', /^before must be a time in milliseconds/],
      ['before=99999999999999999', /^before must be a time in milliseconds/],
      [`before=${NOW}&before=${NOW + 1}`, /^before must be given once/],
      [`before_id=${id}`, /^before_id needs before/],
      [`before=${NOW}&before_id=`, /^before_id must be the id of a finding/],
      [`before=${NOW}&before_id=${id.toUpperCase()}`, /^before_id must be the id of a finding/],
      [`before=${NOW}&before_id=${id}'--`, /^before_id must be the id of a finding/],
      [`before=${NOW}&before_id=${id}&before_id=${id}`, /^before_id must be given once/],
    ] as const)
      await expectRefusal(h, () => h.admin('GET', `/detections/findings?${query}`), {
        status: 400,
        error: 'invalid_request',
        event: 'admin.refused',
        reason: 'query_parameter',
        description,
      });
  });

  it('refuses a parameter given twice (invalid_request, query_parameter), as text or not', async () => {
    // workload and rule twice reached the store as arrays: a 500 on SQLite.
    for (const name of ['workload', 'rule', 'state', 'limit'])
      await expectRefusal(h, () => h.admin('GET', `/detections/findings?${name}=open&${name}=open`), {
        status: 400,
        error: 'invalid_request',
        event: 'admin.refused',
        reason: 'query_parameter',
        description: new RegExp(`^${name} must be given once$`),
      });
  });
});
