import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';

/** A stand-in for GitHub's secret scanning partner program: its key list over real HTTP, and its signer. */

export interface PartnerKey {
  id: string;
  privateKey: KeyObject;
  pem: string;
}

export function partnerKey(): PartnerKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
  return { id: createHash('sha256').update(pem).digest('hex'), privateKey, pem };
}

/** The two headers of a report: the key id and base64 DER ECDSA P-256 SHA-256 over the body as sent. */
export function partnerHeaders(key: PartnerKey, body: string | Buffer): Record<string, string> {
  return {
    'github-public-key-identifier': key.id,
    'github-public-key-signature': sign('sha256', Buffer.from(body), {
      key: key.privateKey,
      dsaEncoding: 'der',
    }).toString('base64'),
  };
}

export interface PartnerKeyServer {
  url: string;
  /** Requests answered so far. */
  readonly fetches: number;
  /** The keys published from now on. */
  publish(keys: PartnerKey[]): void;
  /** Answer every request with a redirect to `to` instead. */
  redirect(to: string | undefined): void;
  close(): Promise<void>;
}

/** Serves `{"public_keys": [...]}` on 127.0.0.1, as https://api.github.com/meta/public_keys/secret_scanning does. */
export async function startPartnerKeyServer(keys: PartnerKey[]): Promise<PartnerKeyServer> {
  let published = keys;
  let redirectTo: string | undefined;
  let fetches = 0;
  const server: Server = createServer((req, res) => {
    fetches++;
    if (redirectTo) {
      res.writeHead(302, { location: redirectTo }).end();
      return;
    }
    const body = JSON.stringify({
      public_keys: published.map((k, i) => ({ key_identifier: k.id, key: k.pem, is_current: i === 0 })),
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    req.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/meta/public_keys/secret_scanning`,
    get fetches() {
      return fetches;
    },
    publish(k) {
      published = k;
    },
    redirect(to) {
      redirectTo = to;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
