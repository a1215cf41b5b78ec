import type { Revocation, VerifierRevocation } from './revocation.js';

/**
 * Names of the events on Writ's event log (`events` table) and on the verifiers' stream
 * (`GET /v1/events`, Server-Sent Events whose `event:` is the name). Every producer and consumer names
 * an event through this object, so a name is spelled once. Verifiers are sent only what they enforce
 * (`VerifierEventData`); every other event of the log reaches them as a bare `position`.
 */
/**
 * The query a verifier opens `GET /v1/events` with: revocations as digests (`value_sha256`), and
 * snapshots in pages. A stream request without `revocations=sha256` is refused (`stream_form`): a
 * verifier that reads only clear values would take every revocation for one it cannot match.
 */
export const EVENT_STREAM_QUERY = 'revocations=sha256&snapshot=paged';

export const EventType = {
  /** A revocation was stored. Nodes add it to their set; verifiers too. */
  revocation: 'revocation',
  /** The signing keys rotated. Nodes reload their keys; verifiers refetch the JWKS. */
  keysRotated: 'keys.rotated',
  /** A workload was enabled, disabled or quarantined. */
  workloadState: 'workload.state',
  /** A workload's registered keys (or legacy secret) appeared, changed or went. */
  workloadCredentials: 'workload.credentials',
  /** A configuration bundle was applied (workloads, classes, operators). */
  configApplied: 'config.applied',
  /** An identity provider provisioned, changed or removed a person or group (SCIM). Nodes reload people. */
  peopleChanged: 'people.changed',
  /** The policy set or an API's attributes changed. */
  policyChanged: 'policy.changed',
  /** A new policy bundle version is out: verifiers deciding locally fetch it. */
  policyBundle: 'policy.bundle',

  /** A detection rule fired on a workload's signal: the finding, the workload's risk, the response. */
  detectionRaised: 'detection.raised',

  // Reserved for this round's leak, break-glass and governance work: their payloads are fixed here so
  // the producers land on them. Nothing produces them yet.
  /**
   * A leaked Writ token signed by this issuer was reported (a scan, a partner, a log pipeline):
   * recorded whatever its state, revoked when it was live (docs/leaks.md).
   */
  leakFound: 'leak.found',
  /** A break-glass grant was approved (or granted on the emergency path): docs/governance.md. */
  breakglassGranted: 'breakglass.granted',
  /** A break-glass grant ended: its time was up (`expired`) or an operator closed it (`revoked`). */
  breakglassEnded: 'breakglass.ended',
  /**
   * An exception of the registry (docs/governance.md) was renewed or retired by an operator, or is about
   * to expire (its owner's alert). Nodes reload their registry.
   */
  exceptionChanged: 'exception.changed',
  /** Reserved, not yet produced: `writ govern check` found a rule broken. */
  governanceFinding: 'governance.finding',

  // On the stream only, never in the log.
  /** Opens every stream: the log's last seq at that moment (no `id`). */
  head: 'head',
  /** Sent first to a verifier that is new or behind what the log keeps: the whole revocation state. */
  snapshot: 'snapshot',
  /**
   * A page of a snapshot, before the closing `snapshot` event (which then says `paged: true`), for
   * verifiers that ask for pages (`?snapshot=paged`). No `id`: a reconnect mid-snapshot starts over.
   */
  snapshotPage: 'snapshot.page',
  /**
   * An event of the log that verifiers are not sent, as its `seq` alone (and the `id`), so a verifier
   * resumes after it and can tell when it has caught up to the `head`.
   */
  position: 'position',
  /**
   * A workload's risk after a finding that raised it (`detection.raised` with `risk_at`; its seq as the
   * `id`), the workload as a digest, for verifiers whose local policy reads `context.risk`.
   */
  risk: 'risk',
} as const;

/** What a detection rule answers with (docs/detection.md). */
export type DetectionResponse =
  | 'alert'
  | 'raise_risk'
  | 'revoke_token'
  | 'revoke_task'
  | 'quarantine'
  | 'reattest';

/** The payload of each event of the log, by name. */
export interface LogEventData {
  revocation: { revocation: Revocation };
  'keys.rotated': { activated: string; retired: string; next: string };
  /**
   * `admitted`: the workload is new, admitted by a template on first use (docs/templates.md): nodes add
   * that one workload from the store instead of reloading the registry.
   */
  'workload.state': { id: string; state: 'active' | 'disabled' | 'quarantined'; admitted?: true };
  'workload.credentials': { id: string; change: 'create' | 'update' | 'delete' };
  /**
   * `changes`: how many entries of the configuration changed. `workloads`: present when they were only
   * these workloads (at most 1,000): nodes read them from the store instead of reloading the registry.
   */
  'config.applied': { changes: number; workloads?: string[] };
  /** `resource`: the SCIM resource type that changed; no names: the log is no directory. */
  'people.changed': { resource: 'User' | 'Group'; change: 'create' | 'update' | 'delete' };
  /** `version`: the stored set that is now in force; `resource`: the API whose attributes changed. */
  'policy.changed': { version: string } | { resource: string };
  /** `version`: the bundle version verifiers must reach; `policy_version`: the set's `<counter>-<hash>`. */
  'policy.bundle': { version: number; policy_version: string };
  /**
   * `risk` is the workload's risk after the finding, 0-100 as in the policy context, as of `risk_at`
   * (ms) when the finding raised it; `previous_risk` its risk just before (decayed to then), absent
   * from entries logged before it was added; `outcome` is what was done (the response, or why none was).
   */
  'detection.raised': {
    id: string;
    rule: string;
    sub: string;
    risk: number;
    risk_at?: number;
    previous_risk?: number;
    response: DetectionResponse;
    outcome: string;
    jti?: string;
    tid?: string;
  };
  /**
   * `id` is the `leak` finding; `source` where it was found (`github`, `report`, `scan`...);
   * `fingerprint` the SHA-256 of what was found (never the secret); `revoked` whether this report
   * revoked it (false for a token already expired or revoked); `jti` and `sub` (its workload) when it
   * is a Writ token, `exception` when it is a registered legacy credential.
   */
  'leak.found': {
    id: string;
    source: string;
    fingerprint: string;
    revoked: boolean;
    jti?: string;
    sub?: string;
    exception?: string;
  };
  /** `expires_at` in milliseconds since the epoch; `approver` `(emergency)` on the emergency path. */
  'breakglass.granted': {
    id: string;
    sub: string;
    cls: string;
    approver: string;
    reason: string;
    expires_at: number;
  };
  'breakglass.ended': { id: string; sub: string; cause: 'expired' | 'revoked' };
  /**
   * `change`: what happened; `expires_at`: the exception's end after it (ms since the epoch); `owner`:
   * who answers for it, to be alerted.
   */
  'exception.changed': {
    id: string;
    change: 'renewed' | 'retired' | 'expiring';
    expires_at: number;
    owner: string;
  };
  /** Reserved, not yet produced. `subject`: what the rule was checked on (a workload, class or exception). */
  'governance.finding': {
    id: string;
    rule: string;
    subject: string;
    severity: 'warning' | 'violation';
    summary: string;
  };
}

/**
 * A workload's risk as verifiers are sent it (`risk` events, a snapshot's `risks`): the workload as
 * `sub_sha256`, SHA-256 of its id, base64url without padding (as revocation values travel, so a
 * verifier matches the `sub` of tokens it is shown and learns no other workload's id); its risk, an
 * integer 0-100 as in the policy context, as of `risk_at` (ms since the epoch); halving every
 * `half_life` seconds from then, as on the server.
 */
export interface VerifierRisk {
  sub_sha256: string;
  risk: number;
  risk_at: number;
  half_life: number;
}

/** The payload of the events that exist on the stream only. */
export interface StreamOnlyEventData {
  head: { head: number };
  /**
   * `keys`: the kids of the JWKS at that moment, so a verifier knows whether to refetch it; `risks`:
   * every workload whose risk is above zero then (absent from servers that predate it).
   */
  snapshot: { revocations: VerifierRevocation[]; keys: string[]; paged?: true; risks?: VerifierRisk[] };
  /** `seq`: the log position the snapshot is taken at (the closing `snapshot` carries it as its id). */
  'snapshot.page': { revocations: VerifierRevocation[]; seq: number };
  position: { seq: number };
  risk: VerifierRisk;
}

/**
 * Everything a verifier is sent on `GET /v1/events`, by event name: what it enforces (revocation
 * predicates, key rotations, policy bundle versions, workloads' risks) and the stream's own events.
 * Events of the log carry `seq` and `ts` besides (`position` only `seq`). Nothing an operator or a
 * workload wrote (reasons, actors, labels, purposes) and no workload ids in clear are sent.
 */
export interface VerifierEventData extends StreamOnlyEventData {
  revocation: { revocation: VerifierRevocation };
  'keys.rotated': LogEventData['keys.rotated'];
  'policy.bundle': LogEventData['policy.bundle'];
}

/** The name of an event of the log. */
export type LogEventType = keyof LogEventData;
/** The name of an event on the stream (the log's and the stream's own). */
export type StreamEventType = LogEventType | keyof StreamOnlyEventData;

/** One event of the log: its name and its payload, discriminated by `type`. */
export type LogEvent<T extends LogEventType = LogEventType> = {
  [K in T]: { type: K; data: LogEventData[K] };
}[T];

// Every name in `EventType` has a payload, and every payload a name: this fails to compile otherwise.
type Names = (typeof EventType)[keyof typeof EventType];
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const namesMatchPayloads: Same<Names, StreamEventType> = true;
void namesMatchPayloads;
