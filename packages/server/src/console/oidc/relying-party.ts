import { readFileSync } from 'node:fs';
import * as oauth from 'oauth4webapi';
import { type Clock, seconds, systemClock } from '../../clock.js';
import type { ConsoleOidcSettings } from '../../config/settings.js';
import { OAuthError } from '../../errors.js';
import type { OidcFlow } from './flow-cookie.js';

/** How long the identity provider's discovery document is trusted before it is read again (ms). */
const DISCOVERY_TTL = 3_600_000;
/** The most one request to the identity provider may take (ms). */
const IDP_TIMEOUT = 10_000;

/** What the identity provider said of the person who signed in, once every check passed. */
export interface OidcIdentity {
  sub: string;
  /** Only when the ID token says `email_verified: true`. */
  verifiedEmail: string | undefined;
  /** An e-mail address the ID token named without saying it was verified (to explain a refusal). */
  unverifiedEmail: string | undefined;
}

/**
 * The console as an OpenID Connect relying party (`oauth4webapi` does the protocol): the identity
 * provider comes from settings only, its discovery document and keys are read from there and cached.
 */
export class ConsoleRelyingParty {
  readonly settings: ConsoleOidcSettings;
  /** Seals the flow cookie (`flow-cookie.ts`): derived from the KEK, the same on every node. */
  readonly flowKey: Buffer;
  readonly #auth: oauth.ClientAuth;
  readonly #clock: Clock;
  readonly #insecure: boolean;
  #server: { at: number; as: Promise<oauth.AuthorizationServer> } | undefined;
  readonly #jwks: oauth.JWKSCacheInput = {};

  constructor(settings: ConsoleOidcSettings, flowKey: Buffer, clock: Clock) {
    this.settings = settings;
    this.flowKey = flowKey;
    this.#clock = clock;
    this.#auth = oauth.ClientSecretBasic(readClientSecret(settings));
    // Settings allow plain http only to a loopback address (a test's identity provider).
    this.#insecure = new URL(settings.issuer).protocol === 'http:';
  }

  /** The URL of the identity provider's authorization endpoint for a new flow (code, PKCE S256). */
  async authorizationUrl(flow: OidcFlow): Promise<URL> {
    const as = await this.#authorizationServer();
    if (!as.authorization_endpoint)
      throw idpUnusable('its discovery document names no authorization_endpoint');
    const url = new URL(as.authorization_endpoint);
    const p = url.searchParams;
    p.set('response_type', 'code');
    p.set('client_id', this.settings.clientId);
    p.set('redirect_uri', this.settings.redirectUri);
    p.set('scope', this.settings.scopes.join(' '));
    p.set('state', flow.state);
    p.set('nonce', flow.nonce);
    p.set('code_challenge', await oauth.calculatePKCECodeChallenge(flow.codeVerifier));
    p.set('code_challenge_method', 'S256');
    return url;
  }

  /**
   * Finishes a flow whose `state` the caller has matched and spent: the authorization response
   * (`iss` when the provider sends it, an error, the code), the code exchanged with the verifier, the ID
   * token's `iss`, `aud`, `azp`, `exp`, `iat` and `nonce` checked and its signature verified with the
   * provider's JWKS.
   */
  async finish(callback: URLSearchParams, flow: OidcFlow): Promise<OidcIdentity> {
    const as = await this.#authorizationServer();
    const client = this.#client();
    let params: URLSearchParams;
    try {
      params = oauth.validateAuthResponse(as, client, callback, flow.state);
    } catch (err) {
      if (err instanceof oauth.AuthorizationResponseError)
        throw callbackRefusal(
          `the identity provider refused the sign-in: ${bounded(err.error)}${err.error_description ? ` (${bounded(err.error_description)})` : ''}`,
        );
      throw callbackRefusal(
        `the identity provider's answer is not a valid authorization response: ${message(err)}`,
      );
    }
    let claims: oauth.IDToken | undefined;
    try {
      const response = await oauth.authorizationCodeGrantRequest(
        as,
        client,
        this.#auth,
        params,
        this.settings.redirectUri,
        flow.codeVerifier,
        this.#options(),
      );
      const tokens = await oauth.processAuthorizationCodeResponse(as, client, response, {
        expectedNonce: flow.nonce,
        requireIdToken: true,
      });
      await oauth.validateApplicationLevelSignature(as, response, {
        ...this.#options(),
        [oauth.jwksCache]: this.#jwks,
      });
      claims = oauth.getValidatedIdTokenClaims(tokens);
    } catch (err) {
      if (isUnreachable(err)) throw unreachable(err);
      if (err instanceof oauth.ResponseBodyError)
        throw tokenRefusal(`the identity provider's token endpoint refused the code: ${bounded(err.error)}`);
      throw tokenRefusal(`the ID token failed a check: ${message(err)}`);
    }
    if (!claims) throw tokenRefusal('the token response holds no ID token');
    const email = typeof claims['email'] === 'string' ? claims['email'].slice(0, 320) : undefined;
    const verified = claims['email_verified'] === true;
    return {
      sub: claims.sub,
      verifiedEmail: verified ? email : undefined,
      unverifiedEmail: verified ? undefined : email,
    };
  }

  /** The provider's metadata, read again after `DISCOVERY_TTL`; a failed read is not kept. */
  #authorizationServer(): Promise<oauth.AuthorizationServer> {
    const now = this.#clock.now();
    if (this.#server && now - this.#server.at < DISCOVERY_TTL) return this.#server.as;
    const issuer = new URL(this.settings.issuer);
    const as = oauth
      .discoveryRequest(issuer, { algorithm: 'oidc', ...this.#options() })
      .then((res) => oauth.processDiscoveryResponse(issuer, res))
      .catch((err: unknown) => {
        this.#server = undefined;
        throw isUnreachable(err) ? unreachable(err) : idpUnusable(`its discovery document: ${message(err)}`);
      });
    this.#server = { at: now, as };
    return as;
  }

  /** oauth4webapi reads the wall clock: its skew to Writ's clock moves it onto Writ's. */
  #client(): oauth.Client {
    return {
      client_id: this.settings.clientId,
      [oauth.clockSkew]: seconds(this.#clock.now()) - seconds(systemClock.now()),
    };
  }

  #options() {
    return { signal: AbortSignal.timeout(IDP_TIMEOUT), [oauth.allowInsecureRequests]: this.#insecure };
  }
}

/** The client secret: the setting, or the file's content (read once, at start; an empty one refused). */
function readClientSecret(s: ConsoleOidcSettings): string {
  if (s.clientSecret !== '') return s.clientSecret;
  let text: string;
  try {
    text = readFileSync(s.clientSecretFile, 'utf8').trim();
  } catch (err) {
    throw new Error(
      `console.oidc.client_secret_file: cannot read ${s.clientSecretFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  if (text === '') throw new Error(`console.oidc.client_secret_file: ${s.clientSecretFile} is empty`);
  return text;
}

const bounded = (s: string): string => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
const message = (err: unknown): string => bounded(err instanceof Error ? err.message : String(err));

function isUnreachable(err: unknown): boolean {
  if (err instanceof OAuthError) return false;
  const name = (err as Error | undefined)?.name;
  // undici's fetch rejects with `TypeError: fetch failed` when it cannot connect.
  return (
    (err instanceof TypeError && err.message === 'fetch failed') ||
    name === 'TimeoutError' ||
    name === 'AbortError'
  );
}

const callbackRefusal = (description: string) =>
  new OAuthError('invalid_request', description, { detail: { reason: 'oidc_callback' } });

const tokenRefusal = (description: string) =>
  new OAuthError('invalid_grant', `OpenID Connect sign-in refused: ${description}; sign in again`, {
    status: 401,
    detail: { reason: 'oidc_token' },
  });

const unreachable = (err: unknown) =>
  new OAuthError(
    'temporarily_unavailable',
    'the identity provider (console.oidc.issuer) could not be reached; retry later',
    { detail: { reason: 'oidc_token', cause: message(err) } },
  );

const idpUnusable = (why: string) =>
  new OAuthError(
    'temporarily_unavailable',
    `the identity provider (console.oidc.issuer) is not usable: ${why}`,
    { detail: { reason: 'oidc_token' } },
  );
