import { revocationDigest } from '@writ/sdk/verifier';
import {
  EventType,
  type LogEventData,
  type Revocation,
  type VerifierEventData,
  type VerifierRevocation,
  type VerifierRisk,
} from '@writ/sdk/wire';
import type { WorkloadRisk } from '../detection/finding.js';
import { riskAt } from '../detection/risk.js';
import { frame } from './stream.js';
import type { StreamEvent } from './stream-event.js';

/**
 * What a verifier is sent of the event log: what it enforces, and nothing else. Verifiers are
 * workloads, many run by other teams, and each one hears every event; so the stream carries the
 * revocation predicates (their values as digests), key rotations (kids, which the JWKS publishes
 * anyway), policy bundle versions and workloads' risks (the workload as a digest), and never what
 * operators and workloads wrote (reasons, actors, task labels and purposes) or which workloads changed.
 * Every other event goes out as a bare `position` (its seq), so a verifier still resumes after it and
 * can tell when it has caught up. Fields are copied by name: a field added to an event later is not
 * sent until it is added here.
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

/**
 * A workload's risk as verifiers receive it: the workload as `sub_sha256` (the digest revocation values
 * travel as, so a verifier finds the `sub` of a token it is shown), the risk as of `at` (ms), and how
 * fast it decays (`riskHalfLife`, seconds), so the verifier's figure follows the server's.
 */
function verifierRisk(workload: string, risk: number, at: number, riskHalfLife: number): VerifierRisk {
  return { sub_sha256: revocationDigest(workload), risk, risk_at: at, half_life: riskHalfLife };
}

/** What the projection needs of the node's settings. */
export interface VerifierView {
  /** `detection.risk_half_life`, seconds. */
  riskHalfLife: number;
}

/**
 * A snapshot's `risks`: the stored risk of each workload whose risk is above zero at `now`, each as of
 * the time it was raised, as its event said: the event of a finding committed after the rows were read
 * then still counts (a verifier takes the later of two announcements of one workload).
 */
export function verifierRisks(
  rows: readonly WorkloadRisk[],
  now: number,
  view: VerifierView,
): VerifierRisk[] {
  const halfLifeMs = view.riskHalfLife * 1000;
  return rows
    .filter((r) => riskAt(r, now, halfLifeMs) > 0)
    .map((r) => verifierRisk(r.workload, riskAt(r, r.at, halfLifeMs), r.at, view.riskHalfLife));
}

/** Frames already built, by event: every stream of a node is handed the same event object. */
const built = new WeakMap<StreamEvent, string>();

/** The Server-Sent Events frame a verifier is sent for one event of the log. */
export function verifierFrame(e: StreamEvent, view: VerifierView): string {
  let text = built.get(e);
  if (text === undefined) {
    text = frameOf(e, view);
    built.set(e, text);
  }
  return text;
}

function frameOf(e: StreamEvent, view: VerifierView): string {
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
    case EventType.detectionRaised: {
      // The finding itself (rule, response, token and task ids) stays on the server: a verifier is sent
      // the workload's risk after it, which its local policy reads. A finding that did not raise it
      // (`risk_at` absent: an alert, a rule in observe mode, a protected workload) changes nothing a
      // verifier enforces, and which workload had one is not the verifier's to learn: a position.
      const { sub, risk, risk_at } = e.data as LogEventData['detection.raised'];
      if (risk_at === undefined) return positionFrame(e.seq);
      const data: VerifierEventData['risk'] = verifierRisk(sub, risk, risk_at, view.riskHalfLife);
      return frame({ ...at, type: EventType.risk, data });
    }
    default:
      return positionFrame(e.seq);
  }
}

/** A bare `position`: the seq of an event a verifier is not sent, so it resumes after it. */
function positionFrame(seq: number): string {
  const data: VerifierEventData['position'] = { seq };
  return `id: ${seq}\nevent: ${EventType.position}\ndata: ${JSON.stringify(data)}\n\n`;
}
