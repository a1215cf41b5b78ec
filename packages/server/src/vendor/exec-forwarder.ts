import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { WorkloadClient } from '@writ/sdk/client';
import { AMBIGUOUS_PATH } from './proxy.js';

/** What `writ proxy` publishes about each route at `/.well-known/writ-proxy` (nothing secret). */
export interface PublishedRoute {
  name: string;
  audience: string;
  scopes: string[];
}

export const PROXY_METADATA_PATH = '/.well-known/writ-proxy';
const MAX_BODY = 10 * 1024 * 1024;
const DROPPED = new Set([
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'upgrade',
  'trailer',
  'proxy-authorization',
  'authorization',
  'dpop',
  'cookie',
  'content-length',
]);

/** The environment variable that carries a route's local URL: `payments-eu` is `WRIT_VENDOR_PAYMENTS_EU_URL`. */
export const vendorUrlVariable = (name: string) =>
  `WRIT_VENDOR_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`;

/**
 * The local end of `writ exec --via-proxy`: a loopback listener the command calls without any
 * credential, at a URL with a random path only the command was given. Each request goes on to the
 * vendor-key proxy with the task's DPoP-bound token for the route's audience and a fresh proof; the
 * proxy injects the vendor key. The command holds neither the vendor key nor the proof key's use.
 */
export async function startVendorForwarder(o: {
  proxyUrl: string;
  names: string[];
  client: Pick<WorkloadClient, 'fetch'>;
  taskId: string;
}): Promise<{ env: Record<string, string>; close(): Promise<void> }> {
  const proxyUrl = o.proxyUrl.replace(/\/+$/, '');
  let published: PublishedRoute[];
  try {
    const res = await fetch(`${proxyUrl}${PROXY_METADATA_PATH}`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    published = ((await res.json()) as { routes: PublishedRoute[] }).routes;
  } catch (err) {
    throw new Error(`cannot read ${proxyUrl}${PROXY_METADATA_PATH}: ${(err as Error).message}`);
  }
  const routes = new Map<string, PublishedRoute>();
  for (const n of o.names) {
    const r = published.find((p) => p.name === n);
    if (!r)
      throw new Error(
        `the proxy at ${proxyUrl} has no route ${n} (it has: ${published.map((p) => p.name).join(', ') || 'none'})`,
      );
    routes.set(n, r);
  }
  const capability = randomBytes(18).toString('base64url');
  const server = createServer((req, res) => {
    forward(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('writ exec: the request could not be forwarded to the vendor-key proxy\n');
    });
  });

  async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const prefix = `/${capability}/`;
    const rest = url.startsWith(prefix) ? url.slice(prefix.length) : undefined;
    const slash = rest?.indexOf('/') ?? -1;
    const route = rest === undefined ? undefined : routes.get(slash < 0 ? rest : rest.slice(0, slash));
    if (!route || rest === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    // Dot segments would be resolved on the way (fetch does): the token asked for this route's audience
    // must not travel to another route's path. The proxy refuses the same paths.
    const path = slash < 0 ? '/' : rest.slice(slash).split('?')[0]!;
    if (AMBIGUOUS_PATH.test(path)) {
      res
        .writeHead(400, { 'content-type': 'text/plain' })
        .end(
          'the path has dot segments, empty segments, a backslash or an encoded /, \\, . or NUL: write it plainly\n',
        );
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) {
        res.writeHead(413, { 'content-type': 'text/plain' }).end('request body over 10 MiB\n');
        return;
      }
      chunks.push(c as Buffer);
    }
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined && !DROPPED.has(k)) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    const method = (req.method ?? 'GET').toUpperCase();
    const up = await o.client.fetch(`${proxyUrl}/vendors/${rest}`, {
      audience: route.audience,
      ...(route.scopes.length > 0 ? { scope: route.scopes.join(' ') } : {}),
      taskId: o.taskId,
      method,
      headers,
      ...(chunks.length > 0 && method !== 'GET' && method !== 'HEAD' ? { body: Buffer.concat(chunks) } : {}),
      redirect: 'manual',
    });
    const out: Record<string, string> = {};
    up.headers.forEach((v, k) => {
      if (!['content-encoding', 'content-length', 'transfer-encoding', 'connection'].includes(k)) out[k] = v;
    });
    res.writeHead(up.status, out);
    res.end(Buffer.from(await up.arrayBuffer()));
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const env: Record<string, string> = {};
  for (const n of routes.keys()) env[vendorUrlVariable(n)] = `http://127.0.0.1:${port}/${capability}/${n}`;
  return {
    env,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
