import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fakeClock } from '../src/clock.js';
import type { RawDocument } from '../src/config/config-dir.js';
import type { GovernanceProof } from '../src/governance/runtime-proof.js';
import { AUDIENCE, type Harness, harnessDocuments, startHarness } from './helpers/harness.js';
import { expectRefusal } from './helpers/refusals.js';

// Two exceptions cover one class for two different things: its client secret (legacy_client_secret,
// until March) and its bearer tokens (bearer_class, until January). Once January is over the class
// may no longer issue bearer tokens, whatever lets the client authenticate: the secret's exception
// holding must not stand in for the bearer exception that ended.

const CRON = 'spiffe://test.writ/vendor/cron';
const SECRET = 'vendor-secret-0123456789abcdef';
const START = Date.UTC(2026, 0, 1);
const JANUARY_END = Date.parse('2026-01-31T23:59:59.999Z');

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const doc = (kind: RawDocument['kind'], d: unknown, i = 0): RawDocument => ({
  kind,
  file: `x-${kind}-${i}.yaml`,
  index: 0,
  doc: d,
});

describe('a client secret under its exception does not carry a bearer class past its own exception', () => {
  const clock = fakeClock(START);
  let h: Harness;
  const token = () =>
    h.post(
      '/oauth2/token',
      { grant_type: 'client_credentials', resource: AUDIENCE },
      { authorization: basic(CRON, SECRET) },
    );
  let extra: RawDocument[] = [];
  before(async () => {
    extra = [
      doc('class', {
        name: 'vendor-cron',
        binding: 'bearer',
        max_ttl: '5m',
        audiences: [AUDIENCE],
        scopes: ['reports:read'],
        default_scopes: ['reports:read'],
      }),
      doc('exception', {
        id: 'cron-secret',
        covers: { kind: 'legacy_client_secret', class: 'vendor-cron', workloads: [CRON] },
        owner: 'team-vendor',
        justification: 'the vendor cron cannot sign JWTs',
        expires: '2026-03-31',
      }),
      doc(
        'exception',
        {
          id: 'cron-bearer',
          covers: { kind: 'bearer_class', class: 'vendor-cron' },
          owner: 'team-vendor',
          justification: 'the vendor API cannot do DPoP yet',
          expires: '2026-01-31',
        },
        1,
      ),
      doc('workload', {
        id: CRON,
        owner: 'team-vendor',
        environment: 'prod',
        classes: ['vendor-cron'],
        client_secret_sha256: createHash('sha256').update(SECRET).digest('hex'),
      }),
    ];
    h = await startHarness({ clock, extraDocs: extra });
    // Applied once through the admin API, so the audit log records the exceptions' terms.
    const applied = await h.admin('POST', '/config', { documents: harnessDocuments(h, extra) });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
  });
  after(() => h.close());

  it('in January both hold: a token, audited with both exceptions', async () => {
    const r = await token();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [issued] = (await h.auditEvents('token.issued')).slice(-1);
    assert.equal(issued?.data['exception'], 'cron-secret');
    assert.equal(issued?.data['bearer_exception'], 'cron-bearer');
  });

  it('in February the bearer exception has ended: refused, naming it, though the secret’s still holds', async () => {
    clock.set(JANUARY_END + 1);
    await expectRefusal(h, token, {
      status: 400,
      error: 'unauthorized_client',
      reason: 'exception_expired',
      description: /class vendor-cron issues bearer tokens under exception "cron-bearer".*which expired/,
    });
  });

  it('govern verify: a token audited with a bearer exception past its end is a violation naming it', async () => {
    const [january] = await h.auditEvents('token.issued');
    assert.ok(january);
    // What an issuance that slipped through in February would have left in the log.
    const forged = await h.writ.ctx.audit.append({
      type: 'token.issued',
      outcome: 'success',
      actor: CRON,
      subject: CRON,
      jti: 'february-bearer',
      data: {
        ...january.data,
        iat: Math.floor(clock.now() / 1000),
        exp: Math.floor(clock.now() / 1000) + 60,
      },
    });
    const r = await h.admin('POST', '/govern/verify', { since_seconds: 60 * 86_400 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const p = r.body['report'] as unknown as GovernanceProof;
    const found = p.findings.filter((f) => f.jti === 'february-bearer');
    assert.equal(found.length, 1, JSON.stringify(p.findings));
    assert.equal(found[0]!.kind, 'violation');
    assert.equal(found[0]!.audit_seq[0], forged.seq);
    assert.match(
      found[0]!.message,
      /issued under exception cron-bearer at 2026-02-.*after the exception expired at 2026-01-31/,
    );
  });
});
