/** One entry of the event log that verifiers and nodes follow (revocations, key and workload changes). */
export interface StreamEvent {
  seq: number;
  /** Milliseconds. */
  ts: number;
  type: string;
  data: Record<string, unknown>;
}
