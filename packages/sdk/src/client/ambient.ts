import { existsSync, readFileSync, statSync } from 'node:fs';

/**
 * Where a workload's federation token comes from: called for every token request, so a rotating
 * source (a Kubernetes projected token, a SPIRE-refreshed JWT-SVID, a fresh GitHub Actions ID token) is
 * read anew each time.
 */
export type FederationTokenSource = () => Promise<string>;

/** The default path of a Kubernetes projected service-account token meant for Writ (docs/federation.md). */
export const DEFAULT_FEDERATION_TOKEN_FILE = '/var/run/secrets/tokens/writ-token';

const MAX_TOKEN_BYTES = 16_384;

export interface AmbientOptions {
  /** The `aud` to ask for: the audience the Writ issuer file requires (usually the Writ issuer URL). */
  audience: string;
  /** A token file given explicitly (`writ exec --federation-token-file`); wins over detection. */
  tokenFile?: string | undefined;
  env?: Record<string, string | undefined>;
  fetch?: typeof fetch;
  /** Checked after the environment; default DEFAULT_FEDERATION_TOKEN_FILE. */
  defaultTokenFile?: string;
}

/** A detected source and what it is, for logs (`github-actions`, `file:<path>`, `env`). */
export interface AmbientIdentity {
  kind: string;
  token: FederationTokenSource;
}

/**
 * Finds the workload's ambient identity, in order: an explicit token file; the GitHub Actions OIDC
 * request environment (`ACTIONS_ID_TOKEN_REQUEST_URL` and `_TOKEN`, present with `permissions: id-token:
 * write`); `WRIT_FEDERATION_TOKEN` (e.g. a GitLab CI `id_tokens:` variable); `WRIT_FEDERATION_TOKEN_FILE`
 * or `SPIFFE_JWT_SVID_FILE` (a file that a SPIRE helper keeps fresh); the default projected token path.
 * Undefined when there is none.
 */
export function detectAmbientIdentity(o: AmbientOptions): AmbientIdentity | undefined {
  const env = o.env ?? process.env;
  if (o.tokenFile) return { kind: `file:${o.tokenFile}`, token: tokenFromFile(o.tokenFile) };
  const url = env['ACTIONS_ID_TOKEN_REQUEST_URL'];
  const bearer = env['ACTIONS_ID_TOKEN_REQUEST_TOKEN'];
  if (url && bearer) {
    return {
      kind: 'github-actions',
      token: githubActionsToken({
        url,
        bearer,
        audience: o.audience,
        ...(o.fetch ? { fetch: o.fetch } : {}),
      }),
    };
  }
  const inline = env['WRIT_FEDERATION_TOKEN'];
  if (inline) return { kind: 'env', token: async () => checkedToken(inline, 'WRIT_FEDERATION_TOKEN') };
  for (const name of ['WRIT_FEDERATION_TOKEN_FILE', 'SPIFFE_JWT_SVID_FILE']) {
    const file = env[name];
    if (file) return { kind: `file:${file}`, token: tokenFromFile(file) };
  }
  const fallback = o.defaultTokenFile ?? DEFAULT_FEDERATION_TOKEN_FILE;
  if (existsSync(fallback)) return { kind: `file:${fallback}`, token: tokenFromFile(fallback) };
  return undefined;
}

/** Reads a token file on every call (projected tokens are rotated in place by the kubelet). */
export function tokenFromFile(file: string): FederationTokenSource {
  return async () => {
    const size = statSync(file).size;
    if (size > MAX_TOKEN_BYTES) throw new Error(`${file} is larger than ${MAX_TOKEN_BYTES} bytes`);
    return checkedToken(readFileSync(file, 'utf8'), file);
  };
}

/**
 * Requests a fresh ID token from the GitHub Actions OIDC endpoint for `audience` (the runner's
 * request URL plus `&audience=`, authorised by the request token), on every call.
 */
export function githubActionsToken(o: {
  url: string;
  bearer: string;
  audience: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}): FederationTokenSource {
  return async () => {
    const u = new URL(o.url);
    u.searchParams.set('audience', o.audience);
    const res = await (o.fetch ?? fetch)(u, {
      headers: { authorization: `bearer ${o.bearer}`, accept: 'application/json; api-version=2.0' },
      redirect: 'error',
      signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
    });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new Error(`GitHub Actions ID token request: HTTP ${res.status}`);
    }
    const text = await boundedText(res, MAX_TOKEN_BYTES * 2);
    if (text === undefined) throw new Error('GitHub Actions ID token response is too large');
    let value: unknown;
    try {
      value = (JSON.parse(text) as { value?: unknown } | null)?.value;
    } catch {
      // Never the parser's message: it quotes the body, which may hold the token.
      throw new Error('GitHub Actions ID token response is not JSON');
    }
    if (typeof value !== 'string') throw new Error('GitHub Actions ID token response has no value');
    return checkedToken(value, 'the GitHub Actions ID token');
  };
}

/** The body as text, or undefined (and no longer read) once it passes `max` bytes. */
async function boundedText(res: Response, max: number): Promise<string | undefined> {
  if (Number(res.headers.get('content-length') ?? 0) > max) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function checkedToken(raw: string, what: string): string {
  const t = raw.trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(t) || t.length > MAX_TOKEN_BYTES)
    throw new Error(`${what} does not hold a compact JWT`);
  return t;
}
