import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { jwkThumbprint } from '../../jose/jwk.js';

/** `writ keygen`: a key pair for a workload's `private_key_jwt`. The private JWK goes to a 0600 file. */
export function keygen(out: string, alg: 'ES256' | 'EdDSA'): Record<string, string> {
  const { privateKey, publicKey } =
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const pub = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  const kid = jwkThumbprint(pub);
  const priv = { ...(privateKey.export({ format: 'jwk' }) as Record<string, string>), kid, alg };
  writeFileSync(out, `${JSON.stringify(priv, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return { ...pub, kid, alg, use: 'sig' };
}
