// Helpers shared by the issuance benchmark's processes. Nothing here talks to anything but loopback.
import { createECDH, createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { createServer } from 'node:net';

export const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** The one audience (resource) and the scope every benchmark request asks for. */
export const AUDIENCE = 'https://api.bench.writ';
export const SCOPES = ['bench:read', 'bench:write'];
export const REQUESTED_SCOPE = 'bench:read';
/** Access token lifetime on both servers, seconds. */
export const TOKEN_TTL = 300;

const b64u = (s) => Buffer.from(s).toString('base64url');

/** RFC 7638 thumbprint of an EC public JWK. */
export function thumbprint(jwk) {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical).digest('base64url');
}

/** A fresh P-256 key pair as JWKs (public with kid/alg/use, private with kid/alg). */
//
// Made with ECDH rather than generateKeyPairSync: a bench process that made a few hundred keys that way
// beside open sockets once hung for good in Node 20.20 (the main thread waiting on a mutex in a finished
// key-generation job's destructor, run by a garbage collection during the next key's JWK export).
export function es256KeyPair() {
  const ecdh = createECDH('prime256v1');
  const point = ecdh.generateKeys(); // 0x04 || x || y
  const pub = {
    kty: 'EC',
    crv: 'P-256',
    x: point.subarray(1, 33).toString('base64url'),
    y: point.subarray(33, 65).toString('base64url'),
  };
  const d = ecdh.getPrivateKey();
  const kid = thumbprint(pub);
  return {
    publicJwk: { ...pub, kid, alg: 'ES256', use: 'sig' },
    privateJwk: {
      ...pub,
      d: Buffer.concat([Buffer.alloc(32 - d.length), d]).toString('base64url'),
      kid,
      alg: 'ES256',
      use: 'sig',
    },
  };
}

/** The benchmark's clients: `n` workloads, each with its own key. */
export function benchClients(n) {
  return Array.from({ length: n }, (_, i) => ({
    clientId: `spiffe://bench.writ/load/client-${String(i).padStart(3, '0')}`,
    ...es256KeyPair(),
  }));
}

/** Returns a signer for compact ES256 JWS with the given private JWK. */
export function es256Signer(privateJwk) {
  const key = createPrivateKey({ key: privateJwk, format: 'jwk' });
  const header = b64u(JSON.stringify({ alg: 'ES256', kid: privateJwk.kid, typ: 'JWT' }));
  return (claims) => {
    const input = `${header}.${b64u(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${sig.toString('base64url')}`;
  };
}

/**
 * `count` token requests for client_credentials with private_key_jwt, each with its own single-use
 * assertion (unique `jti`), round-robin over the clients. Made before the timed phase. Without `dpop`
 * each request is a form body (string); with `dpop: { htu, nonce }` it is `{ body, dpop }`, the DPoP
 * proof made with the client's own proof key (RFC 9449), carrying the server's nonce.
 */
export function tokenRequestBodies({ clients, audienceOfAssertion, count, prefix, dpop }) {
  if (dpop) for (const c of clients) c.dpopKey ??= es256KeyPair();
  const signers = clients.map((c) => ({
    clientId: c.clientId,
    sign: es256Signer(c.privateJwk),
    prove: dpop ? dpopSigner(c.dpopKey) : undefined,
  }));
  const run = `${prefix}-${randomBytes(6).toString('base64url')}`;
  const now = Math.floor(Date.now() / 1000);
  const items = new Array(count);
  for (let i = 0; i < count; i++) {
    const s = signers[i % signers.length];
    const assertion = s.sign({
      iss: s.clientId,
      sub: s.clientId,
      aud: audienceOfAssertion,
      iat: now,
      exp: now + 240,
      jti: `${run}-${i}`,
    });
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: s.clientId,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: assertion,
      resource: AUDIENCE,
      scope: REQUESTED_SCOPE,
    }).toString();
    items[i] = dpop
      ? {
          body,
          dpop: s.prove({
            jti: `${run}-p${i}`,
            htm: 'POST',
            htu: dpop.htu,
            iat: now,
            ...(dpop.nonce ? { nonce: dpop.nonce } : {}),
          }),
        }
      : body;
  }
  return items;
}

/** Returns a signer of DPoP proofs (`typ: dpop+jwt`, public `jwk` in the header) for a key pair. */
export function dpopSigner({ privateJwk, publicJwk }) {
  const key = createPrivateKey({ key: privateJwk, format: 'jwk' });
  const { kty, crv, x, y } = publicJwk;
  const header = b64u(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } }));
  return (claims) => {
    const input = `${header}.${b64u(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${sig.toString('base64url')}`;
  };
}

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The q-quantile (0..1) of a sorted numeric array. */
export function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Decodes a compact JWS without verifying it (for the sanity check of what each server issued). */
export function decodeJwt(token) {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

/** Reads the single JSON argument a child process of the benchmark is started with. */
export function childConfig() {
  const raw = process.argv[2];
  if (!raw) throw new Error('usage: node <script> <json-config>');
  return JSON.parse(raw);
}
