import { WritError } from '@writ/sdk/wire';
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWSHeaderParameters } from 'jose';
import type { Clock } from '../clock.js';

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
 * A remote JWKS with its own cache on the injected clock: fetched on first use and once older than
 * `maxAgeMs`; an unknown `kid` refetches at most once per `cooldownMs` (a flood of made-up `kid`s costs
 * one fetch); concurrent callers share one fetch. Fetches are bounded in time and size and never follow
 * redirects. No key, no acceptance.
 */
export class RemoteJwks implements IssuerKeys {
  readonly #uri: string;
  readonly #o: RemoteJwksOptions;
  #set: KeyResolver | undefined;
  /** When the current set was fetched. */
  #setAt = Number.NEGATIVE_INFINITY;
  /** When a fetch was last tried, successful or not: the cooldown counts from here. */
  #triedAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<KeyResolver> | undefined;

  constructor(uri: string, o: RemoteJwksOptions) {
    this.#uri = uri;
    this.#o = o;
  }

  async resolve(header: JWSHeaderParameters): Promise<ResolvedKey> {
    let set = this.#set;
    if (!set || this.#o.clock.now() - this.#setAt >= this.#o.maxAgeMs) {
      // No set, or one past its age: never used. A fetch that just failed is not retried before the
      // cooldown, so an unreachable JWKS is not hammered.
      if (!this.#inflight && this.#o.clock.now() - this.#triedAt < this.#o.cooldownMs)
        throw new JwksUnavailableError('the JWKS could not be fetched; retrying after the cooldown');
      set = await this.#refresh();
    }
    try {
      return await set(header);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      // Another caller refreshed meanwhile: try its set before deciding to fetch.
      if (this.#set && this.#set !== set) return this.#set(header);
      if (this.#inflight) return (await this.#inflight)(header);
      if (this.#o.clock.now() - this.#triedAt < this.#o.cooldownMs) throw err;
      return (await this.#refresh())(header);
    }
  }

  #refresh(): Promise<KeyResolver> {
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #fetch(): Promise<KeyResolver> {
    this.#triedAt = this.#o.clock.now();
    const maxBytes = this.#o.maxBytes ?? 65_536;
    let body: string;
    try {
      const res = await (this.#o.fetch ?? fetch)(this.#uri, {
        redirect: 'error',
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 5000),
      });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      body = await boundedText(res, maxBytes);
    } catch (err) {
      throw new JwksUnavailableError(`cannot fetch the JWKS: ${(err as Error).message}`);
    }
    let keys: unknown;
    try {
      keys = (JSON.parse(body) as { keys?: unknown }).keys;
    } catch {
      throw new JwksUnavailableError('the JWKS is not JSON');
    }
    if (!Array.isArray(keys) || keys.length > 100)
      throw new JwksUnavailableError('the JWKS has no keys array (or more than 100 keys)');
    this.#set = createLocalJWKSet({ keys: usableKeys(keys) } as JSONWebKeySet);
    this.#setAt = this.#o.clock.now();
    return this.#set;
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

async function boundedText(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new Error(`larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
