/** One unit of work; tokens issued for it carry its id as `tid` and die when it closes. */
export interface Task {
  id: string;
  workload: string;
  purpose: string;
  labels: Record<string, string>;
  /** The workload itself or `operator:<name>`. */
  openedBy: string;
  /** Milliseconds. */
  openedAt: number;
  /** Milliseconds: the server closes the task at this time. */
  deadline: number;
  /** Milliseconds: when set, the task closes unless its owner renews the lease before then. */
  leaseUntil: number | null;
  closedAt: number | null;
  closeReason: string | null;
}
