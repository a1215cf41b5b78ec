export type SsfStreamStatus = 'enabled' | 'paused' | 'disabled';

/** Who owns a stream: an operator, or a receiver workload (which may own only so many). */
export type OwnerKind = 'operator' | 'receiver';

export const ownerKind = (owner: string): OwnerKind =>
  owner.startsWith('operator:') ? 'operator' : 'receiver';

/** A Shared Signals (SSF 1.0) event stream to one receiver. */
export interface SsfStream {
  id: string;
  /** Who manages it: `operator:<name>`, or the receiver workload that created it. */
  owner: string;
  /** The SETs' `aud`: the receiver. */
  aud: string[];
  /** `urn:ietf:rfc:8935` (push) or `urn:ietf:rfc:8936` (poll). */
  deliveryMethod: string;
  /** Push: the receiver's endpoint. Poll: the transmitter's endpoint for this stream. */
  endpointUrl: string;
  /** Push: the `Authorization` header value to send, sealed with the key-encryption key. */
  sealedAuthorization: Buffer | null;
  eventsRequested: string[];
  description: string | null;
  status: SsfStreamStatus;
  statusReason: string | null;
  /** The event log's last seq when the stream was created: only later events are delivered. */
  fromSeq: number;
  /** Milliseconds. */
  createdAt: number;
  updatedAt: number;
}

/** A Security Event Token waiting for delivery on a stream (signed when sent, so key rotation never strands it). */
export interface QueuedSet {
  streamId: string;
  jti: string;
  /** The event-log seq that caused it; null for verification and stream-updated events. */
  eventSeq: number | null;
  /** The SET claims. */
  payload: Record<string, unknown>;
  /** Milliseconds. */
  createdAt: number;
  /** Push attempts made so far. */
  attempts: number;
  /** Milliseconds: a push is not tried before this time. */
  nextAttemptAt: number;
  lastError: string | null;
}
