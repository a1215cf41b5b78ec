import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Verifier } from '../verifier.js';
import { decide, type WritMiddlewareOptions } from './decide.js';
import { nodeRequestParts, sendRefusal } from './node-http.js';

/** What the Express adapter reads of a request: an Express `Request` is one. */
export type ExpressLikeRequest = IncomingMessage & { originalUrl?: string; protocol?: string; host?: string };
/** What it writes to: an Express `Response` is one. */
export type ExpressLikeResponse = ServerResponse & { locals: Record<string, unknown> };

/**
 * Express middleware: verified claims go to `res.locals.writ`; a refused request is answered here and
 * goes no further. The path is `req.originalUrl` (mount points included); scheme and host follow
 * Express (`trust proxy` applies) unless `baseUrl` is set.
 *
 * @example app.use('/reports', writExpress(verifier, { scopes: ['reports:read'] }));
 */
export function writExpress(
  verifier: Verifier,
  o: WritMiddlewareOptions = {},
): (req: ExpressLikeRequest, res: ExpressLikeResponse, next: (err?: unknown) => void) => void {
  return (req, res, next) => {
    const parts = nodeRequestParts(req, o, {
      ...(req.protocol !== undefined ? { protocol: req.protocol } : {}),
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
