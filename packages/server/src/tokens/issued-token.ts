export interface IssuedToken {
  jti: string;
  sub: string;
  clientId: string;
  cls: string;
  aud: string;
  scope: string;
  kid: string;
  tid?: string;
  iat: number;
  exp: number;
  /** SHA-256 fingerprint (base64url) of the serialized token. */
  fingerprint: string;
}
