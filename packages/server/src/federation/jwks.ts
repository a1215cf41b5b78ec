import { WritError } from '@writ/sdk/wire';
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWSHeaderParameters } from 'jose';
import type { Clock } from '../clock.js';
import { RemoteDocument } from '../net/remote-document.js';

type KeyResolver = ReturnType<typeof createLocalJWKSet>;
type ResolvedKey = Awaited<ReturnType<KeyResolver>>;

/** The JWKS could not be fetched or read: the token may be fine, but nothing can be checked. */
export class JwksUnavailableError extends WritError {
  declare readonly code: 'temporarily_unavailable';
  declare readonly reason: 'jwks_unavailable';
  constructor(message: string) {
    super('temporarily_unavailable', 'jwks_unavailable', message);
    this.name = 'JwksUnavailableError';
  }
}

export interface RemoteJwksOptions {
  clock: Clock;
  /** Milliseconds between two fetches caused by an unknown `kid`. */
  cooldownMs: number;
  /** Milliseconds a fetched set is used before it is fetched again. */
  maxAgeMs: number;
  timeoutMs?: number;
  maxBytes?: number;
  fetch?: typeof fetch;
}

/** Signing keys of one issuer: resolves the key of a JWS header, as jose's `jwtVerify` asks. */
export interface IssuerKeys {
  resolve(header: JWSHeaderParameters): Promise<ResolvedKey>;
}

/** Keys given in the config (`jwks_file`), for issuers Writ cannot reach. */
export function staticKeys(keys: Record<string, unknown>[]): IssuerKeys {
  const set = createLocalJWKSet({ keys: usableKeys(keys) } as JSONWebKeySet);
  return { resolve: (header) => set(header) };
}

/**
 * A remote JWKS with its own cache on the injected clock (`RemoteDocument`): fetched on first use and
 * once older than `maxAgeMs`; an unknown `kid` refetches at most once per `cooldownMs` (a flood of
 * made-up `kid`s costs one fetch); concurrent callers share one fetch. Fetches are bounded in time and
 * size and never follow redirects. No key, no acceptance.
 */
export class RemoteJwks implements IssuerKeys {
  readonly #doc: RemoteDocument<KeyResolver>;

  constructor(uri: string, o: RemoteJwksOptions) {
    this.#doc = new RemoteDocument(uri, {
      ...o,
      name: 'the JWKS',
      unavailable: (message) => new JwksUnavailableError(message),
      parse: (body) => {
        let keys: unknown;
        try {
          keys = (JSON.parse(body) as { keys?: unknown }).keys;
        } catch {
          throw new JwksUnavailableError('the JWKS is not JSON');
        }
        if (!Array.isArray(keys) || keys.length > 100)
          throw new JwksUnavailableError('the JWKS has no keys array (or more than 100 keys)');
        return createLocalJWKSet({ keys: usableKeys(keys) } as JSONWebKeySet);
      },
    });
  }

  async resolve(header: JWSHeaderParameters): Promise<ResolvedKey> {
    const set = await this.#doc.current();
    try {
      return await set(header);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      const newer = await this.#doc.newer(set);
      if (!newer) throw err;
      return newer(header);
    }
  }
}

/** Signing keys only: no symmetric or private keys, no encryption keys, no X.509-SVID bundle keys. */
function usableKeys(keys: unknown[]): Record<string, unknown>[] {
  return keys.filter((k): k is Record<string, unknown> => {
    if (typeof k !== 'object' || k === null) return false;
    const o = k as Record<string, unknown>;
    if (o['kty'] === 'oct' || 'd' in o) return false;
    const use = o['use'];
    return use === undefined || use === 'sig' || use === 'jwt-svid';
  });
}
