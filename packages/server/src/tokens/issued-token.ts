import type { RevocationKind } from '@writ/sdk/wire';

export interface IssuedToken {
  jti: string;
  sub: string;
  clientId: string;
  cls: string;
  aud: string;
  scope: string;
  kid: string;
  tid?: string;
  /** Token exchange: the `jti`s of the tokens it descends from, the first one first (its `ajti` claim). */
  ajti?: string[];
  iat: number;
  exp: number;
  /** SHA-256 fingerprint (base64url) of the serialized token. */
  fingerprint: string;
}

/**
 * The recorded tokens a revocation predicate matches: those whose `kind` claim (header `kid`) equals
 * `value` and, when `issuedBefore` (seconds) is set, whose `iat` is at or before it.
 */
export interface TokenMatch {
  kind: RevocationKind;
  value: string;
  issuedBefore: number | null;
}
