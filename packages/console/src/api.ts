/**
 * The console's one way to the server: the session cookie authenticates (credentials 'same-origin'),
 * every state-changing request carries the session's CSRF token in `X-Writ-CSRF`, and a refusal
 * becomes an `ApiError` holding the server's RFC 6749 style `error` and `error_description`.
 */

export interface Session {
  operator: string;
  person?: string | null;
  csrf: string;
  [key: string]: unknown;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description ? `${error}: ${description}` : error);
  }
}

let csrf = '';

/** Called once the session is known; every later POST/PUT/DELETE sends it. */
export function useCsrf(token: string): void {
  csrf = token;
}

const SAFE = new Set(['GET', 'HEAD']);

/** `api('GET', '/admin/v1/workloads')` → the parsed JSON body, or throws `ApiError`. */
export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (!SAFE.has(method)) headers['x-writ-csrf'] = csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    cache: 'no-store',
    redirect: 'error',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const o = (parsed ?? {}) as { error?: unknown; error_description?: unknown };
    throw new ApiError(
      res.status,
      typeof o.error === 'string' ? o.error : `http_${res.status}`,
      typeof o.error_description === 'string' ? o.error_description : text.slice(0, 300),
    );
  }
  return parsed as T;
}

/** `/admin/v1` plus a path whose variable parts are percent-encoded. */
export const admin = (strings: TemplateStringsArray, ...values: Array<string | number>): string =>
  `/admin/v1${strings.reduce((acc, s, i) => acc + encodeURIComponent(String(values[i - 1])) + s)}`;

/** Builds `?a=1&b=2` from the given entries, leaving out empty ones. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** `GET /console/api/session`: the session, or null when the cookie is missing, expired or signed out. */
export async function currentSession(): Promise<Session | null> {
  try {
    return await api<Session>('GET', '/console/api/session');
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return null;
    throw err;
  }
}

/** Trades the one-time sign-in link (a JWT signed by the operator key) for a session cookie. */
export async function signIn(link: string): Promise<void> {
  const res = await fetch('/console/api/signin', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    credentials: 'same-origin',
    cache: 'no-store',
    body: JSON.stringify({ link }),
  });
  if (!res.ok) {
    let o: { error?: string; error_description?: string } = {};
    try {
      o = await res.json();
    } catch {}
    throw new ApiError(res.status, o.error ?? `http_${res.status}`, o.error_description ?? '');
  }
}

export async function signOut(): Promise<void> {
  await api('POST', '/console/api/signout');
}
