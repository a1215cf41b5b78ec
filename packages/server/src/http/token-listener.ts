import type { IncomingMessage, ServerResponse } from 'node:http';
import { Paths, type WritContext } from '../context.js';
import type { OAuthError } from '../errors.js';
import { handleTokenRequest } from '../oauth/token-endpoint.js';
import { parseForm } from '../request/form.js';
import { rawRequestInfo } from '../request/info.js';
import { auditedError } from './audited-error.js';

const FORM = 'application/x-www-form-urlencoded';
const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * `POST /oauth2/token` taken on the listener, before Fastify: the endpoint every workload calls, and the
 * one where Fastify's per-request work (its request and reply objects, routing, hooks, body parser and
 * serializer) cost a large share of a token. The request goes through the same `handleTokenRequest` as
 * the Fastify route (oauth/routes.ts), so every check, limit, policy decision and audit event is the
 * same; the answer has the same status, headers and body (test/token-listener.test.ts compares them).
 *
 * Only the plain case is taken; everything else goes on to Fastify, which answers it as before: another
 * method or path, a query string, a body that is not exactly `application/x-www-form-urlencoded` with a
 * `Content-Length` within `limits.body_bytes`, a chunked body, a server that is closing, and every request
 * while mTLS is on (a client certificate may authenticate, and Fastify's hook finds it).
 */
export function tokenListener(
  ctx: WritContext,
  closing: () => boolean,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const limit = { bytes: ctx.settings.limits.bodyBytes, setting: 'limits.body_bytes' };
  return (req, res) => {
    if (req.method !== 'POST' || req.url !== Paths.token) return false;
    if (ctx.mtls.server || ctx.mtls.trust.enabled || closing()) return false;
    const headers = req.headers;
    const length = headers['content-length'];
    if (
      headers['content-type']?.toLowerCase() !== FORM ||
      length === undefined ||
      !/^\d{1,9}$/.test(length) ||
      Number(length) > limit.bytes ||
      headers['transfer-encoding'] !== undefined
    )
      return false;
    const started = performance.now();
    const expected = Number(length);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= expected) chunks.push(chunk);
    });
    // An aborted request has no one to answer; the socket's own error handling closes it.
    req.on('error', () => undefined);
    req.on('end', () => {
      answer(ctx, req, res, size === expected ? Buffer.concat(chunks).toString('utf8') : undefined, limit)
        .catch((err: unknown) => {
          // The refusal could not be audited either: no answer but a bare 500, as Fastify's last resort.
          ctx.logger.error({ err: (err as Error).message }, 'token request: no answer could be made');
          if (!res.headersSent)
            send(res, 500, { error: 'server_error', error_description: 'internal error' });
          else res.destroy();
        })
        .finally(() => {
          ctx.metrics.requestDuration.observe(
            { route: Paths.token, method: 'POST', status: String(res.statusCode) },
            (performance.now() - started) / 1000,
          );
        });
    });
    return true;
  };
}

async function answer(
  ctx: WritContext,
  req: IncomingMessage,
  res: ServerResponse,
  body: string | undefined,
  limit: { bytes: number; setting: string },
): Promise<void> {
  const info = rawRequestInfo(req);
  try {
    // Node ends a body at its Content-Length; a shorter one never ends. Checked all the same.
    if (body === undefined)
      throw Object.assign(new Error('request body does not match its content-length'), {
        code: 'FST_ERR_CTP_INVALID_CONTENT_LENGTH',
        statusCode: 400,
      });
    const token = await handleTokenRequest(ctx, parseForm(body), info);
    send(res, 200, token, {
      'cache-control': 'no-store',
      pragma: 'no-cache',
      'dpop-nonce': ctx.dpopNonces.current(),
    });
  } catch (err) {
    const refusal: OAuthError = await auditedError(ctx, err, info, req.url ?? '', limit, undefined);
    send(res, refusal.status, refusal.toBody(), {
      'cache-control': 'no-store',
      pragma: 'no-cache',
      ...refusal.headers,
    });
  }
}

/** A JSON answer with the headers every answer carries (app.ts sets `nosniff` on all of them). */
function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'x-content-type-options': 'nosniff',
    ...headers,
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
