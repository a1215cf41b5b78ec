import type { RefusalReason } from '@writ/sdk/wire';
import { OAuthError } from '../errors.js';

/** RFC 7644 §3.12: the `scimType` of a 400 (and 409) error, which says what was wrong. */
export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers';

export const SCIM_ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

const REASONS: Record<ScimType, RefusalReason> = {
  invalidFilter: 'scim_invalid_filter',
  tooMany: 'scim_invalid_filter',
  uniqueness: 'scim_uniqueness',
  mutability: 'scim_invalid_value',
  invalidSyntax: 'scim_invalid_syntax',
  invalidPath: 'scim_invalid_path',
  noTarget: 'scim_invalid_path',
  invalidValue: 'scim_invalid_value',
  invalidVers: 'scim_invalid_syntax',
};

/**
 * A SCIM refusal, carried as Writ's refusal (so it is audited and counted like every other) with its
 * `scimType`; `scimErrorBody` renders it the RFC 7644 §3.12 way.
 */
export function scimError(status: 400 | 409, scimType: ScimType, detail: string): OAuthError {
  return new OAuthError('invalid_request', detail, {
    status,
    detail: { reason: REASONS[scimType], scimType },
  });
}

export const scimNotFound = (what: string): OAuthError =>
  new OAuthError('not_found', `${what} not found`, { detail: { reason: 'scim_not_found' } });

export const scimPreconditionFailed = (): OAuthError =>
  new OAuthError('invalid_request', 'the resource changed since the version in If-Match: read it again', {
    status: 412,
    detail: { reason: 'scim_precondition' },
  });

/** The body of a SCIM error response (RFC 7644 §3.12). */
export function scimErrorBody(err: OAuthError): Record<string, unknown> {
  const scimType = err.detail['scimType'];
  return {
    schemas: [SCIM_ERROR_SCHEMA],
    status: String(err.status),
    ...(typeof scimType === 'string' ? { scimType } : {}),
    detail: err.message,
  };
}
