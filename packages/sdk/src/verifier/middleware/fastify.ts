import type { IncomingMessage } from 'node:http';
import type { AccessTokenClaims } from '../../wire/claims.js';
import type { Verifier } from '../verifier.js';
import { decide, type WritMiddlewareOptions } from './decide.js';
import { nodeRequestParts } from './node-http.js';

/** What the Fastify hook reads of a request: a `FastifyRequest` is one. */
export interface FastifyLikeRequest {
  raw: IncomingMessage;
  url: string;
  protocol?: string;
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
 * `writFastifyPlugin`); a refused request is answered here and reaches no handler.
 * To type it: `declare module 'fastify' { interface FastifyRequest { writ: AccessTokenClaims | null } }`.
 *
 * @example app.addHook('preHandler', writFastify(verifier, { scopes: ['reports:read'] }));
 */
export function writFastify(
  verifier: Verifier,
  o: WritMiddlewareOptions = {},
): (request: FastifyLikeRequest, reply: FastifyLikeReply) => Promise<unknown> {
  return async (request, reply) => {
    const parts = nodeRequestParts(request.raw, o, {
      ...(request.protocol !== undefined ? { protocol: request.protocol } : {}),
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
 *   await api.register(writFastifyPlugin, { verifier });
 *   api.get('/reports', async (req) => ({ sub: req.writ?.sub }));
 * });
 */
export const writFastifyPlugin = Object.assign(
  async (
    instance: FastifyLikeInstance,
    opts: WritMiddlewareOptions & { verifier: Verifier },
  ): Promise<void> => {
    const { verifier, ...o } = opts;
    instance.decorateRequest('writ', null);
    instance.addHook('preHandler', writFastify(verifier, o));
  },
  { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'writ' },
);
