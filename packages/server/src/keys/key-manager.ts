import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { WRIT_KID_PREFIX } from '@writ/sdk/leaks';
import type { SigningAlgorithm } from '@writ/sdk/wire';
import type { Clock } from '../clock.js';
import { encodeBase64url } from '../jose/base64url.js';
import { jwkThumbprint, type PublicJwk, type VerificationKey } from '../jose/jwk.js';
import { signCompactJws } from '../jose/jws.js';
import type { Store } from '../store/store.js';
import type { KeyEncryptionKey } from './kek.js';
import type { KeyRecord } from './key-record.js';

/**
 * Which keys sign: `token` (access tokens, admin tokens, audit checkpoints, Security Event Tokens;
 * published at `/.well-known/jwks.json`) or `policy-bundle` (policy bundles only; published apart, at
 * `/v1/policy/jwks`). No verifier of access tokens holds a bundle key, so no bundle can ever pass as a
 * token, whatever it claims.
 */
export type KeyFamily = 'token' | 'policy-bundle';

/**
 * Signing keys. Private halves are sealed with the KEK in the store and opened only here; nothing
 * outside this module can read them. Lifecycle: `next` (published, not signing) → `active` (signing) →
 * `retired` (published until its last token has expired) → gone. Each signing key has a policy-bundle
 * key beside it (Ed25519, derived from the KEK and its `kid`: the same on every node, rotated with it).
 */
export interface KeyManager {
  /** Signs a JWS with the active key of `family` (default `token`); `typ` goes into the protected header. */
  signJwt(typ: string, claims: Record<string, unknown>, family?: KeyFamily): { jws: string; kid: string };
  /** Public keys of `family` to publish: next, active and not-yet-expired retired keys. */
  publicJwks(family?: KeyFamily): { keys: PublicJwk[] };
  /** Keys that can verify Writ's own tokens (same set as published). */
  verificationKeys(): VerificationKey[];
  activeKid(): string;
  /**
   * Promotes `next` to active, retires the old active key, generates a new `next`. `within` runs in the
   * same transaction (the event that makes other nodes reload, its audit event): all of it or nothing.
   */
  rotate(within?: (tx: Store, rotation: KeyRotation) => Promise<void>): Promise<KeyRotation>;
  /** Re-reads keys from the store (another node or process may have rotated). */
  reload(): Promise<void>;
  list(): Array<Omit<KeyRecord, 'sealedPrivateKey'>>;
}

export interface KeyRotation {
  activated: string;
  retired: string;
  next: string;
}

/** A private key ready to sign, its public JWK, and the protected headers it signed with so far. */
interface Signer {
  kid: string;
  alg: SigningAlgorithm;
  privateKey: KeyObject;
  publicJwk: PublicJwk;
  encodedHeaders: Map<string, string>;
}

interface LoadedKey {
  record: KeyRecord;
  token: Signer;
  /** The policy-bundle key that shadows this signing key. */
  bundle: Signer;
  verification: VerificationKey;
}

export interface KeyManagerOptions {
  store: Pick<Store, 'listKeys' | 'putKey' | 'transaction'>;
  kek: KeyEncryptionKey;
  clock: Clock;
  algorithm: SigningAlgorithm;
  /** The longest any token can live (seconds): how long a retired key stays published. */
  maxTokenLifetime: number;
}

export async function createKeyManager(options: KeyManagerOptions): Promise<KeyManager> {
  const { store, kek, clock } = options;
  let keys: LoadedKey[] = [];
  let active: LoadedKey | undefined;

  const load = async () => {
    const records = await store.listKeys();
    const now = clock.now();
    keys = records
      .filter((r) => r.state !== 'retired' || (r.notAfter ?? 0) > now)
      .map((record) => loadKey(record, kek));
    active = keys.find((k) => k.record.state === 'active');
  };

  await load();
  if (!active) {
    // First start: an active key and the next one, both published from the beginning.
    await store.transaction(async (tx) => {
      const existing = await tx.listKeys();
      if (existing.some((k) => k.state === 'active')) return;
      await tx.putKey({
        ...generateKey(options.algorithm, kek, clock.now()),
        state: 'active',
        activatedAt: clock.now(),
      });
      await tx.putKey(generateKey(options.algorithm, kek, clock.now()));
    });
    await load();
  }
  if (!active) throw new Error('no active signing key after initialisation');

  return {
    signJwt(typ, claims, family = 'token') {
      const k = family === 'token' ? active!.token : active!.bundle;
      let header = k.encodedHeaders.get(typ);
      if (header === undefined) {
        // Members in this order: every access token then starts with the same characters, the prefix
        // secret scanners match (`@writ/sdk/leaks`, docs/leaks.md). JSON member order means nothing to JOSE.
        header = encodeBase64url(JSON.stringify({ typ, kid: k.kid, alg: k.alg }));
        k.encodedHeaders.set(typ, header);
      }
      return { jws: signCompactJws(k.alg, k.privateKey, header, JSON.stringify(claims)), kid: k.kid };
    },
    publicJwks(family = 'token') {
      const now = clock.now();
      return {
        keys: keys
          .filter((k) => k.record.state !== 'retired' || (k.record.notAfter ?? 0) > now)
          .map((k) => (family === 'token' ? k.token : k.bundle).publicJwk),
      };
    },
    verificationKeys() {
      const now = clock.now();
      return keys
        .filter((k) => k.record.state !== 'retired' || (k.record.notAfter ?? 0) > now)
        .map((k) => k.verification);
    },
    activeKid: () => active!.record.kid,
    async rotate(within) {
      // The store serializes transactions: two nodes rotating at once make two rotations in a row, each
      // promoting the key the other published as next, never two active keys.
      const result = await store.transaction(async (tx) => {
        const now = clock.now();
        const all = await tx.listKeys();
        const current = all.find((k) => k.state === 'active');
        const next = all.find((k) => k.state === 'next');
        if (!current || !next) throw new Error('key store has no active or next key');
        const fresh = generateKey(options.algorithm, kek, now);
        await tx.putKey({
          ...current,
          state: 'retired',
          retiredAt: now,
          notAfter: now + options.maxTokenLifetime * 1000,
        });
        await tx.putKey({ ...next, state: 'active', activatedAt: now });
        await tx.putKey(fresh);
        const rotation = { activated: next.kid, retired: current.kid, next: fresh.kid };
        await within?.(tx, rotation);
        return rotation;
      });
      await load();
      return result;
    },
    reload: load,
    list: () => keys.map(({ record: { sealedPrivateKey: _s, ...rest } }) => rest),
  };
}

function generateKey(alg: SigningAlgorithm, kek: KeyEncryptionKey, now: number): KeyRecord {
  const { privateKey, publicKey } =
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  // `writ-` and the RFC 7638 thumbprint: a form secret scanners can match in every token's header.
  const kid = `${WRIT_KID_PREFIX}${jwkThumbprint(jwk)}`;
  const publicJwk = { ...jwk, kid, alg, use: 'sig' } as PublicJwk;
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  return {
    kid,
    alg,
    publicJwk,
    sealedPrivateKey: kek.seal(pkcs8, `writ-signing-key:${kid}`),
    state: 'next',
    createdAt: now,
    activatedAt: null,
    retiredAt: null,
    notAfter: null,
  };
}

function loadKey(record: KeyRecord, kek: KeyEncryptionKey): LoadedKey {
  const der = kek.open(record.sealedPrivateKey, `writ-signing-key:${record.kid}`);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  der.fill(0);
  const publicKey = createPublicKey(privateKey);
  return {
    record,
    token: {
      kid: record.kid,
      alg: record.alg,
      privateKey,
      publicJwk: record.publicJwk,
      encodedHeaders: new Map(),
    },
    bundle: bundleKey(record.kid, kek),
    verification: {
      kid: record.kid,
      key: publicKey,
      algorithms: [record.alg],
      thumbprint: jwkThumbprint(record.publicJwk as unknown as Record<string, unknown>),
    },
  };
}

/** PKCS #8 of an Ed25519 private key, up to its 32-byte seed (RFC 8410 §7). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * The policy-bundle key beside signing key `kid`: an Ed25519 key whose seed is derived from the KEK
 * and `kid` (HKDF-SHA-256), so every node sharing the KEK holds the same one without storing it, and it
 * rotates with the signing key. Knowing a signing key (or a bundle key) tells nothing of the other.
 */
function bundleKey(kid: string, kek: KeyEncryptionKey): Signer {
  const seed = kek.derive(`policy-bundle-key:${kid}`);
  const der = Buffer.concat([ED25519_PKCS8_PREFIX, seed]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  seed.fill(0);
  der.fill(0);
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' }) as Record<string, string>;
  const bundleKid = jwkThumbprint(jwk);
  return {
    kid: bundleKid,
    alg: 'EdDSA',
    privateKey,
    publicJwk: { ...jwk, kid: bundleKid, alg: 'EdDSA', use: 'sig' } as PublicJwk,
    encodedHeaders: new Map(),
  };
}
