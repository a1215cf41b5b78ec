import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Verifier } from '../verifier.js';
import { decide, type WritMiddlewareOptions } from './decide.js';
import { nodeRequestParts, sendRefusal } from './node-http.js';
import { PublicBaseUrl } from './public-url.js';

/** What the Express adapter reads of a request: an Express `Request` is one. */
export type ExpressLikeRequest = IncomingMessage & { originalUrl?: string; host?: string };
/** What it writes to: an Express `Response` is one. */
export type ExpressLikeResponse = ServerResponse & { locals: Record<string, unknown> };

/**
 * Express middleware: verified claims go to `res.locals.writ`; a refused request is answered here and
 * goes no further. The URL is `baseUrl` plus `req.originalUrl` (mount points included); with several
 * base URLs, `req.host` (Express's `trust proxy` applies) picks one of them.
 *
 * @example
 * app.use('/reports', writExpress(verifier, { baseUrl: 'https://api.example.com', scopes: ['reports:read'] }));
 */
export function writExpress(
  verifier: Verifier,
  o: WritMiddlewareOptions,
): (req: ExpressLikeRequest, res: ExpressLikeResponse, next: (err?: unknown) => void) => void {
  const base = PublicBaseUrl.from(o?.baseUrl);
  return (req, res, next) => {
    const parts = nodeRequestParts(req, base, {
      host: req.host ?? req.headers.host,
      ...(req.originalUrl !== undefined ? { path: req.originalUrl } : {}),
    });
    decide(verifier, parts, o).then(
      (d) => {
        if (!d.ok) return sendRefusal(res, d.refusal);
        res.locals['writ'] = d.claims;
        next();
      },
      (err: unknown) => next(err),
    );
  };
}
