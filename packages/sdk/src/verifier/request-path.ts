/**
 * `http(s)://host` then a path of characters the URL parser keeps as they are, and any query; no dot
 * segment (`/.`, `%2e`), which the parser would resolve.
 */
const PLAIN_URL =
  /^(?![^?]*(?:\/\.|%2e))https?:\/\/[A-Za-z0-9.:[\]-]+(\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)?(?:\?[^#]*)?$/i;

/**
 * The path of a request URL, as `new URL(url).pathname` says it, for usage reports: read off a plain
 * URL (the usual case, one per request) without parsing it; a URL that is not absolute is kept as given.
 *
 * @example requestPath('https://api.example.com/reports/7?x=1') === '/reports/7'
 */
export function requestPath(url: string): string {
  const plain = PLAIN_URL.exec(url);
  if (plain) return plain[1] ?? '/';
  try {
    return new URL(url).pathname;
  } catch {
    return url;
  }
}
