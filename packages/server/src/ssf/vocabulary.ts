/** Names from the Shared Signals Framework 1.0, CAEP 1.0, RFC 8417, RFC 8935 and RFC 8936. */

/** Delivery methods (SSF 1.0 §6.1). */
export const DeliveryMethod = {
  push: 'urn:ietf:rfc:8935',
  poll: 'urn:ietf:rfc:8936',
} as const;

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type';
const SSF = 'https://schemas.openid.net/secevent/ssf/event-type';

export const SecurityEventType = {
  sessionRevoked: `${CAEP}/session-revoked`,
  credentialChange: `${CAEP}/credential-change`,
  tokenClaimsChange: `${CAEP}/token-claims-change`,
  riskLevelChange: `${CAEP}/risk-level-change`,
  /** Sent on request on any stream, whatever it asked for (SSF 1.0 §8.1.4). */
  verification: `${SSF}/verification`,
} as const;

/** The event types Writ transmits from its event log. */
export const EVENTS_SUPPORTED: readonly string[] = [
  SecurityEventType.sessionRevoked,
  SecurityEventType.credentialChange,
  SecurityEventType.tokenClaimsChange,
  SecurityEventType.riskLevelChange,
];

/** RFC 8417 §2.3 explicit typing. */
export const SET_TYP = 'secevent+jwt';
/** RFC 8935 §2: the media type of a pushed SET. */
export const SET_MEDIA_TYPE = 'application/secevent+jwt';

/** Paths of the transmitter's endpoints, relative to the issuer. */
export const SsfPaths = {
  configuration: '/.well-known/ssf-configuration',
  stream: '/ssf/stream',
  status: '/ssf/status',
  verify: '/ssf/verify',
  poll: '/ssf/poll',
} as const;

/** The audience of tokens receiver workloads present to the stream management API and poll endpoint. */
export const ssfAudience = (issuer: string): string => `${issuer}/ssf`;

/** A subject identifier (RFC 9493, SSF 1.0 §3). */
export type SubjectId = Record<string, unknown> & { format: string };
