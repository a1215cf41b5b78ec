import { Agent, request } from 'node:https';
import { Readable } from 'node:stream';

/** A client certificate for mutual TLS (RFC 8705): PEM strings or Buffers. */
export interface ClientTls {
  /** The client certificate (chain), PEM. */
  cert: string | Buffer;
  /** Its private key, PEM. */
  key: string | Buffer;
  /** The CA(s) of the servers, PEM, when they are not publicly trusted. */
  ca?: string | Buffer | (string | Buffer)[];
}

/**
 * A `fetch` over node:https whose connections present the client certificate (a keep-alive Agent with
 * `cert`/`key`/`ca`). Only https: URLs; bodies are strings, Buffers, URLSearchParams or absent.
 */
export function tlsFetch(tls: ClientTls): { fetch: typeof fetch; close: () => void } {
  const agent = new Agent({
    keepAlive: true,
    cert: tls.cert,
    key: tls.key,
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
  });
  const f = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    if (url.protocol !== 'https:')
      return Promise.reject(
        new TypeError(`a client certificate is presented over https only, not ${url.protocol}`),
      );
    const headers = new Headers(init.headers);
    let body: Buffer | undefined;
    const b = init.body;
    if (typeof b === 'string') body = Buffer.from(b);
    else if (b instanceof URLSearchParams) {
      body = Buffer.from(b.toString());
      if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded');
    } else if (b instanceof Uint8Array) body = Buffer.from(b);
    else if (b !== undefined && b !== null)
      return Promise.reject(new TypeError('this fetch sends string, Buffer or URLSearchParams bodies'));
    if (body) headers.set('content-length', String(body.length));
    return new Promise<Response>((resolve, reject) => {
      const req = request(
        url,
        { agent, method: (init.method ?? 'GET').toUpperCase(), headers: Object.fromEntries(headers) },
        (res) => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headersDistinct)) for (const x of v ?? []) h.append(k, x);
          const status = res.statusCode ?? 0;
          const empty = status === 204 || status === 304 || init.method?.toUpperCase() === 'HEAD';
          if (empty) res.resume();
          // The body streams (an event stream stays open); it ends with the response.
          resolve(
            new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
              status,
              statusText: res.statusMessage ?? '',
              headers: h,
            }),
          );
        },
      );
      req.on('error', reject);
      if (init.signal) {
        if (init.signal.aborted) req.destroy(init.signal.reason as Error);
        else
          init.signal.addEventListener('abort', () => req.destroy(init.signal?.reason as Error), {
            once: true,
          });
      }
      req.end(body);
    });
  };
  return { fetch: f as typeof fetch, close: () => agent.destroy() };
}
