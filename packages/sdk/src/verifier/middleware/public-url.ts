/**
 * Where this API is reached, as the middleware's `baseUrl` option says: a DPoP proof's `htu` must name
 * one of these URLs plus the request path (RFC 9449 §4.3 check 9). It never comes from the request:
 * `Host`, `X-Forwarded-Host` and `X-Forwarded-Proto` are the client's word, and a URL built from them
 * lets a proof made for another site (`https://evil.example/...`) pass here.
 */
export class PublicBaseUrl {
  readonly #urls: readonly URL[];
  /** Origin and path of each URL without a trailing slash: what a request path is appended to. */
  readonly #prefixes: readonly string[];

  private constructor(urls: readonly URL[]) {
    this.#urls = urls;
    this.#prefixes = urls.map((u) => `${u.origin}${u.pathname.replace(/\/+$/, '')}`);
  }

  /**
   * Reads the `baseUrl` option. Refuses, at construction, a missing or unusable one: a middleware that
   * does not know its own URL cannot check a proof.
   */
  static from(baseUrl: unknown): PublicBaseUrl {
    const given = typeof baseUrl === 'string' ? [baseUrl] : baseUrl;
    if (!Array.isArray(given) || given.length === 0)
      throw new TypeError(
        'the Writ middleware needs baseUrl: the public URL clients address this API by ' +
          '(e.g. https://api.example.com), or a list of them; DPoP proofs are checked against it, ' +
          'never against the Host or X-Forwarded-* headers of a request',
      );
    return new PublicBaseUrl(given.map(parseBaseUrl));
  }

  /**
   * The URL of a request path. With several base URLs, the one whose host the request names (the
   * request only chooses among the configured ones), else the first.
   */
  urlOf(path: string, requestHost: string | undefined): string {
    const p = path.startsWith('/') ? path : `/${path}`;
    return `${this.#prefixes[this.#pick(requestHost)]}${p}`;
  }

  /** The index of the URL a request's host names, else 0. */
  #pick(requestHost: string | undefined): number {
    if (this.#urls.length === 1 || requestHost === undefined) return 0;
    const host = requestHost.trim().toLowerCase();
    const at = this.#urls.findIndex(
      (u) => u.host === host || `${u.host}:${defaultPort(u.protocol)}` === host,
    );
    return Math.max(at, 0);
  }
}

function parseBaseUrl(value: unknown): URL {
  let u: URL | undefined;
  try {
    u = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    u = undefined;
  }
  if (
    u === undefined ||
    (u.protocol !== 'https:' && u.protocol !== 'http:') ||
    u.username !== '' ||
    u.password !== '' ||
    u.search !== '' ||
    u.hash !== ''
  )
    throw new TypeError(
      `the Writ middleware's baseUrl must be an absolute http(s) URL without credentials, query or ` +
        `fragment (e.g. https://api.example.com or https://example.com/api), not ${JSON.stringify(String(value)).slice(0, 100)}`,
    );
  return u;
}

const defaultPort = (protocol: string): string => (protocol === 'https:' ? '443' : '80');
