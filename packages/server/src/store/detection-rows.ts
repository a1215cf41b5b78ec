import type { DetectionConfig } from '../detection/detection-config.js';
import type {
  DetectionControl,
  Finding,
  FindingEvidence,
  FindingQuery,
  StoredBaseline,
  WorkloadRisk,
} from '../detection/finding.js';
import type { Row } from './rows.js';

/** Rows of the detection tables to domain records, and the findings query, shared by every SQL adapter. */

/** The most findings one `listFindings` returns, whatever the caller asks for: a page, never the table. */
export const MAX_FINDINGS_PAGE = 1000;

/** `limit` as a page size from 0 to `MAX_FINDINGS_PAGE` (SQLite reads a negative LIMIT as none at all). */
export function findingsPageSize(limit: number): number {
  if (Number.isNaN(limit)) return 0;
  return Math.min(MAX_FINDINGS_PAGE, Math.max(0, Math.trunc(limit)));
}

/**
 * The WHERE clause of `q` ("" when it filters nothing) and its values, each placeholder written by
 * `param` from its position (1 first): `?` for SQLite, `$n` for PostgreSQL. Columns and operators are
 * fixed, never caller text, and the clauses come in one order, so a statement's text depends only on
 * which filters are set (sixteen shapes at most).
 */
export function findingsWhere(
  q: FindingQuery,
  param: (n: number) => string,
): { where: string; values: unknown[] } {
  const values: unknown[] = [];
  const p = (v: unknown) => param(values.push(v));
  const clauses: string[] = [];
  if (q.state !== undefined) clauses.push(`state = ${p(q.state)}`);
  if (q.workload !== undefined) clauses.push(`workload = ${p(q.workload)}`);
  if (q.rule !== undefined) clauses.push(`rule = ${p(q.rule)}`);
  // One row value, so that each index on (…, created_at, id) reads it as one range.
  if (q.before !== undefined)
    clauses.push(`(created_at, id) < (${p(q.before.createdAt)}, ${p(q.before.id)})`);
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', values };
}

/** The columns of `findings`, in the order of `findingValues`. */
export const FINDING_COLUMNS =
  'id, rule, severity, mode, workload, jti, tid, created_at, evidence, response, outcome, risk, state, state_by, state_at, note';

/** A finding's column values, in the order of `FINDING_COLUMNS`. */
export function findingValues(f: Finding): unknown[] {
  return [
    f.id,
    f.rule,
    f.severity,
    f.mode,
    f.workload,
    f.jti,
    f.tid,
    f.createdAt,
    JSON.stringify(f.evidence),
    f.response,
    f.outcome,
    f.risk,
    f.state,
    f.stateBy,
    f.stateAt,
    f.note,
  ];
}

export function toFinding(r: Row): Finding {
  return {
    id: r['id'] as string,
    rule: r['rule'] as string,
    severity: r['severity'] as Finding['severity'],
    mode: r['mode'] as Finding['mode'],
    workload: r['workload'] as string,
    jti: (r['jti'] as string | null) ?? null,
    tid: (r['tid'] as string | null) ?? null,
    createdAt: r['created_at'] as number,
    evidence: JSON.parse(r['evidence'] as string) as FindingEvidence,
    response: r['response'] as Finding['response'],
    outcome: r['outcome'] as Finding['outcome'],
    risk: r['risk'] as number,
    state: r['state'] as Finding['state'],
    stateBy: (r['state_by'] as string | null) ?? null,
    stateAt: (r['state_at'] as number | null) ?? null,
    note: r['note'] as string,
  };
}

export function toStoredBaseline(r: Row): StoredBaseline {
  return {
    workload: r['workload'] as string,
    data: r['data'] as string,
    updatedAt: r['updated_at'] as number,
  };
}

export function toWorkloadRisk(r: Row): WorkloadRisk {
  return { workload: r['workload'] as string, score: r['score'] as number, at: r['at'] as number };
}

/** SQLite keeps `paused` as 0 or 1, PostgreSQL as a boolean. */
export function toDetectionControl(r: Row): DetectionControl {
  return {
    paused: r['paused'] === true || r['paused'] === 1,
    by: r['set_by'] as string,
    at: r['set_at'] as number,
    reason: r['reason'] as string,
  };
}

/** The stored detection config: a JSON document, read back as written (`putDetectionConfig`). */
export function toDetectionConfig(r: Row): DetectionConfig {
  const c = JSON.parse(r['data'] as string) as Partial<DetectionConfig>;
  return { rules: c.rules ?? [], networks: c.networks ?? [] };
}

export function detectionConfigJson(c: DetectionConfig): string {
  return JSON.stringify({ rules: c.rules, networks: c.networks });
}
