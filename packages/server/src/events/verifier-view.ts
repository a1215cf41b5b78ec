import { revocationDigest } from '@writ/sdk/verifier';
import {
  EventType,
  type LogEventData,
  type Revocation,
  type VerifierEventData,
  type VerifierRevocation,
} from '@writ/sdk/wire';
import { frame } from './stream.js';
import type { StreamEvent } from './stream-event.js';

/**
 * What a verifier is sent of the event log: what it enforces, and nothing else. Verifiers are
 * workloads, many run by other teams, and each one hears every event; so the stream carries the
 * revocation predicates (their values as digests), key rotations (kids, which the JWKS publishes
 * anyway) and policy bundle versions, and never what operators and workloads wrote (reasons, actors,
 * task labels and purposes) or which workloads changed. Every other event goes out as a bare `position`
 * (its seq), so a verifier still resumes after it and can tell when it has caught up. Fields are
 * copied by name: a field added to an event later is not sent until it is added here.
 */

/** A stored revocation as verifiers receive it: the predicate, its value as `value_sha256`. */
export function verifierRevocation(r: Revocation): VerifierRevocation {
  return {
    seq: r.seq,
    kind: r.kind,
    value_sha256: revocationDigest(r.value),
    issued_before: r.issued_before,
    created_at: r.created_at,
    ...(r.expires_at !== undefined ? { expires_at: r.expires_at } : {}),
  };
}

/** Frames already built, by event: every stream of a node is handed the same event object. */
const built = new WeakMap<StreamEvent, string>();

/** The Server-Sent Events frame a verifier is sent for one event of the log. */
export function verifierFrame(e: StreamEvent): string {
  let text = built.get(e);
  if (text === undefined) {
    text = frameOf(e);
    built.set(e, text);
  }
  return text;
}

function frameOf(e: StreamEvent): string {
  const at = { seq: e.seq, ts: e.ts };
  switch (e.type) {
    case EventType.revocation: {
      const { revocation } = e.data as LogEventData['revocation'];
      const data: VerifierEventData['revocation'] = { revocation: verifierRevocation(revocation) };
      return frame({ ...at, type: e.type, data });
    }
    case EventType.keysRotated: {
      const { activated, retired, next } = e.data as LogEventData['keys.rotated'];
      const data: VerifierEventData['keys.rotated'] = { activated, retired, next };
      return frame({ ...at, type: e.type, data });
    }
    case EventType.policyBundle: {
      const { version, policy_version } = e.data as LogEventData['policy.bundle'];
      const data: VerifierEventData['policy.bundle'] = { version, policy_version };
      return frame({ ...at, type: e.type, data });
    }
    default: {
      const data: VerifierEventData['position'] = { seq: e.seq };
      return `id: ${e.seq}\nevent: ${EventType.position}\ndata: ${JSON.stringify(data)}\n\n`;
    }
  }
}
