/**
 * OAuth error codes Writ answers with (RFC 6749 §5.2, RFC 8707 §2, RFC 6750 §3.1, RFC 8693 §2.2.2,
 * RFC 9449 §12.2),
 * with the HTTP status each one is sent with.
 */
export const OAuthErrorStatus = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  invalid_target: 400,
  unsupported_token_type: 400,
  invalid_dpop_proof: 400,
  use_dpop_nonce: 400,
  access_denied: 403,
  invalid_token: 401,
  insufficient_scope: 403,
  not_found: 404,
  slow_down: 429,
  server_error: 500,
  temporarily_unavailable: 503,
} as const;

export type OAuthErrorCode = keyof typeof OAuthErrorStatus;

/** The body of every error Writ returns: RFC 6749 §5.2. */
export interface OAuthErrorBody {
  error: OAuthErrorCode;
  error_description?: string;
}

export function isOAuthErrorCode(value: unknown): value is OAuthErrorCode {
  return typeof value === 'string' && Object.hasOwn(OAuthErrorStatus, value);
}
