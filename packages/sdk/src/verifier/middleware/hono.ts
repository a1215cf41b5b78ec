import type { TLSSocket } from 'node:tls';
import type { Verifier } from '../verifier.js';
import { decide, requestUrl, type WritMiddlewareOptions } from './decide.js';
import { peerCertificate } from './node-http.js';

/** What the Hono middleware reads of a context: a Hono `Context` is one. */
export interface HonoLikeContext {
  req: { raw: Request };
  /** On @hono/node-server: the node request, whose TLS socket carries the client certificate. */
  env?: unknown;
}

/**
 * Hono middleware: verified claims go to `c.get('writ')`; a refused request gets its answer as the
 * response and reaches no handler. The URL is the one the adapter gives Hono unless `baseUrl` is set.
 * To type `c.get('writ')`: `declare module 'hono' { interface ContextVariableMap { writ: AccessTokenClaims } }`.
 *
 * @example app.use('/reports/*', writHono(verifier, { scopes: ['reports:read'] }));
 */
export function writHono(
  verifier: Verifier,
  o: WritMiddlewareOptions = {},
): (c: HonoLikeContext, next: () => Promise<void>) => Promise<Response | undefined> {
  return async (c, next) => {
    const raw = c.req.raw;
    const url = new URL(raw.url);
    const d = await decide(
      verifier,
      {
        method: raw.method,
        url: requestUrl(o, {
          protocol: url.protocol.slice(0, -1),
          host: url.host,
          path: url.pathname + url.search,
        }),
        authorization: raw.headers.get('authorization') ?? undefined,
        // Fetch joins repeated headers with ", ": decide() splits them again, so two proofs stay two.
        dpop: raw.headers.has('dpop') ? [raw.headers.get('dpop') ?? ''] : [],
        userAgent: raw.headers.get('user-agent') ?? undefined,
        ...nodeIncomingCertificate(c.env),
      },
      o,
    );
    if (!d.ok) {
      const headers = new Headers();
      for (const [k, v] of Object.entries(d.refusal.headers))
        for (const x of Array.isArray(v) ? v : [v]) headers.append(k, x);
      return new Response(JSON.stringify(d.refusal.body), { status: d.refusal.status, headers });
    }
    (c as unknown as { set(key: string, value: unknown): void }).set('writ', d.claims);
    await next();
    return undefined;
  };
}

/** `c.env.incoming.socket` of @hono/node-server, when it is a TLS socket. */
function nodeIncomingCertificate(env: unknown): ReturnType<typeof peerCertificate> {
  const socket = (env as { incoming?: { socket?: TLSSocket } } | undefined)?.incoming?.socket;
  return socket?.encrypted === true ? peerCertificate(socket) : {};
}
