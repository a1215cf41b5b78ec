/**
 * A console sign-in as the store keeps it (docs/console.md, "Sessions"). The cookie carries a random
 * 256-bit id; the store holds only its SHA-256, so a copy of the database opens no session.
 */
export interface ConsoleSession {
  /** SHA-256 of the id the cookie carries, base64url. */
  idHash: string;
  /** The operator's name (its subject is `operator:<name>`). */
  operator: string;
  /** The person the operator names, when it names one. */
  person: string | null;
  /** What a state-changing request must send back in `X-Writ-CSRF`. */
  csrf: string;
  /** How the session was opened: a one-time link from `writ console`, or OpenID Connect. */
  via: 'link' | 'oidc';
  /** Milliseconds since the epoch. */
  createdAt: number;
  lastSeenAt: number;
  /** The absolute end (`console.absolute_timeout` after `createdAt`). */
  expiresAt: number;
}
