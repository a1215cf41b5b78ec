// One HTTPS round trip for the mTLS tests: real TLS to 127.0.0.1, a JSON reply.
import { type RequestOptions, request } from 'node:https';
import type { TestCertificate } from './certificates.js';

/** Status and parsed JSON body (`{}` when the body is empty). */
export interface HttpsReply {
  status: number;
  body: Record<string, unknown>;
}

/** Sends one request over HTTPS (`options` as for `https.request`, `body` written as is). */
export function httpsJson(options: RequestOptions, body?: string): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** GET `path` with a bearer token, trusting `ca`, presenting `client` as TLS client certificate (or none). */
export function bearerGet(
  port: number,
  ca: TestCertificate,
  path: string,
  token: string,
  client?: TestCertificate,
): Promise<HttpsReply> {
  return httpsJson({
    host: '127.0.0.1',
    port,
    path,
    ca: ca.pem,
    agent: false,
    ...(client ? { cert: client.pem, key: client.key } : {}),
    headers: { authorization: `Bearer ${token}` },
  });
}
