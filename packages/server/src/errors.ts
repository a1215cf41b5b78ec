import {
  type OAuthErrorBody,
  type OAuthErrorCode,
  OAuthErrorStatus,
  type RefusalReason,
  WritError,
} from '@writ/sdk/wire';

/**
 * What the audit log records of a refusal besides its code and description: `reason`, the check that
 * failed (docs/errors.md lists them), and whatever names the case (a `client_id`, a file and line).
 */
export type RefusalDetail = { reason: RefusalReason } & Record<string, unknown>;

/**
 * An RFC 6749 style refusal. `description` is safe to send to the client: it never holds a secret,
 * a token or data the caller did not send. `detail` (with `reason`) is for the audit log only.
 */
export class OAuthError extends WritError {
  declare readonly code: OAuthErrorCode;
  readonly status: number;
  readonly detail: RefusalDetail;
  readonly headers: Record<string, string>;

  constructor(
    code: OAuthErrorCode,
    description: string,
    options: { detail: RefusalDetail; headers?: Record<string, string>; status?: number },
  ) {
    // A refusal is an answer to the caller, not a fault of the server: no stack trace is captured (it
    // was a tenth of the CPU of refusing a garbage token request, and nothing reads it).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(code, options.detail.reason, description);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'OAuthError';
    this.status = options.status ?? OAuthErrorStatus[code];
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }

  toBody(): OAuthErrorBody {
    return { error: this.code, error_description: this.message };
  }
}

type Factory = (description: string, detail: RefusalDetail) => OAuthError;
const factory =
  (code: OAuthErrorCode): Factory =>
  (description, detail) =>
    new OAuthError(code, description, { detail });

export const invalidRequest = factory('invalid_request');
export const invalidClient = factory('invalid_client');
export const invalidGrant = factory('invalid_grant');
export const unauthorizedClient = factory('unauthorized_client');
export const unsupportedGrantType = factory('unsupported_grant_type');
export const invalidScope = factory('invalid_scope');
export const invalidTarget = factory('invalid_target');
export const invalidToken = factory('invalid_token');
export const accessDenied = factory('access_denied');
export const notFound = factory('not_found');
export const temporarilyUnavailable = factory('temporarily_unavailable');

/** Raised by stores when the database cannot be reached or refuses a write; mapped to 503. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** A configuration file that does not validate: names the file and the field. */
export class ConfigError extends Error {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, reason: string) {
    super(`${file}: ${field ? `${field}: ` : ''}${reason}`);
    this.name = 'ConfigError';
    this.file = file;
    this.field = field;
  }
}
