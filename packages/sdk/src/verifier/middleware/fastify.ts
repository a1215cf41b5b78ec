import type { IncomingMessage } from 'node:http';
import type { AccessTokenClaims } from '../../wire/claims.js';
import type { Verifier } from '../verifier.js';
import { decide, type WritMiddlewareOptions } from './decide.js';
import { nodeRequestParts } from './node-http.js';
import { PublicBaseUrl } from './public-url.js';

/** What the Fastify hook reads of a request: a `FastifyRequest` is one. */
export interface FastifyLikeRequest {
  raw: IncomingMessage;
  url: string;
  host?: string;
  writ?: AccessTokenClaims | null;
}

/** What it writes to: a `FastifyReply` is one. */
export interface FastifyLikeReply {
  code(statusCode: number): unknown;
  header(key: string, value: string | string[]): unknown;
  send(payload?: unknown): unknown;
}

/**
 * A Fastify `preHandler` hook: verified claims go to `request.writ` (decorate it, or use
 * `writFastifyPlugin`); a refused request is answered here and reaches no handler. The URL is `baseUrl`
 * plus `request.url`; with several base URLs, `request.host` (Fastify's `trustProxy` applies) picks one.
 * To type it: `declare module 'fastify' { interface FastifyRequest { writ: AccessTokenClaims | null } }`.
 *
 * @example
 * app.addHook('preHandler', writFastify(verifier, { baseUrl: 'https://api.example.com', scopes: ['reports:read'] }));
 */
export function writFastify(
  verifier: Verifier,
  o: WritMiddlewareOptions,
): (request: FastifyLikeRequest, reply: FastifyLikeReply) => Promise<unknown> {
  const base = PublicBaseUrl.from(o?.baseUrl);
  return async (request, reply) => {
    const parts = nodeRequestParts(request.raw, base, {
      host: request.host ?? request.raw.headers.host,
      path: request.url,
    });
    const d = await decide(verifier, parts, o);
    if (d.ok) {
      request.writ = d.claims;
      return undefined;
    }
    reply.code(d.refusal.status);
    for (const [k, v] of Object.entries(d.refusal.headers)) reply.header(k, v);
    reply.send(d.refusal.body);
    return reply;
  };
}

/** What the plugin needs of a Fastify instance. */
export interface FastifyLikeInstance {
  decorateRequest(name: string, value: unknown): unknown;
  addHook(
    name: 'preHandler',
    hook: (request: FastifyLikeRequest, reply: FastifyLikeReply) => Promise<unknown>,
  ): unknown;
}

/**
 * A Fastify plugin: decorates `request.writ` and adds the hook to the context it is registered in
 * (it does not open a context of its own, like plugins wrapped by fastify-plugin).
 *
 * @example
 * app.register(async (api) => {
 *   await api.register(writFastifyPlugin, { verifier, baseUrl: 'https://api.example.com' });
 *   api.get('/reports', async (req) => ({ sub: req.writ?.sub }));
 * });
 */
export const writFastifyPlugin = Object.assign(
  async (
    instance: FastifyLikeInstance,
    opts: WritMiddlewareOptions & { verifier: Verifier },
  ): Promise<void> => {
    const { verifier, ...o } = opts;
    const hook = writFastify(verifier, o); // first: a bad baseUrl fails the registration, not a request
    instance.decorateRequest('writ', null);
    instance.addHook('preHandler', hook);
  },
  { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'writ' },
);
