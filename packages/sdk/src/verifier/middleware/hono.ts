import type { TLSSocket } from 'node:tls';
import type { Verifier } from '../verifier.js';
import { decide, type WritMiddlewareOptions } from './decide.js';
import { peerCertificate } from './node-http.js';
import { PublicBaseUrl } from './public-url.js';

/** What the Hono middleware reads of a context: a Hono `Context` is one. */
export interface HonoLikeContext {
  req: { raw: Request };
  /** On @hono/node-server: the node request, whose TLS socket carries the client certificate. */
  env?: unknown;
}

/**
 * Hono middleware: verified claims go to `c.get('writ')`; a refused request gets its answer as the
 * response and reaches no handler. The URL is `baseUrl` plus the path of the request's URL; the host
 * of that URL (which adapters build from the Host header) only picks among several base URLs.
 * To type `c.get('writ')`: `declare module 'hono' { interface ContextVariableMap { writ: AccessTokenClaims } }`.
 *
 * @example app.use('/reports/*', writHono(verifier, { baseUrl: 'https://api.example.com', scopes: ['reports:read'] }));
 */
export function writHono(
  verifier: Verifier,
  o: WritMiddlewareOptions,
): (c: HonoLikeContext, next: () => Promise<void>) => Promise<Response | undefined> {
  const base = PublicBaseUrl.from(o?.baseUrl);
  return async (c, next) => {
    const raw = c.req.raw;
    const url = new URL(raw.url);
    const d = await decide(
      verifier,
      {
        method: raw.method,
        url: base.urlOf(url.pathname + url.search, url.host),
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
