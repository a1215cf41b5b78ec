import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { importPublicJwk, type VerificationKey } from '../../src/jose/jwk.js';
import { POLICY_BUNDLE_TYP, type PolicyBundleClaims } from '../../src/wire/index.js';

export const ISSUER = 'https://writ.test';
export const API = 'https://api.test';

/** An ES256 key standing in for the server's policy-bundle key. */
export function bundleKey(kid = 'k1'): { privateKey: KeyObject; verification: VerificationKey } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(publicKey.export({ format: 'jwk' }) as Record<string, string>), kid, alg: 'ES256' };
  return { privateKey, verification: importPublicJwk(jwk) };
}

/** A bundle payload as the server builds one, with `over` replacing its fields. */
export function bundleClaims(over: Partial<PolicyBundleClaims> = {}): PolicyBundleClaims {
  return {
    iss: ISSUER,
    aud: API,
    iat: 1,
    exp: 301,
    version: 1,
    policy_version: '1-000000000000',
    built_in: false,
    schema: '',
    policies: [],
    context_reads: [],
    context_defaults: { risk: 0 },
    resource: { id: API, sensitivity: 'internal', environment: 'prod', owner: 'team', version: 1 },
    workloads: [],
    ...over,
  };
}

/** The compact JWS the server serves at `/v1/policy/bundle`. */
export function signBundle(key: { privateKey: KeyObject }, claims: PolicyBundleClaims, kid = 'k1'): string {
  const h = Buffer.from(JSON.stringify({ alg: 'ES256', typ: POLICY_BUNDLE_TYP, kid })).toString('base64url');
  const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const sig = sign('sha256', Buffer.from(`${h}.${p}`), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${h}.${p}.${sig.toString('base64url')}`;
}
