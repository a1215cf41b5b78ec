import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkloadClient } from '@writ/sdk/client';
import { createVerifier, RequestRefusal, UsageReporter, type Verifier } from '@writ/sdk/verifier';
import { fakeClock } from '../src/clock.js';
import type { RawDocument } from '../src/config/config-dir.js';
import { classDoc, rawDoc, workloadDoc } from './helpers/dpop.js';
import { AUDIENCE, freePort, type Harness, startHarness, testKey, WORKLOAD } from './helpers/harness.js';
import { applyPolicies } from './helpers/policy.js';
import { privateJwk } from './helpers/ssf-receiver.js';
import { eventually, presenting, ready } from './helpers/verifier.js';

// Verifiers see risk: a finding raises a workload's risk on the server, the event stream tells every
// verifier (the workload as a digest), and a verifier deciding locally reads it as `context.risk` for
// that workload's tokens. Real SDK verifiers over real HTTP, the finding raised by the verifier's own
// usage report, the decision made by Cedar in the verifier.

const VERIFIER_ID = 'spiffe://test.writ/verifier/reports-api';
const NEIGHBOUR = 'spiffe://test.writ/reports/neighbour';
/** A rule that only alerts: its findings leave the workload's risk as it was. */
const ALERT_RULE = 'exporter-at-reports';

const POLICIES = `
@id("tokens")
permit(principal is Workload, action in Action::"token", resource);

@id("reads")
permit(principal is Workload, action == Action::"read", resource);

@id("no-risky-requests")
forbid(principal, action in Action::"request", resource)
when { context.risk >= 70 };
`;
const RESOURCES = [{ id: AUDIENCE, sensitivity: 'internal', environment: 'prod', owner: 'team-reports' }];

describe('detection: verifiers read a workload’s risk in their local policy', () => {
  const clock = fakeClock(Date.UTC(2026, 0, 5, 12));
  const verifierKey = testKey();
  const neighbourKey = testKey();
  let h: Harness;
  let issuer: string;
  let client: WorkloadClient;
  let usage: UsageReporter;
  let verifier: Verifier;
  const verifiers: Verifier[] = [];
  let risky: string;
  let neighbour: string;

  const makeVerifier = (o: { usage?: UsageReporter } = {}): Verifier => {
    const v = createVerifier({
      issuer,
      audience: AUDIENCE,
      client,
      now: clock.now,
      stalenessMs: 120_000,
      policy: {},
      ...o,
    });
    verifiers.push(v);
    return v;
  };
  const request = (token: string, userAgent = 'reports-client/2.1') => ({
    ...presenting(token, { url: `${AUDIENCE}/reports/1` }),
    source: '10.1.2.3',
    userAgent,
  });
  const outcome = async (v: Verifier, token: string): Promise<string> => {
    try {
      await v.verify(request(token));
      return 'allow';
    } catch (err) {
      if (err instanceof RequestRefusal) return `${err.code}:${err.reason}`;
      throw err;
    }
  };

  before(async () => {
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    const docs: RawDocument[] = [
      classDoc({
        name: 'verifier',
        audiences: [`${issuer}/v1/events`, `${issuer}/v1/usage`],
        scopes: ['events:read'],
        default_scopes: ['events:read'],
      }),
      workloadDoc(VERIFIER_ID, verifierKey, ['verifier'], { serves: [AUDIENCE] }),
      // Another workload of the same team calling the same API: a finding on one says nothing of it.
      rawDoc('workload', {
        id: NEIGHBOUR,
        owner: 'team-reports',
        environment: 'prod',
        classes: ['reports-read'],
        jwks: { keys: [neighbourKey.publicJwk] },
      }),
      rawDoc('detection', {
        id: ALERT_RULE,
        description: 'the report exporter used a token',
        signal: 'usage',
        condition: 'event.user_agent.startsWith("report-exporter/")',
        severity: 'low',
        response: 'alert',
        mode: 'enforce',
      }),
    ];
    h = await startHarness({
      clock,
      listen: true,
      settings: {
        'listen.port': port,
        'events.heartbeat': 1,
        // A medium finding (human use of a workload token) brings the risk to 80, which halves every
        // minute of the test's clock.
        'detection.risk_medium': 80,
        'detection.risk_half_life': '1m',
      },
      extraDocs: docs,
    });
    const applied = await applyPolicies(
      h,
      { files: [{ file: 'policies/requests.cedar', text: POLICIES }], resources: RESOURCES },
      docs,
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    client = new WorkloadClient({
      issuer,
      clientId: VERIFIER_ID,
      privateJwk: privateJwk(verifierKey),
      now: () => Math.floor(clock.now() / 1000),
    });
    // Sent when the test says (`flush`), not on a timer.
    usage = new UsageReporter({ issuer, client, flushIntervalMs: 3_600_000, now: clock.now });
    verifier = makeVerifier({ usage });
    await ready(verifier);
    await verifier.policy!.loaded();
    const t = await h.requestToken();
    assert.equal(t.status, 200, JSON.stringify(t.body));
    risky = t.body['access_token'] as string;
    const n = await h.requestToken({}, { clientId: NEIGHBOUR, key: neighbourKey });
    assert.equal(n.status, 200, JSON.stringify(n.body));
    neighbour = n.body['access_token'] as string;
  });
  after(async () => {
    for (const v of verifiers) v.close();
    await usage?.close();
    await h.close();
  });

  it('a policy forbidding risk ≥ 70 denies the workload after a finding raised its risk, and allows another', async () => {
    assert.equal(await outcome(verifier, risky), 'allow');
    assert.equal(await outcome(verifier, neighbour), 'allow');
    assert.equal(verifier.riskOf(WORKLOAD), 0);

    // Someone drives the workload's token by hand: the verifier allows the request (the risk is still
    // 0) and reports the use; the server's human-use rule raises the workload's risk.
    await verifier.verify(request(risky, 'PostmanRuntime/7.39.0'));
    await usage.flush();
    await h.writ.ctx.detection.settled();
    const [finding] = await h.store.listFindings({ workload: WORKLOAD, rule: 'human-user-agent', limit: 1 });
    assert.equal(finding?.risk, 80, 'the finding raised the risk');
    assert.equal(h.writ.ctx.detection.riskOf(WORKLOAD), 80);

    // The stream tells the verifier; its local policy now denies the workload and still allows the other.
    await eventually('the verifier to hear the risk', () =>
      verifier.riskOf(WORKLOAD) === 80 ? true : undefined,
    );
    assert.equal(verifier.riskOf(NEIGHBOUR), 0);
    assert.equal(verifier.status().risks, 1);
    assert.equal(await outcome(verifier, risky), 'insufficient_scope:policy_denied');
    assert.equal(await outcome(verifier, neighbour), 'allow');
    const decide = (id: string, context?: { risk: number }) =>
      verifier.policy!.decide({
        principal: { type: 'Workload', id },
        action: 'read',
        ...(context ? { context } : {}),
      });
    const denied = await decide(WORKLOAD);
    assert.deepEqual([denied.decision, denied.reasons], ['deny', ['no-risky-requests']]);
    // A caller may add to the risk, never take from it; what it gives is still checked.
    assert.equal((await decide(WORKLOAD, { risk: 0 })).decision, 'deny', 'the caller cannot lower it');
    assert.equal((await decide(NEIGHBOUR, { risk: 90 })).decision, 'deny', 'the caller can raise it');
    assert.equal((await decide(NEIGHBOUR, { risk: 10 })).decision, 'allow');
    const invalid = await decide(WORKLOAD, { risk: 150 });
    assert.deepEqual([invalid.decision, invalid.refusal], ['deny', 'invalid_context']);
    // The token itself is not revoked: the policy, not a revocation, refused it.
    assert.equal(verifier.status().revocations, 0);
  });

  it('a verifier that starts after the finding learns the risk from its snapshot', async () => {
    const late = makeVerifier();
    await ready(late);
    await late.policy!.loaded();
    assert.equal(late.riskOf(WORKLOAD), 80);
    assert.equal(late.riskOf(NEIGHBOUR), 0);
    assert.equal(await outcome(late, risky), 'insufficient_scope:policy_denied');
    assert.equal(await outcome(late, neighbour), 'allow');
  });

  it('the risk decays at verifiers as on the server, and the workload is allowed again', async () => {
    clock.advance(60_000);
    assert.equal(h.writ.ctx.detection.riskOf(WORKLOAD), 40);
    assert.equal(verifier.riskOf(WORKLOAD), 40);
    assert.equal(await outcome(verifier, risky), 'allow');
  });

  it('a finding that did not raise the risk (an alert) reaches verifiers as a position, not a risk', async () => {
    const held = verifier.status().risks;
    await verifier.verify(request(neighbour, 'report-exporter/3.0'));
    await usage.flush();
    await h.writ.ctx.detection.settled();
    const [finding] = await h.store.listFindings({ workload: NEIGHBOUR, rule: ALERT_RULE, limit: 1 });
    assert.equal(finding?.risk, 0, 'the alert left the neighbour without risk');
    const { last } = await h.store.eventBounds();
    await eventually('the verifier to pass the finding’s event', () =>
      Number(verifier.status().lastEventId) >= last ? true : undefined,
    );
    // Verifiers hold no risk for it: they were not told the neighbour had a finding.
    assert.equal(verifier.status().risks, held);
    assert.equal(verifier.riskOf(NEIGHBOUR), 0);
  });
});
