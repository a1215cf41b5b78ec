// Real keys and signed access tokens for the verifier's unit tests.
import { generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { importPublicJwk, type VerificationKey } from '../../src/jose/index.js';

export interface Signer {
  alg: 'ES256' | 'EdDSA';
  privateKey: KeyObject;
  publicJwk: Record<string, string>;
  key: VerificationKey;
}

/** A fresh key pair, its public JWK (with `kid` and `alg`) and that JWK imported as a verifier would. */
export function signer(alg: 'ES256' | 'EdDSA', kid: string): Signer {
  const { privateKey, publicKey } =
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const publicJwk = { ...(publicKey.export({ format: 'jwk' }) as Record<string, string>), kid, alg };
  return { alg, privateKey, publicJwk, key: importPublicJwk(publicJwk) };
}

export const b64 = (v: unknown) =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A JWS over `payload` with `s`'s private key; the header says what `header` says (it may lie). */
export function signToken(s: Signer, header: Record<string, unknown>, payload: unknown): string {
  const input = `${b64({ alg: s.alg, typ: 'at+jwt', kid: s.publicJwk['kid'], ...header })}.${b64(payload)}`;
  const sig =
    s.alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key: s.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign(null, Buffer.from(input), s.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

/** A clock the test moves by hand (milliseconds). */
export function manualClock(start: number): {
  now: () => number;
  advance: (ms: number) => void;
  set: (ms: number) => void;
} {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
    set: (ms) => {
      t = ms;
    },
  };
}

/** The claims of a Writ access token from `issuer` for `audience`, issued at `now` (seconds) for 300 s. */
export function accessTokenClaims(
  issuer: string,
  audience: string,
  now: number,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    iss: issuer,
    sub: 'spiffe://example/w',
    aud: audience,
    client_id: 'spiffe://example/w',
    scope: 'reports:read',
    iat: now,
    nbf: now,
    exp: now + 300,
    jti: randomBytes(12).toString('base64url'),
    cls: 'reports',
    ...over,
  };
}
