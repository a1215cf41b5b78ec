import type { Response, Severity } from './rule.js';
import type { Signal } from './signal.js';

export const FINDING_STATES = ['open', 'acknowledged', 'resolved', 'false_positive'] as const;
export type FindingState = (typeof FINDING_STATES)[number];

/**
 * What was done about a finding: the rule's response when it was taken, or why none was: the rule only
 * observes (`observe`), the workload's baseline is still learning (`learning`), responses are paused by
 * an operator (`paused`) or for the rest of the minute because the budget ran out (`budget`), the
 * target is operator or admin access (`protected`), the rule only alerts (`alert`), the response
 * failed (`failed`, the service log says why), or a leaked token was already expired or revoked, so
 * there was nothing to do (`inactive`).
 */
export type FindingOutcome =
  | Response
  | 'observe'
  | 'learning'
  | 'paused'
  | 'budget'
  | 'protected'
  | 'failed'
  | 'inactive';

/** One detection: a rule fired on a signal. */
export interface Finding {
  id: string;
  rule: string;
  severity: Severity;
  mode: 'observe' | 'enforce';
  /** The workload it is about; "" when the signal names a client only as claimed (`token.refused`). */
  workload: string;
  jti: string | null;
  tid: string | null;
  /** Milliseconds. */
  createdAt: number;
  /** The signals that triggered it (the last one last) and what the rule read. */
  evidence: FindingEvidence;
  /** The response the rule asks for, and what was done. */
  response: Response;
  outcome: FindingOutcome;
  /** The workload's risk after the finding (0-100). */
  risk: number;
  state: FindingState;
  /** Who last changed the state, when (ms), and their note. */
  stateBy: string | null;
  stateAt: number | null;
  note: string;
}

export interface FindingEvidence {
  signals: Signal[];
  /** The source address of the triggering use, when there is one. */
  source?: string;
  /** What the condition read besides the event (baseline features, token state), as it read them. */
  read?: Record<string, unknown>;
}

/**
 * A place in the listing of findings (newest first, then by id): a finding, or any `{ createdAt, id }`.
 * `id: ""` stands before every finding of its millisecond.
 */
export type FindingCursor = Pick<Finding, 'createdAt' | 'id'>;

export interface FindingQuery {
  state?: FindingState | undefined;
  workload?: string | undefined;
  rule?: string | undefined;
  /**
   * Only findings listed after this place: created before `createdAt`, or in that millisecond with a
   * smaller id. The next page is the one `before` the last finding of a page, so findings that share a
   * millisecond are neither skipped nor listed twice; `{ createdAt: t, id: '' }` is "created before t".
   */
  before?: FindingCursor | undefined;
  limit: number;
}

/** A workload's risk as last raised: `score` at `at` (ms), decaying from there with the half-life. */
export interface WorkloadRisk {
  workload: string;
  score: number;
  at: number;
}

/** The operator's switch over automatic responses. */
export interface DetectionControl {
  paused: boolean;
  /** The operator who last set it, when (ms), and why. */
  by: string;
  at: number;
  reason: string;
}

/** A baseline as the store keeps it (`baselineToJson`). */
export interface StoredBaseline {
  workload: string;
  data: string;
  updatedAt: number;
}
