import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type DpopKey, generateDpopKey } from '@writ/sdk/dpop';
import { GrantType } from '@writ/sdk/wire';
import type { RawDocument } from '../src/config/config-dir.js';
import { readStartupConfig } from '../src/config/startup-config.js';
import { operatorCli } from './helpers/cli.js';
import { writeConfigDocuments } from './helpers/config-dir.js';
import { classDoc, dpopTokenRequest, introspect, rawDoc, workloadDoc } from './helpers/dpop.js';
import { localIssuerDoc } from './helpers/federation.js';
import { harnessDocuments, testKey } from './helpers/harness.js';
import { kubernetesClaims, type LocalIssuer, startLocalIssuer } from './helpers/oidc-issuer.js';
import { eventsSince, expectRefusal } from './helpers/refusals.js';
import {
  API,
  eventually,
  outcome,
  presenting,
  startVerifierWorld,
  VERIFIER_ID,
  type VerifierWorld,
} from './helpers/verifier.js';

const WRIT = 'https://writ.test';
const LEDGER = 'spiffe://test.writ/ns/payments/sa/ledger';
const INVOICES = 'spiffe://test.writ/ns/billing/sa/invoices';
const FRONTEND = 'spiffe://test.writ/ns/web/sa/frontend';

/** Every service account of namespaces payments, billing and ops the cluster vouches for. */
const podsTemplate = (extra: Record<string, unknown> = {}) =>
  rawDoc('template', {
    id: 'pods',
    owner: 'team-platform',
    environment: 'prod',
    federation: 'cluster',
    match: { trust_domain: 'test.writ', namespaces: ['payments', 'billing', 'ops'] },
    condition: 'claims["kubernetes.io"].serviceaccount.name != "default"',
    classes: ['api'],
    // `ops` has no owner in the table: its service accounts cannot be admitted (no owner derived).
    tables: { owners: { payments: 'team-payments', billing: 'team-billing' } },
    derive: {
      owner: 'tables.owners[claims["kubernetes.io"].namespace]',
      environment: '"prod"',
      attributes: { namespace: 'claims["kubernetes.io"].namespace' },
    },
    ...extra,
  });

describe('workload templates: a Kubernetes issuer admits service accounts on first use', () => {
  let cluster: LocalIssuer;
  let w: VerifierWorld;
  const frontendKey = testKey();
  let fixed: (issuer: string) => RawDocument[];

  before(async () => {
    cluster = await startLocalIssuer('ES256');
    fixed = () => [
      classDoc({ name: 'api', audiences: [API], scopes: ['api:call'], default_scopes: ['api:call'] }),
      localIssuerDoc('cluster', 'kubernetes', cluster, [WRIT], { max_token_age: '2h' }),
      // A registered workload of another namespace: the template must leave it alone.
      workloadDoc(FRONTEND, frontendKey, ['api']),
    ];
    w = await startVerifierWorld({ docs: (issuer) => [...fixed(issuer), podsTemplate()] });
  });
  after(async () => {
    await w?.close();
    await cluster?.close();
  });

  const now = () => Math.floor(w.clock.now() / 1000);
  const saToken = (ns: string, sa: string) => cluster.mint(kubernetesClaims(now(), cluster.url, ns, sa));
  const federate = (assertion: string, holder: DpopKey = generateDpopKey()) =>
    dpopTokenRequest(w.h, () => ({ grant_type: GrantType.jwtBearer, assertion, resource: API }), holder);
  const world = (extra: RawDocument[]) => [
    ...harnessDocuments(w.h, [
      classDoc({
        name: 'verifier-events',
        audiences: [`${w.issuer}/v1/events`],
        scopes: ['events:read'],
        default_scopes: ['events:read'],
      }),
      classDoc({ name: 'verifier-world-api', audiences: [API], scopes: ['api:call'] }),
    ]),
    ...extra,
  ];

  it('admits a new service account with no registration step, audited with the template and evidence', async () => {
    assert.equal(w.h.writ.ctx.registry.workload(LEDGER), undefined, 'not registered before');
    const before = (await w.h.store.queryAudit({ afterSeq: 0, limit: 1 }))[0]?.seq ?? 0;
    const assertion = await saToken('payments', 'ledger');
    const holder = generateDpopKey();
    const r = await federate(assertion, holder);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const token = r.body['access_token'] as string;
    assert.equal((await introspect(w.h, token))['sub'], LEDGER);

    const stored = await w.h.store.getWorkload(LEDGER);
    assert.equal(stored?.owner, 'team-payments');
    assert.equal(stored?.environment, 'prod');
    assert.deepEqual(stored?.classes, ['api']);
    assert.deepEqual(stored?.attributes, { namespace: 'payments' });
    assert.equal(stored?.template?.id, 'pods');

    const admitted = await w.h.auditEvents('workload.admitted');
    const e = admitted.find((x) => x.subject === LEDGER);
    assert.ok(e, 'workload.admitted audited');
    assert.ok(e.seq > before);
    assert.equal(e.data['template'], 'pods');
    assert.equal(e.data['federation_issuer'], 'cluster');
    assert.equal(e.data['token_subject'], 'system:serviceaccount:payments:ledger');
    assert.equal(
      (e.data['claims'] as Record<string, Record<string, unknown>>)['kubernetes.io']?.['namespace'],
      'payments',
    );
    const audit = JSON.stringify(await w.h.auditEvents());
    assert.equal(audit.includes(assertion), false, 'the service-account token is never audited');
    assert.equal(audit.includes(assertion.split('.')[2]!), false, 'not even its signature');

    // Listed and inspectable like any other workload.
    const list = await w.h.admin('GET', '/workloads');
    const listed = (list.body['workloads'] as Array<Record<string, unknown>>).find((x) => x['id'] === LEDGER);
    assert.equal(listed?.['owner'], 'team-payments');
    const one = await w.h.admin('GET', `/workloads/${encodeURIComponent(LEDGER)}`);
    assert.equal(one.status, 200);

    // The verifier accepts its token: the workload is in its bundle as any other.
    const got = await outcome(w.verifier, { ...presenting(token, { holder, url: `${API}/x` }) });
    assert.match(got, /^ok:/);

    // A second token of the same service account is issued without a second admission.
    const again = await federate(await saToken('payments', 'ledger'));
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal((await w.h.auditEvents('workload.admitted')).filter((x) => x.subject === LEDGER).length, 1);
  });

  it('refuses a namespace the template does not cover: unknown_workload, audited, nothing admitted', async () => {
    const { reply, event } = await expectRefusal(w.h, async () => federate(await saToken('web', 'crawler')), {
      status: 400,
      error: 'invalid_grant',
      reason: 'unknown_workload',
      description: /no workload template of issuer cluster covers it/,
    });
    assert.match(String(reply.body['error_description']), /spiffe:\/\/test\.writ\/ns\/web\/sa\/crawler/);
    assert.equal(event.data['workload'], 'spiffe://test.writ/ns/web/sa/crawler');
    assert.equal(await w.h.store.getWorkload('spiffe://test.writ/ns/web/sa/crawler'), undefined);
  });

  it('refuses claims that fail its condition: condition_false, naming the template', async () => {
    const { event } = await expectRefusal(w.h, async () => federate(await saToken('payments', 'default')), {
      status: 400,
      error: 'invalid_grant',
      reason: 'condition_false',
      description: /condition of template pods \(templates\/pods: condition\)/,
    });
    assert.equal(event.data['template'], 'pods');
    assert.equal(await w.h.store.getWorkload('spiffe://test.writ/ns/payments/sa/default'), undefined);
  });

  it('refuses when a derivation fails: never a workload without an owner', async () => {
    const { event } = await expectRefusal(w.h, async () => federate(await saToken('ops', 'backup')), {
      status: 400,
      error: 'invalid_grant',
      reason: 'template_derivation',
      description: /templates\/pods: derive\.owner yields no owner/,
    });
    assert.equal(event.data['field'], 'derive.owner');
    assert.equal(await w.h.store.getWorkload('spiffe://test.writ/ns/ops/sa/backup'), undefined);
    assert.equal(w.h.writ.ctx.registry.workload('spiffe://test.writ/ns/ops/sa/backup'), undefined);
  });

  it('disables one templated workload: it alone is refused', async () => {
    assert.equal((await federate(await saToken('billing', 'invoices'))).status, 200);
    const d = await w.h.admin('POST', `/workloads/${encodeURIComponent(INVOICES)}/disable`, {
      reason: 'test: one templated workload',
    });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    await expectRefusal(w.h, async () => federate(await saToken('billing', 'invoices')), {
      status: 400,
      error: 'unauthorized_client',
      reason: 'workload_disabled',
    });
    assert.equal(
      (await federate(await saToken('payments', 'ledger'))).status,
      200,
      'its sibling still gets tokens',
    );
    // Disabled stays disabled: no token re-admits it.
    assert.equal((await w.h.store.getWorkload(INVOICES))?.state, 'disabled');
  });

  it('refuses at apply a template overlapping another template or a registered workload, naming it', async () => {
    const docs = world([
      ...fixed(w.issuer),
      podsTemplate(),
      podsTemplate({ id: 'wide', match: { prefixes: ['spiffe://test.writ/ns/'] } }),
    ]);
    const r = await w.h.admin('POST', '/config', { documents: docs });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(String(r.body['error_description']), /overlaps template "pods"/);

    const covering = world([
      ...fixed(w.issuer),
      podsTemplate({ match: { trust_domain: 'test.writ', namespaces: ['payments', 'web'] } }),
    ]);
    const c = await w.h.admin('POST', '/config', { documents: covering });
    assert.equal(c.status, 400, JSON.stringify(c.body));
    assert.match(
      String(c.body['error_description']),
      /covers the registered workload spiffe:\/\/test\.writ\/ns\/web\/sa\/frontend/,
    );
    assert.ok(w.h.writ.ctx.registry.templates().byId('pods'), 'the running template is unchanged');
  });

  it('removing the template revokes every token its workloads hold; a connected verifier refuses them', async () => {
    const holder = generateDpopKey();
    const r = await federate(await saToken('payments', 'ledger'), holder);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const token = r.body['access_token'] as string;
    const request = () => presenting(token, { holder, url: `${API}/x` });
    assert.match(await outcome(w.verifier, request()), /^ok:/);
    const seq = (await w.h.store.queryAudit({ afterSeq: 0, limit: 100_000 })).at(-1)?.seq ?? 0;

    const applied = await w.h.admin('POST', '/config', { documents: world(fixed(w.issuer)) });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));

    assert.equal(await w.h.store.getWorkload(LEDGER), undefined, 'the templated workload is gone');
    assert.equal(await w.h.store.getWorkload(INVOICES), undefined);
    assert.ok(await w.h.store.getWorkload(FRONTEND), 'the registered workload stays');
    const removed = await eventsSince(w.h, seq, 'workload.removed');
    assert.deepEqual(removed.map((e) => e.subject).sort(), [INVOICES, LEDGER]);
    assert.match(String(removed[0]!.data['reason']), /template pods removed/);
    assert.equal((await introspect(w.h, token))['active'], false);
    await eventually('the verifier refuses the revoked token', async () =>
      (await outcome(w.verifier, request())) === 'revoked' ? true : undefined,
    );
    // And the identity is no longer admitted (the refusal itself was checked in full above; a repeat of
    // it from the same source may be folded into the window's summary row).
    const gone = await federate(await saToken('payments', 'ledger'));
    assert.equal(gone.status, 400);
    assert.equal(gone.body['error'], 'invalid_grant');
    assert.match(String(gone.body['error_description']), /no workload template of issuer cluster covers it/);
    assert.equal(await w.h.store.getWorkload(LEDGER), undefined, 'not admitted again');
  });
});

describe('workload templates: a templated workload is no file of the config', () => {
  // Its own world: the restarts below would interrupt the verifier the suite above relies on.
  let cluster: LocalIssuer;
  let w: VerifierWorld;
  const frontendKey = testKey();
  const fixed = () => [
    classDoc({ name: 'api', audiences: [API], scopes: ['api:call'], default_scopes: ['api:call'] }),
    localIssuerDoc('cluster', 'kubernetes', cluster, [WRIT], { max_token_age: '2h' }),
    workloadDoc(FRONTEND, frontendKey, ['api']),
  ];
  before(async () => {
    cluster = await startLocalIssuer('ES256');
    w = await startVerifierWorld({ docs: () => [...fixed(), podsTemplate()] });
  });
  after(async () => {
    await w?.close();
    await cluster?.close();
  });
  const now = () => Math.floor(w.clock.now() / 1000);
  const saToken = (ns: string, sa: string) => cluster.mint(kubernetesClaims(now(), cluster.url, ns, sa));
  const federate = (assertion: string) =>
    dpopTokenRequest(
      w.h,
      () => ({ grant_type: GrantType.jwtBearer, assertion, resource: API }),
      generateDpopKey(),
    );
  const world = (extra: RawDocument[]) => [
    ...harnessDocuments(w.h, [
      classDoc({
        name: 'verifier-events',
        audiences: [`${w.issuer}/v1/events`],
        scopes: ['events:read'],
        default_scopes: ['events:read'],
      }),
      classDoc({ name: 'verifier-world-api', audiences: [API], scopes: ['api:call'] }),
    ]),
    ...extra,
  ];

  it('applies of other changes (whole, incremental writ apply, incremental start-up) leave templated workloads and their tokens alone', async () => {
    // A templated workload lives in the store, not in any file: a diff of the files must never read it
    // as removed by config (which would delete it and revoke its tokens).
    const r = await federate(await saToken('payments', 'ledger'));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await federate(await saToken('billing', 'invoices'))).status, 200);
    const token = r.body['access_token'] as string;
    const seq = (await w.h.store.queryAudit({ afterSeq: 0, limit: 100_000 })).at(-1)?.seq ?? 0;
    const reports = (name: string) => classDoc({ name, audiences: [API], scopes: ['api:call'] });
    // The verifier's own workload as registered, so that the directory changes nothing but the class.
    const verifier = await w.h.store.getWorkload(VERIFIER_ID);
    assert.ok(verifier);
    const verifierDoc = rawDoc('workload', {
      id: VERIFIER_ID,
      owner: verifier.owner,
      environment: verifier.environment,
      classes: verifier.classes,
      jwks: { keys: verifier.jwks },
      serves: verifier.serves,
    });
    const docs = world([...fixed(), verifierDoc, podsTemplate(), reports('reports-1')]);

    // The whole directory in one body, with an unrelated class added.
    const whole = await w.h.admin('POST', '/config', { documents: docs });
    assert.equal(whole.status, 200, JSON.stringify(whole.body));
    assert.deepEqual(whole.body['changes'], [{ op: 'add', kind: 'class', name: 'reports-1' }]);

    // writ apply of a directory: first every file (the whole-body apply recorded none), then one file.
    const dir = join(w.h.dir, 'templated-config');
    writeConfigDocuments(dir, docs);
    const writ = operatorCli(w.h);
    const first = await writ(['apply', dir]);
    assert.equal(first.code, 0, first.stderr);
    writeFileSync(join(dir, 'classes', 'reports-2.json'), JSON.stringify(reports('reports-2').doc));
    const second = await writ(['apply', dir]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /\+ class reports-2/);
    assert.doesNotMatch(second.stdout, /workload/, 'no workload in the diff');

    // A restart reading the directory after another one-file change: only that file is read.
    writeFileSync(join(dir, 'classes', 'reports-3.json'), JSON.stringify(reports('reports-3').doc));
    const s = await readStartupConfig(dir, w.h.settings, w.h.store, 'test-build');
    await w.h.restart(s);
    const again = await readStartupConfig(dir, w.h.settings, w.h.store, 'test-build');
    assert.equal(again.files, 'unchanged', 'the restart recorded the files it applied');
    await w.h.restart(again);

    for (const id of [LEDGER, INVOICES]) {
      assert.equal((await w.h.store.getWorkload(id))?.template?.id, 'pods', `${id} is still admitted`);
      assert.ok(w.h.writ.ctx.registry.workload(id), `${id} is in the registry after the restart`);
    }
    assert.equal((await introspect(w.h, token))['active'], true, 'its token was not revoked');
    assert.deepEqual(await eventsSince(w.h, seq, 'workload.removed'), []);
    assert.ok(
      (await w.h.store.listClasses()).some((c) => c.name === 'reports-3'),
      'the change of the restart was applied',
    );
  });
});
