import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { handleAdminToken } from '../admin/admin-auth.js';
import { registerAdminRoutes } from '../admin/routes.js';
import { Paths, type WritContext } from '../context.js';
import { invalidRequest, notFound, OAuthError } from '../errors.js';
import { registerEventRoutes } from '../events/routes.js';
import { parseBoundedJson } from '../jose/json.js';
import { handleIntrospection } from '../oauth/introspection.js';
import { AUDITED, auditRefusal } from '../oauth/refusal.js';
import { handleRevocation } from '../oauth/revocation-endpoint.js';
import { handleTokenRequest } from '../oauth/token-endpoint.js';
import { registerAuthzenRoutes } from '../policy/authzen.js';
import { registerPolicyBundleRoutes } from '../policy/bundle.js';
import { registerSsfRoutes } from '../ssf/routes.js';
import { registerTaskRoutes } from '../tasks/routes.js';
import { registerUsageRoutes } from '../usage/routes.js';
import { sightCertificate } from './client-certificate.js';
import { parseForm } from './form.js';
import { formBody, info } from './request.js';

const FORM = 'application/x-www-form-urlencoded';
/** How long `/readyz` waits for the store before it reports it unreachable. */
const READY_TIMEOUT_MS = 2000;
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/** Builds the HTTP interface over a Writ context. Tests call `app.inject()`; `writ serve` listens. */
export function buildApp(ctx: WritContext): FastifyInstance {
  const { limits } = ctx.settings;
  const app = Fastify({
    logger: false,
    bodyLimit: limits.bodyBytes,
    trustProxy: false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    serverFactory: (handler) => {
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
      ctx.metrics.refusals.inc({ endpoint: 'http', error: 'invalid_request' });
      ctx.audit
        .append({
          type: 'http.refused',
          outcome: 'refused',
          actor: 'anonymous',
          data: { error: 'invalid_request', reason: code ?? 'client_error', ip },
        })
        .catch((e: unknown) =>
          ctx.logger.error({ err: (e as Error).message }, 'could not audit a refused connection'),
        );
    },
  });

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
        invalidRequest(`request body is not acceptable JSON: ${(err as Error).message.slice(0, 80)}`),
        undefined,
      );
    }
  });

  if (ctx.mtls.trust.enabled)
    app.addHook('onRequest', async (req) => {
      sightCertificate(req, ctx.mtls.trust);
    });
  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
  });
  app.addHook('onResponse', async (req, reply) => {
    ctx.metrics.requestDuration.observe(
      { route: req.routeOptions.url ?? 'unmatched', method: req.method, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  app.setNotFoundHandler(async (req, reply) => {
    const err = await auditRefusal(ctx, 'http', notFound('no such endpoint'), info(req), {
      path: req.url.slice(0, 128),
    });
    sendError(reply, err as OAuthError);
  });

  app.setErrorHandler(async (error, req, reply) => {
    if (error instanceof OAuthError && (error as unknown as Record<symbol, unknown>)[AUDITED])
      return sendError(reply, error);
    const mapped = mapFrameworkError(error);
    // Refusals by the admin API are admin events, attributed to the operator once authenticated.
    const admin = req.url.startsWith(`${Paths.admin}/`);
    const operator = (req as { operator?: string }).operator;
    const audited = (await auditRefusal(ctx, admin ? 'admin' : 'http', mapped, info(req), {
      path: req.url.slice(0, 128),
      ...(admin && operator ? { client_id: operator } : {}),
    })) as OAuthError;
    return sendError(reply, audited);
  });

  registerOAuthRoutes(app, ctx);
  registerAdminRoutes(app, ctx);
  registerTaskRoutes(app, ctx);
  registerEventRoutes(app, ctx);
  registerAuthzenRoutes(app, ctx);
  registerPolicyBundleRoutes(app, ctx);
  registerUsageRoutes(app, ctx);
  registerSsfRoutes(app, ctx);
  return app;
}

function registerOAuthRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  // Per node: a load balancer takes a node out while its store is unreachable. Answered within a bound
  // even when the store does not answer at all (a cut link), so the check itself never hangs.
  app.get('/readyz', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    let timer: NodeJS.Timeout | undefined;
    const reachable = await Promise.race([
      ctx.store.ping().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (!reachable)
      return reply
        .code(503)
        .send({ status: 'unavailable', store: 'unreachable', reason: 'store unreachable' });
    ctx.keys.activeKid();
    return { status: 'ready', store: 'reachable' };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });

  app.get(Paths.metadata, async (_req, reply) => {
    const iss = ctx.settings.issuer;
    const legacy = ctx.registry.classes().some((c) => c.legacyClientSecret);
    const mtls = ctx.mtls.trust.enabled;
    const methods = [
      'private_key_jwt',
      ...(mtls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
      ...(legacy ? ['client_secret_basic', 'client_secret_post'] : []),
    ];
    reply.header('cache-control', 'public, max-age=300');
    return {
      issuer: iss,
      token_endpoint: `${iss}${Paths.token}`,
      jwks_uri: `${iss}${Paths.jwks}`,
      introspection_endpoint: `${iss}${Paths.introspect}`,
      revocation_endpoint: `${iss}${Paths.revoke}`,
      grant_types_supported: [
        'client_credentials',
        'urn:ietf:params:oauth:grant-type:token-exchange',
        'urn:ietf:params:oauth:grant-type:jwt-bearer',
      ],
      response_types_supported: [],
      token_endpoint_auth_methods_supported: methods,
      token_endpoint_auth_signing_alg_values_supported: ctx.settings.clientAssertion.algorithms,
      introspection_endpoint_auth_methods_supported: methods,
      introspection_endpoint_auth_signing_alg_values_supported: ctx.settings.clientAssertion.algorithms,
      revocation_endpoint_auth_methods_supported: methods,
      revocation_endpoint_auth_signing_alg_values_supported: ctx.settings.clientAssertion.algorithms,
      scopes_supported: [...new Set(ctx.registry.classes().flatMap((c) => c.scopes))].sort(),
      access_token_signing_alg_values_supported: ['ES256', 'EdDSA'],
      dpop_signing_alg_values_supported: ctx.settings.dpop.algorithms,
      // RFC 8705 §3.3: tokens of `binding: mtls` classes are bound to the client certificate.
      ...(mtls ? { tls_client_certificate_bound_access_tokens: true } : {}),
      // Classes whose tokens are bearer tokens: registered exceptions to holder binding.
      writ_bearer_token_classes: ctx.registry
        .classes()
        .filter((c) => c.binding === 'bearer')
        .map((c) => c.name)
        .sort(),
      // True while no policies/ directory is loaded: issuance is limited by the classes alone.
      writ_policy_built_in: ctx.policy.version.builtIn,
    };
  });
  app.get(Paths.jwks, async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=60');
    reply.header('content-type', 'application/jwk-set+json');
    return ctx.keys.publicJwks();
  });

  app.post(Paths.token, async (req, reply) => {
    const params = formBody(req);
    const res = await handleTokenRequest(ctx, params, info(req));
    reply.headers({ ...NO_STORE, 'dpop-nonce': ctx.dpopNonces.current() });
    return res;
  });
  app.post(Paths.introspect, async (req, reply) => {
    const res = await handleIntrospection(ctx, formBody(req), info(req));
    reply.headers(NO_STORE);
    return res;
  });
  app.post(Paths.revoke, async (req, reply) => {
    await handleRevocation(ctx, formBody(req), info(req));
    reply.headers(NO_STORE);
    return reply.code(200).send();
  });
  app.post(Paths.adminToken, async (req, reply) => {
    const res = await handleAdminToken(ctx, formBody(req), info(req));
    reply.headers(NO_STORE);
    return res;
  });
}

function sendError(reply: FastifyReply, err: OAuthError): FastifyReply {
  return reply
    .code(err.status)
    .headers({ ...NO_STORE, ...err.headers })
    .type('application/json')
    .send(err.toBody());
}

function mapFrameworkError(error: unknown): unknown {
  if (error instanceof OAuthError) return error;
  const e = error as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new OAuthError('invalid_request', 'request body is too large', {
        status: 413,
        detail: { reason: 'body_too_large' },
      });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new OAuthError('invalid_request', 'unsupported content type', {
        status: 415,
        detail: { reason: 'media_type' },
      });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return invalidRequest('malformed request body', { reason: e.code });
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return invalidRequest('malformed request', { reason: e.code ?? 'bad_request' });
  }
  return error;
}
