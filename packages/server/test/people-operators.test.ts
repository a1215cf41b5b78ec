import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RawDocument } from '../src/config/config-dir.js';
import { type AdminSession, openAdminSession } from './helpers/admin-session.js';
import {
  type Harness,
  harnessDocuments,
  type Reply,
  startHarness,
  type TestKey,
  testKey,
} from './helpers/harness.js';

// Operators are people: an operator that names a person acts only while that person is active. Ending
// the person refuses new admin tokens and the live sessions at their next call; restoring them lets a
// new session in (nothing was revoked for good).

const person = (id: string, active: boolean, i = 0): RawDocument => ({
  kind: 'people',
  file: `people/${id}.yaml`,
  index: i,
  doc: { id, name: id.toUpperCase(), active },
});
const operator = (name: string, key: TestKey, personId: string): RawDocument => ({
  kind: 'operator',
  file: `operators/${name}.yaml`,
  index: 0,
  doc: { name, person: personId, jwks: { keys: [key.publicJwk] } },
});

describe('operators are people', () => {
  let h: Harness;
  const aliceKey = testKey();
  const ghostKey = testKey('EdDSA');
  const docs = (aliceActive: boolean) => [
    person('alice', aliceActive),
    operator('alice', aliceKey, 'alice'),
    operator('ghost', ghostKey, 'nobody'),
  ];
  before(async () => {
    h = await startHarness({ extraDocs: docs(true) });
  });
  after(() => h.close());

  async function session(name: string, key: TestKey): Promise<AdminSession> {
    return openAdminSession({
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
  }
  async function call(s: AdminSession, path = '/admin/v1/workloads'): Promise<Reply> {
    const res = await h.writ.app.inject({ method: 'GET', url: path, headers: s.headers('GET', path) });
    return { status: res.statusCode, body: JSON.parse(res.body), headers: res.headers };
  }
  async function refusal(type: string) {
    const events = await h.auditEvents(type);
    return events.at(-1);
  }
  async function apply(aliceActive: boolean) {
    const r = await h.admin('POST', '/config', { documents: harnessDocuments(h, docs(aliceActive)) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }

  it('an active person’s operator gets a session and uses it', async () => {
    const s = await session('alice', aliceKey);
    assert.equal((await call(s)).status, 200);
  });

  it('deprovisioning the person ends the live session at its next call and refuses a new one; both audited', async () => {
    const live = await session('alice', aliceKey);
    assert.equal((await call(live)).status, 200);
    await apply(false);
    assert.equal(h.writ.ctx.registry.people().person('alice')?.active, false);

    const r = await call(live);
    assert.equal(r.status, 401);
    assert.equal(r.body['error'], 'invalid_token');
    assert.match(
      String(r.body['error_description']),
      /person .alice. this operator belongs to is not active/,
    );
    const refused = await refusal('admin.refused');
    assert.equal(refused?.data['reason'], 'operator_person_inactive');

    await assert.rejects(session('alice', aliceKey), (err: { answer?: Reply }) => {
      assert.equal(err.answer?.status, 403);
      assert.equal(err.answer?.body['error'], 'access_denied');
      return true;
    });
    const tokenRefused = await refusal('admin_token.refused');
    assert.equal(tokenRefused?.data['reason'], 'operator_person_inactive');
    assert.equal(tokenRefused?.data['claimed_client_id'] ?? tokenRefused?.actor, 'operator:alice');

    // The operator without a person (the harness's `ops`) is not touched.
    assert.equal((await h.admin('GET', '/workloads')).status, 200);
  });

  it('making the person active again lets a new session in', async () => {
    await apply(true);
    const s = await session('alice', aliceKey);
    assert.equal((await call(s)).status, 200);
  });

  it('an operator whose person no source knows gets no admin token', async () => {
    await assert.rejects(session('ghost', ghostKey), (err: { answer?: Reply }) => {
      assert.equal(err.answer?.status, 403);
      assert.match(
        String(err.answer?.body['error_description']),
        /"nobody" this operator belongs to is not known/,
      );
      return true;
    });
  });

  it('an apply that leaves no operator whose person is active is refused, and changes nothing', async () => {
    const tiedToAlice = (active: boolean) =>
      harnessDocuments(h, docs(active)).map((d) =>
        d.kind === 'operator' && (d.doc as { name: string }).name === 'ops'
          ? { ...d, doc: { ...(d.doc as object), person: 'alice' } }
          : d,
      );
    const r = await h.admin('POST', '/config', { documents: tiedToAlice(false) });
    assert.equal(r.status, 400);
    assert.match(
      String(r.body['error_description']),
      /every operator of this configuration belongs to a person who is not active/,
    );
    assert.equal((await refusal('admin.refused'))?.data['reason'], 'no_active_operator');
    assert.equal(h.writ.ctx.registry.people().person('alice')?.active, true, 'nothing applied');
    assert.equal(h.writ.ctx.registry.operator('ops')?.person, undefined);
    // With her active the same operators are accepted (dry run: the harness keeps its untied `ops`).
    const ok = await h.admin('POST', '/config', { documents: tiedToAlice(true), dry_run: true });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });

  it('config people are stored and listed back by the next apply as unchanged', async () => {
    const r = await h.admin('POST', '/config', { documents: harnessDocuments(h, docs(true)), dry_run: true });
    assert.deepEqual(r.body['changes'], []);
  });
});
