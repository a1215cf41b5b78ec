import { connect } from 'node:net';

/** Status and head (status line and headers) of an answer read off a raw socket. */
export interface RawAnswer {
  status: number;
  head: string;
}

/**
 * One HTTP/1.1 request over a raw socket to `origin`, for what fetch will not send: dot segments and
 * encoded slashes in `path`, CR or LF in a header, a header line twice, a Host of the caller's choosing.
 *
 * @example rawRequest(origin, 'GET', '/vendors/payments/v1/../refunds')
 */
export function rawRequest(
  origin: string,
  method: string,
  path: string,
  headers: [string, string][] = [],
  host?: string,
): Promise<RawAnswer> {
  const u = new URL(origin);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname);
    let text = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')));
    socket.on('data', (c) => {
      text += c.toString();
    });
    socket.on('error', reject);
    socket.on('end', () => {
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), head: text.split('\r\n\r\n')[0]! });
    });
    const lines = [
      `${method} ${path} HTTP/1.1`,
      `Host: ${host ?? u.host}`,
      ...headers.map(([k, v]) => `${k}: ${v}`),
    ];
    socket.write(`${lines.join('\r\n')}\r\nConnection: close\r\n\r\n`);
  });
}
