import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fakeClock } from '../src/clock.js';
import {
  hasOpenssl,
  makeCa,
  makeLeaf,
  makeLocalhostServer,
  type TestCertificate,
  x5tS256,
} from './helpers/certificates.js';
import { classDoc, decodeClaims, introspect, rawDoc } from './helpers/dpop.js';
import { freePort, type Harness, harnessDocuments, type Reply, startHarness } from './helpers/harness.js';
import { type HttpsReply, httpsJson } from './helpers/https.js';
import { eventsSince, expectRefusal } from './helpers/refusals.js';

const API = 'https://api.jobs.test';
const EXPORTER = 'spiffe://test.writ/jobs/reports/exporter';
const ARCHIVER = 'spiffe://test.writ/jobs/reports/archiver';
const FORBIDDEN = 'spiffe://test.writ/jobs/forbidden/runner';
const ORPHAN = 'spiffe://test.writ/jobs/orphans/runner';
const OUTSIDE = 'spiffe://test.writ/batch/nightly';

/** Every SVID under spiffe://test.writ/jobs/ chaining to the bundle of test.writ. */
const jobsTemplate = (extra: Record<string, unknown> = {}) =>
  rawDoc('template', {
    id: 'jobs',
    owner: 'team-platform',
    environment: 'prod',
    bundle: 'test.writ',
    match: { prefixes: ['spiffe://test.writ/jobs/'] },
    // The job's team is the second path segment; `forbidden` jobs get nothing.
    condition: 'claims.segments[1] != "forbidden"',
    classes: ['api-mtls'],
    // `orphans` has no owner in the table: its jobs cannot be admitted.
    tables: { owners: { reports: 'team-reports', forbidden: 'team-x' } },
    derive: {
      owner: 'tables.owners[claims.segments[1]]',
      environment: '"prod"',
      attributes: { team: 'claims.segments[1]' },
    },
    ...extra,
  });

describe('workload templates: X.509-SVIDs under a path prefix chaining to a bundle, admitted on first use', {
  skip: hasOpenssl() ? false : 'the openssl CLI is not installed',
}, () => {
  const clock = fakeClock(Date.now());
  let dir: string;
  let h: Harness;
  let port: number;
  const c = {} as Record<
    'serverCa' | 'server' | 'spiffeCa' | 'evilCa' | 'exporter' | 'archiver' | 'forbidden' | 'orphan',
    TestCertificate
  > &
    Record<'outside' | 'evilExporter', TestCertificate>;
  const classes = () => [
    classDoc({
      name: 'api-mtls',
      audiences: [API],
      scopes: ['api:read'],
      default_scopes: ['api:read'],
      binding: 'mtls',
    }),
  ];

  /** A client-credentials request over real HTTPS presenting `cert` as the TLS client certificate. */
  const send = (clientId: string, cert: TestCertificate): Promise<HttpsReply> => {
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      resource: API,
    }).toString();
    return httpsJson(
      {
        host: '127.0.0.1',
        port,
        path: '/oauth2/token',
        method: 'POST',
        ca: c.serverCa.pem,
        cert: cert.pem,
        key: cert.key,
        agent: false,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': String(Buffer.byteLength(body)),
        },
      },
      body,
    );
  };

  /** `send` in the shape the refusal helper reads (it looks at status and body only). */
  const sent = (clientId: string, cert: TestCertificate) => async (): Promise<Reply> => ({
    ...(await send(clientId, cert)),
    headers: {},
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-template-mtls-'));
    c.serverCa = makeCa(dir, 'server-ca');
    c.server = makeLocalhostServer(dir, 'server', c.serverCa);
    c.spiffeCa = makeCa(dir, 'spiffe-ca', '/O=SPIFFE/CN=test.writ');
    c.evilCa = makeCa(dir, 'evil-ca', '/O=SPIFFE/CN=test.writ');
    const svid = (name: string, id: string, ca = c.spiffeCa) =>
      makeLeaf(dir, name, ca, { subject: '/O=SPIFFE', san: `URI:${id}` });
    c.exporter = svid('exporter', EXPORTER);
    c.archiver = svid('archiver', ARCHIVER);
    c.forbidden = svid('forbidden', FORBIDDEN);
    c.orphan = svid('orphan', ORPHAN);
    c.outside = svid('outside', OUTSIDE);
    c.evilExporter = svid('evil-exporter', ARCHIVER, c.evilCa);
    clock.set(Date.now() + 60_000);
    port = await freePort();
    h = await startHarness({
      clock,
      listen: true,
      settings: {
        'listen.port': port,
        'tls.cert_file': c.server.certFile,
        'tls.key_file': c.server.keyFile,
        'tls.spiffe_bundles': [`test.writ=${c.spiffeCa.certFile}`],
      },
      extraDocs: [...classes(), jobsTemplate()],
    });
  });
  after(async () => {
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('admits a new SVID with no registration step, audited with the bundle, SPIFFE ID and fingerprint', async () => {
    assert.equal(h.writ.ctx.registry.workload(EXPORTER), undefined, 'not registered before');
    const r = await send(EXPORTER, c.exporter);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const token = r.body['access_token'] as string;
    const claims = decodeClaims(token);
    assert.equal(claims['sub'], EXPORTER);
    assert.deepEqual(claims['cnf'], { 'x5t#S256': x5tS256(c.exporter.pem) }, 'bound to the SVID');
    assert.equal((await introspect(h, token))['active'], true);

    const stored = await h.store.getWorkload(EXPORTER);
    assert.equal(stored?.owner, 'team-reports');
    assert.equal(stored?.environment, 'prod');
    assert.deepEqual(stored?.classes, ['api-mtls']);
    assert.deepEqual(stored?.attributes, { team: 'reports' });
    assert.equal(stored?.template?.id, 'jobs');
    assert.equal(stored?.template?.bundle, 'test.writ');
    assert.equal(stored?.template?.fingerprint, x5tS256(c.exporter.pem));

    const e = (await h.auditEvents('workload.admitted')).find((x) => x.subject === EXPORTER);
    assert.ok(e, 'workload.admitted audited');
    assert.equal(e.data['template'], 'jobs');
    assert.equal(e.data['bundle'], 'test.writ');
    assert.equal(e.data['spiffe_id'], EXPORTER);
    assert.equal(e.data['certificate'], x5tS256(c.exporter.pem));
    assert.equal(e.data['owner'], 'team-reports');
    assert.deepEqual((e.data['claims'] as Record<string, unknown>)['segments'], [
      'jobs',
      'reports',
      'exporter',
    ]);
    assert.equal(JSON.stringify(e).includes(c.exporter.key), false, 'no private key in the audit');

    // A second use is a registered workload's: no second admission.
    const again = await send(EXPORTER, c.exporter);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal((await h.auditEvents('workload.admitted')).filter((x) => x.subject === EXPORTER).length, 1);
  });

  it('refuses an SVID that does not chain to the bundle: nothing admitted', async () => {
    const { event } = await expectRefusal(h, sent(ARCHIVER, c.evilExporter), {
      status: 401,
      error: 'invalid_client',
      reason: 'certificate_untrusted',
    });
    assert.equal(event.data['certificate'], x5tS256(c.evilExporter.pem));
    assert.equal(await h.store.getWorkload(ARCHIVER), undefined);
    assert.equal(h.writ.ctx.registry.workload(ARCHIVER), undefined);
  });

  it('refuses an SVID presented for another id of the template: nothing admitted', async () => {
    await expectRefusal(h, sent(ARCHIVER, c.exporter), {
      status: 401,
      error: 'invalid_client',
      reason: 'certificate_identity_mismatch',
    });
    assert.equal(await h.store.getWorkload(ARCHIVER), undefined);
  });

  it('refuses a path the template does not cover: unknown_workload, audited', async () => {
    const { event } = await expectRefusal(h, sent(OUTSIDE, c.outside), {
      status: 401,
      error: 'invalid_client',
      reason: 'unknown_workload',
      description: /no workload template of bundle test\.writ covers it/,
    });
    assert.equal(event.data['workload'], OUTSIDE);
    assert.equal(await h.store.getWorkload(OUTSIDE), undefined);
  });

  it('refuses an SVID whose claims fail the condition: condition_false, naming the template', async () => {
    const { event } = await expectRefusal(h, sent(FORBIDDEN, c.forbidden), {
      status: 401,
      error: 'invalid_client',
      reason: 'condition_false',
      description: /condition of template jobs \(templates\/jobs: condition\)/,
    });
    assert.equal(event.data['template'], 'jobs');
    assert.equal(await h.store.getWorkload(FORBIDDEN), undefined);
  });

  it('refuses when a derivation fails: never a workload without an owner', async () => {
    const { event } = await expectRefusal(h, sent(ORPHAN, c.orphan), {
      status: 401,
      error: 'invalid_client',
      reason: 'template_derivation',
      description: /templates\/jobs: derive\.owner yields no owner/,
    });
    assert.equal(event.data['field'], 'derive.owner');
    assert.equal(await h.store.getWorkload(ORPHAN), undefined);
  });

  it('refuses at apply a bundle template with a prefix outside its trust domain, or with an issuer too', async () => {
    const outside = await h.admin('POST', '/config', {
      documents: harnessDocuments(h, [
        ...classes(),
        jobsTemplate({ match: { prefixes: ['spiffe://other.example/jobs/'] } }),
      ]),
    });
    assert.equal(outside.status, 400, JSON.stringify(outside.body));
    assert.match(String(outside.body['error_description']), /outside trust domain test\.writ/);
    const both = await h.admin('POST', '/config', {
      documents: harnessDocuments(h, [...classes(), jobsTemplate({ federation: 'cluster' })]),
    });
    assert.equal(both.status, 400, JSON.stringify(both.body));
    assert.match(String(both.body['error_description']), /exactly one of federation .* and bundle/);
  });

  it('a changed condition removes the workloads it no longer admits and revokes their tokens', async () => {
    const r = await send(EXPORTER, c.exporter);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const token = r.body['access_token'] as string;
    const seq = (await h.store.queryAudit({ afterSeq: 0, limit: 100_000 })).at(-1)?.seq ?? 0;
    const applied = await h.admin('POST', '/config', {
      documents: harnessDocuments(h, [
        ...classes(),
        jobsTemplate({ condition: 'claims.segments[1] == "ops"' }),
      ]),
    });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    assert.equal(await h.store.getWorkload(EXPORTER), undefined, 'removed');
    const removed = await eventsSince(h, seq, 'workload.removed');
    assert.deepEqual(
      removed.map((e) => e.subject),
      [EXPORTER],
    );
    assert.match(String(removed[0]!.data['reason']), /no longer admits it \(condition\)/);
    assert.equal((await introspect(h, token))['active'], false, 'its token is revoked');
    // And its SVID is not admitted again while the condition says no.
    const again = await send(EXPORTER, c.exporter);
    assert.equal(again.status, 401, JSON.stringify(again.body));
    assert.equal(await h.store.getWorkload(EXPORTER), undefined);
  });
});
