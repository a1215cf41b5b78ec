import {
  type Baseline,
  type BaselineFeatures,
  type BaselineSettings,
  baselineFeatures,
  emptyBaseline,
  observeIssuance,
  observeUse,
} from './baseline.js';
import type { DetectionRule } from './rule.js';
import { type Signal, type SignalKind, signalWorkload } from './signal.js';

export interface EngineSettings extends BaselineSettings {
  /** A token seen from two networks within this window (ms) counts both (`token.networks`). */
  replayWindowMs: number;
  /** Refusals of one claimed client are counted over this window (ms) (`workload.refusals`). */
  refusalWindowMs: number;
}

/** What the engine needs to know about workloads beyond the signals. */
export interface WorkloadFacts {
  /** The registered environment of a workload, "" when it has none or is not registered. */
  environment(workload: string): string;
}

/** A rule that fired: what it fired on, and what its condition read. */
export interface Detection {
  rule: DetectionRule;
  signal: Signal;
  /** The workload it is about; "" when the signal only claims one (`token.refused`). */
  workload: string;
  /** What the signal names as claimed (the client id of a refused request), for the finding. */
  claimed: string;
  jti: string | null;
  tid: string | null;
  read: Record<string, unknown>;
  /** The rule reads the baseline and the workload's is still learning: it only observes. */
  learning: boolean;
}

const TOKEN_STATE_LIMIT = 200_000;
const REFUSAL_STATE_LIMIT = 50_000;
const COOLDOWN_LIMIT = 100_000;

/**
 * Evaluates the rules on each signal, synchronously and in memory: it keeps the per-workload baselines
 * (updated as it goes; `takeDirty` hands the changed ones to be stored), the networks each token was
 * recently used from, refusal counts per claimed client and each rule's cooldown per workload. A rule is
 * evaluated only on signals of its kind; its condition sees `event` (the signal's payload with `time`),
 * `baseline` (the workload's features before this signal), `token` and `workload`.
 */
export class DetectionEngine {
  readonly #s: EngineSettings;
  readonly #facts: WorkloadFacts;
  #byKind = new Map<SignalKind, DetectionRule[]>();
  readonly #baselines = new Map<string, Baseline>();
  readonly #dirty = new Set<string>();
  readonly #tokens = new Map<string, Map<string, number>>();
  readonly #refusals = new Map<string, { count: number; since: number }>();
  readonly #quietUntil = new Map<string, number>();
  /** Workloads under break-glass, until when (ms): watched at the highest sensitivity meanwhile. */
  readonly #heightened = new Map<string, number>();
  /** Signals evaluated and rules run, for the benchmark and metrics. */
  readonly stats = { signals: 0, evaluations: 0, detections: 0 };

  constructor(settings: EngineSettings, rules: readonly DetectionRule[], facts: WorkloadFacts) {
    this.#s = settings;
    this.#facts = facts;
    this.setRules(rules);
  }

  /**
   * Watches `workload` at the highest sensitivity until `until` (ms): every match of a rule is a
   * detection (no cooldown holds one back), and a rule that reads a baseline still learning acts
   * rather than only observes. A break-glass grant does this for its workload while it is active.
   */
  heighten(workload: string, until: number): void {
    this.#heightened.set(workload, Math.max(until, this.#heightened.get(workload) ?? 0));
  }

  /** Ends `heighten` for `workload` (its break-glass ended). */
  calm(workload: string): void {
    this.#heightened.delete(workload);
  }

  /** Whether `workload` is watched at the highest sensitivity at `time`. */
  heightened(workload: string, time: number): boolean {
    return (this.#heightened.get(workload) ?? 0) > time;
  }

  /** Replaces the rule set (a config apply); cooldowns of rules that stay are kept. */
  setRules(rules: readonly DetectionRule[]): void {
    const byKind = new Map<SignalKind, DetectionRule[]>();
    for (const r of rules) {
      if (!r.enabled) continue;
      const list = byKind.get(r.signal) ?? [];
      list.push(r);
      byKind.set(r.signal, list);
    }
    this.#byKind = byKind;
  }

  /** Loads stored baselines (at start). */
  loadBaselines(baselines: Iterable<Baseline>): void {
    for (const b of baselines) this.#baselines.set(b.workload, b);
  }

  baseline(workload: string): Baseline | undefined {
    return this.#baselines.get(workload);
  }

  /** The baselines changed since the last call. */
  takeDirty(): Baseline[] {
    const out: Baseline[] = [];
    for (const w of this.#dirty) {
      const b = this.#baselines.get(w);
      if (b) out.push(b);
    }
    this.#dirty.clear();
    return out;
  }

  /** Evaluates the rules on one signal, then takes it into the baseline; returns what fired. */
  observe(s: Signal): Detection[] {
    this.stats.signals++;
    const workload = signalWorkload(s) ?? '';
    const rules = this.#byKind.get(s.kind);
    let token: Record<string, unknown> | undefined;
    let facts: Record<string, unknown> | undefined;
    if (s.kind === 'usage')
      token = {
        // A presentation refused with a security signal (no key, revoked, expired…) is no use of the
        // token: its own rule judges it, and counting its network would make a key-less copy, or a
        // revoked token presented again, a "replay" too (a second finding, a second revocation).
        networks: this.#tokenNetworks(s.data.jti, s.data.network, s.time, s.data.signal === ''),
        revoked: s.data.token_revoked,
      };
    if (s.kind === 'token.refused')
      facts = {
        id: s.data.client_id,
        environment: '',
        refusals: this.#countRefusal(s.data.client_id, s.time),
      };
    const found: Detection[] = [];
    if (rules) {
      const b = workload === '' ? undefined : this.#baselineOf(workload, s.time);
      let features: BaselineFeatures | undefined;
      // Not `{ ...s.data, kind, time }`: a spread followed by keys takes V8's slow path, several µs a
      // signal (bench/detect.mjs, part a); a copy and two stores take a tenth of that.
      const event: Record<string, unknown> = Object.assign({}, s.data);
      event['kind'] = s.kind;
      event['time'] = s.time;
      const vars: Record<string, unknown> = {
        event,
        token: token ?? {},
        workload: facts ?? {
          id: workload,
          environment: workload === '' ? '' : this.#facts.environment(workload),
        },
      };
      const heightened = workload !== '' && this.heightened(workload, s.time);
      for (const rule of rules) {
        if (rule.readsBaseline) {
          if (!b) continue;
          features ??= baselineFeatures(b, observation(s), this.#s);
          vars['baseline'] = features;
        }
        this.stats.evaluations++;
        if (rule.program.run(vars) !== true) continue;
        const subject = workload === '' ? `claimed:${(facts?.['id'] as string) ?? ''}` : workload;
        const key = `${rule.id}\n${subject}`;
        const quiet = this.#quietUntil.get(key);
        if (quiet !== undefined && quiet > s.time && !heightened) continue;
        if (this.#quietUntil.size >= COOLDOWN_LIMIT) this.#forgetQuiet(s.time);
        this.#quietUntil.set(key, s.time + rule.cooldownMs);
        const read: Record<string, unknown> = {};
        if (rule.program.reads.has('baseline') && features) read['baseline'] = { ...features };
        if (rule.program.reads.has('token')) read['token'] = vars['token'];
        if (rule.program.reads.has('workload')) read['workload'] = vars['workload'];
        found.push({
          rule,
          signal: s,
          workload,
          claimed: s.kind === 'token.refused' ? s.data.client_id : '',
          jti: 'jti' in s.data && s.data.jti !== '' ? s.data.jti : null,
          tid: 'tid' in s.data && s.data.tid !== '' ? s.data.tid : null,
          read,
          learning: rule.readsBaseline && features?.learning === true && !heightened,
        });
      }
    }
    this.#learn(s, workload);
    this.stats.detections += found.length;
    return found;
  }

  #baselineOf(workload: string, time: number): Baseline {
    let b = this.#baselines.get(workload);
    if (!b) {
      b = emptyBaseline(workload, time);
      this.#baselines.set(workload, b);
    }
    return b;
  }

  /** Takes the signal into its workload's baseline: allowed uses and issuances only. */
  #learn(s: Signal, workload: string): void {
    if (workload === '') return;
    if (s.kind === 'usage' && s.data.decision === 'allow') {
      observeUse(this.#baselineOf(workload, s.time), observation(s), this.#s);
      this.#dirty.add(workload);
    } else if (s.kind === 'token.issued') {
      observeIssuance(this.#baselineOf(workload, s.time), s.time);
      this.#dirty.add(workload);
    }
  }

  /** The distinct networks `jti` was used from within the window, this use included when `counts`. */
  #tokenNetworks(jti: string, network: string, time: number, counts: boolean): number {
    let seen = this.#tokens.get(jti);
    if (!seen && !counts) return 0;
    if (!seen) {
      if (this.#tokens.size >= TOKEN_STATE_LIMIT) {
        // The oldest entries go first (a Map iterates in insertion order).
        let drop = TOKEN_STATE_LIMIT / 10;
        for (const k of this.#tokens.keys()) {
          this.#tokens.delete(k);
          if (--drop <= 0) break;
        }
      }
      seen = new Map();
      this.#tokens.set(jti, seen);
    }
    if (counts) {
      const last = seen.get(network);
      if (last === undefined || time > last) seen.set(network, time);
      // Nearly every token is used from one network, this one: nothing else to count or forget.
      if (seen.size === 1) return 1;
    }
    const since = time - this.#s.replayWindowMs;
    let n = 0;
    for (const [net, at] of seen) {
      if (at >= since) n++;
      else seen.delete(net);
    }
    return n;
  }

  #countRefusal(clientId: string, time: number): number {
    let r = this.#refusals.get(clientId);
    if (!r || time - r.since > this.#s.refusalWindowMs) {
      if (!r && this.#refusals.size >= REFUSAL_STATE_LIMIT) this.#refusals.clear();
      r = { count: 0, since: time };
      this.#refusals.set(clientId, r);
    }
    return ++r.count;
  }

  #forgetQuiet(now: number): void {
    for (const [k, until] of this.#quietUntil) if (until <= now) this.#quietUntil.delete(k);
    if (this.#quietUntil.size >= COOLDOWN_LIMIT) this.#quietUntil.clear();
  }
}

function observation(s: Signal): {
  time: number;
  network: string;
  source: string;
  userAgent: string;
  audience: string;
  operation: string;
} {
  if (s.kind === 'usage')
    return {
      time: s.time,
      network: s.data.network,
      source: s.data.source,
      userAgent: s.data.user_agent,
      audience: s.data.aud,
      operation: s.data.operation,
    };
  return { time: s.time, network: '', source: '', userAgent: '', audience: '', operation: '' };
}
