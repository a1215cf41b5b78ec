import assert from 'node:assert/strict';
import type { WorkloadClient } from '@writ/sdk/client';
import { createDpopProof, type DpopKey } from '@writ/sdk/dpop';
import type { UsageReporter, Verifier } from '@writ/sdk/verifier';
import type { fakeClock } from '../../src/clock.js';
import type { RawDocument } from '../../src/config/config-dir.js';
import { BUILTIN_RULES } from '../../src/detection/builtin-rules.js';
import type { Finding } from '../../src/detection/finding.js';
import type { NetworkEnvironment } from '../../src/detection/networks.js';
import type { DetectionRuleInput } from '../../src/detection/rule.js';
import type { Signal } from '../../src/detection/signal.js';
import { counterValue, REPORTS_API, riskOf, startDetectionWorld, usageSignal } from './detection.js';
import { classDoc, decodeClaims, rawDoc, tokenOverHttp, workloadDoc } from './dpop.js';
import { AUDIENCE, type Harness, type TestKey, testKey } from './harness.js';
import { eventually, outcome, workloadClient } from './verifier.js';

/**
 * The built-in rules on their scenarios: a detection world (helpers/detection.ts: a listening Writ on a
 * fake clock, a verifier built with the SDK reporting every use) with the rules in one mode, networks
 * as `NETWORKS`, workloads of each case's own (so cases that share the server share no baseline,
 * cooldown or risk), and the steps of a case: present a token, report, read findings and risk.
 */

/** What the verifier serves, and the URL a request is for. */
export const API = AUDIENCE;
export const URL_OF_API = `${API}/reports/1`;
/** What an SDK-built client sends: a tool, not a person. */
export const TOOL_AGENT = 'report-exporter/2.1';
/** config/networks.yaml of these tests: the workloads are `prod`, 10.9/16 belongs to development. */
export const NETWORKS: NetworkEnvironment[] = [
  { cidr: '10.1.0.0/16', environment: 'prod' },
  { cidr: '10.9.0.0/16', environment: 'development' },
];

export type Mode = 'observe' | 'enforce';
export type Binding = 'bearer' | 'dpop';

/** The built-in rule `id`, as shipped. */
export function builtin(id: string): DetectionRuleInput {
  const r = BUILTIN_RULES.find((b) => b.id === id);
  if (!r) throw new Error(`no built-in rule ${id}`);
  return r;
}

export interface CaseWorkload {
  id: string;
  key: TestKey;
  /** Its SDK client (DPoP-bound tokens for a `dpop` workload; tasks). */
  client: WorkloadClient;
  /** A new token for the API over HTTP: bearer, or DPoP-bound to `client.dpopKey`, per its class. */
  token(): Promise<string>;
}

/** One request at the API, as the resource server saw it. */
export interface Use {
  source: string;
  operation?: string;
  userAgent?: string;
  /** Present the token with a fresh DPoP proof by this key, or with `proof` as it was captured. */
  holder?: DpopKey;
  proof?: string;
}

export interface RuleWorld {
  h: Harness;
  clock: ReturnType<typeof fakeClock>;
  issuer: string;
  verifier: Verifier;
  usage: UsageReporter;
  mode: Mode;
  workload(name: string): CaseWorkload;
  /** One request at the API through the verifier: `ok:<jti>`, or the refusal's reason. */
  use(token: string, u: Use): Promise<string>;
  /**
   * Waits until the verifier has heard every event the server logged so far (revocations included)
   * and is current (a heartbeat since the clock last moved).
   */
  caughtUp(): Promise<void>;
  /** Sends what the verifier recorded (POST /v1/usage, every record taken) and waits for the findings. */
  report(): Promise<void>;
  /** Findings of `rule` about `workload`, newest first. */
  findings(rule: string, workload: string): Promise<Finding[]>;
  /** The one finding `rule` raised about `workload` since `before` (a `findings` answer). */
  newFinding(rule: string, workload: string, before: readonly Finding[]): Promise<Finding>;
  /** Asserts that `rule` raised nothing about `workload` since `before`. */
  noNewFinding(rule: string, workload: string, before: readonly Finding[]): Promise<void>;
  /** The workload's risk as `GET /admin/v1/workloads/:id` shows it. */
  risk(workload: string): Promise<number>;
  /** `writ_detections_total{rule, outcome}` on GET /metrics. */
  detections(rule: string, outcome: string): Promise<number>;
  /**
   * Teaches a workload's history as production would have: signals of earlier times fed to the
   * detector (`ctx.detection.observe`), each evaluated like any other.
   */
  teach(signals: readonly Signal[]): Promise<void>;
  /** An allowed use by `workload` at `time` from `source` (for `teach`). */
  pastUse(workload: string, time: number, source: string): Signal;
  /** An issuance to `workload` at `time` (for `teach`). */
  pastIssuance(workload: string, time: number): Signal;
  close(): Promise<void>;
}

/**
 * Starts a rule world: detection on without learning (unless `settings` say otherwise), every built-in
 * rule in `mode` (observe: each overridden in config/detections/, as an operator would), `NETWORKS` as
 * config/networks.yaml, and `workloads` (name → binding of its API class), environment `prod`.
 * Reports go when `report()` sends them (or at once, for a record with a security signal).
 */
export async function startRuleWorld(o: {
  mode: Mode;
  workloads: Record<string, Binding>;
  settings?: Record<string, unknown>;
  docs?: (issuer: string) => RawDocument[];
}): Promise<RuleWorld> {
  const idOf = (name: string) => `spiffe://test.writ/detect/${name}`;
  const keys = new Map(Object.keys(o.workloads).map((name) => [name, testKey()]));
  const base = await startDetectionWorld({
    settings: { 'detection.learning_period': 0, 'detection.learning_events': 0, ...o.settings },
    flushIntervalMs: 3_600_000,
    docs: (issuer) => [
      classDoc({
        name: 'detect-bearer',
        binding: 'bearer',
        audiences: [API],
        scopes: ['api:call'],
        default_scopes: ['api:call'],
      }),
      classDoc({ name: 'detect-dpop', audiences: [API], scopes: ['api:call'], default_scopes: ['api:call'] }),
      ...Object.entries(o.workloads).map(([name, binding]) =>
        workloadDoc(idOf(name), keys.get(name)!, [`detect-${binding}`]),
      ),
      ...(o.mode === 'observe'
        ? BUILTIN_RULES.map((r) => rawDoc('detection', { ...r, mode: 'observe' }))
        : []),
      rawDoc('networks', { networks: NETWORKS }),
      ...(o.docs?.(issuer) ?? []),
    ],
  });
  const { h, clock, issuer } = base;
  const ctx = h.writ.ctx;
  const { verifier, usage } = base.replicas[0]!;
  assert.ok(
    ctx.detection.rules().every((r) => r.mode === o.mode),
    `the rules are in ${o.mode} mode`,
  );
  const workloads = new Map<string, CaseWorkload>();
  for (const [name, binding] of Object.entries(o.workloads)) {
    const id = idOf(name);
    const key = keys.get(name)!;
    const client = workloadClient(issuer, id, key, { nowMs: clock.now });
    workloads.set(name, {
      id,
      key,
      client,
      token: async () =>
        binding === 'bearer'
          ? tokenOverHttp(h, id, key, API)
          : (await client.requestToken({ audience: API })).access_token,
    });
  }
  const findings = (rule: string, workload: string) =>
    ctx.store.listFindings({ rule, workload, limit: 1000 });
  const since = async (rule: string, workload: string, before: readonly Finding[]) => {
    await ctx.detection.settled();
    const seen = new Set(before.map((f) => f.id));
    return (await findings(rule, workload)).filter((f) => !seen.has(f.id));
  };

  return {
    h,
    clock,
    issuer,
    verifier,
    usage,
    mode: o.mode,
    workload(name) {
      const c = workloads.get(name);
      if (!c) throw new Error(`no case workload ${name}`);
      return c;
    },
    use(token, u) {
      const proof =
        u.proof ??
        (u.holder
          ? createDpopProof(u.holder, {
              method: 'GET',
              url: URL_OF_API,
              accessToken: token,
              nowSeconds: Math.floor(clock.now() / 1000),
            })
          : undefined);
      return outcome(verifier, {
        authorization: proof ? `DPoP ${token}` : `Bearer ${token}`,
        dpop: proof ? [proof] : [],
        method: 'GET',
        url: URL_OF_API,
        operation: u.operation ?? 'GET /reports/:id',
        source: u.source,
        userAgent: u.userAgent ?? TOOL_AGENT,
      });
    },
    async caughtUp() {
      let head = 0;
      for (let page = await ctx.store.readEvents(0, 1000); page.length > 0; ) {
        head = page.at(-1)!.seq;
        page = await ctx.store.readEvents(head, 1000);
      }
      await eventually(`the verifier to hear the event log up to ${head}`, () => {
        const s = verifier.status();
        return Number(s.lastEventId ?? -1) >= head && !s.stale ? true : undefined;
      });
    },
    async report() {
      const refused = usage.stats().refused;
      await usage.flush();
      assert.equal(usage.stats().refused, refused, 'the server took every record the verifier sent');
      await ctx.detection.settled();
    },
    findings,
    async newFinding(rule, workload, before) {
      const found = await since(rule, workload, before);
      assert.equal(found.length, 1, `one new ${rule} finding about ${workload}, got ${found.length}`);
      return found[0]!;
    },
    async noNewFinding(rule, workload, before) {
      assert.deepEqual(await since(rule, workload, before), [], `no ${rule} finding about ${workload}`);
    },
    risk: (workload) => riskOf(h, workload),
    detections: (rule, outcome) => counterValue(h, 'writ_detections_total', { rule, outcome }),
    async teach(signals) {
      for (const s of signals) ctx.detection.observe(s);
      await ctx.detection.settled();
    },
    pastUse(workload, time, source) {
      return usageSignal(
        h,
        {
          sub: workload,
          jti: `taught-${workload}`,
          aud: API,
          reporter: REPORTS_API,
          source,
          user_agent: TOOL_AGENT,
          decision: 'allow',
          reason: '',
          signal: '',
        },
        time,
      );
    },
    pastIssuance(workload, time) {
      return {
        kind: 'token.issued',
        time,
        data: {
          sub: workload,
          jti: `taught-${time}`,
          aud: API,
          cls: 'detect-bearer',
          tid: '',
          source: '10.1.2.3',
        },
      };
    },
    close: () => base.close(),
  };
}

/** What the rule's condition read of `name` (`baseline`, `token`, `workload`), as the finding keeps it. */
export function readOf<T = Record<string, unknown>>(f: Finding, name: string): T {
  const v = f.evidence.read?.[name];
  assert.ok(v !== undefined, `the finding keeps what the rule read of ${name}`);
  return v as T;
}

/** The jti of a token. */
export const jtiOf = (token: string): string => decodeClaims(token)['jti'] as string;

/**
 * What a finding of a built-in rule must show in the world's mode, and its effect. Enforce: the rule's
 * response as the outcome, the severity's points on the workload's risk (none for `alert`), and for
 * `revoke_token` the token revoked by the detector and refused by the verifier. Observe: outcome
 * `observe`, no risk, no revocation, the token still accepted. `token` is a token of the case the
 * holder can present (with `holder` when DPoP-bound, from `source`).
 */
export async function expectResponse(
  w: RuleWorld,
  f: Finding,
  o: { token?: string; holder?: DpopKey; source?: string } = {},
): Promise<void> {
  const rule = builtin(f.rule);
  const enforce = w.mode === 'enforce';
  assert.equal(f.mode, w.mode);
  assert.equal(f.severity, rule.severity);
  assert.equal(f.response, rule.response);
  assert.equal(f.outcome, enforce ? rule.response : 'observe');
  assert.equal(f.state, 'open');
  if (f.workload !== '') {
    const points =
      enforce && rule.response !== 'alert' ? w.h.settings.detection.riskPoints[rule.severity] : 0;
    assert.equal(f.risk, points, 'the risk the finding recorded');
    assert.equal(await w.risk(f.workload), points, 'the risk the admin API shows');
  }
  const raised = (await w.h.auditEvents('detection.raised')).filter((e) => e.data['finding'] === f.id);
  assert.equal(raised.length, 1, 'the finding is audited');
  assert.equal(raised[0]!.actor, `detector:${f.rule}`);
  assert.equal(raised[0]!.data['outcome'], f.outcome);
  const revokes = enforce && rule.response === 'revoke_token';
  const revocations = (await w.h.auditEvents('revocation.created')).filter(
    (e) => e.actor === `detector:${f.rule}` && f.jti !== null && e.jti === f.jti,
  );
  assert.equal(revocations.length, revokes ? 1 : 0, revokes ? 'the token is revoked' : 'nothing revoked');
  if (o.token === undefined) return;

  // Once the verifier has heard everything up to now, a revocation would be in its set.
  await w.caughtUp();
  const presented: Use = { source: o.source ?? '10.1.2.3', ...(o.holder ? { holder: o.holder } : {}) };
  assert.equal(
    await w.use(o.token, presented),
    revokes ? 'revoked' : `ok:${jtiOf(o.token)}`,
    revokes ? 'the verifier refuses the revoked token' : 'the token still works',
  );
  // Nothing of this case left in the reporter to reach the server in the middle of the next one.
  await w.report();
}
