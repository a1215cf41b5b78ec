import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import Provider, { type OidcContext } from 'oidc-provider';
import { OIDC_CLIENT_ID } from './console-oidc.js';
import { freePort } from './harness.js';

/** A user of the test's identity provider: the claims its ID tokens carry. */
export interface IdpUser {
  sub: string;
  email?: string;
  email_verified?: boolean;
}

export interface IdentityProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Who the next sign-in at the provider logs in as (the interaction step finishes with them). */
  loginAs(user: IdpUser): void;
  close(): Promise<void>;
}

/**
 * A real OpenID Connect provider (oidc-provider) on loopback for the console's sign-in: one confidential
 * client (`client_secret_basic`, code flow, PKCE required) redirecting to `redirectUri`. Its login step is
 * driven over HTTP: `/interaction/<uid>` logs in the user `loginAs` named, and consent is granted for the
 * asked scopes, as a first-party provider does.
 */
export async function startIdentityProvider(o: {
  redirectUri: string;
  clientSecret: string;
  port?: number;
  /**
   * oidc-provider's own login and consent pages (its development interactions) instead of the
   * scripted login: a browser types the login name (a key of `users`) and any password, then consents.
   */
  pages?: { users: IdpUser[] };
}): Promise<IdentityProvider> {
  const { redirectUri, clientSecret } = o;
  const p = o.port ?? (await freePort());
  const issuer = `http://127.0.0.1:${p}`;
  const clientId = OIDC_CLIENT_ID;
  const users = new Map<string, IdpUser>((o.pages?.users ?? []).map((u) => [u.sub, u]));
  const pages = o.pages !== undefined;
  let next: IdpUser | undefined;
  const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'ES256',
      },
    ],
    jwks: { keys: [{ ...signingKey, alg: 'ES256', use: 'sig', kid: 'test-idp' }] },
    cookies: { keys: ['test-idp-cookie-key-0123456789'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    features: { devInteractions: { enabled: pages } },
    // The e-mail claims in the ID token itself, as most providers put them (not only at userinfo).
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    ...(pages
      ? {}
      : {
          interactions: {
            url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
          },
        }),
    findAccount: async (_ctx: unknown, id: string) => {
      const user = users.get(id);
      return user && { accountId: id, claims: async () => ({ ...user }) };
    },
    // A first-party client: the scopes asked for are granted without a consent page (with `pages`, the
    // provider's consent page asks).
    ...(pages ? {} : { loadExistingGrant }),
  });
  async function loadExistingGrant(ctx: OidcContext) {
    const { client, session, result, provider: op } = ctx.oidc;
    if (!client || !session?.accountId) return undefined;
    const id = result?.consent?.grantId ?? session.grantIdFor(client.clientId);
    if (id) return op.Grant.find(id);
    const grant = new op.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope('openid email');
    await grant.save();
    return grant;
  }
  const handle = provider.callback();
  const server: Server = createServer((req, res) => {
    if (!pages && req.url?.startsWith('/interaction/')) {
      const user = next;
      if (!user) {
        res.writeHead(400).end('the test named no user to log in (loginAs)');
        return;
      }
      users.set(user.sub, user);
      provider
        .interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false })
        .catch((err: unknown) => res.writeHead(500).end(String(err)));
      return;
    }
    handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(p, '127.0.0.1', resolve));
  return {
    issuer,
    clientId,
    clientSecret,
    loginAs(user) {
      next = user;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
