import { createPrivateKey, type JsonWebKey, type KeyObject, randomBytes } from 'node:crypto';
import { createDpopProof, type DpopKey, generateDpopKey } from '../dpop/create-proof.js';
import { encodeBase64url } from '../jose/base64url.js';
import { signCompactJws } from '../jose/jws.js';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType, type TokenResponse } from '../wire/grants.js';
import type { FederationTokenSource } from './ambient.js';
import { type ClientTls, tlsFetch } from './tls-fetch.js';

export interface WorkloadClientOptions {
  /** The Writ server's issuer URL. */
  issuer: string;
  /** The workload's SPIFFE ID (optional with `federationToken`: the server maps the token to it). */
  clientId?: string;
  /** The workload's private JWK (EC P-256 or Ed25519), used for private_key_jwt. */
  privateJwk?: JsonWebKey & { kid?: string; alg?: string };
  /**
   * Instead of a key: a token from a trusted outside issuer (see `detectAmbientIdentity`), sent with
   * the jwt-bearer grant to the token endpoint and as the `client_assertion` to the task endpoints,
   * fetched (or re-read) anew for every call.
   */
  federationToken?: FederationTokenSource;
  /**
   * Mutual TLS (RFC 8705): the client authenticates with this certificate (`tls_client_auth` or
   * `self_signed_tls_client_auth`: `client_id` and no assertion) at the token and task endpoints, and
   * presents it to the APIs its `fetch` calls. Every call then goes over node:https with this
   * certificate; the `fetch` option is not used. Needs `clientId`; excludes `privateJwk` and
   * `federationToken`.
   */
  tls?: ClientTls;
  /**
   * Whether token requests carry a DPoP proof. Default true, except with `tls`: then false, so tokens of
   * `binding: mtls` classes come back bound to the certificate alone (`token_type: Bearer`). Set true
   * with `tls` for `binding: dpop` classes (mTLS authenticates the client, DPoP binds the token).
   */
  dpop?: boolean;
  /** The DPoP key tokens are bound to; generated when absent. */
  dpopKey?: DpopKey;
  fetch?: typeof fetch;
  /** Seconds since the epoch; injected by tests. */
  now?: () => number;
}

export interface TokenRequest {
  audience: string;
  scope?: string;
  taskId?: string;
  ttl?: number;
}

export class WritClientError extends Error {
  readonly status: number;
  readonly error: string;
  constructor(status: number, error: string, description: string) {
    super(`${status} ${error}: ${description}`);
    this.name = 'WritClientError';
    this.status = status;
    this.error = error;
  }
}

/**
 * A workload's client for Writ: private_key_jwt assertions, DPoP-bound tokens (following
 * `use_dpop_nonce`), a token cache that renews before expiry, tasks, and a `fetch` that adds
 * `Authorization: DPoP` and a proof to each call.
 */
export class WorkloadClient {
  readonly dpopKey: DpopKey;
  readonly #o: WorkloadClientOptions;
  readonly #key: KeyObject | undefined;
  readonly #alg: 'ES256' | 'EdDSA';
  readonly #header: string;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #closeTls: (() => void) | undefined;
  readonly #dpop: boolean;
  readonly #cache = new Map<string, { token: string; type: string; exp: number; lifetime: number }>();
  #nonce: string | undefined;
  #tokenEndpoint: string | undefined;

  constructor(o: WorkloadClientOptions) {
    this.#o = { ...o, issuer: o.issuer.replace(/\/+$/, '') };
    if ([o.privateJwk, o.federationToken, o.tls].filter((x) => x !== undefined).length !== 1)
      throw new TypeError(
        'give one of privateJwk (private_key_jwt), federationToken (workload federation) or tls (mTLS)',
      );
    if (o.tls && !o.clientId) throw new TypeError('a client authenticating with tls needs its clientId');
    this.#key = o.privateJwk ? createPrivateKey({ key: o.privateJwk, format: 'jwk' }) : undefined;
    this.#alg = this.#key?.asymmetricKeyType === 'ed25519' ? 'EdDSA' : 'ES256';
    this.#header = encodeBase64url(
      JSON.stringify({ alg: this.#alg, ...(o.privateJwk?.kid ? { kid: o.privateJwk.kid } : {}) }),
    );
    this.dpopKey = o.dpopKey ?? generateDpopKey();
    if (o.tls) {
      const t = tlsFetch(o.tls);
      this.#fetch = t.fetch;
      this.#closeTls = t.close;
    } else {
      this.#fetch = o.fetch ?? fetch;
      this.#closeTls = undefined;
    }
    this.#dpop = o.dpop ?? !o.tls;
    this.#now = o.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /** Closes the TLS connections kept alive for a `tls` client (a no-op otherwise). */
  close(): void {
    this.#closeTls?.();
  }

  /** A fresh client assertion (RFC 7523): 60 s, single-use `jti`, `aud` = the issuer. */
  assertion(): string {
    if (!this.#key || !this.#o.clientId)
      throw new TypeError('a federated client has no key: it authenticates with its federation token only');
    const now = this.#now();
    const claims = {
      iss: this.#o.clientId,
      sub: this.#o.clientId,
      aud: this.#o.issuer,
      iat: now,
      exp: now + 60,
      jti: randomBytes(16).toString('base64url'),
    };
    return signCompactJws(this.#alg, this.#key, this.#header, JSON.stringify(claims));
  }

  /**
   * Client authentication for the task endpoints: a fresh `private_key_jwt` assertion, or the platform
   * token (fetched or re-read now) as a jwt-bearer `client_assertion` for a federated client.
   */
  async taskAuth(): Promise<Record<string, string>> {
    if (this.#o.tls) return { client_id: this.#o.clientId as string };
    if (!this.#o.federationToken) return this.clientAuth();
    return {
      ...(this.#o.clientId ? { client_id: this.#o.clientId } : {}),
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: await this.#o.federationToken(),
    };
  }

  /** Client-authentication form fields (private_key_jwt) for any Writ endpoint. */
  clientAuth(): Record<string, string> {
    const assertion = this.assertion();
    return {
      client_id: this.#o.clientId as string,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: assertion,
    };
  }

  /** A holder-bound token for the audience, from the cache while it has more than a third of its life left. */
  async token(r: TokenRequest): Promise<string> {
    return (await this.#cachedToken(r)).token;
  }

  async #cachedToken(r: TokenRequest): Promise<{ token: string; type: string }> {
    const key = `${r.audience}\n${r.scope ?? ''}\n${r.taskId ?? ''}`;
    const cached = this.#cache.get(key);
    if (cached && cached.exp - this.#now() > cached.lifetime / 3) return cached;
    const res = await this.requestToken(r);
    const entry = {
      token: res.access_token,
      type: res.token_type,
      exp: this.#now() + res.expires_in,
      lifetime: res.expires_in,
    };
    this.#cache.set(key, entry);
    return entry;
  }

  /** Always asks the server (a renewal when `taskId` already has tokens). */
  async requestToken(r: TokenRequest): Promise<TokenResponse> {
    const endpoint = await this.#endpoint();
    const proof = this.#o.tls
      ? { grant_type: GrantType.clientCredentials, client_id: this.#o.clientId as string }
      : this.#o.federationToken
        ? { grant_type: GrantType.jwtBearer, assertion: await this.#o.federationToken() }
        : { grant_type: GrantType.clientCredentials, ...this.clientAuth() };
    return (await this.#postWithDpop(endpoint, {
      ...proof,
      resource: r.audience,
      ...(r.scope ? { scope: r.scope } : {}),
      ...(r.taskId ? { task_id: r.taskId } : {}),
      ...(r.ttl ? { ttl: String(r.ttl) } : {}),
    })) as unknown as TokenResponse;
  }

  async openTask(
    purpose: string,
    o: { duration?: number; lease?: number; labels?: Record<string, string> } = {},
  ): Promise<{ id: string; deadline: number }> {
    return (await this.#post(`${this.#o.issuer}/v1/tasks`, {
      ...(await this.taskAuth()),
      purpose,
      ...(o.duration ? { duration: String(o.duration) } : {}),
      ...(o.lease ? { lease: String(o.lease) } : {}),
      ...(o.labels ? { labels: JSON.stringify(o.labels) } : {}),
    })) as { id: string; deadline: number };
  }

  /** Renews the lease of a task opened with `lease`, proving its owner is alive. */
  async heartbeat(id: string, lease: number): Promise<{ lease_until: number }> {
    return (await this.#post(`${this.#o.issuer}/v1/tasks/${encodeURIComponent(id)}/heartbeat`, {
      ...(await this.taskAuth()),
      lease: String(lease),
    })) as {
      lease_until: number;
    };
  }

  async closeTask(id: string, reason = 'done'): Promise<void> {
    await this.#post(`${this.#o.issuer}/v1/tasks/${encodeURIComponent(id)}/close`, {
      ...(await this.taskAuth()),
      reason,
    });
    for (const k of this.#cache.keys()) if (k.endsWith(`\n${id}`)) this.#cache.delete(k);
  }

  /**
   * Runs `fn` inside a task; the task is closed (and its tokens revoked) when `fn` settles, whether it
   * resolves or throws.
   */
  async withTask<T>(
    purpose: string,
    fn: (task: { id: string; token: (r: Omit<TokenRequest, 'taskId'>) => Promise<string> }) => Promise<T>,
    o: { duration?: number; labels?: Record<string, string> } = {},
  ): Promise<T> {
    const task = await this.openTask(purpose, o);
    try {
      return await fn({ id: task.id, token: (r) => this.token({ ...r, taskId: task.id }) });
    } finally {
      await this.closeTask(task.id, 'withTask settled');
    }
  }

  /**
   * `fetch` with `Authorization: DPoP` and a proof (retried once when the API asks for a DPoP nonce); for
   * a certificate-bound token (`token_type: Bearer` from a `tls` client), `Authorization: Bearer` over a
   * TLS connection presenting the client certificate (RFC 8705 §3).
   */
  async fetch(
    url: string,
    init: RequestInit & { audience: string; scope?: string; taskId?: string },
  ): Promise<Response> {
    const { token, type } = await this.#cachedToken({
      audience: init.audience,
      ...(init.scope ? { scope: init.scope } : {}),
      ...(init.taskId ? { taskId: init.taskId } : {}),
    });
    const { audience: _a, scope: _s, taskId: _t, ...rest } = init;
    const method = (init.method ?? 'GET').toUpperCase();
    if (type.toLowerCase() !== 'dpop') {
      const headers = new Headers(init.headers);
      headers.set('authorization', `Bearer ${token}`);
      return this.#fetch(url, { ...rest, method, headers });
    }
    let nonce: string | undefined;
    for (let attempt = 0; ; attempt++) {
      const headers = new Headers(init.headers);
      headers.set('authorization', `DPoP ${token}`);
      headers.set(
        'dpop',
        createDpopProof(this.dpopKey, {
          method,
          url,
          accessToken: token,
          nowSeconds: this.#now(),
          ...(nonce ? { nonce } : {}),
        }),
      );
      const res = await this.#fetch(url, { ...rest, method, headers });
      const fresh = res.headers.get('dpop-nonce');
      if (
        res.status === 401 &&
        attempt === 0 &&
        fresh &&
        /use_dpop_nonce/.test(res.headers.get('www-authenticate') ?? '')
      ) {
        nonce = fresh;
        continue;
      }
      return res;
    }
  }

  async #endpoint(): Promise<string> {
    if (!this.#tokenEndpoint) {
      const res = await this.#fetch(`${this.#o.issuer}/.well-known/oauth-authorization-server`);
      if (!res.ok)
        throw new WritClientError(res.status, 'metadata_unavailable', 'cannot read the server metadata');
      this.#tokenEndpoint = ((await res.json()) as { token_endpoint: string }).token_endpoint;
    }
    return this.#tokenEndpoint;
  }

  async #postWithDpop(url: string, form: Record<string, string>): Promise<Record<string, unknown>> {
    for (let attempt = 0; ; attempt++) {
      const res = await this.#fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          ...(this.#dpop
            ? {
                dpop: createDpopProof(this.dpopKey, {
                  method: 'POST',
                  url,
                  nowSeconds: this.#now(),
                  ...(this.#nonce ? { nonce: this.#nonce } : {}),
                }),
              }
            : {}),
        },
        body: new URLSearchParams(form).toString(),
      });
      const fresh = res.headers.get('dpop-nonce');
      if (fresh) this.#nonce = fresh;
      const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      if (res.ok) return body;
      if (body['error'] === 'use_dpop_nonce' && attempt === 0 && fresh) {
        if (form['client_assertion']) form = { ...form, client_assertion: this.assertion() };
        continue;
      }
      throw new WritClientError(
        res.status,
        String(body['error'] ?? 'error'),
        String(body['error_description'] ?? ''),
      );
    }
  }

  async #post(url: string, form: Record<string, string>): Promise<Record<string, unknown>> {
    const res = await this.#fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok)
      throw new WritClientError(
        res.status,
        String(body['error'] ?? 'error'),
        String(body['error_description'] ?? ''),
      );
    return body;
  }
}
