import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';

/**
 * The key-encryption key (KEK) that seals signing keys at rest (AES-256-GCM).
 * Source, in order: the WRIT_KEK environment variable (32 bytes, base64 or base64url), else a 0600 file
 * in the data directory, created on first start.
 */
export interface KeyEncryptionKey {
  seal(plaintext: Buffer, context: string): Buffer;
  open(sealed: Buffer, context: string): Buffer;
  /** A key for another purpose derived from the KEK (HKDF-SHA-256), the same on every node sharing it. */
  derive(label: string): Buffer;
  /** Where the key came from, for the startup log; never the key itself. */
  source: string;
}

export class KekError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KekError';
  }
}

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function kekFromBytes(key: Buffer, source: string): KeyEncryptionKey {
  if (key.length !== KEY_BYTES)
    throw new KekError(`the key-encryption key must be ${KEY_BYTES} bytes, got ${key.length}`);
  return {
    source,
    derive(label) {
      return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `writ:${label}`, 32));
    },
    seal(plaintext, context) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(context));
      const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), ct]);
    },
    open(sealed, context) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
        decipher.setAAD(Buffer.from(context));
        decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
        return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
      } catch {
        throw new KekError(`cannot open sealed key "${context}": wrong key-encryption key or corrupted data`);
      }
    },
  };
}

/** Loads the KEK from `WRIT_KEK`, or from (creating if needed) the 0600 file at `file`. */
export function loadKek(env: NodeJS.ProcessEnv, file: string): KeyEncryptionKey {
  const fromEnv = env['WRIT_KEK'];
  if (fromEnv !== undefined && fromEnv !== '') {
    return kekFromBytes(decodeKey(fromEnv, 'WRIT_KEK'), 'environment variable WRIT_KEK');
  }
  if (!existsSync(file)) {
    writeFileSync(file, `${randomBytes(KEY_BYTES).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  }
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new KekError(
      `${file} is readable by group or others (mode ${mode.toString(8)}); run: chmod 600 ${file}`,
    );
  }
  return kekFromBytes(decodeKey(readFileSync(file, 'utf8').trim(), file), `file ${file}`);
}

function decodeKey(text: string, where: string): Buffer {
  const key = Buffer.from(text.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), 'base64url');
  if (key.length !== KEY_BYTES)
    throw new KekError(`${where} must hold ${KEY_BYTES} random bytes in base64 (got ${key.length})`);
  return key;
}
