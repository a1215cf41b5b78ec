/** Grant types and assertion types on the wire. */
export const GrantType = {
  clientCredentials: 'client_credentials',
  jwtBearer: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
  tokenExchange: 'urn:ietf:params:oauth:grant-type:token-exchange',
} as const;
export type GrantTypeValue = (typeof GrantType)[keyof typeof GrantType];

/** RFC 7523 §2.2: the only client assertion type Writ accepts. */
export const CLIENT_ASSERTION_TYPE_JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** RFC 8693 §3 token type identifiers. */
export const TokenType = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
} as const;

/** Client authentication methods (RFC 8414 `token_endpoint_auth_methods_supported`). */
export const ClientAuthMethod = {
  privateKeyJwt: 'private_key_jwt',
  clientSecretBasic: 'client_secret_basic',
  clientSecretPost: 'client_secret_post',
  /** RFC 8705 §2.1: a CA-issued client certificate (a SPIFFE X.509-SVID, or a subject DN / SAN rule). */
  tlsClientAuth: 'tls_client_auth',
  /** RFC 8705 §2.2: a self-signed client certificate the workload registered. */
  selfSignedTlsClientAuth: 'self_signed_tls_client_auth',
} as const;
export type ClientAuthMethodValue = (typeof ClientAuthMethod)[keyof typeof ClientAuthMethod];

/** Successful token response (RFC 6749 §5.1). */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer' | 'DPoP';
  expires_in: number;
  scope: string;
  issued_token_type?: string;
}

/** Introspection response (RFC 7662 §2.2). Inactive tokens are exactly `{ active: false }`. */
export type IntrospectionResponse =
  | { active: false }
  | ({ active: true; token_type: 'Bearer' | 'DPoP' } & Record<string, unknown>);
