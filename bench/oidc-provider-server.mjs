// The peer: oidc-provider configured for the same work as Writ in the benchmark — client_credentials,
// private_key_jwt client authentication with ES256 assertions (single-use jti, checked by its replay
// detection), ES256-signed JWT access tokens for one resource (RFC 8707 resource indicators), same TTL.
// Its default in-memory adapter holds the replay cache (Writ writes to SQLite instead).
// Listens on loopback only. Started pinned to the server's core by the benchmark.
import { createServer } from 'node:http';
import Provider, { errors } from 'oidc-provider';
import { AUDIENCE, childConfig, SCOPES, TOKEN_TTL } from './lib/common.mjs';

const { port, clients, signingJwk } = childConfig();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    client_id: c.clientId,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    // Never used here (no ID tokens), but client metadata must name an algorithm the server has a key for.
    id_token_signed_response_alg: 'ES256',
    jwks: { keys: [c.publicJwk] },
  })),
  jwks: { keys: [signingJwk] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => AUDIENCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator) => {
        if (resourceIndicator !== AUDIENCE) throw new errors.InvalidTarget();
        return {
          scope: SCOPES.join(' '),
          audience: AUDIENCE,
          accessTokenTTL: TOKEN_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  ttl: { ClientCredentials: TOKEN_TTL },
});

const server = createServer(provider.callback());
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`oidc-provider listening on ${issuer}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
