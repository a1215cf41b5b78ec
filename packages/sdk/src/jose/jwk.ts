import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { encodeBase64url } from './base64url.js';
import { weakRsaKeyReason } from './weak-rsa.js';

/** A public JSON Web Key (RFC 7517) as Writ accepts it: no private members, a known key type. */
export interface PublicJwk {
  kty: 'EC' | 'OKP' | 'RSA';
  kid?: string;
  alg?: string;
  use?: string;
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

export class JwkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JwkError';
  }
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const MIN_RSA_BITS = 2048;

/** Asymmetric algorithms Writ can verify, and the key each one needs. */
export const VERIFY_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'] as const;
export type VerifyAlgorithm = (typeof VERIFY_ALGORITHMS)[number];

export function isVerifyAlgorithm(alg: unknown): alg is VerifyAlgorithm {
  return typeof alg === 'string' && (VERIFY_ALGORITHMS as readonly string[]).includes(alg);
}

/** A validated public key ready for verification, with the algorithms it may be used with. */
export interface VerificationKey {
  kid: string | undefined;
  key: KeyObject;
  algorithms: readonly VerifyAlgorithm[];
  thumbprint: string;
}

/**
 * Imports a public JWK, refusing private or symmetric keys, unknown curves and RSA keys under 2048 bits.
 * A key that names its `alg` is usable with that algorithm only (RFC 8725 §3.1).
 */
export function importPublicJwk(input: unknown): VerificationKey {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new JwkError('a JWK must be an object');
  const jwk = input as Record<string, unknown>;
  for (const m of PRIVATE_MEMBERS) {
    if (m in jwk)
      throw new JwkError(`a public JWK must not contain "${m}" (private or symmetric key material)`);
  }
  if (jwk['use'] !== undefined && jwk['use'] !== 'sig') throw new JwkError('"use" must be "sig"');
  // RFC 7517 §4.3: a key whose operations are listed may verify only if "verify" is among them.
  const ops = jwk['key_ops'];
  if (ops !== undefined && (!Array.isArray(ops) || !ops.includes('verify')))
    throw new JwkError('"key_ops" must include "verify"');
  let algorithms: VerifyAlgorithm[];
  let canonical: Record<string, string>;
  switch (jwk['kty']) {
    case 'EC':
      if (jwk['crv'] === 'P-256') algorithms = ['ES256'];
      else if (jwk['crv'] === 'P-384') algorithms = ['ES384'];
      else throw new JwkError(`unsupported EC curve ${JSON.stringify(jwk['crv'])}`);
      canonical = { crv: String(jwk['crv']), kty: 'EC', x: str(jwk, 'x'), y: str(jwk, 'y') };
      break;
    case 'OKP':
      if (jwk['crv'] !== 'Ed25519') throw new JwkError(`unsupported OKP curve ${JSON.stringify(jwk['crv'])}`);
      algorithms = ['EdDSA'];
      canonical = { crv: 'Ed25519', kty: 'OKP', x: str(jwk, 'x') };
      break;
    case 'RSA':
      algorithms = ['PS256', 'RS256'];
      canonical = { e: str(jwk, 'e'), kty: 'RSA', n: str(jwk, 'n') };
      break;
    default:
      throw new JwkError(`unsupported key type ${JSON.stringify(jwk['kty'])}`);
  }
  if (jwk['alg'] !== undefined) {
    if (!isVerifyAlgorithm(jwk['alg']) || !algorithms.includes(jwk['alg'])) {
      throw new JwkError(`"alg" ${JSON.stringify(jwk['alg'])} does not fit a ${String(jwk['kty'])} key`);
    }
    algorithms = [jwk['alg']];
  }
  const { key, thumbprint } = publicKeyFor(canonical);
  const kid = jwk['kid'];
  if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > 256)) {
    throw new JwkError('"kid" must be a non-empty string of at most 256 characters');
  }
  return { kid, key, algorithms, thumbprint };
}

/**
 * Imported keys by their canonical members. A DPoP holder signs every proof with the same key, and
 * building a KeyObject costs about as much as a verification: reuse it. Only keys that passed every
 * check are remembered; the cache is bounded (oldest entry out first).
 */
const importedKeys = new Map<string, { key: KeyObject; thumbprint: string }>();
const IMPORTED_KEYS_MAX = 1024;

function publicKeyFor(canonical: Record<string, string>): { key: KeyObject; thumbprint: string } {
  const id = JSON.stringify(canonical);
  const hit = importedKeys.get(id);
  if (hit) return hit;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: canonical, format: 'jwk' });
  } catch {
    throw new JwkError('the key material is not a valid public key');
  }
  if (key.asymmetricKeyType === 'rsa') {
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS)
      throw new JwkError(`RSA keys must have at least ${MIN_RSA_BITS} bits`);
    const { n, e } = key.export({ format: 'jwk' });
    const weak = weakRsaKeyReason(Buffer.from(n ?? '', 'base64url'), Buffer.from(e ?? '', 'base64url'));
    if (weak) throw new JwkError(weak);
  }
  const imported = { key, thumbprint: jwkThumbprint(canonical) };
  if (id.length <= 4096) {
    if (importedKeys.size >= IMPORTED_KEYS_MAX)
      importedKeys.delete(importedKeys.keys().next().value as string);
    importedKeys.set(id, imported);
  }
  return imported;
}

function str(jwk: Record<string, unknown>, member: string): string {
  const v = jwk[member];
  if (typeof v !== 'string' || v.length === 0) throw new JwkError(`"${member}" is required`);
  return v;
}

/** RFC 7638 thumbprint (SHA-256, base64url) of the required members of a public JWK. */
export function jwkThumbprint(jwk: Record<string, unknown>): string {
  const members =
    jwk['kty'] === 'EC'
      ? ['crv', 'kty', 'x', 'y']
      : jwk['kty'] === 'OKP'
        ? ['crv', 'kty', 'x']
        : ['e', 'kty', 'n'];
  const json = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
  return encodeBase64url(createHash('sha256').update(json).digest());
}
