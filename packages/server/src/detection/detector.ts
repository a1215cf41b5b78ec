import { randomUUID } from 'node:crypto';
import type { RevocableToken } from '@writ/sdk/verifier';
import { EventType, MAX_RISK, type VerifierSignal } from '@writ/sdk/wire';
import type { Logger } from 'pino';
import type { AuditEvent } from '../audit/audit-event.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { Settings } from '../config/settings.js';
import { restrictText } from '../control-characters.js';
import type { EventLog } from '../events/event-log.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import type { RevocationSet } from '../revocation/revocation-set.js';
import type { Store } from '../store/store.js';
import type { IssuedToken } from '../tokens/issued-token.js';
import { baselineFromJson, baselineToJson } from './baseline.js';
import { type Detection, DetectionEngine, type EngineSettings } from './engine.js';
import type { DetectionControl, Finding, FindingEvidence, FindingOutcome } from './finding.js';
import type { NetworkMap } from './networks.js';
import { RiskBook } from './risk.js';
import type { DetectionRule, Response, Severity } from './rule.js';
import type { Signal } from './signal.js';
import { userAgentKind } from './user-agent.js';
import type { FindingWebhook } from './webhook.js';

/** One use as detection reads it: the fields of a record `POST /v1/usage` took (bounded and escaped). */
export interface ObservedUse {
  operation: string;
  source: string;
  userAgent: string;
  decision: 'allow' | 'deny';
  reason: string;
  signal: VerifierSignal | '';
  time: number;
}

/**
 * What the detector acts with: revoking by a predicate (`jti`, `tid` or `sub`, tokens issued up to now)
 * and quarantining a workload (false when it is unknown). The composition root binds them to the
 * server's own operations, so the detector takes the same paths an operator's command does.
 */
export interface DetectionActions {
  revoke(kind: 'jti' | 'tid' | 'sub', value: string, reason: string, actor: string): Promise<void>;
  quarantine(workload: string, reason: string, actor: string): Promise<boolean>;
}

/** What the detector reads and writes: parts of the server's context, and its actions. */
export interface DetectorDeps {
  settings: Pick<Settings, 'detection' | 'issuer'>;
  store: Store;
  clock: Clock;
  audit: AuditLog;
  events: EventLog;
  metrics: Metrics;
  registry: Pick<Registry, 'workload'>;
  revocations: Pick<RevocationSet, 'revokedAt'>;
  logger: Logger;
  actions: DetectionActions;
  /** The audience of admin tokens: never revoked by a detection. */
  adminAudience: string;
  /** The findings webhook (`detection.webhook_url`), when one is set: each finding is sent there too. */
  webhook?: FindingWebhook | undefined;
}

/** A finding to record: what `Detector.recordFinding` stores, raises, announces and audits. */
export interface FindingInput {
  rule: string;
  severity: Severity;
  mode: 'observe' | 'enforce';
  workload: string;
  jti: string | null;
  tid: string | null;
  evidence: FindingEvidence;
  response: Response;
  outcome: FindingOutcome;
  /** Add the severity's points to the workload's risk. */
  raisesRisk: boolean;
  /** Who the `detection.raised` audit event names. */
  actor: string;
  /** More members of the audit event's data. */
  auditData?: Record<string, unknown>;
  /** More to write in the finding's transaction (the finding is stored by then). */
  also?: (tx: Store, finding: Finding) => Promise<void>;
}

/** Responses that act on tokens or workloads: the ones the budget and the pause switch hold back. */
const ACTIONS: ReadonlySet<Response> = new Set(['revoke_token', 'revoke_task', 'quarantine', 'reattest']);

const BASELINE_FLUSH_MS = 5000;
const QUEUE_LIMIT = 10_000;
const EVIDENCE_SIGNALS = 5;

/**
 * Detection and response: signals in (usage records as they are taken, issuances, refusals, tasks,
 * federation replays), rules evaluated by the engine, and for each detection a stored finding, the
 * workload's risk raised by severity, and the rule's response taken unless the rule only observes, the
 * workload is still learning (rules that read its baseline), responses are paused, the minute's budget
 * is spent, or the target is operator access (never touched).
 *
 * Signals are evaluated at once, in memory; findings and responses are handled in order, one at a time,
 * off the request path. Baselines are written behind every few seconds; risk and findings at once.
 */
export class Detector {
  readonly #ctx: DetectorDeps;
  readonly engine: DetectionEngine;
  readonly risk: RiskBook;
  #networks: NetworkMap;
  /** The findings webhook, when `detection.webhook_url` is set. */
  readonly webhook: FindingWebhook | undefined;
  #control: DetectionControl | undefined;
  #rules: DetectionRule[];
  readonly #queue: Detection[] = [];
  #draining: Promise<void> | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  /** This minute's responses, all rules and by rule, and the budgets already found spent (alerted). */
  #budget = { minute: -1, total: 0, byRule: new Map<string, number>(), alerted: new Set<string>() };
  /** Detections dropped because the queue was full (a flood of findings), since start. */
  dropped = 0;

  constructor(ctx: DetectorDeps, rules: readonly DetectionRule[], networks: NetworkMap) {
    this.#ctx = ctx;
    const d = ctx.settings.detection;
    this.#networks = networks;
    this.#rules = [...rules];
    this.engine = new DetectionEngine(engineSettings(ctx), rules, {
      environment: (w) => ctx.registry.workload(w)?.environment ?? '',
    });
    this.risk = new RiskBook({ points: d.riskPoints, halfLifeMs: d.riskHalfLife * 1000 });
    this.webhook = ctx.webhook;
  }

  /** Loads baselines, risks and the pause switch, and follows other nodes' risk changes. */
  async start(fromSeq: number): Promise<void> {
    const now = this.#ctx.clock.now();
    const [baselines, risks, control] = await Promise.all([
      this.#ctx.store.listBaselines(),
      this.#ctx.store.listRisks(),
      this.#ctx.store.getDetectionControl(),
    ]);
    this.engine.loadBaselines(baselines.map((b) => baselineFromJson(b.workload, b.data, now)));
    for (const r of risks) this.risk.apply(r);
    this.#control = control;
    // Break-glass grants active now, then as they are granted and end (docs/governance.md).
    for (const g of await this.#ctx.store.listBreakGlass({ state: 'active', limit: 1000 }))
      if (g.endsAt !== undefined) this.engine.heighten(g.workload, g.endsAt);
    this.#unsubscribe = this.#ctx.events.subscribe(fromSeq, (e) => {
      if (e.type === EventType.detectionRaised)
        this.risk.apply({ workload: e.data.sub, score: e.data.risk, at: e.data.risk_at ?? e.ts });
      else if (e.type === EventType.breakglassGranted) this.engine.heighten(e.data.sub, e.data.expires_at);
      else if (e.type === EventType.breakglassEnded) void this.calmAfterBreakGlass(e.data.sub);
    });
    this.#flushTimer = setInterval(() => {
      this.flushBaselines().catch((err: unknown) =>
        this.#ctx.logger.warn({ err: (err as Error).message }, 'detection baselines not written; retrying'),
      );
    }, BASELINE_FLUSH_MS);
    this.#flushTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.#flushTimer) clearInterval(this.#flushTimer);
    this.#unsubscribe?.();
    await this.settled();
    await this.webhook?.close();
    await this.flushBaselines().catch(() => undefined);
  }

  /**
   * Ends the heightened watch of `workload` after one of its break-glass grants ended, unless another
   * of its grants is still active. Never throws.
   */
  async calmAfterBreakGlass(workload: string): Promise<void> {
    this.engine.calm(workload);
    try {
      for (const g of await this.#ctx.store.listBreakGlass({ workload, state: 'active', limit: 50 }))
        if (g.endsAt !== undefined) this.engine.heighten(workload, g.endsAt);
    } catch (err) {
      this.#ctx.logger.warn({ err: (err as Error).message, workload }, 'break-glass grants not read');
    }
  }

  get enabled(): boolean {
    return this.#ctx.settings.detection.enabled;
  }

  /** The risk of a workload now, 0 to 100: the `risk` of the policy context. */
  riskOf(workload: string): number {
    return this.risk.of(workload, this.#ctx.clock.now());
  }

  /** Maps sources to networks and environments (`config/networks.yaml`). */
  get networks(): NetworkMap {
    return this.#networks;
  }

  /** Replaces the networks map (a config apply): later uses are mapped with it. */
  setNetworks(networks: NetworkMap): void {
    this.#networks = networks;
  }

  /** Replaces the rules in force (a config apply); see ruleSet. */
  setRules(rules: readonly DetectionRule[]): void {
    this.#rules = [...rules];
    this.engine.setRules(rules);
  }

  /** The rules in force, built-in and configured. */
  rules(): readonly DetectionRule[] {
    return this.#rules;
  }

  /** Evaluates one signal; what fires is handled in order, off the caller's path. */
  observe(s: Signal): void {
    if (!this.enabled) return;
    const found = this.engine.observe(s);
    if (found.length === 0) return;
    for (const d of found) {
      if (this.#queue.length >= QUEUE_LIMIT) {
        this.dropped++;
        this.#ctx.metrics.detections.inc({ rule: d.rule.id, outcome: 'dropped' });
        continue;
      }
      this.#queue.push(d);
    }
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
  }

  /**
   * The uses `POST /v1/usage` took from `reporter`, with Writ's record of each token. A use counts as a
   * use of a revoked token (`token_revoked`) only if Writ's set revoked the token before the use: a use
   * just before a revocation, reported with the next batch, is none.
   */
  observeUses(
    reporter: string,
    uses: ReadonlyArray<{ use: ObservedUse; token: IssuedToken | undefined }>,
  ): void {
    if (!this.enabled) return;
    const now = this.#ctx.clock.now();
    for (const { use, token } of uses) {
      const time = Math.min(use.time, now);
      if (!token) {
        if (use.signal !== '')
          this.observe({
            kind: 'verifier.signal',
            time,
            data: { reporter, signal: use.signal, source: use.source },
          });
        continue;
      }
      const revokedAt = this.#ctx.revocations.revokedAt(revocable(token));
      this.observe(this.#usage(reporter, use, token, time, revokedAt !== undefined && revokedAt < time));
    }
  }

  #usage(reporter: string, use: ObservedUse, token: IssuedToken, time: number, revoked: boolean): Signal {
    return {
      kind: 'usage',
      time,
      data: {
        sub: token.sub,
        jti: token.jti,
        tid: token.tid ?? '',
        aud: token.aud,
        reporter,
        operation: use.operation,
        source: use.source,
        network: this.#networks.network(use.source),
        // The source itself: a range of networks.yaml may be narrower than the network.
        network_environment: this.#networks.environment(use.source),
        user_agent: use.userAgent,
        user_agent_kind: userAgentKind(use.userAgent),
        decision: use.decision,
        reason: use.reason,
        signal: use.signal,
        token_revoked: revoked,
      },
    };
  }

  /**
   * A refusal at the token endpoint for a client the caller only named. The name is whatever the caller
   * sent: kept as the refusal's audit event keeps it (256 characters, control characters escaped), since
   * findings store it and the webhook sends it.
   */
  observeRefusal(clientId: string, reason: string, source: string): void {
    if (!this.enabled || clientId === '') return;
    this.observe({
      kind: 'token.refused',
      time: this.#ctx.clock.now(),
      data: { client_id: restrictText(clientId, 256), reason, source },
    });
  }

  /** Signals from committed audit events: issuances, tasks, federation replays. */
  observeAudited(e: AuditEvent): void {
    if (!this.enabled) return;
    const data = (e.data ?? {}) as Record<string, unknown>;
    const text = (v: unknown) => (typeof v === 'string' ? v : '');
    switch (e.type) {
      case 'token.issued':
        if (e.outcome !== 'success' || !e.subject) return;
        this.observe({
          kind: 'token.issued',
          time: e.ts,
          data: {
            sub: e.subject,
            jti: e.jti ?? '',
            aud: text(data['aud']),
            cls: text(data['cls']),
            tid: text(data['tid']),
            source: text(data['ip']),
          },
        });
        return;
      case 'task.opened':
      case 'task.closed':
        if (!e.subject) return;
        this.observe({
          kind: e.type,
          time: e.ts,
          data: { sub: e.subject, tid: text(data['tid']), reason: text(data['reason']) },
        } as Signal);
        return;
      case 'federation.token_replayed':
        this.observe({
          kind: 'federation.replay',
          time: e.ts,
          data: { issuer: text(data['issuer']), sub: e.subject ?? '', source: text(data['ip']) },
        });
        return;
      default:
        return;
    }
  }

  control(): DetectionControl | undefined {
    return this.#control;
  }

  /** The operator's switch: pauses or resumes every automatic response (findings are still recorded). */
  async setPaused(paused: boolean, by: string, reason: string): Promise<DetectionControl> {
    const c: DetectionControl = { paused, by, at: this.#ctx.clock.now(), reason };
    const event = await this.#ctx.store.transaction(async (tx) => {
      await tx.putDetectionControl(c);
      return this.#ctx.audit.append(
        {
          type: paused ? 'detection.paused' : 'detection.resumed',
          outcome: 'success',
          actor: by,
          data: { reason },
        },
        tx,
      );
    });
    this.#ctx.audit.noteCommitted(event);
    this.#control = c;
    return c;
  }

  async flushBaselines(): Promise<void> {
    const dirty = this.engine.takeDirty();
    if (dirty.length === 0) return;
    const now = this.#ctx.clock.now();
    await this.#ctx.store.putBaselines(
      dirty.map((b) => ({ workload: b.workload, data: baselineToJson(b), updatedAt: now })),
    );
  }

  /** Waits until every detection queued so far is handled (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  async #drain(): Promise<void> {
    for (let d = this.#queue.shift(); d; d = this.#queue.shift()) {
      try {
        await this.#handle(d);
      } catch (err) {
        this.#ctx.logger.error(
          { err: (err as Error).message, rule: d.rule.id },
          'a detection was not recorded',
        );
      }
    }
  }

  async #handle(d: Detection): Promise<void> {
    const ctx = this.#ctx;
    const { rule } = d;
    if (d.learning) {
      ctx.metrics.detections.inc({ rule: rule.id, outcome: 'learning' });
      return;
    }
    const now = ctx.clock.now();
    const outcome = await this.#respond(d, now);
    // Operator access is left alone entirely: no response, and no risk either.
    const raises =
      rule.mode === 'enforce' && rule.response !== 'alert' && d.workload !== '' && outcome !== 'protected';
    await this.#record(
      {
        rule: rule.id,
        severity: rule.severity,
        mode: rule.mode,
        workload: d.workload,
        jti: d.jti,
        tid: d.tid,
        evidence: {
          signals: [d.signal].slice(-EVIDENCE_SIGNALS),
          ...(d.signal.kind === 'usage' ? { source: d.signal.data.source } : {}),
          ...(d.signal.kind === 'token.refused' ? { source: d.signal.data.source } : {}),
          ...(Object.keys(d.read).length > 0 ? { read: d.read } : {}),
        },
        response: rule.response,
        outcome,
        raisesRisk: raises,
        actor: `detector:${rule.id}`,
        auditData: d.claimed !== '' ? { claimed_client_id: d.claimed } : {},
      },
      now,
    );
  }

  /**
   * Records a finding that no rule raised (a confirmed leak, docs/leaks.md) as the rules' findings are
   * recorded: stored, the workload's risk raised by its severity when `raisesRisk`, a
   * `detection.raised` event for nodes, verifiers and Shared Signals receivers, audited as `actor`,
   * and sent to the findings webhook. `also` writes more in the same transaction.
   */
  recordFinding(f: FindingInput): Promise<Finding> {
    return this.#record(f, this.#ctx.clock.now());
  }

  async #record(f: FindingInput, now: number): Promise<Finding> {
    const ctx = this.#ctx;
    const previousRisk = f.workload === '' ? 0 : this.risk.of(f.workload, now);
    const risk = f.raisesRisk && f.workload !== '' ? this.risk.raise(f.workload, f.severity, now) : undefined;
    const finding: Finding = {
      id: randomUUID(),
      rule: f.rule,
      severity: f.severity,
      mode: f.mode,
      workload: f.workload,
      jti: f.jti,
      tid: f.tid,
      createdAt: now,
      evidence: f.evidence,
      response: f.response,
      outcome: f.outcome,
      risk:
        f.workload === ''
          ? 0
          : risk
            ? Math.min(MAX_RISK, Math.floor(risk.score))
            : this.risk.of(f.workload, now),
      state: 'open',
      stateBy: null,
      stateAt: null,
      note: '',
    };
    const event = await ctx.store.transaction(async (tx) => {
      await tx.addFinding(finding);
      if (risk) await tx.putRisk(risk);
      if (f.workload !== '')
        await ctx.events.append(tx, EventType.detectionRaised, {
          id: finding.id,
          rule: f.rule,
          sub: f.workload,
          risk: finding.risk,
          ...(risk ? { risk_at: risk.at } : {}),
          previous_risk: previousRisk,
          response: f.response,
          outcome: f.outcome,
          ...(f.jti ? { jti: f.jti } : {}),
          ...(f.tid ? { tid: f.tid } : {}),
        });
      await f.also?.(tx, finding);
      return ctx.audit.append(
        {
          type: 'detection.raised',
          outcome: 'success',
          actor: f.actor,
          ...(f.workload !== '' ? { subject: f.workload } : {}),
          ...(f.jti ? { jti: f.jti } : {}),
          data: {
            finding: finding.id,
            rule: f.rule,
            severity: f.severity,
            mode: f.mode,
            response: f.response,
            outcome: f.outcome,
            risk: finding.risk,
            ...f.auditData,
            ...(finding.evidence.source !== undefined ? { source: finding.evidence.source } : {}),
            ...(f.tid ? { tid: f.tid } : {}),
          },
        },
        tx,
      );
    });
    ctx.audit.noteCommitted(event);
    if (f.workload !== '') ctx.events.notify();
    ctx.metrics.detections.inc({ rule: f.rule, outcome: f.outcome });
    this.webhook?.send(finding);
    return finding;
  }

  /** Takes the rule's response if it may; returns what was done, or why nothing was. */
  async #respond(d: Detection, now: number): Promise<FindingOutcome> {
    const ctx = this.#ctx;
    const { rule } = d;
    if (rule.mode === 'observe') return 'observe';
    if (!ACTIONS.has(rule.response)) return rule.response;
    if (d.workload === '' || this.#protected(d)) return 'protected';
    if (this.#control?.paused) return 'paused';
    if (!(await this.#spend(rule.id, now))) return 'budget';
    const actor = `detector:${rule.id}`;
    const reason = `detection ${rule.id}`;
    try {
      switch (rule.response) {
        case 'revoke_token':
          if (!d.jti) return 'failed';
          await ctx.actions.revoke('jti', d.jti, reason, actor);
          break;
        case 'revoke_task':
          if (!d.tid) return 'failed';
          await ctx.actions.revoke('tid', d.tid, reason, actor);
          break;
        case 'reattest':
          await ctx.actions.revoke('sub', d.workload, reason, actor);
          break;
        case 'quarantine':
          if (!(await ctx.actions.quarantine(d.workload, reason, actor))) return 'failed';
          break;
        default:
          break;
      }
      return rule.response;
    } catch (err) {
      ctx.logger.error({ err: (err as Error).message, rule: rule.id }, 'an automatic response failed');
      return 'failed';
    }
  }

  /** Operator and admin access is never revoked automatically. */
  #protected(d: Detection): boolean {
    if (d.workload.startsWith('operator:')) return true;
    const s = d.signal;
    return s.kind === 'usage' && s.data.aud === this.#ctx.adminAudience;
  }

  /**
   * Takes one response from this minute's budgets; false when one is spent. The first time in a minute
   * that a rule's budget, or the budget of all rules, is found spent, a critical alert names it: a rule
   * held back while the others act is not the same news as every response held back. The alert is
   * written before the finding, so `settled()` covers it.
   */
  async #spend(rule: string, now: number): Promise<boolean> {
    const d = this.#ctx.settings.detection;
    const minute = Math.floor(now / 60_000);
    const b = this.#budget;
    if (b.minute !== minute) {
      b.minute = minute;
      b.total = 0;
      b.byRule.clear();
      b.alerted.clear();
    }
    const ruleCount = b.byRule.get(rule) ?? 0;
    if (b.total >= d.responsesPerMinute || ruleCount >= d.ruleResponsesPerMinute) {
      const scope = b.total >= d.responsesPerMinute ? 'all rules' : rule;
      if (!b.alerted.has(scope)) {
        b.alerted.add(scope);
        await this.#budgetAlert(rule, scope);
      }
      return false;
    }
    b.total++;
    b.byRule.set(rule, ruleCount + 1);
    return true;
  }

  async #budgetAlert(rule: string, scope: string): Promise<void> {
    const ctx = this.#ctx;
    const d = ctx.settings.detection;
    const held =
      scope === 'all rules'
        ? 'every automatic response paused for the rest of the minute'
        : `automatic responses of ${rule} paused for the rest of the minute`;
    ctx.logger.error({ rule, scope }, `${held}: budget spent`);
    ctx.metrics.detections.inc({ rule, outcome: 'budget_alert' });
    await ctx.audit
      .append({
        type: 'detection.budget_exhausted',
        outcome: 'success',
        actor: 'detector',
        data: {
          severity: 'critical',
          rule,
          scope,
          responses_per_minute: d.responsesPerMinute,
          rule_responses_per_minute: d.ruleResponsesPerMinute,
          message: `${held}; findings are still recorded`,
        },
      })
      .catch((err: unknown) =>
        ctx.logger.error({ err: (err as Error).message }, 'could not audit the budget alert'),
      );
  }
}

/** The token as revocation predicates see it. */
function revocable(token: IssuedToken): RevocableToken {
  return {
    jti: token.jti,
    sub: token.sub,
    client_id: token.clientId,
    cls: token.cls,
    kid: token.kid,
    iat: token.iat,
    // As they are (absent ones undefined): conditional spreads here cost a µs on every record.
    tid: token.tid,
    ajti: token.ajti,
  };
}

/** The engine's settings from the server's; bench/detect.mjs builds its engine-alone run with them too. */
export function engineSettings(ctx: Pick<DetectorDeps, 'settings'>): EngineSettings {
  const d = ctx.settings.detection;
  return {
    learningMs: d.learningPeriod * 1000,
    learningEvents: d.learningEvents,
    hostsWindowMs: d.hostsWindow * 1000,
    replayWindowMs: d.replayWindow * 1000,
    refusalWindowMs: 60_000,
  };
}
