import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createDpopProof, type DpopKey, dpopKeyFrom } from '@writ/sdk/dpop';
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

/** The issuer a server names in its metadata (RFC 8414): what links and proofs must name. */
export async function serverIssuer(server: string): Promise<string> {
  const { issuer } = (await call(
    `${server.replace(/\/+$/, '')}/.well-known/oauth-authorization-server`,
    {},
  )) as {
    issuer: string;
  };
  return issuer;
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
  const { res, body } = await send(url, init);
  return answer(res, body);
}

/** One request; the response and its JSON body (empty when there is none). */
async function send(
  url: string,
  init: RequestInit,
): Promise<{ res: Response; body: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (err) {
    throw new CliError(
      `cannot reach ${new URL(url).origin}: ${(err as Error).message} (is \`writ serve\` running? see --server)`,
    );
  }
  const text = await res.text();
  return { res, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

function answer(res: Response, body: Record<string, unknown>): Record<string, unknown> {
  if (!res.ok) {
    throw new CliError(
      `${res.status} ${String(body['error'] ?? res.statusText)}: ${String(body['error_description'] ?? '')}`,
    );
  }
  return body;
}

/**
 * The operator key as the key of DPoP proofs (RFC 9449): admin sessions are bound to it. `writ init` and
 * `writ keygen` make ES256 (P-256) or EdDSA (Ed25519) keys, the two a proof can be signed with here.
 */
export function operatorDpopKey(jwk: JWK): DpopKey {
  const alg =
    jwk.kty === 'EC' && jwk.crv === 'P-256'
      ? 'ES256'
      : jwk.kty === 'OKP' && jwk.crv === 'Ed25519'
        ? 'EdDSA'
        : undefined;
  if (alg === undefined || (jwk.alg !== undefined && jwk.alg !== alg))
    throw new CliError(
      'the operator key must be an ES256 (P-256) or EdDSA (Ed25519) key to sign the DPoP proofs of admin calls (`writ keygen` makes one)',
    );
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch {
    throw new CliError('the operator key file does not hold a private key');
  }
  const publicJwk = createPublicKey(privateKey).export({ format: 'jwk' }) as Record<string, string>;
  return dpopKeyFrom(privateKey, publicJwk, alg);
}

/** An admin session: the token, the key it is bound to and the issuer the proofs name. */
export interface AdminSession {
  token: string;
  key: DpopKey;
  issuer: string;
  /** Milliseconds: a new session is opened from then on (half the token's lifetime). */
  renewAt: number;
}

/**
 * Talks to the admin API as an operator. The operator key signs a short-lived assertion, traded at
 * `POST /admin/v1/token` for an admin token bound to that same key (`cnf.jkt`); every call then carries
 * `Authorization: DPoP` and a fresh proof by the key over its method, URL and token. A `use_dpop_nonce`
 * answer is retried once with the server's nonce; the session is renewed when half its life is gone.
 * Proofs name the issuer's URLs (what the server checks), whatever address `--server` reaches it at.
 */
export class AdminClient {
  readonly #opts: ServerOptions;
  #session: AdminSession | undefined;
  #nonce: string | undefined;

  constructor(opts: ServerOptions) {
    this.#opts = opts;
  }

  get server(): string {
    return this.#opts.server.replace(/\/+$/, '');
  }

  /**
   * The current session, or a new one when there is none or half its life is gone. Every call opens one
   * as needed; a caller that times its calls (a benchmark) opens it first to keep it out of them.
   */
  async open(): Promise<AdminSession> {
    if (this.#session && Date.now() < this.#session.renewAt) return this.#session;
    const file = readPrivateKeyFile<OperatorKeyFile>(this.#opts.operatorKey);
    const key = operatorDpopKey(file.key);
    const { issuer } = (await call(`${this.server}/.well-known/oauth-authorization-server`, {})) as {
      issuer: string;
    };
    const endpoint = `${issuer}/admin/v1/token`;
    for (let attempt = 0; ; attempt++) {
      const assertion = await signAssertion(file.key, file.operator, endpoint);
      const { res, body } = await send(`${this.server}/admin/v1/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          dpop: createDpopProof(key, {
            method: 'POST',
            url: endpoint,
            ...(this.#nonce ? { nonce: this.#nonce } : {}),
          }),
        },
        body: new URLSearchParams({ grant_type: GrantType.jwtBearer, assertion }).toString(),
      });
      if (this.#takeNonce(res, body) && attempt === 0) continue;
      const r = answer(res, body) as { access_token: string; expires_in: number };
      this.#session = { token: r.access_token, key, issuer, renewAt: Date.now() + (r.expires_in * 1000) / 2 };
      return this.#session;
    }
  }

  /** Keeps the `DPoP-Nonce` the server sent; true when the request was refused for want of it. */
  #takeNonce(res: Response, body: Record<string, unknown>): boolean {
    const fresh = res.headers.get('dpop-nonce');
    if (fresh) this.#nonce = fresh;
    const wanted =
      body['error'] === 'use_dpop_nonce' ||
      /error="use_dpop_nonce"/.test(res.headers.get('www-authenticate') ?? '');
    return !res.ok && wanted && fresh !== null;
  }

  /** One call with the admin token: `path` from the server root, query included. */
  async #request(
    method: string,
    path: string,
    init: { body?: string; contentType?: string } = {},
  ): Promise<unknown> {
    const s = await this.open();
    for (let attempt = 0; ; attempt++) {
      const { res, body } = await send(`${this.server}${path}`, this.#init(s, method, path, init));
      if (this.#takeNonce(res, body) && attempt === 0) continue;
      return answer(res, body);
    }
  }

  /** The request of one admin call: the admin token, a fresh DPoP proof, the body. */
  #init(
    s: AdminSession,
    method: string,
    path: string,
    init: { body?: string; contentType?: string; accept?: string },
  ): RequestInit {
    return {
      method,
      headers: {
        authorization: `DPoP ${s.token}`,
        dpop: createDpopProof(s.key, {
          method,
          url: `${s.issuer}${path}`,
          accessToken: s.token,
          ...(this.#nonce ? { nonce: this.#nonce } : {}),
        }),
        ...(init.contentType ? { 'content-type': init.contentType } : {}),
        ...(init.accept ? { accept: init.accept } : {}),
      },
      ...(init.body !== undefined ? { body: init.body } : {}),
    };
  }

  /**
   * A POST under `/admin/v1` answered as a stream of JSON lines (`application/x-ndjson`): `onLine` hears
   * each object as it arrives. A refusal (any status but 200) throws as `call` does.
   */
  async lines(path: string, body: unknown, onLine: (v: Record<string, unknown>) => void): Promise<void> {
    const s = await this.open();
    const full = `/admin/v1${path}`;
    for (let attempt = 0; ; attempt++) {
      const init = this.#init(s, 'POST', full, {
        body: JSON.stringify(body),
        contentType: 'application/json',
        accept: 'application/x-ndjson',
      });
      let res: Response;
      try {
        res = await fetch(`${this.server}${full}`, init);
      } catch (err) {
        throw new CliError(
          `cannot reach ${this.server}: ${(err as Error).message} (is \`writ serve\` running? see --server)`,
        );
      }
      if (!res.ok || res.body === null) {
        const text = await res.text();
        const refusal = text ? (JSON.parse(text) as Record<string, unknown>) : {};
        if (this.#takeNonce(res, refusal) && attempt === 0) continue;
        answer(res, refusal);
        throw new CliError(`${res.status}: the server sent no body`);
      }
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.trim() !== '') onLine(JSON.parse(line) as Record<string, unknown>);
        }
      }
      if (buffered.trim() !== '') onLine(JSON.parse(buffered) as Record<string, unknown>);
      return;
    }
  }

  async get<T>(path: string): Promise<T> {
    return this.call<T>('GET', `/admin/v1${path}`);
  }

  async post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.call<T>('POST', `/admin/v1${path}`, body);
  }

  /** Any endpoint that takes an admin token (`path` from the server root), with a JSON body if given. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.#request(
      method.toUpperCase(),
      path,
      body === undefined ? {} : { body: JSON.stringify(body), contentType: 'application/json' },
    )) as T;
  }

  async postForm<T>(path: string, form: Record<string, string>): Promise<T> {
    return (await this.#request('POST', path, {
      body: new URLSearchParams(form).toString(),
      contentType: 'application/x-www-form-urlencoded',
    })) as T;
  }
}

export { CLIENT_ASSERTION_TYPE_JWT_BEARER };
