import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import { fakeClock } from '../src/clock.js';
import { EVIDENCE_TYP } from '../src/governance/evidence.js';
import type { GovernanceProof, ProofCheck, ProofFinding } from '../src/governance/runtime-proof.js';
import { sweepGovernance } from '../src/governance/sweeper.js';
import type { GovernVerifyAnswer } from '../src/governance/verify-route.js';
import { ingestUsageReport } from '../src/usage/ingest.js';
import { openAdminSession } from './helpers/admin-session.js';
import { type OperatorCli, operatorCli } from './helpers/cli.js';
import { classDoc, workloadDoc } from './helpers/dpop.js';
import {
  AUDIENCE,
  type Harness,
  harnessDocuments,
  LEGACY_SECRET,
  LEGACY_WORKLOAD,
  OTHER_AUDIENCE,
  startHarness,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';

const VERIFIER = 'spiffe://test.writ/reports/api';
const verifierKey = testKey();
const VERIFIER_DOCS = [
  classDoc({ name: 'verifier', audiences: ['https://verifier-only.test'], scopes: ['events:read'] }),
  workloadDoc(VERIFIER, verifierKey, ['verifier'], { serves: [AUDIENCE] }),
];
const DAY_S = 86_400;

/** `writ govern verify` through the admin API, as the CLI asks it (not streamed). */
async function prove(h: Harness, body: Record<string, unknown> = {}): Promise<GovernVerifyAnswer> {
  const r = await h.admin('POST', '/govern/verify', { since_seconds: 30 * DAY_S, ...body });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as unknown as GovernVerifyAnswer;
}

/** Issues a token for the harness workload; returns its jti and the seq of its `token.issued` event. */
async function issue(h: Harness, extra: Record<string, string> = {}): Promise<{ jti: string; seq: number }> {
  const r = await h.requestToken(extra);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const token = r.body['access_token'] as string;
  const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())['jti'] as string;
  const [e] = await h.store.queryAudit({ jti, type: 'token.issued', limit: 1 });
  return { jti, seq: e!.seq };
}

/** The verifier reports one use of `jti` at the server's now, through the real ingestion. */
async function use(
  h: Harness,
  jti: string,
  decision: 'allow' | 'deny' = 'allow',
  operation = 'GET /reports/1',
) {
  const { receipt } = await ingestUsageReport(
    h.writ.ctx,
    VERIFIER,
    {
      records: [
        {
          jti,
          operation,
          source: '10.0.0.7',
          decision,
          ...(decision === 'deny' ? { reason: 'revoked' } : {}),
          time: h.writ.ctx.clock.now(),
        },
      ],
    },
    '127.0.0.1',
  );
  assert.equal(receipt.accepted, 1, JSON.stringify(receipt));
}

const check = (p: GovernanceProof, id: ProofCheck) => p.checks.find((c) => c.id === id)!;
const findingsOf = (p: GovernanceProof, id: ProofCheck): ProofFinding[] =>
  p.findings.filter((f) => f.check === id);

/** The evidence pack must verify with jose against the JWKS the server publishes, and say what the report says. */
async function expectSignedEvidence(h: Harness, answer: GovernVerifyAnswer): Promise<void> {
  const res = await h.writ.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
  const jwks = JSON.parse(res.body) as JSONWebKeySet;
  const header = decodeProtectedHeader(answer.evidence.jws);
  assert.equal(header.kid, answer.evidence.kid);
  assert.ok(
    jwks.keys.some((k) => k.kid === header.kid),
    'the kid is one of the published keys',
  );
  const { payload, protectedHeader } = await jwtVerify(answer.evidence.jws, createLocalJWKSet(jwks), {
    typ: EVIDENCE_TYP,
    issuer: h.issuer,
  });
  assert.equal(protectedHeader.typ, EVIDENCE_TYP);
  const { iss: _i, iat: _t, ...signed } = payload;
  assert.deepEqual(signed, answer.report);
  // One changed character of the payload and it no longer verifies.
  const [hd, body, sig] = answer.evidence.jws.split('.');
  const claims = JSON.parse(Buffer.from(body!, 'base64url').toString()) as GovernanceProof;
  const forged = Buffer.from(
    JSON.stringify({ ...claims, result: 'held' === claims.result ? 'violated' : 'held' }),
  );
  await assert.rejects(
    jwtVerify(`${hd}.${forged.toString('base64url')}.${sig}`, createLocalJWKSet(jwks)),
    /signature verification failed/,
  );
}

describe('writ govern verify: a proof from the audit chain and the usage reports', () => {
  const clock = fakeClock();
  let h: Harness;
  before(async () => {
    h = await startHarness({ clock, settings: { 'detection.enabled': false }, extraDocs: VERIFIER_DOCS });
  });
  after(() => h.close());

  it('on a store where everything complied it says so, and the evidence pack verifies against the JWKS', async () => {
    const a = await issue(h, { ttl: '900' });
    const b = await issue(h);
    clock.advance(10_000);
    await use(h, a.jti);
    await use(h, b.jti);
    const revoked = await h.admin('POST', '/revocations', { kind: 'jti', value: b.jti, reason: 'test' });
    assert.equal(revoked.status, 201);
    clock.advance(2_000);
    // Within the propagation bound an accepted use is no violation; a denied one after it is how it should be.
    await use(h, b.jti, 'allow', 'GET /reports/2');
    clock.advance(60_000);
    await use(h, b.jti, 'deny');
    const answer = await prove(h);
    const p = answer.report;
    assert.equal(p.result, 'held', JSON.stringify(p.findings, null, 1));
    assert.deepEqual(p.findings, []);
    for (const c of p.checks) assert.equal(c.result, 'held', c.id);
    assert.equal(p.counts.tokens_issued, 2);
    assert.equal(p.counts.revocations, 1);
    assert.equal(p.counts.accepted_uses, 3);
    assert.equal(check(p, 'issuance').checked, 2);
    assert.equal(check(p, 'token_records').checked, 2);
    assert.equal(check(p, 'revocation').checked, 2, 'both accepted uses of the revoked token were weighed');
    assert.ok(check(p, 'audit_chain').checked >= 5);
    assert.equal(p.chain.breaks, 0);
    assert.equal(p.checkpoint.signed, true);
    const head = (await h.store.listCheckpoints()).at(-1)!;
    assert.deepEqual({ seq: p.checkpoint.seq, hash: p.checkpoint.hash }, { seq: head.seq, hash: head.hash });
    const reports = p.classes.find((c) => c.name === 'reports-read')!;
    assert.equal(reports.issued, 2);
    assert.equal(reports.rules?.max_ttl, 900);
    await expectSignedEvidence(h, answer);
    // Making the proof is audited, with its result and the checkpoint it covers.
    const [made] = await h.store.queryAudit({ type: 'governance.verified', limit: 1, order: 'desc' });
    assert.equal(made?.data['result'], 'held');
    assert.equal(made?.data['checkpoint_seq'], p.checkpoint.seq);
    assert.equal(made?.actor, 'operator:ops');
  });
});

describe('writ govern verify names each violation and the events that show it', () => {
  const clock = fakeClock();
  let h: Harness;
  before(async () => {
    h = await startHarness({ clock, settings: { 'detection.enabled': false }, extraDocs: VERIFIER_DOCS });
  });
  after(() => h.close());

  it('a token that outlived the class maximum in force at its issuance (the class changed mid-way)', async () => {
    // Issued under max_ttl 15m with 15m: it complied then, whatever the class says later.
    const before = await issue(h, { ttl: '900' });
    const shorter = (await h.store.listClasses()).find((c) => c.name === 'reports-read')!;
    const docs = harnessDocuments(h, VERIFIER_DOCS).map((d) =>
      d.kind === 'class' && (d.doc as { name: string }).name === 'reports-read'
        ? { ...d, doc: { ...(d.doc as object), max_ttl: '5m' } }
        : d,
    );
    const applied = await h.admin('POST', '/config', { documents: docs });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const [applyEvent] = await h.store.queryAudit({ type: 'config.applied', limit: 1, order: 'desc' });
    const recorded = applyEvent!.data['class_rules'] as Record<string, { max_ttl: number }>;
    assert.equal(recorded['reports-read']!.max_ttl, 300, 'the apply recorded the new rules in the chain');
    // Someone with write access to the store puts the old class back without an apply (no audit); the
    // node reloads it and issues 15-minute tokens the recorded rules forbid.
    await h.store.putClass({ ...shorter, maxTtl: 900 });
    await h.writ.ctx.registry.reload();
    const after = await issue(h, { ttl: '900' });
    const within = await issue(h, { ttl: '300' });

    const p = (await prove(h)).report;
    assert.equal(p.result, 'violated');
    const found = findingsOf(p, 'issuance');
    assert.equal(found.length, 1, JSON.stringify(found));
    assert.equal(found[0]!.jti, after.jti);
    assert.deepEqual(found[0]!.audit_seq, [after.seq]);
    assert.match(found[0]!.message, /lifetime 900s exceeds the class max_ttl 300s in force at issuance/);
    assert.ok(!p.findings.some((f) => f.jti === before.jti || f.jti === within.jti));
    assert.equal(p.classes.find((c) => c.name === 'reports-read')!.violations, 1);
    // Put right for the cases below.
    await h.store.putClass({ ...shorter, maxTtl: 300 });
    await h.writ.ctx.registry.reload();
  });

  it('a tampered token record (exp moved out by an hour) is named with its jti and issuance event', async () => {
    const t = await issue(h, { ttl: '300' });
    await h.attackerSql(`UPDATE tokens SET exp = exp + 3600 WHERE jti = '${t.jti}'`);
    const p = (await prove(h)).report;
    const found = findingsOf(p, 'token_records').filter((f) => f.jti === t.jti);
    assert.equal(found.length, 1);
    assert.deepEqual(found[0]!.audit_seq, [t.seq]);
    assert.match(found[0]!.message, /exp \d+ stored, \d+ audited/);
    await h.attackerSql(`UPDATE tokens SET exp = exp - 3600 WHERE jti = '${t.jti}'`);
    assert.equal(findingsOf((await prove(h)).report, 'token_records').length, 0, 'restored: no finding');
  });

  it('a revoked token accepted after the propagation bound is named with the revocation and the use', async () => {
    const t = await issue(h, { ttl: '300' });
    await use(h, t.jti);
    const r = await h.admin('POST', '/revocations', { kind: 'sub', value: WORKLOAD });
    assert.equal(r.status, 201);
    const [revocation] = await h.store.queryAudit({ type: 'revocation.created', limit: 1, order: 'desc' });
    clock.advance(10_000);
    await use(h, t.jti, 'allow', 'GET /reports/within-bound');
    let p = (await prove(h)).report;
    assert.deepEqual(findingsOf(p, 'revocation'), [], 'inside the 15 s bound: no violation');
    clock.advance(20_000);
    await use(h, t.jti, 'allow', 'GET /reports/late');
    p = (await prove(h)).report;
    const [found, ...more] = findingsOf(p, 'revocation');
    assert.deepEqual(more, []);
    assert.equal(found!.jti, t.jti);
    assert.deepEqual(found!.audit_seq, [t.seq, revocation!.seq]);
    assert.deepEqual(
      found!.usage?.map((u) => u.operation),
      ['GET /reports/late'],
      'only the use after the bound is named',
    );
    assert.match(
      found!.message,
      /revoked at .* \(revocation \d+, sub\) but accepted after the 15s propagation bound/,
    );
    // A wider bound (the verifiers' staleness set to a minute) accepts it.
    const wide = (await prove(h, { propagation_bound_seconds: 60 })).report;
    assert.deepEqual(findingsOf(wide, 'revocation'), []);
  });

  it('a token accepted after it expired is named', async () => {
    const t = await issue(h, { ttl: '60' });
    clock.advance(64_000);
    await use(h, t.jti, 'allow', 'GET /reports/in-leeway');
    assert.deepEqual(
      findingsOf((await prove(h)).report, 'expiry').filter((f) => f.jti === t.jti),
      [],
      'inside the 5 s leeway',
    );
    clock.advance(10_000);
    await use(h, t.jti, 'allow', 'GET /reports/expired');
    const found = findingsOf((await prove(h)).report, 'expiry').filter((f) => f.jti === t.jti);
    assert.equal(found.length, 1);
    assert.deepEqual(found[0]!.audit_seq, [t.seq]);
    assert.deepEqual(
      found[0]!.usage?.map((u) => u.operation),
      ['GET /reports/expired'],
    );
  });

  it('a deleted audit event is named (the missing sequence number), and the use of its token has no issuance', async () => {
    const t = await issue(h, { ttl: '300' });
    await use(h, t.jti);
    await issue(h);
    await h.attackerSql(`DELETE FROM audit_events WHERE seq = ${t.seq}`);
    const p = (await prove(h)).report;
    assert.equal(p.result, 'violated');
    const chain = findingsOf(p, 'audit_chain');
    assert.equal(chain.length, 1, JSON.stringify(chain));
    assert.deepEqual(chain[0]!.audit_seq, [t.seq, t.seq + 1]);
    assert.match(
      chain[0]!.message,
      new RegExp(`audit chain broken at event ${t.seq + 1}: event ${t.seq} missing`),
    );
    const orphan = findingsOf(p, 'usage_provenance');
    assert.equal(orphan.length, 1);
    assert.equal(orphan[0]!.jti, t.jti);
    assert.equal(check(p, 'audit_chain').result, 'violated');
  });
});

describe('writ govern verify on the command line', () => {
  let h: Harness;
  let writ: OperatorCli;
  before(async () => {
    h = await startHarness({
      listen: true,
      settings: { 'detection.enabled': false },
      extraDocs: VERIFIER_DOCS,
    });
    writ = operatorCli(h);
  });
  after(() => h.close());

  it('prints the summary an auditor reads, writes the evidence pack, and exits 0 when the rules held, 2 on a violation', async () => {
    const t = await issue(h);
    const evidence = join(h.dir, 'evidence.jws');
    const ok = await writ(['govern', 'verify', '--since', '30d', '--evidence', evidence]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^governance verification: HELD: every check passed$/m);
    assert.match(ok.stdout, /^period: \d{4}-.*Z to \d{4}-.*Z$/m);
    assert.match(
      ok.stdout,
      /^evidence: audit chain up to event \d+ \(hash [0-9a-f]{16}…, signed checkpoint\)/m,
    );
    assert.match(
      ok.stdout,
      /^ {2}HELD {6}every token issued kept the rules its class had at issuance.*\(1 checked, 0 violations\)$/m,
    );
    const jws = readFileSync(evidence, 'utf8').trim();
    const jwks = JSON.parse(
      (await h.writ.app.inject({ url: '/.well-known/jwks.json' })).body,
    ) as JSONWebKeySet;
    const { payload } = await jwtVerify(jws, createLocalJWKSet(jwks), { typ: EVIDENCE_TYP });
    assert.equal(payload['result'], 'held');

    await h.attackerSql(`UPDATE tokens SET scope = 'reports:read reports:export' WHERE jti = '${t.jti}'`);
    const bad = await writ(['govern', 'verify', '--since', '1d']);
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /^governance verification: VIOLATED/m);
    assert.match(
      bad.stdout,
      new RegExp(`\\[VIOLATION\\] token_records: the stored record of token ${t.jti} differs`),
    );
    assert.match(bad.stdout, new RegExp(`evidence: audit events ${t.seq}; jti ${t.jti}`));

    const refused = await writ(['govern', 'verify', '--since', 'a month']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /--since must be a duration such as 90s, 15m, 12h or 30d/);
  });
});

describe('writ govern verify: gaps, the streamed answer and refusals', () => {
  const clock = fakeClock();
  let h: Harness;
  before(async () => {
    h = await startHarness({ clock, settings: { 'detection.enabled': false }, extraDocs: VERIFIER_DOCS });
  });
  after(() => h.close());

  it('a class changed by an apply that did not record its rules leaves its tokens unproven, not held', async () => {
    // What an apply made before Writ recorded class rules looks like in the chain: the change, no rules.
    await h.writ.ctx.audit.append({
      type: 'config.applied',
      outcome: 'success',
      actor: 'operator:ops',
      data: { changes: [{ op: 'change', kind: 'class', name: 'reports-read', fields: ['maxTtl'] }] },
    });
    const t = await issue(h);
    const p = (await prove(h)).report;
    assert.equal(p.result, 'unproven');
    assert.equal(p.findings_total.violations, 0);
    const [gap, ...more] = p.findings;
    assert.deepEqual(more, []);
    assert.equal(gap!.kind, 'gap');
    assert.equal(gap!.jti, t.jti);
    assert.deepEqual(gap!.audit_seq, [t.seq]);
    assert.match(gap!.message, /rules of class reports-read .* are not in the audit log/);
    assert.equal(check(p, 'issuance').result, 'unproven');
  });

  it('streams progress lines and then the answer as JSON lines when asked for application/x-ndjson', async () => {
    const path = '/admin/v1/govern/verify';
    const res = await h.writ.app.inject({
      method: 'POST',
      url: path,
      headers: {
        ...(await h.adminHeaders('POST', path)),
        accept: 'application/x-ndjson',
        'content-type': 'application/json',
      },
      payload: JSON.stringify({ since_seconds: DAY_S }),
    });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/x-ndjson/);
    const lines = res.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const phases = new Set(
      lines.filter((l) => l['progress']).map((l) => (l['progress'] as { phase: string }).phase),
    );
    assert.deepEqual([...phases].sort(), ['chain', 'usage']);
    const last = lines.at(-1)!;
    assert.ok(last['result'], JSON.stringify(last));
    const answer = last['result'] as GovernVerifyAnswer;
    assert.equal(answer.report.period.until - answer.report.period.since, DAY_S * 1000);
    await expectSignedEvidence(h, answer);
  });

  it('refuses a malformed request (invalid_request, the field named) and a caller without an admin token', async () => {
    const made = async () => (await h.store.queryAudit({ type: 'governance.verified', limit: 1000 })).length;
    const before = await made();
    for (const [body, field] of [
      [{}, /since_seconds/],
      [{ since_seconds: -1 }, /since_seconds/],
      [{ since_seconds: 60, propagation_bound_seconds: 'soon' }, /propagation_bound_seconds/],
      [{ since_seconds: 60, reach: 'further' }, /reach|unrecognized/i],
    ] as const) {
      const r = await h.admin('POST', '/govern/verify', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body['error'], 'invalid_request');
      assert.match(String(r.body['error_description']), field);
    }
    const anonymous = await h.writ.app.inject({
      method: 'POST',
      url: '/admin/v1/govern/verify',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ since_seconds: 60 }),
    });
    assert.equal(anonymous.statusCode, 401);
    assert.equal(await made(), before, 'no proof was made');
  });
});

describe('writ govern verify: exceptions', () => {
  const clock = fakeClock();
  let h: Harness;
  before(async () => {
    h = await startHarness({ clock, settings: { 'detection.enabled': false }, extraDocs: VERIFIER_DOCS });
  });
  after(() => h.close());

  /** A token for the legacy workload on its client secret (the exception `legacy-cron-client-secret`). */
  const legacyToken = () =>
    h.post('/oauth2/token', {
      grant_type: 'client_credentials',
      client_id: LEGACY_WORKLOAD,
      client_secret: LEGACY_SECRET,
      resource: AUDIENCE,
      scope: 'reports:read',
    });
  const issuedSeq = async (r: Awaited<ReturnType<typeof legacyToken>>) => {
    const jti = JSON.parse(
      Buffer.from((r.body['access_token'] as string).split('.')[1]!, 'base64url').toString(),
    )['jti'] as string;
    const [e] = await h.store.queryAudit({ jti, type: 'token.issued', limit: 1 });
    return { jti, seq: e!.seq };
  };

  it('an exception that expired while still used is named with the issuance and the event that set its end', async () => {
    const early = await legacyToken();
    assert.equal(early.status, 200, JSON.stringify(early.body));
    const compliant = await issuedSeq(early);
    // The exception now ends tomorrow (2026-01-02, the end of that day).
    const docs = harnessDocuments(h, VERIFIER_DOCS).map((d) =>
      d.kind === 'exception' ? { ...d, doc: { ...(d.doc as object), expires: '2026-01-02' } } : d,
    );
    const applied = await h.admin('POST', '/config', { documents: docs });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const [apply] = await h.store.queryAudit({ type: 'config.applied', limit: 1, order: 'desc' });
    const terms = apply!.data['exception_terms'] as Record<string, { expires_at: number }>;
    assert.equal(terms['legacy-cron-client-secret']!.expires_at, Date.UTC(2026, 0, 2, 23, 59, 59, 999));

    clock.advance(3 * DAY_S * 1000);
    // Enforced: refused, and a refusal is no violation.
    assert.equal((await legacyToken()).status, 400);
    let p = (await prove(h)).report;
    assert.equal(p.result, 'held', JSON.stringify(p.findings));
    assert.equal(check(p, 'exceptions').checked, 1);

    // The exception's end moved out in the store, not by an apply: the node lets the secret through again.
    const record = (await h.store.getException('legacy-cron-client-secret'))!;
    const { runtime: _r, ...declared } = record;
    await h.store.putException({ ...declared, expiresAt: Date.UTC(2099, 0, 1) });
    await h.writ.ctx.registry.reload();
    const late = await legacyToken();
    assert.equal(late.status, 200, JSON.stringify(late.body));
    const used = await issuedSeq(late);

    p = (await prove(h)).report;
    assert.equal(p.result, 'violated');
    const [found, ...more] = findingsOf(p, 'exceptions');
    assert.deepEqual(more, []);
    assert.equal(found!.jti, used.jti);
    assert.deepEqual(found!.audit_seq, [used.seq, apply!.seq]);
    assert.match(
      found!.message,
      /issued under exception legacy-cron-client-secret at 2026-01-04T.*, after the exception expired at 2026-01-02T23:59:59.999Z/,
    );
    assert.ok(!p.findings.some((f) => f.jti === compliant.jti));
  });

  it('a token issued on a client secret with no exception audited is a violation', async () => {
    // What a node that skipped the exception would have written: the secret, no exception id.
    const e = await h.writ.ctx.audit.append({
      type: 'token.issued',
      outcome: 'success',
      actor: LEGACY_WORKLOAD,
      subject: LEGACY_WORKLOAD,
      jti: 'forged-secret-use',
      data: {
        auth_method: 'client_secret_basic',
        cls: 'legacy-cron',
        aud: AUDIENCE,
        scope: 'reports:read',
        iat: Math.floor(clock.now() / 1000),
        exp: Math.floor(clock.now() / 1000) + 60,
        kid: 'k',
        binding: 'bearer',
      },
    });
    const found = findingsOf((await prove(h)).report, 'exceptions').filter(
      (f) => f.jti === 'forged-secret-use',
    );
    assert.equal(found.length, 1);
    assert.deepEqual(found[0]!.audit_seq, [e.seq]);
    assert.match(
      found[0]!.message,
      /issued on a client secret \(client_secret_basic\) but no exception is audited with it/,
    );
  });
});

describe('writ govern verify: the newest events cut together with their checkpoints', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ settings: { 'detection.enabled': false }, extraDocs: VERIFIER_DOCS });
  });
  after(() => h.close());

  it('names the deleted tail, which a walk of what is left cannot see, and signs no checkpoint over it', async () => {
    for (let i = 0; i < 3; i++) await issue(h);
    // A session opened before the cut: a new one could not be (its audit event is refused on a cut log).
    const session = await h.adminSession();
    await h.writ.ctx.audit.checkpoint();
    const head = (await h.store.auditHead())!.seq;
    await h.attackerSql(
      `DELETE FROM audit_events WHERE seq > ${head - 2}; DELETE FROM audit_checkpoints WHERE seq > ${head - 2}`,
    );
    const path = '/admin/v1/govern/verify';
    const res = await h.writ.app.inject({
      method: 'POST',
      url: path,
      headers: { ...session.headers('POST', path), 'content-type': 'application/json' },
      payload: JSON.stringify({ since_seconds: DAY_S }),
    });
    assert.equal(res.statusCode, 200, res.body);
    const answer = JSON.parse(res.body) as GovernVerifyAnswer;
    const p = answer.report;
    assert.equal(p.result, 'violated');
    const [cut, ...more] = findingsOf(p, 'audit_chain');
    assert.deepEqual(more, []);
    assert.deepEqual(cut!.audit_seq, [head - 1, head]);
    assert.match(cut!.message, new RegExp(`event ${head - 1}\\.\\.${head} missing at the end of the log`));
    assert.equal(p.checkpoint.signed, false, 'no checkpoint is signed over a cut log');
    assert.equal(p.checkpoint.seq, head - 2);
    // Still signed, as evidence of what was found; not audited, since the log refuses appends.
    await expectSignedEvidence(h, answer);
    assert.deepEqual(await h.store.queryAudit({ type: 'governance.verified', limit: 1 }), []);
  });
});

describe('writ govern verify: break-glass', () => {
  const START = Date.UTC(2026, 0, 1, 9);
  const clock = fakeClock(START);
  const bobKey = testKey();
  let h: Harness;
  before(async () => {
    h = await startHarness({
      clock,
      settings: { 'detection.enabled': false },
      extraDocs: [
        ...VERIFIER_DOCS,
        {
          kind: 'operator',
          file: 'bob.yaml',
          index: 0,
          doc: { name: 'bob', jwks: { keys: [bobKey.publicJwk] } },
        },
      ],
    });
  });
  after(() => h.close());

  /** An admin call by operator bob (the harness's `admin` is operator ops). */
  async function asBob(method: 'POST', path: string, body?: unknown) {
    const bob = await openAdminSession({
      issuer: h.issuer,
      key: bobKey,
      operator: 'bob',
      nowSeconds: () => Math.floor(clock.now() / 1000),
      post: async (form, headers) => {
        const r = await h.post('/admin/v1/token', form, headers);
        const nonce = r.headers['dpop-nonce'];
        return { ...r, nonce: typeof nonce === 'string' ? nonce : undefined };
      },
    });
    const res = await h.writ.app.inject({
      method,
      url: `/admin/v1${path}`,
      headers: {
        ...bob.headers(method, `/admin/v1${path}`),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
  }
  const request = async (emergency: boolean, duration: number) => {
    const r = await h.admin('POST', '/breakglass', {
      workload: WORKLOAD,
      class: 'billing-write',
      reason: 'incident 42',
      duration,
      emergency,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body['id'] as string;
  };
  const elevated = async () => {
    const r = await h.requestToken({ resource: OTHER_AUDIENCE, scope: 'billing:write' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };
  const grantedSeq = async (id: string) =>
    (await h.auditEvents('breakglass.granted')).find((e) => e.data['breakglass'] === id)!.seq;
  const breakglassFindings = async () => findingsOf((await prove(h)).report, 'breakglass');

  it('approved by a second operator: open (unproven) until closed with a review, then held', async () => {
    const id = await request(false, 1800);
    assert.equal((await asBob('POST', `/breakglass/${id}/approve`)).status, 200);
    await elevated();
    const seq = await grantedSeq(id);
    let p = (await prove(h)).report;
    assert.equal(p.result, 'unproven', JSON.stringify(p.findings));
    const [open, ...more] = findingsOf(p, 'breakglass');
    assert.deepEqual(more, []);
    assert.equal(open!.kind, 'gap');
    assert.deepEqual(open!.audit_seq, [seq]);
    assert.match(open!.message, new RegExp(`break-glass ${id} \\(class billing-write\\) is open`));

    clock.set(START + 1800_000);
    await sweepGovernance(h.writ.ctx);
    const closed = await h.admin('POST', `/breakglass/${id}/close`, { review: 'job fixed' });
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    p = (await prove(h)).report;
    assert.equal(p.result, 'held', JSON.stringify(p.findings));
    assert.equal(check(p, 'breakglass').checked, 1);
    assert.equal(check(p, 'issuance').checked >= 1, true);
  });

  it('an emergency grant without its review past the 24 h deadline is a violation; reviewed late, still named', async () => {
    const id = await request(true, 600);
    await elevated();
    const seq = await grantedSeq(id);
    clock.advance(600_000);
    await sweepGovernance(h.writ.ctx);
    const [open] = await breakglassFindings();
    assert.equal(open!.kind, 'gap', 'inside its review window it is open, not yet violated');
    clock.advance(24 * 3_600_000);
    const [overdue, ...more] = await breakglassFindings();
    assert.deepEqual(more, []);
    assert.equal(overdue!.kind, 'violation');
    assert.match(
      overdue!.message,
      new RegExp(`break-glass ${id} \\(class billing-write, emergency\\) has no review: it was due at`),
    );
    assert.equal(overdue!.audit_seq[0], seq);
    assert.equal((await h.admin('POST', `/breakglass/${id}/close`, { review: 'late' })).status, 200);
    const [late, ...none] = await breakglassFindings();
    assert.deepEqual(none, []);
    assert.match(late!.message, /was reviewed at .*, after its review was due at/);
  });

  it('a grant approved by its own requester, and a token under a grant never made, are violations', async () => {
    const requested = await h.writ.ctx.audit.append({
      type: 'breakglass.requested',
      outcome: 'success',
      actor: 'operator:ops',
      subject: WORKLOAD,
      data: { breakglass: 'bg_forged', cls: 'billing-write', reason: 'x', duration: 60, emergency: false },
    });
    const granted = await h.writ.ctx.audit.append({
      type: 'breakglass.granted',
      outcome: 'success',
      actor: 'operator:ops',
      subject: WORKLOAD,
      data: {
        breakglass: 'bg_forged',
        cls: 'billing-write',
        requested_by: 'operator:ops',
        approved_by: 'operator:ops',
        emergency: false,
        tid: 'task_bg_forged',
        ends_at: clock.now() + 60_000,
        review_due: null,
      },
    });
    const now = Math.floor(clock.now() / 1000);
    const orphan = await h.writ.ctx.audit.append({
      type: 'token.issued',
      outcome: 'success',
      actor: WORKLOAD,
      subject: WORKLOAD,
      jti: 'under-no-grant',
      data: {
        auth_method: 'private_key_jwt',
        cls: 'billing-write',
        aud: OTHER_AUDIENCE,
        scope: 'billing:write',
        iat: now,
        exp: now + 60,
        kid: 'k',
        binding: 'bearer',
        breakglass: 'bg_never',
      },
    });
    const found = await breakglassFindings();
    const twoPerson = found.find((f) => /two-person rule/.test(f.message));
    assert.deepEqual(twoPerson?.audit_seq, [requested.seq, granted.seq]);
    assert.match(twoPerson!.message, /approved by operator:ops, who requested it/);
    const never = found.find((f) => f.jti === 'under-no-grant');
    assert.deepEqual(never?.audit_seq, [orphan.seq]);
    assert.match(never!.message, /break-glass bg_never, which the audit log never granted/);
  });
});

describe('writ govern verify: renewal lifetime of a task', () => {
  const clock = fakeClock();
  let h: Harness;
  before(async () => {
    h = await startHarness({ clock, settings: { 'detection.enabled': false }, extraDocs: VERIFIER_DOCS });
  });
  after(() => h.close());

  it('a token of a task that ends more than renewal_max_lifetime after the task opened is named', async () => {
    // The recorded rules say 1 h (the default); the store is edited to 4 h without an apply.
    const cls = (await h.store.listClasses()).find((c) => c.name === 'reports-read')!;
    assert.equal(cls.renewalMaxLifetime, 3600);
    await h.store.putClass({ ...cls, renewalMaxLifetime: 4 * 3600 });
    await h.writ.ctx.registry.reload();
    const task = await h.admin('POST', '/tasks', {
      workload: WORKLOAD,
      purpose: 'long job',
      duration: 4 * 3600,
    });
    assert.equal(task.status, 201, JSON.stringify(task.body));
    const taskId = task.body['id'] as string;
    const first = await issue(h, { ttl: '900', task_id: taskId });
    clock.advance(3500_000);
    const late = await issue(h, { ttl: '900', task_id: taskId });
    const found = findingsOf((await prove(h)).report, 'issuance');
    assert.equal(found.length, 1, JSON.stringify(found));
    assert.equal(found[0]!.jti, late.jti);
    assert.deepEqual(found[0]!.audit_seq, [late.seq]);
    assert.match(
      found[0]!.message,
      new RegExp(`more than the class renewal_max_lifetime 3600s after its task ${taskId} opened at`),
    );
    assert.notEqual(found[0]!.jti, first.jti);
  });
});
