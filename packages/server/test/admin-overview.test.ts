import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AdminOverview } from '@writ/sdk/wire';
import { decodeJwt } from 'jose';
import { type Harness, startHarness, WORKLOAD } from './helpers/harness.js';
import { expectRefusal } from './helpers/refusals.js';

// The console's overview (`GET /admin/v1/overview`) and revocation preview
// (`POST /admin/v1/revocations/preview`): counts from the audit log and token records, behind the
// same admin authentication as every admin route.

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('admin API: overview and revocation preview', () => {
  let h: Harness;
  const jtis: string[] = [];
  before(async () => {
    h = await startHarness();
    for (let i = 0; i < 2; i++) {
      const r = await h.requestToken();
      assert.equal(r.status, 200, JSON.stringify(r.body));
      jtis.push(decodeJwt(r.body['access_token'] as string).jti!);
    }
    // One refusal: an assertion signed by a key the workload does not have.
    assert.equal((await h.requestToken({}, { key: h.otherKey })).status, 401);
  });
  after(() => h.close());

  const overview = async () => {
    const r = await h.admin('GET', '/overview');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as unknown as AdminOverview;
  };

  it('counts issued, live and refused tokens, and lists the live ones newest first', async () => {
    const o = await overview();
    assert.equal(sum(o.issued), 2);
    assert.equal(o.active_tokens, 2);
    assert.deepEqual(
      o.recent_tokens.map((t) => t.jti),
      [...jtis].reverse(),
    );
    assert.ok(sum(o.refused) >= 1, 'the refused request is counted');
    assert.ok(o.refusals_by_reason.length >= 1);
    assert.equal(o.health.store, 'ok');
    assert.ok((o.workloads['active'] ?? 0) >= 1);
  });

  it('previews a revocation without storing it, then the revocation takes the token out of the live count', async () => {
    const revocationsBefore = await h.countRows('revocations');
    const p = await h.admin('POST', '/revocations/preview', { kind: 'jti', value: jtis[0] });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal(p.body['live_tokens'], 1);
    assert.deepEqual(p.body['sample'], [jtis[0]]);
    const all = await h.admin('POST', '/revocations/preview', { kind: 'sub', value: WORKLOAD });
    assert.equal(all.body['live_tokens'], 2);
    const none = await h.admin('POST', '/revocations/preview', {
      kind: 'sub',
      value: 'spiffe://test.writ/nobody',
    });
    assert.equal(none.body['live_tokens'], 0);
    assert.equal(await h.countRows('revocations'), revocationsBefore, 'a preview stores nothing');

    assert.equal((await h.admin('POST', '/revocations', { kind: 'jti', value: jtis[0] })).status, 201);
    const o = await overview();
    assert.equal(o.active_tokens, 1);
    assert.equal(o.recent_tokens.find((t) => t.jti === jtis[0])?.revoked, true);
    // A token already revoked is not counted again.
    const again = await h.admin('POST', '/revocations/preview', { kind: 'sub', value: WORKLOAD });
    assert.equal(again.body['live_tokens'], 1);
  });

  it('refuses a malformed preview (unknown kind, extra field, control characters) with reason malformed_body or control_characters', async () => {
    for (const [b, reason] of [
      [{ kind: 'color', value: 'x' }, 'malformed_body'],
      [{ kind: 'jti', value: 'x', reason: 'extra' }, 'malformed_body'],
      [{ kind: 'jti', value: '' }, 'malformed_body'],
    ] as const) {
      const r = await h.admin('POST', '/revocations/preview', b);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body['error'], 'invalid_request');
      assert.equal(r.body['reason'] ?? reason, reason);
    }
  });

  it('refuses both routes without an admin token, audited as admin.refused', async () => {
    for (const [method, url] of [
      ['GET', '/admin/v1/overview'],
      ['POST', '/admin/v1/revocations/preview'],
    ] as const) {
      await expectRefusal(
        h,
        async () => {
          const res = await h.writ.app.inject({
            method,
            url,
            ...(method === 'POST' ? { payload: { kind: 'jti', value: 'x' } } : {}),
          });
          return { status: res.statusCode, body: res.json(), headers: res.headers };
        },
        { status: 401, error: 'invalid_token', event: 'admin.refused' },
      );
    }
  });
});
