import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '../src/audit/audit-event.js';
import type { RawDocument } from '../src/config/config-dir.js';
import { BreakGlassLedger } from '../src/governance/break-glass-proof.js';
import { type AdminSession, openAdminSession } from './helpers/admin-session.js';
import {
  type Harness,
  type Reply,
  startHarness,
  type TestKey,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';
import { expectRefusal } from './helpers/refusals.js';

// The two-person rule is about people, not operator keys: one person holding two operator keys (a
// laptop and a workstation, each its own operator) must not approve their own break-glass request.

const person = (id: string): RawDocument => ({
  kind: 'people',
  file: `people/${id}.yaml`,
  index: 0,
  doc: { id, name: id.toUpperCase(), active: true },
});
const operator = (name: string, key: TestKey, personId: string): RawDocument => ({
  kind: 'operator',
  file: `operators/${name}.yaml`,
  index: 0,
  doc: { name, person: personId, jwks: { keys: [key.publicJwk] } },
});

describe('break-glass: one person with two operator keys is still one person', () => {
  let h: Harness;
  const desk = testKey();
  const laptop = testKey();
  const dave = testKey();
  before(async () => {
    h = await startHarness({
      extraDocs: [
        person('carol'),
        person('dave'),
        operator('carol', desk, 'carol'),
        operator('carol-laptop', laptop, 'carol'),
        operator('dave', dave, 'dave'),
      ],
    });
  });
  after(() => h.close());

  async function as(
    name: string,
    key: TestKey,
    method: 'POST',
    path: string,
    body?: unknown,
  ): Promise<Reply> {
    const s: AdminSession = await openAdminSession({
      issuer: h.issuer,
      key,
      operator: name,
      nowSeconds: () => Math.floor(h.writ.ctx.clock.now() / 1000),
      post: async (form, headers) => {
        const r = await h.post('/admin/v1/token', form, headers);
        const nonce = r.headers['dpop-nonce'];
        return { ...r, nonce: typeof nonce === 'string' ? nonce : undefined };
      },
    });
    const url = `/admin/v1${path}`;
    const res = await h.writ.app.inject({
      method,
      url,
      headers: {
        ...s.headers(method, url),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    return {
      status: res.statusCode,
      body: JSON.parse(res.body) as Record<string, unknown>,
      headers: res.headers,
    };
  }

  it('carol asks with one key and cannot approve with her other; dave can', async () => {
    const asked = await as('carol', desk, 'POST', '/breakglass', {
      workload: WORKLOAD,
      class: 'billing-write',
      reason: 'incident 7',
      duration: 600,
    });
    assert.equal(asked.status, 201, JSON.stringify(asked.body));
    const id = asked.body['id'] as string;
    await expectRefusal(h, () => as('carol-laptop', laptop, 'POST', `/breakglass/${id}/approve`), {
      status: 403,
      error: 'access_denied',
      event: 'admin.refused',
      reason: 'breakglass_self_approval',
      description: /person carol.*another person must approve it/,
    });
    const approved = await as('dave', dave, 'POST', `/breakglass/${id}/approve`);
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body['approvedBy'], 'operator:dave');
    const [granted] = await h.auditEvents('breakglass.granted');
    assert.equal(granted?.data['requested_person'], 'carol');
    assert.equal(granted?.data['approved_person'], 'dave');
  });
});

describe('govern verify: a grant approved by the requester’s other operator key is a violation', () => {
  const event = (seq: number, type: string, actor: string, data: Record<string, unknown>): AuditEvent => ({
    seq,
    ts: 1_000 + seq,
    type,
    outcome: 'success',
    actor,
    data,
    prevHash: '',
    hash: '',
  });
  const ledger = (approvedPerson: string) => {
    const l = new BreakGlassLedger();
    const base = { breakglass: 'bg_1', cls: 'billing-write' };
    l.read(event(1, 'breakglass.requested', 'operator:carol', { ...base, emergency: false }));
    l.read(
      event(2, 'breakglass.granted', 'operator:carol-laptop', {
        ...base,
        requested_by: 'operator:carol',
        approved_by: 'operator:carol-laptop',
        requested_person: 'carol',
        approved_person: approvedPerson,
        emergency: false,
        ends_at: 5_000,
        review_due: null,
      }),
    );
    return l.findings(0, 10_000).findings.filter((f) => /two-person rule/.test(f.message));
  };

  it('same person: a violation naming both events; another person: none', () => {
    const [found, ...more] = ledger('carol');
    assert.deepEqual(more, []);
    assert.equal(found?.kind, 'violation');
    assert.deepEqual(found?.audit_seq, [1, 2]);
    assert.match(
      found!.message,
      /approved by operator:carol-laptop, an operator key of carol, who requested it/,
    );
    assert.deepEqual(ledger('dave'), []);
  });
});
