import type { QueuedSet, SsfStream, SsfStreamStatus } from '../ssf/stream-record.js';
import type { UsageAggregate } from '../usage/usage-aggregate.js';
import type { Row } from './rows.js';

/** Rows of the usage and Shared Signals tables to domain records, shared by every SQL adapter. */

export function toUsageAggregate(r: Row): UsageAggregate {
  return {
    jti: r['jti'] as string,
    sub: r['sub'] as string,
    tid: (r['tid'] as string | null) ?? null,
    operation: r['operation'] as string,
    source: r['source'] as string,
    decision: r['decision'] as UsageAggregate['decision'],
    reason: r['reason'] as string,
    reporter: r['reporter'] as string,
    userAgent: (r['user_agent'] as string | null) ?? null,
    count: Number(r['count']),
    firstSeen: r['first_seen'] as number,
    lastSeen: r['last_seen'] as number,
  };
}

/** The stream fields kept as one JSON column; the rest have columns of their own. */
interface StreamSpec {
  aud: string[];
  deliveryMethod: string;
  endpointUrl: string;
  eventsRequested: string[];
  description: string | null;
  fromSeq: number;
}

export function streamSpec(s: SsfStream): string {
  const spec: StreamSpec = {
    aud: s.aud,
    deliveryMethod: s.deliveryMethod,
    endpointUrl: s.endpointUrl,
    eventsRequested: s.eventsRequested,
    description: s.description,
    fromSeq: s.fromSeq,
  };
  return JSON.stringify(spec);
}

export function toSsfStream(r: Row): SsfStream {
  const spec = JSON.parse(r['spec'] as string) as StreamSpec;
  const sealed = r['sealed_authorization'] as Buffer | null;
  return {
    id: r['id'] as string,
    owner: r['owner'] as string,
    ...spec,
    sealedAuthorization: sealed === null || sealed === undefined ? null : Buffer.from(sealed),
    status: r['status'] as SsfStreamStatus,
    statusReason: (r['status_reason'] as string | null) ?? null,
    createdAt: r['created_at'] as number,
    updatedAt: r['updated_at'] as number,
  };
}

export function toQueuedSet(r: Row): QueuedSet {
  return {
    streamId: r['stream_id'] as string,
    jti: r['jti'] as string,
    eventSeq: (r['event_seq'] as number | null) ?? null,
    payload: JSON.parse(r['payload'] as string) as Record<string, unknown>,
    createdAt: r['created_at'] as number,
    attempts: r['attempts'] as number,
    nextAttemptAt: r['next_attempt_at'] as number,
    lastError: (r['last_error'] as string | null) ?? null,
  };
}
