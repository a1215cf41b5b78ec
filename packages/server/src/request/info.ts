import type { FastifyRequest } from 'fastify';
import type { RequestInfo } from '../context.js';
import { recordedSighting } from './client-certificate.js';
import { cookieValue } from './cookie.js';

const read = new WeakMap<FastifyRequest, RequestInfo>();

/**
 * What the checks and the audit log read of a request: its source, headers and client certificate.
 * One object per request, so what `auth/` learns (the authenticated caller) is what the refusal
 * audit reads.
 */
export function info(req: FastifyRequest): RequestInfo {
  let known = read.get(req);
  if (!known) {
    known = readRequest(req);
    read.set(req, known);
  }
  return known;
}

function readRequest(req: FastifyRequest): RequestInfo {
  const certificate = recordedSighting(req);
  return {
    ip: req.ip,
    method: req.method,
    path: req.url.split('?')[0] ?? req.url,
    userAgent: req.headers['user-agent']?.slice(0, 256),
    authorization: req.headers.authorization,
    dpop: headerValues(req, 'dpop'),
    consoleCookie: cookieValue(req.headers.cookie, CONSOLE_COOKIE),
    csrf: single(req.headers['x-writ-csrf']),
    origin: single(req.headers.origin),
    ...(certificate.certificate ? { clientCertificate: certificate.certificate } : {}),
    ...(certificate.ignoredForwarded ? { ignoredForwardedCertificate: certificate.ignoredForwarded } : {}),
  };
}

/** The console's session cookie (docs/console.md). */
export const CONSOLE_COOKIE = 'writ_console';

const single = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? undefined : v);

/** Every value of a header, repeated ones kept apart (Node joins them with ", " in `req.headers`). */
function headerValues(req: FastifyRequest, name: string): string[] {
  const raw = req.raw.rawHeaders;
  const values: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  return values;
}
