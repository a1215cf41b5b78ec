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
