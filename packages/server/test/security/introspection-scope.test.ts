import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { validateConfig } from '../../src/config/config-dir.js';
import { ConfigError } from '../../src/errors.js';
import { clientAuth, httpForm, tokenOverHttp, workloadDoc } from '../helpers/dpop.js';
import {
  AUDIENCE,
  configDocuments,
  type Harness,
  OTHER_AUDIENCE,
  OTHER_WORKLOAD,
  startHarness,
  type TestKey,
  testKey,
  WORKLOAD,
} from '../helpers/harness.js';
import { adminJson } from '../helpers/policy.js';

// Introspection as an oracle: an attacker that holds a valid workload identity (its own key) sends
// other workloads' tokens to `POST /oauth2/introspect` and reads their claims back (subject, scopes,
// task, holder key), or learns which tokens are live. Only the token's own client, a verifier that
// serves the token's audience (config `serves`) and operators hear anything but `{"active": false}`.

const REPORTS_API = 'spiffe://test.writ/reports/api';
const BILLING_API = 'spiffe://test.writ/billing/api';

describe('introspection answers only those a token concerns (real HTTP)', () => {
  const reportsApiKey = testKey();
  const billingApiKey = testKey();
  let h: Harness;
  let victimToken: string;
  let billingToken: string;

  before(async () => {
    h = await startHarness({
      listen: true,
      extraDocs: [
        workloadDoc(REPORTS_API, reportsApiKey, ['reports-read'], { serves: [AUDIENCE] }),
        workloadDoc(BILLING_API, billingApiKey, ['billing-write'], { serves: [OTHER_AUDIENCE] }),
      ],
    });
    victimToken = await tokenOverHttp(h, WORKLOAD, h.workloadKey, AUDIENCE);
    billingToken = await tokenOverHttp(h, OTHER_WORKLOAD, h.otherKey, OTHER_AUDIENCE, 'billing:write');
  });
  after(() => h.close());

  const as = (id: string, key: TestKey) => ({ id, key });
  const introspectAs = async (who: { id: string; key: TestKey }, token: string) => {
    const r = await httpForm(`${h.issuer}/oauth2/introspect`, { token, ...clientAuth(h, who.id, who.key) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const lastIntrospection = async () => (await h.auditEvents('token.introspected')).at(-1)!;

  const outsiders = [
    { name: 'a workload of another API (no serves)', who: () => as(OTHER_WORKLOAD, h.otherKey) },
    { name: "another API's verifier (serves billing)", who: () => as(BILLING_API, billingApiKey) },
  ];
  for (const o of outsiders) {
    it(`${o.name} asking about a reports token hears exactly {"active": false}, audited with the reason`, async () => {
      const who = o.who();
      assert.deepEqual(await introspectAs(who, victimToken), { active: false });
      const event = await lastIntrospection();
      assert.equal(event.actor, who.id);
      assert.equal(event.data['active'], false);
      assert.equal(event.data['reason'], 'audience_not_served');
    });
  }

  it('the answer to an outsider is byte for byte the answer for garbage: no oracle of which tokens are live', async () => {
    const attacker = as(OTHER_WORKLOAD, h.otherKey);
    const forLive = await fetchIntrospection(h, attacker, victimToken);
    const forGarbage = await fetchIntrospection(h, attacker, 'e30.e30.AAAA');
    assert.equal(forLive.status, forGarbage.status);
    assert.equal(forLive.text, forGarbage.text);
    assert.equal(forLive.text, '{"active":false}');
  });

  it("a verifier's serves covers only its API: the reports verifier asking about a billing token hears inactive", async () => {
    assert.deepEqual(await introspectAs(as(REPORTS_API, reportsApiKey), billingToken), { active: false });
    assert.equal((await lastIntrospection()).data['reason'], 'audience_not_served');
  });

  it('the serving verifier, the token own client and an operator hear the claims', async () => {
    const fromVerifier = await introspectAs(as(REPORTS_API, reportsApiKey), victimToken);
    assert.equal(fromVerifier['active'], true);
    assert.equal(fromVerifier['sub'], WORKLOAD);
    assert.equal(fromVerifier['aud'], AUDIENCE);
    const fromClient = await introspectAs(as(WORKLOAD, h.workloadKey), victimToken);
    assert.equal(fromClient['active'], true);
    const fromOperator = await httpForm(
      `${h.issuer}/oauth2/introspect`,
      { token: victimToken },
      await h.adminHeaders('POST', '/oauth2/introspect'),
    );
    assert.equal(fromOperator.body['active'], true);
    assert.equal((await lastIntrospection()).data['reason'], 'active');
  });

  it('a revoked token is inactive for the serving verifier too (its reason is the revocation)', async () => {
    const token = await tokenOverHttp(h, WORKLOAD, h.workloadKey, AUDIENCE);
    const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())['jti'] as string;
    assert.equal(
      (await h.admin('POST', '/revocations', { kind: 'jti', value: jti, reason: 'test' })).status,
      201,
    );
    assert.deepEqual(await introspectAs(as(REPORTS_API, reportsApiKey), token), { active: false });
    assert.equal((await lastIntrospection()).data['reason'], 'revoked_by_jti');
  });
});

describe('serves: a workload declares only registered APIs, never Writ itself', () => {
  const keys = { workload: testKey(), other: testKey(), operator: testKey() };
  const issuer = 'https://writ.test';
  const verifierWith = (serves: unknown) =>
    configDocuments(keys, [
      { kind: 'workload', file: 'workloads/api.yaml', index: 0, doc: { ...apiDoc(), serves } },
    ]);
  const apiDoc = () => ({
    id: REPORTS_API,
    owner: 'team-reports',
    environment: 'prod',
    classes: ['reports-read'],
    jwks: { keys: [testKey().publicJwk] },
  });
  const refusal = (serves: unknown): ConfigError => {
    try {
      validateConfig(verifierWith(serves), undefined, issuer);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err;
    }
    assert.fail(`serves ${JSON.stringify(serves)} was accepted`);
  };

  it('refuses an API no class issues tokens for, naming the file and field', () => {
    const err = refusal([AUDIENCE, 'https://unregistered.test.writ']);
    assert.equal(err.file, 'workloads/api.yaml');
    assert.equal(err.field, 'serves.1');
    assert.match(err.message, /no class issues tokens for "https:\/\/unregistered\.test\.writ"/);
  });

  for (const own of [issuer, `${issuer}/admin`, `${issuer}/v1/usage`, `${issuer}/v1/events`]) {
    it(`refuses Writ's own endpoint ${own.slice(issuer.length) || '(the issuer)'}, even when a class lists it`, () => {
      const docs = verifierWith([own]).map((d) =>
        d.kind === 'class' && (d.doc as { name: string }).name === 'reports-read'
          ? { ...d, doc: { ...(d.doc as object), audiences: [AUDIENCE, own] } }
          : d,
      );
      assert.throws(
        () => validateConfig(docs, undefined, issuer),
        (err) =>
          err instanceof ConfigError &&
          err.field === 'serves.0' &&
          /endpoint of Writ itself/.test(err.message),
      );
    });
  }

  it('refuses what is not an absolute URI', () => {
    assert.equal(refusal(['reports']).field, 'serves.0');
    assert.equal(refusal([]).field, 'serves');
  });

  it('writ apply of such a config is refused over HTTP (400 invalid_config, audited), and nothing changes', async () => {
    const h = await startHarness({ listen: true });
    try {
      const documents = configDocuments(
        { workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey },
        [
          {
            kind: 'workload',
            file: 'workloads/api.yaml',
            index: 0,
            doc: { ...apiDoc(), serves: [`${h.issuer}/admin`] },
          },
        ],
      );
      const res = await adminJson(h, 'POST', '/config', { documents, policies: null });
      assert.equal(res.status, 400);
      assert.equal(res.body['error'], 'invalid_request');
      assert.match(
        String(res.body['error_description']),
        /workloads\/api\.yaml: serves\.0: .*endpoint of Writ itself/,
      );
      assert.equal((await h.auditEvents('admin.refused')).at(-1)?.data['reason'], 'invalid_config');
      assert.equal(await h.store.getWorkload(REPORTS_API), undefined);
    } finally {
      await h.close();
    }
  });
});

async function fetchIntrospection(
  h: Harness,
  who: { id: string; key: TestKey },
  token: string,
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${h.issuer}/oauth2/introspect`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, ...clientAuth(h, who.id, who.key) }).toString(),
  });
  return { status: res.status, text: await res.text() };
}
