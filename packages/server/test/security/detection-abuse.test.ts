import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fakeClock } from '../../src/clock.js';
import { adminAudience } from '../../src/context.js';
import { hasControlCharacters } from '../../src/control-characters.js';
import { ruleSet } from '../../src/detection/create-detector.js';
import type { Finding } from '../../src/detection/finding.js';
import { compileRule } from '../../src/detection/rule.js';
import { automaticRevocations, counterValue, findings, riskOf, usageSignal } from '../helpers/detection.js';
import { decodeClaims } from '../helpers/dpop.js';
import { type Harness, startHarness, WORKLOAD } from '../helpers/harness.js';

// Detection turned against the system it guards: a flood of triggering events to make it revoke
// everything, a detection aimed at operator access, refusals that name a workload to raise its risk,
// and a workload token reaching for the switch that pauses responses.

describe('detection cannot be turned against Writ itself', () => {
  const clock = fakeClock(Date.UTC(2026, 11, 7, 10, 0, 5));
  let h: Harness;
  before(async () => {
    h = await startHarness({
      clock,
      settings: {
        'detection.rule_responses_per_minute': 20,
        'detection.responses_per_minute': 30,
        // Every refusal here comes from one address: keep the per-address budget out of the way.
        'limits.source_rate': 1_000_000,
        'limits.source_burst': 1_000_000,
      },
    });
  });
  after(() => h.close());

  const observe = (signals: ReturnType<typeof usageSignal>[]) => {
    for (const s of signals) h.writ.ctx.detection.observe(s);
    return h.writ.ctx.detection.settled();
  };
  const outcomes = (list: Finding[]) => [...new Set(list.map((f) => f.outcome))];

  it('admin access is never revoked: a detection on an admin token or an operator subject is protected', async () => {
    const session = await h.adminSession();
    const admin = decodeClaims(session.token);
    assert.equal(admin['aud'], adminAudience(h.issuer));
    const detector = h.writ.ctx.detection;
    const builtIn = detector.rules();
    // The responses that act, each in a rule of its own that fires on anything.
    const acting = (['revoke_token', 'revoke_task', 'quarantine', 'reattest'] as const).map((response) =>
      compileRule(
        {
          id: `test-${response.replace('_', '-')}`,
          signal: 'usage',
          condition: 'true',
          severity: 'critical',
          response,
          mode: 'enforce',
          cooldown: '1s',
        },
        'test',
      ),
    );
    detector.setRules(ruleSet(acting));
    try {
      await observe([
        // The admin token itself, as a verifier of the admin audience would report it.
        usageSignal(h, {
          sub: admin['sub'] as string,
          jti: admin['jti'] as string,
          tid: 'task-of-operator',
          aud: admin['aud'] as string,
        }),
        // Any token of an operator subject.
        usageSignal(h, { sub: 'operator:oncall', jti: 'operator-token', aud: 'https://reports.test.writ' }),
        // Any token for the admin audience, whoever it names.
        usageSignal(h, {
          sub: 'spiffe://test.writ/ops/console',
          jti: 'admin-audience-token',
          aud: adminAudience(h.issuer),
        }),
      ]);
    } finally {
      detector.setRules(builtIn);
    }
    const found = (await findings(h)).filter((f) => f.rule.startsWith('test-'));
    assert.equal(found.length, 4 * 3, 'every rule fired on every signal, and every finding is recorded');
    assert.deepEqual(outcomes(found), ['protected']);
    assert.deepEqual(await automaticRevocations(h), [], 'nothing revoked');
    assert.deepEqual(await h.auditEvents('workload.quarantined'), []);
    for (const sub of [admin['sub'] as string, 'operator:oncall', 'spiffe://test.writ/ops/console'])
      assert.equal(h.writ.ctx.detection.riskOf(sub), 0, `no risk raised for ${sub}`);
    // The session still works, and so does the workload.
    const res = await h.writ.app.inject({
      method: 'GET',
      url: '/admin/v1/detections',
      headers: session.headers('GET', '/admin/v1/detections'),
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(h.writ.ctx.registry.workload(WORKLOAD)?.state, 'active');
    assert.equal(
      await counterValue(h, 'writ_detections_total', { rule: 'test-reattest', outcome: 'protected' }),
      3,
    );
  });

  it('refusals that name a workload only alert: its risk stays, nothing of it is revoked', async () => {
    const before = (await automaticRevocations(h)).length;
    // Someone without the workload's key tries assertions in its name (signed by another key).
    for (let i = 0; i < 25; i++) {
      const r = await h.requestToken({}, { key: h.otherKey });
      assert.equal(r.body['error'], 'invalid_client', JSON.stringify(r.body));
    }
    await h.writ.ctx.detection.settled();
    const [burst, ...more] = await findings(h, { rule: 'invalid-client-burst' });
    assert.equal(more.length, 0, 'once, then quiet for the cooldown');
    assert.equal(burst?.workload, '', 'the finding names no workload: the client id was only claimed');
    assert.equal(burst?.outcome, 'alert');
    assert.equal(burst?.risk, 0);
    const raised = (await h.auditEvents('detection.raised')).find((e) => e.data['finding'] === burst?.id);
    assert.equal(raised?.subject, undefined);
    assert.equal(raised?.data['claimed_client_id'], WORKLOAD);
    assert.equal(await riskOf(h, WORKLOAD), 0);
    assert.equal((await automaticRevocations(h)).length, before);
    assert.equal((await h.requestToken()).status, 200, 'the workload itself is not held back');
  });

  it('a client id only claimed is stored bounded and escaped in the finding, as the audit log has it', async () => {
    // Terminal escapes, a bidirectional override and a line break, then more than any id keeps, with an
    // emoji where the bound falls once the rest is escaped: the cut may not split it.
    const hostile = `spiffe://test.writ/\u001b[2J\u202e\nfake-line${'x'.repeat(209)}\u{1F600}${'y'.repeat(100)}`;
    for (let i = 0; i < 20; i++) {
      const r = await h.requestToken({ client_id: hostile }, { key: h.otherKey });
      assert.equal(r.body['error'], 'invalid_client', JSON.stringify(r.body));
    }
    await h.writ.ctx.detection.settled();
    const burst = (await findings(h, { rule: 'invalid-client-burst' })).find((f) => {
      const s = f.evidence.signals.at(-1);
      return s?.kind === 'token.refused' && s.data.client_id.includes('fake-line');
    });
    assert.ok(burst, 'the burst of refusals for the hostile id is a finding');
    const trigger = burst.evidence.signals.at(-1)!;
    assert.equal(trigger.kind, 'token.refused');
    const claimed = trigger.data.client_id;
    assert.ok(!hasControlCharacters(claimed), `no control character stored: ${JSON.stringify(claimed)}`);
    assert.ok(claimed.length <= 256, `bounded: ${claimed.length}`);
    assert.ok(!/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(claimed), 'no surrogate pair split by the bound');
    const raised = (await h.auditEvents('detection.raised')).find((e) => e.data['finding'] === burst.id);
    assert.equal(raised?.data['claimed_client_id'], claimed, 'the finding and its audit event agree');
  });

  it('an operator’s note or reason holding control characters is refused: nothing changed, nothing audited', async () => {
    const [finding] = await findings(h);
    assert.ok(finding);
    const updates = (await h.auditEvents('detection.finding_updated')).length;
    for (const text of ['fixed\n2026-12-07 ok operator:root cleared', 'ok\u001b[2K', 'ok\u202egnp.exe'])
      for (const [path, body] of [
        [`/detections/findings/${finding.id}`, { state: 'resolved', note: text }],
        ['/detections/pause', { reason: text }],
        ['/detections/resume', { reason: text }],
      ] as const) {
        const r = await h.admin('POST', path, body);
        assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body['error'], 'invalid_request');
        assert.match(String(r.body['error_description']), /control characters/);
      }
    // Longer than a note keeps: refused too, not cut.
    const long = await h.admin('POST', `/detections/findings/${finding.id}`, {
      state: 'resolved',
      note: 'x'.repeat(501),
    });
    assert.equal(long.status, 400, JSON.stringify(long.body));
    assert.equal((await h.store.getFinding(finding.id))?.state, finding.state);
    assert.equal((await h.auditEvents('detection.finding_updated')).length, updates);
    assert.deepEqual(await h.auditEvents('detection.paused'), []);
    assert.deepEqual(await h.auditEvents('detection.resumed'), []);
  });

  it('a flood across rules: each budget alerts once a minute, and no more responses than the budget of all', async () => {
    clock.set(Date.UTC(2026, 11, 7, 10, 2, 0));
    const before = (await automaticRevocations(h)).length;
    const flood = (rule: 'key_missing' | 'dpop_replay', n: number) =>
      Array.from({ length: n }, (_, i) =>
        usageSignal(h, {
          sub: `spiffe://test.writ/flood/${rule}/${i}`,
          jti: `${rule}-${i}`,
          signal: rule,
          reason: rule === 'key_missing' ? 'dpop_bound_as_bearer' : 'dpop_replay',
        }),
      );
    await observe(flood('key_missing', 200));
    assert.equal((await automaticRevocations(h)).length - before, 20, 'the rule’s budget');
    await observe(flood('dpop_replay', 200));
    const acted = (await automaticRevocations(h)).length - before;
    assert.equal(acted, 30, 'the budget of all rules: 20 of the first rule, 10 of the second');
    const alerts = (await h.auditEvents('detection.budget_exhausted')).map((e) => [
      e.data['scope'],
      e.data['severity'],
    ]);
    assert.deepEqual(alerts, [
      ['bound-token-without-key', 'critical'],
      ['all rules', 'critical'],
    ]);
    assert.deepEqual(outcomes(await findings(h, { rule: 'dpop-proof-replay' })).sort(), [
      'budget',
      'revoke_token',
    ]);

    // The next minute has its budgets again.
    clock.advance(60_000);
    await observe(
      flood('key_missing', 200).map((s) => ({ ...s, data: { ...s.data, jti: `${s.data.jti}-b` } })),
    );
    assert.equal((await automaticRevocations(h)).length - before, 50);
    assert.equal((await h.auditEvents('detection.budget_exhausted')).length, 3);
  });

  it('a workload token cannot read findings, change them, or pause responses', async () => {
    const token = (await h.requestToken()).body['access_token'] as string;
    const [finding] = await findings(h);
    assert.ok(finding);
    const refusalsBefore = (await h.auditEvents('admin.refused')).length;
    for (const [method, url, body] of [
      ['GET', '/admin/v1/detections', undefined],
      ['GET', '/admin/v1/detections/findings', undefined],
      ['GET', `/admin/v1/detections/findings/${finding.id}`, undefined],
      ['POST', `/admin/v1/detections/findings/${finding.id}`, { state: 'false_positive', note: 'mine' }],
      ['POST', '/admin/v1/detections/pause', { reason: 'cover my tracks' }],
      ['POST', '/admin/v1/detections/resume', {}],
    ] as const) {
      for (const authorization of [`Bearer ${token}`, `DPoP ${token}`]) {
        const res = await h.writ.app.inject({
          method,
          url,
          headers: {
            authorization,
            ...(body ? { 'content-type': 'application/json' } : {}),
          },
          ...(body ? { payload: JSON.stringify(body) } : {}),
        });
        assert.equal(
          res.statusCode,
          401,
          `${method} ${url} with ${authorization.split(' ')[0]}: ${res.body}`,
        );
        assert.equal((JSON.parse(res.body) as { error: string }).error, 'invalid_token');
      }
    }
    assert.equal((await h.store.getFinding(finding.id))?.state, finding.state);
    assert.equal(h.writ.ctx.detection.control()?.paused ?? false, false);
    assert.deepEqual(await h.auditEvents('detection.paused'), []);
    assert.deepEqual(await h.auditEvents('detection.finding_updated'), []);
    assert.ok((await h.auditEvents('admin.refused')).length > refusalsBefore, 'the attempts are audited');
  });
});
