import { generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { encodeBase64url } from '../jose/base64url.js';
import { jwkThumbprint } from '../jose/jwk.js';
import { accessTokenHash, DPOP_TYP } from './verify-proof.js';

/** A DPoP key pair held by a client. The private half never leaves the process. */
export interface DpopKey {
  alg: 'ES256' | 'EdDSA';
  privateKey: KeyObject;
  publicJwk: Record<string, string>;
  /** RFC 7638 thumbprint: the `cnf.jkt` of tokens bound to this key. */
  jkt: string;
  /** Precomputed base64url protected header. */
  encodedHeader: string;
}

export function generateDpopKey(alg: 'ES256' | 'EdDSA' = 'ES256'): DpopKey {
  const { privateKey, publicKey } =
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return dpopKeyFrom(privateKey, publicKey.export({ format: 'jwk' }) as Record<string, string>, alg);
}

export function dpopKeyFrom(
  privateKey: KeyObject,
  publicJwk: Record<string, string>,
  alg: 'ES256' | 'EdDSA',
): DpopKey {
  const pub =
    publicJwk['kty'] === 'EC'
      ? { kty: 'EC', crv: publicJwk['crv']!, x: publicJwk['x']!, y: publicJwk['y']! }
      : { kty: 'OKP', crv: publicJwk['crv']!, x: publicJwk['x']! };
  return {
    alg,
    privateKey,
    publicJwk: pub,
    jkt: jwkThumbprint(pub),
    encodedHeader: encodeBase64url(JSON.stringify({ typ: DPOP_TYP, alg, jwk: pub })),
  };
}

/** Creates a DPoP proof for one request (RFC 9449 §4.2). `htu` drops query and fragment. */
export function createDpopProof(
  key: DpopKey,
  p: { method: string; url: string; accessToken?: string; nonce?: string; nowSeconds?: number },
): string {
  const u = new URL(p.url);
  const claims: Record<string, unknown> = {
    jti: randomBytes(16).toString('base64url'),
    htm: p.method.toUpperCase(),
    htu: `${u.origin}${u.pathname}`,
    iat: p.nowSeconds ?? Math.floor(Date.now() / 1000),
  };
  if (p.accessToken !== undefined) claims['ath'] = accessTokenHash(p.accessToken);
  if (p.nonce !== undefined) claims['nonce'] = p.nonce;
  const input = `${key.encodedHeader}.${encodeBase64url(JSON.stringify(claims))}`;
  const sig =
    key.alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign(null, Buffer.from(input), key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}
