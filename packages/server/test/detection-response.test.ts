import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateDpopKey } from '@writ/sdk/dpop';
import { GrantType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import type { Finding } from '../src/detection/finding.js';
import { type OperatorCli, operatorCli } from './helpers/cli.js';
import {
  automaticRevocations,
  counterValue,
  type DetectionWorld,
  findings,
  riskOf,
  startDetectionWorld,
  usageSignal,
} from './helpers/detection.js';
import {
  classDoc,
  clientAuth,
  decodeClaims,
  dpopTokenRequest,
  introspect,
  workloadDoc,
} from './helpers/dpop.js';
import { AUDIENCE, type Harness, startHarness, testKey, WORKLOAD } from './helpers/harness.js';
import { applyPolicies } from './helpers/policy.js';
import { expectRefusal } from './helpers/refusals.js';
import { eventually, outcome, presenting, workloadClient } from './helpers/verifier.js';

// Issue 13's acceptance, end to end: real verifiers built with the SDK report every use over HTTP, the
// server's detection rules find the misuse, and the response reaches every verifier through the stream.

/** The workload's usual network, and a network it never used. */
const HOLDER_IP = '10.1.2.3';
const THIEF_IP = '198.51.100.23';
const URL_OF_REPORT = `${AUDIENCE}/reports/7`;

/** One use of `token` at a replica as the API's middleware hands it over: route, caller and agent. */
function use(token: string, source: string, holder?: Parameters<typeof presenting>[1]['holder']) {
  return {
    ...presenting(token, { url: URL_OF_REPORT, ...(holder ? { holder } : {}) }),
    operation: 'GET /reports/:id',
    source,
    userAgent: 'report-exporter/2.1',
  };
}

async function flushAll(w: DetectionWorld): Promise<void> {
  await Promise.all(w.replicas.map((r) => r.usage.flush()));
  await w.h.writ.ctx.detection.settled();
}

describe('a stolen bearer token: revoked, risk raised, refused by every verifier', () => {
  let w: DetectionWorld;
  before(async () => {
    w = await startDetectionWorld({ replicas: 4 });
  });
  after(() => w.close());

  it('the holder keeps using it from its network while a copy is used from another: every verifier refuses it', async (t) => {
    const { h } = w;
    const verifiers = w.replicas.map((r) => r.verifier);
    assert.ok(verifiers.length >= 3 && verifiers.every((v) => v.status().connected));
    const issued = await h.requestToken();
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const token = issued.body['access_token'] as string;
    const jti = decodeClaims(token)['jti'] as string;
    // Its neighbour: another token of the same workload, used only by the holder.
    const other = (await h.requestToken()).body['access_token'] as string;
    const otherJti = decodeClaims(other)['jti'] as string;

    // The holder, from its usual network, at every replica of the API.
    for (const v of verifiers) {
      assert.equal(await outcome(v, use(token, HOLDER_IP)), `ok:${jti}`);
      assert.equal(await outcome(v, use(other, '10.1.2.40')), `ok:${otherJti}`);
    }
    await flushAll(w);
    assert.deepEqual(await findings(h, { rule: 'token-two-networks' }), [], 'one network is no replay');
    assert.equal(await riskOf(h, WORKLOAD), 0);

    // The copy, from a network the token was never used from: a bearer token works for whoever has it.
    const misuse = performance.now();
    assert.equal(await outcome(verifiers[1]!, use(token, THIEF_IP)), `ok:${jti}`);
    // The holder goes on using it at every replica, until each refuses it.
    const refusedAfter = await Promise.all(
      verifiers.map((v, i) =>
        eventually(
          `verifier ${i} to refuse the stolen token`,
          async () =>
            (await outcome(v, use(token, HOLDER_IP))) === 'revoked' ? performance.now() : undefined,
          { everyMs: 5, attempts: 3000 },
        ),
      ),
    );
    const slowest = Math.max(...refusedAfter) - misuse;
    t.diagnostic(
      `first misuse → refused by all ${verifiers.length} verifiers: ${slowest.toFixed(0)} ms (usage interval 250 ms; each verifier: ${refusedAfter.map((x) => (x - misuse).toFixed(0)).join(', ')} ms)`,
    );
    for (const v of verifiers) assert.equal(await outcome(v, use(token, THIEF_IP)), 'revoked');
    await flushAll(w);

    const [finding, ...more] = await findings(h, { rule: 'token-two-networks' });
    assert.equal(more.length, 0, 'one finding: the rule is quiet for the workload after it fired');
    assert.equal(finding!.workload, WORKLOAD);
    assert.equal(finding!.jti, jti);
    assert.equal(finding!.outcome, 'revoke_token');
    assert.equal(finding!.severity, 'high');
    assert.equal(finding!.evidence.source, THIEF_IP, 'the use from the new network triggered it');
    assert.deepEqual(finding!.evidence.read?.['token'], { networks: 2, revoked: false });
    const revocations = await automaticRevocations(h);
    assert.deepEqual(
      revocations.map((e) => [e.actor, e.data['kind'], e.data['value']]),
      [['detector:token-two-networks', 'jti', jti]],
    );
    const raised = (await h.auditEvents('detection.raised')).find((e) => e.data['finding'] === finding!.id);
    assert.equal(raised?.actor, 'detector:token-two-networks');
    assert.equal(raised?.data['source'], THIEF_IP);

    assert.ok((await riskOf(h, WORKLOAD)) > 0, 'the workload’s risk rose');
    // Only the stolen token: its neighbour still works everywhere.
    for (const v of verifiers) assert.equal(await outcome(v, use(other, '10.1.2.40')), `ok:${otherJti}`);
    assert.equal(
      await counterValue(h, 'writ_detections_total', { rule: 'token-two-networks', outcome: 'revoke_token' }),
      1,
    );
  });
});

describe('a DPoP-bound token presented without its key', () => {
  const SIGNER = 'spiffe://test.writ/reports/signer';
  const signerKey = testKey();
  const signerDocs = () => [
    classDoc({
      name: 'reports-dpop',
      audiences: [AUDIENCE],
      scopes: ['reports:read'],
      default_scopes: ['reports:read'],
    }),
    workloadDoc(SIGNER, signerKey, ['reports-dpop']),
  ];
  let w: DetectionWorld;
  before(async () => {
    w = await startDetectionWorld({ docs: signerDocs });
  });
  after(() => w.close());

  const holderKey = generateDpopKey();
  /** One client_credentials request of the workload, DPoP-bound, in-process (for `expectRefusal`). */
  const issuance = () =>
    dpopTokenRequest(
      w.h,
      () => ({
        grant_type: GrantType.clientCredentials,
        ...clientAuth(w.h, SIGNER, signerKey),
        resource: AUDIENCE,
      }),
      holderKey,
    );

  it('is revoked, names the source; a risk policy refuses the workload new tokens until the risk decays', async () => {
    const { h, clock } = w;
    const verifier = w.replicas[0]!.verifier;
    const client = workloadClient(w.issuer, SIGNER, signerKey, { nowMs: clock.now });
    const token = await client.token({ audience: AUDIENCE });
    const jti = decodeClaims(token)['jti'] as string;
    assert.equal(await outcome(verifier, use(token, HOLDER_IP, client.dpopKey)), `ok:${jti}`);

    // Someone copied the token, not the key: sent as Bearer, the verifier refuses it and says why at once.
    assert.equal(await outcome(verifier, use(token, THIEF_IP)), 'dpop_bound_as_bearer');
    await eventually(
      'the finding of the theft',
      async () => (await h.store.listFindings({ rule: 'bound-token-without-key', limit: 1 }))[0],
      { attempts: 400 },
    );
    await h.writ.ctx.detection.settled();
    const [finding, ...more] = await findings(h, { rule: 'bound-token-without-key' });
    assert.equal(more.length, 0);
    assert.ok(finding);
    assert.equal(finding.workload, SIGNER);
    assert.equal(finding.jti, jti);
    assert.equal(finding.outcome, 'revoke_token');
    assert.equal(finding.evidence.source, THIEF_IP, 'the evidence names where the key-less use came from');
    const signal = finding.evidence.signals.at(-1);
    assert.equal(signal?.kind, 'usage');
    assert.equal(signal?.kind === 'usage' && signal.data.signal, 'key_missing');
    assert.deepEqual(
      (await automaticRevocations(h)).map((e) => [e.actor, e.data['value']]),
      [['detector:bound-token-without-key', jti]],
    );
    assert.equal(await riskOf(h, SIGNER), h.settings.detection.riskPoints.critical);
    // Revoked for its holder too (asked of the server: a use at a verifier would raise the risk again).
    assert.equal((await introspect(h, token))['active'], false);

    // Before any policy reads the risk, the workload still gets tokens.
    assert.equal((await issuance()).status, 200);
    const applied = await applyPolicies(
      h,
      {
        files: [
          {
            file: 'policies/risk.cedar',
            text: `@id("tokens")
permit (principal, action, resource);

@id("risk-ceiling")
forbid (principal, action, resource) when { context.risk >= 70 };
`,
          },
        ],
      },
      w.docs,
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    // The verifier renews its own token when the fake clock passes its expiry, at any moment: those
    // issuances are not the refused workload's.
    const { event } = await expectRefusal(h, issuance, {
      status: 400,
      error: 'access_denied',
      reason: 'policy_denied',
      requester: SIGNER,
    });
    assert.equal(event.subject ?? event.actor, SIGNER);
    assert.deepEqual(event.data['policies'], ['risk-ceiling']);

    const halfLife = h.settings.detection.riskHalfLife * 1000;
    // A sixth of a half-life later the risk (80 → 71) is still over the ceiling...
    clock.advance(halfLife / 6);
    assert.equal(await riskOf(h, SIGNER), 71);
    await expectRefusal(h, issuance, {
      status: 400,
      error: 'access_denied',
      reason: 'policy_denied',
      requester: SIGNER,
    });
    // ...one half-life after the finding it has halved, and tokens are issued again.
    clock.advance(halfLife - halfLife / 6);
    assert.equal(await riskOf(h, SIGNER), 40);
    const again = await issuance();
    assert.equal(again.status, 200, JSON.stringify(again.body));
    // A workload detection never touched was never refused.
    assert.equal((await h.requestToken()).status, 200);
  });
});

describe('guardrails and findings through the CLI', () => {
  let h: Harness;
  const clock = fakeClock(Date.now());
  let cli: OperatorCli;
  before(async () => {
    clock.set(Date.now());
    h = await startHarness({
      clock,
      listen: true,
      settings: { 'detection.responses_per_minute': 60, 'detection.rule_responses_per_minute': 20 },
    });
    cli = operatorCli(h);
  });
  after(async () => {
    await h.close();
  });

  /** `writ …` as an operator runs it; the server's clock is brought up to the real one first (DPoP). */
  const writ = (...args: string[]) => {
    clock.set(Math.max(clock.now(), Date.now()));
    return cli(args);
  };
  const observe = (signals: ReturnType<typeof usageSignal>[]) => {
    for (const s of signals) h.writ.ctx.detection.observe(s);
    return h.writ.ctx.detection.settled();
  };
  const outcomes = (list: Finding[]) => {
    const n: Record<string, number> = {};
    for (const f of list) n[f.outcome] = (n[f.outcome] ?? 0) + 1;
    return n;
  };

  it('1,000 triggering events in a minute: the budget holds responses, one critical alert; pause and resume by CLI', async () => {
    const d = h.settings.detection;
    const flood = (from: number, n: number, signal: 'key_missing' | 'dpop_replay' = 'key_missing') =>
      Array.from({ length: n }, (_, i) =>
        usageSignal(h, {
          sub: `spiffe://test.writ/flood/${from + i}`,
          jti: `flood-${signal}-${from + i}`,
          signal,
          reason: signal === 'key_missing' ? 'dpop_bound_as_bearer' : 'dpop_replay',
        }),
      );
    const minute = Math.floor(clock.now() / 60_000);
    await observe(flood(0, 1000));
    assert.equal(Math.floor(clock.now() / 60_000), minute, 'one minute on the server’s clock');

    const acted = await automaticRevocations(h);
    assert.equal(acted.length, d.ruleResponsesPerMinute, 'the rule’s budget, no more');
    assert.ok(acted.length <= d.responsesPerMinute);
    assert.ok(acted.every((e) => e.actor === 'detector:bound-token-without-key'));
    const found = await findings(h, { rule: 'bound-token-without-key' });
    assert.equal(found.length, 1000, 'every detection is still recorded');
    assert.deepEqual(outcomes(found), { revoke_token: 20, budget: 980 });
    const alerts = await h.auditEvents('detection.budget_exhausted');
    assert.equal(alerts.length, 1, 'one critical alert for the minute');
    assert.equal(alerts[0]!.data['severity'], 'critical');
    assert.equal(alerts[0]!.data['rule'], 'bound-token-without-key');
    assert.equal(
      await counterValue(h, 'writ_detections_total', { rule: 'bound-token-without-key', outcome: 'budget' }),
      980,
    );
    assert.equal(
      await counterValue(h, 'writ_detections_total', {
        rule: 'bound-token-without-key',
        outcome: 'budget_alert',
      }),
      1,
    );
    // More of the same in that minute: still held back, and no second alert.
    await observe(flood(1000, 50));
    assert.equal((await automaticRevocations(h)).length, 20);
    assert.equal((await h.auditEvents('detection.budget_exhausted')).length, 1);

    const paused = await writ('detections', 'pause', '--reason', 'incident 42');
    assert.equal(paused.code, 0, paused.stderr);
    assert.equal((JSON.parse(paused.stdout) as { paused: boolean }).paused, true);
    const [pausedEvent] = await h.auditEvents('detection.paused');
    assert.equal(pausedEvent?.actor, 'operator:ops');
    assert.equal(pausedEvent?.data['reason'], 'incident 42');
    // Another rule, with budget left: paused all the same, nothing revoked, findings still recorded.
    await observe(flood(2000, 3, 'dpop_replay'));
    assert.deepEqual(outcomes(await findings(h, { rule: 'dpop-proof-replay' })), { paused: 3 });
    assert.equal((await automaticRevocations(h)).length, 20);
    const rules = await writ('detections', 'rules');
    assert.equal(rules.code, 0, rules.stderr);
    assert.equal((JSON.parse(rules.stdout) as { control: { paused: boolean } }).control.paused, true);

    const resumed = await writ('detections', 'resume');
    assert.equal(resumed.code, 0, resumed.stderr);
    const [resumedEvent] = await h.auditEvents('detection.resumed');
    assert.equal(resumedEvent?.actor, 'operator:ops');
    await observe(flood(3000, 2, 'dpop_replay'));
    const replays = await findings(h, { rule: 'dpop-proof-replay' });
    assert.deepEqual(outcomes(replays), { paused: 3, revoke_token: 2 });
    const after = await automaticRevocations(h);
    assert.equal(after.length, 22);
    assert.deepEqual(
      after
        .slice(20)
        .map((e) => e.data['value'])
        .sort(),
      ['flood-dpop_replay-3000', 'flood-dpop_replay-3001'],
    );
  });

  it('findings: list, show, ack, resolve, false-positive, each audited; bad states and unknown ids refused', async () => {
    const sub = 'spiffe://test.writ/lifecycle/one';
    await observe([usageSignal(h, { sub, jti: 'lifecycle-1', source: '203.0.113.9' })]);
    const listed = await writ('detections', 'list', '--workload', sub);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trim().split('\n');
    assert.equal(lines.length, 1, listed.stdout);
    assert.match(
      lines[0]!,
      /open +critical +bound-token-without-key +spiffe:\/\/test\.writ\/lifecycle\/one /,
    );
    assert.match(lines[0]!, /jti=lifecycle-1 /);
    const id = lines[0]!.split(/ +/).at(-1)!;

    const shown = await writ('detections', 'show', id);
    assert.equal(shown.code, 0, shown.stderr);
    const f = JSON.parse(shown.stdout) as Finding;
    assert.equal(f.id, id);
    assert.equal(f.state, 'open');
    assert.equal(f.evidence.source, '203.0.113.9');
    assert.equal(f.evidence.signals.length, 1);
    assert.equal(f.evidence.signals[0]!.kind, 'usage');

    const updatesBefore = (await h.auditEvents('detection.finding_updated')).length;
    let from = 'open';
    for (const [verb, to, note] of [
      ['ack', 'acknowledged', 'on it'],
      ['resolve', 'resolved', 'rotated the key'],
      ['false-positive', 'false_positive', 'new pods'],
    ] as const) {
      const r = await writ('detections', verb, id, '--note', note);
      assert.equal(r.code, 0, r.stderr);
      const changed = JSON.parse(r.stdout) as Finding;
      assert.equal(changed.state, to);
      assert.equal(changed.stateBy, 'operator:ops');
      assert.equal(changed.note, note);
      const e = (await h.auditEvents('detection.finding_updated')).at(-1)!;
      assert.equal(e.actor, 'operator:ops');
      assert.equal(e.subject, sub);
      assert.deepEqual(
        [e.data['finding'], e.data['from'], e.data['to'], e.data['note']],
        [id, from, to, note],
      );
      from = to;
    }
    assert.equal((await h.auditEvents('detection.finding_updated')).length, updatesBefore + 3);
    const closed = await writ('detections', 'list', '--state', 'false_positive', '--workload', sub);
    assert.match(closed.stdout, new RegExp(id));
    const open = await writ('detections', 'list', '--state', 'open', '--workload', sub);
    assert.equal(open.stdout.trim(), '(none)');

    // A state that is not one is refused, saying which are.
    const badList = await writ('detections', 'list', '--state', 'closed');
    assert.equal(badList.code, 1);
    assert.match(
      badList.stderr,
      /invalid_request: state must be one of open, acknowledged, resolved, false_positive/,
    );
    for (const state of ['open', 'closed', '']) {
      const r = await h.admin('POST', `/detections/findings/${id}`, { state });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body['error'], 'invalid_request');
      assert.match(String(r.body['error_description']), /state/);
    }
    const extra = await h.admin('POST', `/detections/findings/${id}`, { state: 'resolved', by: 'someone' });
    assert.equal(extra.status, 400);
    // Unknown ids, well formed or not: not_found, and nothing audited.
    for (const unknown of ['00000000-0000-4000-8000-000000000000', 'not-a-finding']) {
      const shownUnknown = await writ('detections', 'show', unknown);
      assert.equal(shownUnknown.code, 1);
      assert.match(shownUnknown.stderr, /404 not_found: no such finding/);
      const acked = await writ('detections', 'ack', unknown, '--note', 'x');
      assert.equal(acked.code, 1);
      assert.match(acked.stderr, /404 not_found/);
    }
    assert.equal((await h.auditEvents('detection.finding_updated')).length, updatesBefore + 3);
    assert.equal((await findings(h, { workload: sub }))[0]!.state, 'false_positive');
  });
});
