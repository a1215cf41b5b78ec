import type { FastifyReply } from 'fastify';
import { AUDITED } from './audit/refusal.js';
import { OAuthError } from './errors.js';

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/** Sends a refusal as an RFC 6749 error body with its status and headers, never cached. */
export function sendError(reply: FastifyReply, err: OAuthError): FastifyReply {
  return reply
    .code(err.status)
    .headers({ ...NO_STORE, ...err.headers })
    .type('application/json')
    .send(err.toBody());
}

/** A refusal `auditRefusal` has written (or counted) already: it only needs sending. */
export function isAuditedRefusal(err: unknown): err is OAuthError {
  return err instanceof OAuthError && (err as unknown as Record<symbol, unknown>)[AUDITED] === true;
}
