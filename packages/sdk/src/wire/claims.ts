/** Claim names of a Writ access token (RFC 9068 profile plus Writ's own `cls`, `tid`, `cnf`, `act`, `ajti`). */
export const Claim = {
  issuer: 'iss',
  subject: 'sub',
  audience: 'aud',
  clientId: 'client_id',
  scope: 'scope',
  issuedAt: 'iat',
  notBefore: 'nbf',
  expiresAt: 'exp',
  tokenId: 'jti',
  tokenClass: 'cls',
  taskId: 'tid',
  confirmation: 'cnf',
  actor: 'act',
  ancestorTokenIds: 'ajti',
} as const;

/** The JOSE `typ` of a Writ access token (RFC 9068 §2.1). */
export const ACCESS_TOKEN_TYP = 'at+jwt';

/** The claims every Writ access token carries. `aud` is always exactly one audience. */
export interface AccessTokenClaims {
  iss: string;
  sub: string;
  aud: string;
  client_id: string;
  scope: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  cls: string;
  tid?: string;
  cnf?: { jkt?: string; 'x5t#S256'?: string };
  act?: { sub: string; act?: AccessTokenClaims['act'] };
  /**
   * A token made by token exchange (RFC 8693): the `jti` of every token it descends from, the first
   * token of the chain first and its subject token last. A `jti` revocation of any of them revokes it.
   */
  ajti?: string[];
}

/** Signing algorithms Writ itself signs with. ES256 is the default. */
export const SIGNING_ALGORITHMS = ['ES256', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];
