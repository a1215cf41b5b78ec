import { auditRefusal } from '../audit/refusal.js';
import { Paths, type RequestInfo, type WritContext } from '../context.js';
import { invalidRequest, OAuthError } from '../errors.js';
import { isAuditedRefusal } from '../send-error.js';

/**
 * What the error handler answers for an error a request ended with: a refusal audited already as it is,
 * anything else mapped (framework errors to their refusals) and audited here. Refusals by the admin API
 * are admin events, attributed to the operator once authenticated.
 */
export async function auditedError(
  ctx: WritContext,
  error: unknown,
  req: RequestInfo,
  url: string,
  limit: { bytes: number; setting: string },
  operator: string | undefined,
): Promise<OAuthError> {
  if (isAuditedRefusal(error)) return error;
  const mapped = mapFrameworkError(error, limit);
  const admin = url.startsWith(`${Paths.admin}/`);
  return (await auditRefusal(ctx, admin ? 'admin' : 'http', mapped, req, {
    path: url.slice(0, 128),
    ...(admin && operator ? { client_id: operator } : {}),
  })) as OAuthError;
}

function mapFrameworkError(error: unknown, limit: { bytes: number; setting: string }): unknown {
  if (error instanceof OAuthError) return error;
  const e = error as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new OAuthError(
        'invalid_request',
        `request body is larger than ${limit.bytes} bytes (${limit.setting})`,
        {
          status: 413,
          detail: { reason: 'body_too_large' },
        },
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new OAuthError('invalid_request', 'unsupported content type', {
        status: 415,
        detail: { reason: 'media_type' },
      });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return invalidRequest('malformed request body', { reason: 'malformed_body', http_error: e.code });
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return invalidRequest('malformed request', { reason: 'malformed_request', http_error: e.code });
  }
  return error;
}
