import { readFileSync, statSync } from 'node:fs';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import { importJWK, type JWK, SignJWT } from 'jose';
import { newTokenId } from '../tokens/access-token.js';

/** Options every command that talks to a server shares. */
export interface ServerOptions {
  server: string;
  operatorKey: string;
}

/** An operator key file as `writ init` writes it (0600): the operator's name and private JWK. */
export interface OperatorKeyFile {
  operator: string;
  key: JWK;
}

export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

export function readPrivateKeyFile<T>(file: string): T {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    throw new CliError(`cannot read key file ${file} (run \`writ init\`, or pass --operator-key)`);
  }
  if ((mode & 0o077) !== 0)
    throw new CliError(`${file} is readable by group or others; run: chmod 600 ${file}`);
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

/** A PEM private key file (a TLS client key), refused like a key file when group or others can read it. */
export function readPrivatePemFile(file: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    throw new CliError(`cannot read key file ${file}`);
  }
  if ((mode & 0o077) !== 0)
    throw new CliError(`${file} is readable by group or others; run: chmod 600 ${file}`);
  return readFileSync(file, 'utf8');
}

/** The client certificate of `--tls-cert`/`--tls-key` (`--tls-ca`: the server's CA), or undefined. */
export function readClientTls(o: {
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsCa?: string | undefined;
}): { cert: string; key: string; ca?: string } | undefined {
  if (o.tlsCert === undefined && o.tlsKey === undefined) {
    if (o.tlsCa !== undefined) throw new CliError('--tls-ca goes with --tls-cert and --tls-key');
    return undefined;
  }
  if (o.tlsCert === undefined || o.tlsKey === undefined)
    throw new CliError('give both --tls-cert and --tls-key');
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      throw new CliError(`cannot read ${f}`);
    }
  };
  const key = readPrivatePemFile(o.tlsKey);
  return { cert: read(o.tlsCert), key, ...(o.tlsCa !== undefined ? { ca: read(o.tlsCa) } : {}) };
}

/** Signs a short-lived assertion (RFC 7523) with a private JWK. */
export async function signAssertion(
  jwk: JWK,
  issuer: string,
  audience: string,
  lifetimeSeconds = 60,
): Promise<string> {
  const alg = jwk.alg ?? (jwk.kty === 'OKP' ? 'EdDSA' : 'ES256');
  const key = await importJWK(jwk, alg);
  return new SignJWT({})
    .setProtectedHeader({ alg, ...(jwk.kid ? { kid: jwk.kid } : {}) })
    .setIssuer(issuer)
    .setSubject(issuer)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime(`${lifetimeSeconds}s`)
    .setJti(newTokenId())
    .sign(key);
}

export async function postForm(
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<unknown> {
  return call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
}

async function call(url: string, init: RequestInit): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (err) {
    throw new CliError(
      `cannot reach ${new URL(url).origin}: ${(err as Error).message} (is \`writ serve\` running? see --server)`,
    );
  }
  const text = await res.text();
  const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  if (!res.ok) {
    throw new CliError(
      `${res.status} ${String(body['error'] ?? res.statusText)}: ${String(body['error_description'] ?? '')}`,
    );
  }
  return body;
}

/** Talks to the admin API with a short-lived admin token obtained from the operator key. */
export class AdminClient {
  readonly #opts: ServerOptions;
  #token: string | undefined;

  constructor(opts: ServerOptions) {
    this.#opts = opts;
  }

  get server(): string {
    return this.#opts.server.replace(/\/+$/, '');
  }

  async token(): Promise<string> {
    if (this.#token) return this.#token;
    const file = readPrivateKeyFile<OperatorKeyFile>(this.#opts.operatorKey);
    const meta = (await call(`${this.server}/.well-known/oauth-authorization-server`, {})) as {
      issuer: string;
    };
    const assertion = await signAssertion(file.key, file.operator, `${meta.issuer}/admin/v1/token`);
    const res = (await postForm(`${this.server}/admin/v1/token`, {
      grant_type: GrantType.jwtBearer,
      assertion,
    })) as {
      access_token: string;
    };
    this.#token = res.access_token;
    return this.#token;
  }

  async get<T>(path: string): Promise<T> {
    return (await call(`${this.server}/admin/v1${path}`, {
      headers: { authorization: `Bearer ${await this.token()}` },
    })) as T;
  }

  async post<T>(path: string, body: unknown = {}): Promise<T> {
    return (await call(`${this.server}/admin/v1${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await this.token()}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })) as T;
  }

  async postForm<T>(path: string, form: Record<string, string>): Promise<T> {
    return (await postForm(`${this.server}${path}`, form, {
      authorization: `Bearer ${await this.token()}`,
    })) as T;
  }
}

export { CLIENT_ASSERTION_TYPE_JWT_BEARER };
