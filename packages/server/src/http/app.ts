import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { RefusalReason } from '@writ/sdk/wire';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { registerAdminRoutes } from '../admin/routes.js';
import { auditRefusal } from '../audit/refusal.js';
import type { TallyKey } from '../audit/refusal-tally.js';
import { registerConsoleRoutes } from '../console/routes.js';
import type { WritContext } from '../context.js';
import { invalidRequest, notFound, type OAuthError } from '../errors.js';
import { registerEventRoutes } from '../events/routes.js';
import { parseBoundedJson } from '../jose/json.js';
import { registerLeakRoutes } from '../leaks/routes.js';
import { registerOAuthRoutes } from '../oauth/routes.js';
import { registerAuthzenRoutes } from '../policy/authzen.js';
import { registerPolicyBundleRoutes } from '../policy/bundle.js';
import { sourceKey } from '../rate-limit/source.js';
import { sightCertificate } from '../request/client-certificate.js';
import { parseForm } from '../request/form.js';
import { info } from '../request/info.js';
import { registerScimRoutes } from '../scim/routes.js';
import { sendError } from '../send-error.js';
import { registerSsfRoutes } from '../ssf/routes.js';
import { registerTaskRoutes } from '../tasks/routes.js';
import { registerUsageRoutes } from '../usage/routes.js';
import { registerVendorKeyRoutes } from '../vendor/routes.js';
import { auditedError } from './audited-error.js';
import { OPENAPI_PATH, openApiDocument, recordRoutes } from './openapi.js';
import { registerProbeRoutes } from './probes.js';
import { tokenListener } from './token-listener.js';

const FORM = 'application/x-www-form-urlencoded';

/**
 * Builds the HTTP interface over a Writ context. Tests call `app.inject()`; `writ serve` listens.
 * `intercept` sees each request on the listener first and answers those it takes (the vendor-key
 * proxy's, which stream their bodies both ways and so never go through Fastify's body parsing).
 */
export function buildApp(
  ctx: WritContext,
  intercept?: (req: IncomingMessage, res: ServerResponse) => boolean,
): FastifyInstance {
  const { limits } = ctx.settings;
  // Set when the server starts closing: the token listener then leaves requests to Fastify's 503.
  let closing = false;
  const token = tokenListener(ctx, () => closing);
  const app = Fastify({
    logger: false,
    bodyLimit: limits.bodyBytes,
    trustProxy: false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    serverFactory: (fastifyHandler) => {
      const handler = (req: IncomingMessage, res: ServerResponse) => {
        if (intercept?.(req, res) || token(req, res)) return;
        fastifyHandler(req, res);
      };
      const http = {
        maxHeaderSize: limits.headerBytes,
        requestTimeout: 30_000,
        headersTimeout: 10_000,
        keepAliveTimeout: 65_000,
      };
      const tls = ctx.mtls.server;
      if (!tls) return createServer(http, handler);
      // RFC 8705: ask every client for a certificate but let those without one (or with one no CA
      // vouches for) in; whether a certificate authenticates anyone is decided per workload.
      return createHttpsServer(
        {
          ...http,
          cert: tls.cert,
          key: tls.key,
          ...(tls.ca.length > 0 ? { ca: tls.ca.map((c) => c.toString()) } : {}),
          requestCert: true,
          rejectUnauthorized: false,
        },
        handler,
      );
    },
    clientErrorHandler: (err, socket) => {
      const code = (err as NodeJS.ErrnoException).code;
      const tooLarge = code === 'HPE_HEADER_OVERFLOW';
      const body = JSON.stringify({
        error: 'invalid_request',
        error_description: tooLarge ? 'request headers are too large' : 'malformed HTTP request',
      });
      if (socket.writable) {
        socket.end(
          `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
      }
      const ip = socket.remoteAddress ?? 'unknown';
      const reason: RefusalReason = tooLarge ? 'headers_too_large' : 'malformed_http';
      ctx.metrics.refusals.inc({ endpoint: 'http', error: 'invalid_request', reason });
      // Counted with the other unauthenticated refusals of this address: one row a kind a window.
      ctx.sourceLimiter.take(sourceKey(ip));
      const kind: TallyKey = {
        type: 'http.refused',
        who: sourceKey(ip),
        actor: 'anonymous',
        error: 'invalid_request',
        reason,
        status: tooLarge ? 431 : 400,
      };
      if (!ctx.refusalTally.count(kind, ctx.clock.now())) return;
      ctx.audit
        .append({
          type: 'http.refused',
          outcome: 'refused',
          actor: 'anonymous',
          data: { error: 'invalid_request', reason, ...(code ? { http_error: code } : {}), ip },
        })
        .catch((e: unknown) =>
          ctx.logger.error({ err: (e as Error).message }, 'could not audit a refused connection'),
        );
    },
  });

  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  recordRoutes(app);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(FORM, { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseForm(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseBoundedJson(body as string, limits.jsonDepth));
    } catch (err) {
      done(
        invalidRequest(`request body is not acceptable JSON: ${(err as Error).message.slice(0, 80)}`, {
          reason: 'malformed_body',
        }),
        undefined,
      );
    }
  });

  if (ctx.mtls.trust.enabled)
    app.addHook('onRequest', async (req) => {
      sightCertificate(req, ctx.mtls.trust);
    });
  // Every request passes these two: callback hooks, since an async hook costs a promise and a
  // microtask turn per request. The header is set when the request arrives so that every answer
  // carries it, errors and 404s included (Fastify keeps headers set before an error).
  app.addHook('onRequest', (_req, reply, done) => {
    reply.header('x-content-type-options', 'nosniff');
    done();
  });
  app.addHook('onResponse', (req, reply, done) => {
    ctx.metrics.requestDuration.observe(
      { route: req.routeOptions.url ?? 'unmatched', method: req.method, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });

  app.setNotFoundHandler(async (req, reply) => {
    const err = await auditRefusal(
      ctx,
      'http',
      notFound('no such endpoint', { reason: 'unknown_endpoint' }),
      info(req),
      {
        path: req.url.slice(0, 128),
      },
    );
    sendError(reply, err as OAuthError);
  });

  app.setErrorHandler(async (error, req, reply) =>
    sendError(
      reply,
      await auditedError(
        ctx,
        error,
        info(req),
        req.url,
        bodyLimitOf(req, limits.bodyBytes),
        (req as { operator?: string }).operator,
      ),
    ),
  );

  registerProbeRoutes(app, ctx);
  registerOAuthRoutes(app, ctx);
  registerAdminRoutes(app, ctx);
  registerTaskRoutes(app, ctx);
  registerEventRoutes(app, ctx);
  registerAuthzenRoutes(app, ctx);
  registerPolicyBundleRoutes(app, ctx);
  registerUsageRoutes(app, ctx);
  registerSsfRoutes(app, ctx);
  registerLeakRoutes(app, ctx);
  registerVendorKeyRoutes(app, ctx);
  registerScimRoutes(app, ctx);
  registerConsoleRoutes(app, ctx);
  // The API description, generated from the schemas the routes validate with, once per server.
  const description = JSON.stringify(openApiDocument(ctx.settings.issuer));
  app.get(OPENAPI_PATH, async (_req, reply) =>
    reply.header('cache-control', 'public, max-age=300').type('application/json').send(description),
  );
  return app;
}

/** The body limit of the route a request reached, and the setting that sets it. */
function bodyLimitOf(req: FastifyRequest, fallback: number): { bytes: number; setting: string } {
  const setting = (req.routeOptions.config as { bodyLimitSetting?: string } | undefined)?.bodyLimitSetting;
  return { bytes: req.routeOptions.bodyLimit ?? fallback, setting: setting ?? 'limits.body_bytes' };
}
