import type { Clock } from '../clock.js';

export interface RemoteDocumentOptions<T> {
  clock: Clock;
  /** Milliseconds between two fetches caused by a lookup the held document could not answer. */
  cooldownMs: number;
  /** Milliseconds a fetched document is used before it is fetched again. */
  maxAgeMs: number;
  timeoutMs?: number;
  maxBytes?: number;
  fetch?: typeof fetch;
  /** Reads the body; throws (`unavailable`) when it is not what was expected. */
  parse(body: string): T;
  /** The error every failure is reported as (a fetch, a status, a size, the cooldown). */
  unavailable(message: string): Error;
  /** What errors call it: `the JWKS`, `the partner keys`. */
  name: string;
}

/**
 * A document of public keys at one configured URL (a JWKS, a partner's key list), cached on the
 * injected clock: fetched on first use and once older than `maxAgeMs`, never used past that age; a
 * lookup it cannot answer refetches at most once per `cooldownMs` (a flood of made-up key ids costs
 * one fetch), and so does a failed fetch; concurrent callers share one fetch. Fetches are bounded in
 * time and size and never follow redirects (a redirect elsewhere is a failure). No document, no
 * acceptance.
 */
export class RemoteDocument<T> {
  readonly #uri: string;
  readonly #o: RemoteDocumentOptions<T>;
  #value: T | undefined;
  /** When the current document was fetched. */
  #fetchedAt = Number.NEGATIVE_INFINITY;
  /** When a fetch was last tried, successful or not: the cooldown counts from here. */
  #triedAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<T> | undefined;

  constructor(uri: string, o: RemoteDocumentOptions<T>) {
    this.#uri = uri;
    this.#o = o;
  }

  /** The document: the one held while younger than `maxAgeMs`, else a fresh one. */
  async current(): Promise<T> {
    const held = this.#value;
    if (held !== undefined && this.#o.clock.now() - this.#fetchedAt < this.#o.maxAgeMs) return held;
    // None, or one past its age: never used. A fetch that just failed is not retried before the
    // cooldown, so an unreachable URL is not hammered.
    if (!this.#inflight && this.#o.clock.now() - this.#triedAt < this.#o.cooldownMs)
      throw this.#o.unavailable(`${this.#o.name} could not be fetched; retrying after the cooldown`);
    return this.#refresh();
  }

  /**
   * A newer document than `held`, which lacked what was looked up: one another caller fetched
   * meanwhile, the fetch under way, or a new fetch unless one was tried within the cooldown
   * (undefined then: the lookup fails).
   */
  async newer(held: T): Promise<T | undefined> {
    if (this.#value !== undefined && this.#value !== held) return this.#value;
    if (this.#inflight) return this.#inflight;
    if (this.#o.clock.now() - this.#triedAt < this.#o.cooldownMs) return undefined;
    return this.#refresh();
  }

  #refresh(): Promise<T> {
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #fetch(): Promise<T> {
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
      throw this.#o.unavailable(`cannot fetch ${this.#o.name}: ${(err as Error).message}`);
    }
    const value = this.#o.parse(body);
    this.#value = value;
    this.#fetchedAt = this.#o.clock.now();
    return value;
  }
}

/** A response body as text, refused past `maxBytes` (declared or read). */
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
