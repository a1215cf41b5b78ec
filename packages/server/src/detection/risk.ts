import { MAX_RISK } from '@writ/sdk/wire';
import type { WorkloadRisk } from './finding.js';
import type { Severity } from './rule.js';

/** Points a finding adds to its workload's risk, by severity, and how fast risk halves (ms). */
export interface RiskSettings {
  points: Record<Severity, number>;
  halfLifeMs: number;
}

/**
 * Each workload's risk, 0 to 100: findings add points by severity and it halves every half-life. Read at
 * every issuance (the `risk` of the policy context), so it is held in memory; the store keeps the last
 * raised value of each, which nodes load at start and follow through the event log.
 */
export class RiskBook {
  readonly #scores = new Map<string, WorkloadRisk>();
  readonly #s: RiskSettings;

  constructor(settings: RiskSettings, stored: readonly WorkloadRisk[] = []) {
    this.#s = settings;
    for (const r of stored) this.#scores.set(r.workload, r);
  }

  /** The risk of `workload` at `now`, an integer from 0 to 100 (0 for one never raised). */
  of(workload: string, now: number): number {
    const r = this.#scores.get(workload);
    return r ? riskAt(r, now, this.#s.halfLifeMs) : 0;
  }

  /** Adds a severity's points at `now`; returns the new row to store. */
  raise(workload: string, severity: Severity, now: number): WorkloadRisk {
    const current = this.#scores.get(workload);
    const base = current ? decay(current.score, current.at, now, this.#s.halfLifeMs) : 0;
    const row = { workload, score: Math.min(MAX_RISK, base + this.#s.points[severity]), at: now };
    this.#scores.set(workload, row);
    return row;
  }

  /** Takes a row another node stored (or an operator's reset), if it is newer than what is held. */
  apply(row: WorkloadRisk): void {
    const held = this.#scores.get(row.workload);
    if (!held || row.at >= held.at) this.#scores.set(row.workload, row);
  }

  /** Workloads with a risk above zero at `now`, highest first. */
  list(now: number): Array<{ workload: string; risk: number }> {
    return [...this.#scores.keys()]
      .map((workload) => ({ workload, risk: this.of(workload, now) }))
      .filter((r) => r.risk > 0)
      .sort((a, b) => b.risk - a.risk || a.workload.localeCompare(b.workload));
  }
}

/** A stored risk row's risk at `now`, an integer from 0 to 100. */
export function riskAt(r: WorkloadRisk, now: number, halfLifeMs: number): number {
  return Math.min(MAX_RISK, Math.max(0, Math.floor(decay(r.score, r.at, now, halfLifeMs))));
}

function decay(score: number, at: number, now: number, halfLifeMs: number): number {
  return score * 0.5 ** (Math.max(0, now - at) / halfLifeMs);
}
