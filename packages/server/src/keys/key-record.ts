import type { PublicJwk } from '../jose/jwk.js';

export type KeyState = 'next' | 'active' | 'retired';

export interface KeyRecord {
  kid: string;
  alg: 'ES256' | 'EdDSA';
  publicJwk: PublicJwk;
  /** AES-256-GCM sealed PKCS#8 private key; opened only inside the KeyManager. */
  sealedPrivateKey: Buffer;
  state: KeyState;
  createdAt: number;
  activatedAt: number | null;
  retiredAt: number | null;
  /** When a retired key may leave the JWKS: its last token has expired. */
  notAfter: number | null;
}
