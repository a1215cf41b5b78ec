import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AccessTokenClaims } from '../../wire/claims.js';
import type { Verifier } from '../verifier.js';
import { decide, type HttpRequestParts, type WritMiddlewareOptions } from './decide.js';
import { PublicBaseUrl } from './public-url.js';
import type { Refusal } from './refusal.js';

/**
 * The parts of a node:http request the verifier checks; Express and Fastify requests are one too. The
 * URL is `base` plus the request path (`at.path`, else `req.url`); `at.host`, else the Host header, only
 * picks among the configured base URLs.
 */
export function nodeRequestParts(
  req: IncomingMessage,
  base: PublicBaseUrl,
  at: { host?: string | undefined; path?: string } = {},
): HttpRequestParts {
  const encrypted = (req.socket as TLSSocket | undefined)?.encrypted === true;
  return {
    method: req.method ?? 'GET',
    url: base.urlOf(at.path ?? req.url ?? '/', at.host ?? req.headers.host),
    authorization: req.headers.authorization,
    dpop: dpopLines(req),
    source: req.socket?.remoteAddress,
    userAgent: req.headers['user-agent'],
    ...(encrypted ? peerCertificate(req.socket as TLSSocket) : {}),
  };
}

/**
 * Every DPoP header line apart (`req.headers` would join two into one), read off the raw headers
 * rather than `headersDistinct`, which builds an array for every header of the request.
 */
function dpopLines(req: IncomingMessage): string[] {
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) return req.headers['dpop'] !== undefined ? [String(req.headers['dpop'])] : [];
  const lines: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'dpop') lines.push(raw[i + 1]!);
  }
  return lines;
}

/** The client certificate of a mutual-TLS connection (RFC 8705 §3), when the client sent one. */
export function peerCertificate(socket: TLSSocket): { clientCertificate?: X509Certificate } {
  try {
    const cert = socket.getPeerX509Certificate?.();
    return cert ? { clientCertificate: cert } : {};
  } catch {
    return {};
  }
}

/** Writes a refusal on a node:http response. */
export function sendRefusal(res: ServerResponse, r: Refusal): void {
  res.writeHead(r.status, r.headers);
  res.end(JSON.stringify(r.body));
}

/**
 * For a plain node:http server: verifies the request and resolves to its claims, or answers the
 * refusal itself (401/400/403/503 with `WWW-Authenticate`) and resolves to undefined.
 *
 * @example
 * const auth = writNodeHttp(verifier, { baseUrl: 'https://api.example.com' });
 * createServer(async (req, res) => {
 *   const claims = await auth(req, res);
 *   if (!claims) return;
 *   res.end(`hello ${claims.sub}`);
 * });
 */
export function writNodeHttp(
  verifier: Verifier,
  o: WritMiddlewareOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<AccessTokenClaims | undefined> {
  const base = PublicBaseUrl.from(o?.baseUrl);
  return async (req, res) => {
    let d: Awaited<ReturnType<typeof decide>>;
    try {
      d = await decide(verifier, nodeRequestParts(req, base), o);
    } catch {
      // Not a refusal: the verifier could not decide. Fail closed.
      sendRefusal(res, {
        status: 500,
        headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
        body: { error: 'server_error', error_description: 'the token could not be verified' },
      });
      return undefined;
    }
    if (d.ok) return d.claims;
    sendRefusal(res, d.refusal);
    return undefined;
  };
}
