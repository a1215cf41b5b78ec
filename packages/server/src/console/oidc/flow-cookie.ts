import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { seconds } from '../../clock.js';

/**
 * The browser's half of an OpenID Connect sign-in (docs/console.md, "OpenID Connect"): `state`, the PKCE
 * `code_verifier` and the `nonce`, with when the sign-in must be finished, sealed (AES-256-GCM) under a key
 * every node derives from the KEK, so the callback may land on any node of a cluster and nobody can
 * read or forge it. The values never touch the store; `state` is spent there once the callback is taken.
 */

/** The cookie's name; it is sent only to `/console/oidc/*`. */
export const OIDC_FLOW_COOKIE = 'writ_oidc';
/** How long a person has to sign in at the identity provider (seconds). */
export const OIDC_FLOW_LIFETIME = 600;

export interface OidcFlow {
  state: string;
  codeVerifier: string;
  nonce: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

const VERSION = 1;
const RANDOM = 32;
const IV = 12;
const TAG = 16;
const PLAIN = 1 + 4 + 3 * RANDOM;
const AAD = Buffer.from('writ:console-oidc-flow');

/** A new flow: three random 256-bit values (base64url, 43 characters each), ending `lifetime` s from `now`. */
export function newOidcFlow(now: number): OidcFlow {
  const r = () => randomBytes(RANDOM).toString('base64url');
  return { state: r(), codeVerifier: r(), nonce: r(), expiresAt: (seconds(now) + OIDC_FLOW_LIFETIME) * 1000 };
}

/** The cookie value of a flow (172 characters of base64url). */
export function sealOidcFlow(key: Buffer, flow: OidcFlow): string {
  const plain = Buffer.alloc(PLAIN);
  plain.writeUInt8(VERSION, 0);
  plain.writeUInt32BE(seconds(flow.expiresAt), 1);
  let at = 5;
  for (const v of [flow.state, flow.codeVerifier, flow.nonce]) {
    const raw = Buffer.from(v, 'base64url');
    if (raw.length !== RANDOM) throw new Error('an OpenID Connect flow value must be 32 random bytes');
    raw.copy(plain, at);
    at += RANDOM;
  }
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(AAD);
  const sealed = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url');
}

/** The flow a cookie value holds, or undefined when it was not sealed by this key (or is malformed). */
export function openOidcFlow(key: Buffer, value: string): OidcFlow | undefined {
  const raw = Buffer.from(value, 'base64url');
  if (raw.length !== IV + TAG + PLAIN) return undefined;
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV));
    decipher.setAAD(AAD);
    decipher.setAuthTag(raw.subarray(IV, IV + TAG));
    plain = Buffer.concat([decipher.update(raw.subarray(IV + TAG)), decipher.final()]);
  } catch {
    return undefined;
  }
  if (plain.readUInt8(0) !== VERSION) return undefined;
  const part = (i: number) => plain.subarray(5 + i * RANDOM, 5 + (i + 1) * RANDOM).toString('base64url');
  return { expiresAt: plain.readUInt32BE(1) * 1000, state: part(0), codeVerifier: part(1), nonce: part(2) };
}
