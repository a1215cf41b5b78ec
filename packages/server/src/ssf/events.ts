import { createHash } from 'node:crypto';
import { EventType, type Revocation } from '@writ/sdk/wire';
import type { LoggedEvent } from '../events/event-log.js';
import { SecurityEventType, type SubjectId } from './vocabulary.js';

/** One CAEP event an event-log entry stands for, before it is addressed to a stream. */
export interface SecurityEvent {
  type: string;
  subId: SubjectId;
  /** The event object under `events[type]`. */
  body: Record<string, unknown>;
}

/**
 * The CAEP events an entry of Writ's event log stands for (none for entries receivers have no use for):
 *
 * - `revocation` → `session-revoked`: the subject names what the predicate covers (`jwt_id` for one
 *   token, a complex subject with `session` for a task, `iss_sub` for a workload, `application` for a
 *   client, `group` for a token class, an opaque key id for a signing key).
 * - `workload.state` → `token-claims-change` with `claims.workload_state` (a disabled or quarantined
 *   workload's tokens are also revoked: that arrives as its own `session-revoked`).
 * - `keys.rotated` → `credential-change` of the transmitter's signing key; `workload.credentials` →
 *   `credential-change` of a workload's registered keys (`credential_type` `jwk`: CAEP 1.0 allows a type
 *   both sides agree on beyond its list).
 * - `detection.raised` → `risk-level-change` (CAEP 1.0 §3.8) of the workload, when the finding raised
 *   its risk (`riskLevel` maps the score). A finding's response brings its own events: a revocation its
 *   `session-revoked`, a quarantine its `token-claims-change`; none changes a credential, so none is a
 *   `credential-change`. A finding that only alerts or observes leaves the risk as it was: no event.
 * - `leak.found` that revoked a live token → `credential-change` (`change_type` `revoke`) of the
 *   workload's access token, the token named by `urn:writ:leak` (its `jti`, where it was found, the
 *   finding). A leaked token already expired or revoked changes no credential: no event.
 *
 * Members Writ adds beyond CAEP's are named by URN, as SSF 1.0 §4.2.3 allows.
 */
export function securityEvents(e: LoggedEvent, issuer: string): SecurityEvent[] {
  const at = Math.floor(e.ts / 1000);
  switch (e.type) {
    case EventType.revocation: {
      const r = e.data.revocation;
      return [
        {
          type: SecurityEventType.sessionRevoked,
          subId: revokedSubject(r, issuer),
          body: {
            event_timestamp: Math.floor(r.created_at / 1000),
            reason_admin: { en: r.reason },
            'urn:writ:revocation': {
              seq: r.seq,
              kind: r.kind,
              value: r.value,
              issued_before: r.issued_before,
            },
          },
        },
      ];
    }
    case EventType.workloadState:
      return [
        {
          type: SecurityEventType.tokenClaimsChange,
          subId: { format: 'iss_sub', iss: issuer, sub: e.data.id },
          body: { event_timestamp: at, initiating_entity: 'admin', claims: { workload_state: e.data.state } },
        },
      ];
    case EventType.keysRotated:
      return [
        {
          type: SecurityEventType.credentialChange,
          subId: { format: 'uri', uri: issuer },
          body: {
            event_timestamp: at,
            initiating_entity: 'admin',
            credential_type: 'jwk',
            change_type: 'update',
            friendly_name: `signing key ${e.data.activated}`,
            'urn:writ:keys': { activated: e.data.activated, retired: e.data.retired, next: e.data.next },
          },
        },
      ];
    case EventType.workloadCredentials:
      return [
        {
          type: SecurityEventType.credentialChange,
          subId: { format: 'iss_sub', iss: issuer, sub: e.data.id },
          body: {
            event_timestamp: at,
            initiating_entity: 'admin',
            credential_type: 'jwk',
            change_type: e.data.change,
            friendly_name: 'workload keys',
          },
        },
      ];
    case EventType.breakglassGranted:
      // The workload's tokens may now carry a class they normally cannot: a change of what its tokens claim.
      return [
        {
          type: SecurityEventType.tokenClaimsChange,
          subId: { format: 'iss_sub', iss: issuer, sub: e.data.sub },
          body: {
            event_timestamp: at,
            initiating_entity: 'admin',
            reason_admin: { en: `break-glass: ${e.data.reason}` },
            claims: { cls: e.data.cls },
            'urn:writ:breakglass': {
              id: e.data.id,
              state: 'active',
              approver: e.data.approver,
              expires_at: e.data.expires_at,
            },
          },
        },
      ];
    case EventType.breakglassEnded:
      // Its tokens are revoked as the grant's task closes: that arrives as its own `session-revoked`.
      return [
        {
          type: SecurityEventType.tokenClaimsChange,
          subId: { format: 'iss_sub', iss: issuer, sub: e.data.sub },
          body: {
            event_timestamp: at,
            initiating_entity: e.data.cause === 'expired' ? 'system' : 'admin',
            claims: {},
            'urn:writ:breakglass': { id: e.data.id, state: 'ended', cause: e.data.cause },
          },
        },
      ];
    case EventType.exceptionChanged: {
      // An owner's expiry alert changes nothing: it is for the owner (webhook, event log), not receivers.
      if (e.data.change === 'expiring') return [];
      return [
        {
          type: SecurityEventType.credentialChange,
          subId: { format: 'opaque', id: `exception:${e.data.id}` },
          body: {
            event_timestamp: at,
            initiating_entity: 'admin',
            credential_type: 'writ-exception',
            change_type: e.data.change === 'retired' ? 'revoke' : 'update',
            friendly_name: `exception ${e.data.id}`,
            'urn:writ:exception': { id: e.data.id, change: e.data.change, expires_at: e.data.expires_at },
          },
        },
      ];
    }
    case EventType.leakFound: {
      const l = e.data;
      if (!l.revoked || l.sub === undefined) return [];
      return [
        {
          type: SecurityEventType.credentialChange,
          subId: { format: 'iss_sub', iss: issuer, sub: l.sub },
          body: {
            event_timestamp: at,
            initiating_entity: 'system',
            credential_type: 'access_token',
            change_type: 'revoke',
            friendly_name: 'leaked access token',
            reason_admin: { en: `leaked access token found (${l.source}) and revoked` },
            'urn:writ:leak': {
              finding: l.id,
              source: l.source,
              ...(l.jti !== undefined ? { jti: l.jti } : {}),
              fingerprint: l.fingerprint,
            },
          },
        },
      ];
    }
    case EventType.detectionRaised: {
      const d = e.data;
      if (d.risk_at === undefined) return [];
      return [
        {
          type: SecurityEventType.riskLevelChange,
          subId: { format: 'iss_sub', iss: issuer, sub: d.sub },
          body: {
            event_timestamp: Math.floor(d.risk_at / 1000),
            initiating_entity: 'policy',
            // The workload is the subject its tokens name: a robotic user, in CAEP's words.
            principal: 'USER',
            current_level: riskLevel(d.risk),
            ...(d.previous_risk !== undefined ? { previous_level: riskLevel(d.previous_risk) } : {}),
            risk_reason: d.rule,
            'urn:writ:finding': {
              id: d.id,
              rule: d.rule,
              risk: d.risk,
              ...(d.previous_risk !== undefined ? { previous_risk: d.previous_risk } : {}),
              response: d.response,
              outcome: d.outcome,
            },
          },
        },
      ];
    }
    default:
      return [];
  }
}

/** CAEP's risk levels (§3.8), lowest first. */
export type RiskLevel = 'LOW' | 'MEDIUM' | 'HIGH';

/**
 * The lowest risk of each level above `LOW`: `MEDIUM` from the points a medium finding adds by default
 * (30), `HIGH` from the risk the documented policy forbids new tokens at (70).
 */
export const RISK_LEVEL_FROM = { MEDIUM: 30, HIGH: 70 } as const;

/** A workload's risk (0-100) as a CAEP risk level. */
export function riskLevel(risk: number): RiskLevel {
  if (risk >= RISK_LEVEL_FROM.HIGH) return 'HIGH';
  if (risk >= RISK_LEVEL_FROM.MEDIUM) return 'MEDIUM';
  return 'LOW';
}

function revokedSubject(r: Revocation, issuer: string): SubjectId {
  switch (r.kind) {
    case 'jti':
      return { format: 'jwt_id', iss: issuer, jti: r.value };
    case 'tid':
      return { format: 'complex', session: { format: 'opaque', id: r.value } };
    case 'sub':
      return { format: 'iss_sub', iss: issuer, sub: r.value };
    case 'client_id':
      return { format: 'complex', application: { format: 'uri', uri: r.value } };
    case 'cls':
      return { format: 'complex', group: { format: 'opaque', id: r.value } };
    case 'kid':
      return { format: 'opaque', id: r.value };
  }
}

/**
 * The `jti` of the SET carrying event `index` of log entry `seq` on a stream: the same on every node,
 * so two nodes queueing one event queue it once.
 */
export function setId(streamId: string, seq: number, index: number): string {
  return createHash('sha256').update(`${streamId}\n${seq}\n${index}`).digest('base64url').slice(0, 32);
}

/** The claims of a SET (RFC 8417 §2.2, SSF 1.0 §4.1): no `sub`, no `exp`; `aud` is the stream's receiver. */
export function setClaims(o: {
  issuer: string;
  jti: string;
  aud: string[];
  iat: number;
  txn?: string;
  event: SecurityEvent;
}): Record<string, unknown> {
  return {
    iss: o.issuer,
    jti: o.jti,
    iat: o.iat,
    aud: o.aud.length === 1 ? o.aud[0] : o.aud,
    ...(o.txn !== undefined ? { txn: o.txn } : {}),
    sub_id: o.event.subId,
    events: { [o.event.type]: o.event.body },
  };
}
