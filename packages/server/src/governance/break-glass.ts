/**
 * Break-glass for workloads (docs/governance.md): a time-boxed elevation that lets one workload get
 * tokens of one class it may not normally use. Two people: one operator asks, another approves; or the
 * emergency path grants at once and owes a review within 24 hours. Every grant is closed with a review
 * note, and its tokens die with it (they are issued in the grant's task).
 */

/**
 * `pending`: asked, not approved. `active`: granted; tokens of the class may be issued until `endsAt`.
 * `ended`: over (elapsed, closed, or never granted); a grant without `review` is still an open review.
 */
export type BreakGlassState = 'pending' | 'active' | 'ended';

export interface BreakGlass {
  id: string;
  workload: string;
  /** The class the workload is elevated to. */
  cls: string;
  reason: string;
  /** Seconds the elevation lasts once granted. */
  duration: number;
  emergency: boolean;
  requestedBy: string;
  /** Milliseconds since the epoch, as every time here. */
  requestedAt: number;
  state: BreakGlassState;
  /** The second operator; absent on the emergency path. */
  approvedBy?: string;
  grantedAt?: number;
  endsAt?: number;
  /** The task the grant's tokens are issued in: closing it revokes them. */
  taskId?: string;
  endedAt?: number;
  endCause?: 'expired' | 'closed' | 'cancelled';
  /** Emergency grants: the post-incident review is due by then. */
  reviewDue?: number;
  review?: { note: string; by: string; at: number };
}

/** What `listBreakGlass` selects; every field narrows. */
export interface BreakGlassQuery {
  workload?: string;
  state?: BreakGlassState;
  /** True: only grants not yet closed with a review note (what `govern verify` lists as open). */
  openReview?: boolean;
  /** Only grants whose `endsAt` is at or before this time (ms): the active ones past their end. */
  endsBy?: number;
  limit: number;
}

/** How long an emergency grant may go without its post-incident review. */
export const EMERGENCY_REVIEW_WITHIN_MS = 24 * 3_600_000;
