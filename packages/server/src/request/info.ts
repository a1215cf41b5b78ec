import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
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
  const known = headerInfo(req.ip, req.method, req.url, req.headers, req.raw.rawHeaders);
  if (certificate.certificate) known.clientCertificate = certificate.certificate;
  if (certificate.ignoredForwarded) known.ignoredForwardedCertificate = certificate.ignoredForwarded;
  return known;
}

/**
 * What `info` reads of a request taken on the listener without Fastify (http/token-listener.ts), which
 * takes none on a listener where a client certificate could count: the same fields, no certificate.
 */
export function rawRequestInfo(req: IncomingMessage): RequestInfo {
  return headerInfo(
    req.socket.remoteAddress ?? '',
    req.method ?? '',
    req.url ?? '',
    req.headers,
    req.rawHeaders,
  );
}

function headerInfo(
  ip: string,
  method: string,
  url: string,
  headers: IncomingHttpHeaders,
  rawHeaders: string[],
): RequestInfo {
  return {
    ip,
    method,
    path: url.split('?')[0] ?? url,
    userAgent: headers['user-agent']?.slice(0, 256),
    authorization: headers.authorization,
    dpop: headerValues(rawHeaders, 'dpop'),
    consoleCookie: cookieValue(headers.cookie, CONSOLE_COOKIE),
    csrf: single(headers['x-writ-csrf']),
    origin: single(headers.origin),
  };
}

/** The console's session cookie (docs/console.md). */
export const CONSOLE_COOKIE = 'writ_console';

const single = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? undefined : v);

/** Every value of a header, repeated ones kept apart (Node joins them with ", " in `req.headers`). */
function headerValues(raw: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  return values;
}
