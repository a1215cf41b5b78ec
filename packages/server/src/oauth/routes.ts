import { POLICY_BUNDLE_KEYS_PATH } from '@writ/sdk/wire';
import type { FastifyInstance } from 'fastify';
import { Paths, type WritContext } from '../context.js';
import { formBody } from '../request/form.js';
import { info } from '../request/info.js';
import { isAuditedRefusal, sendError } from '../send-error.js';
import { handleIntrospection } from './introspection.js';
import { handleRevocation } from './revocation-endpoint.js';
import { handleTokenRequest } from './token-endpoint.js';

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/** The authorization server's endpoints: metadata (RFC 8414), JWKS, token, introspection and revocation. */
export function registerOAuthRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.get(Paths.metadata, async (_req, reply) => {
    const iss = ctx.settings.issuer;
    const legacy = ctx.registry.exceptions().some((e) => e.covers.kind === 'legacy_client_secret');
    const mtls = ctx.mtls.trust.enabled;
    const methods = [
      'private_key_jwt',
      ...(mtls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
      ...(legacy ? ['client_secret_basic', 'client_secret_post'] : []),
    ];
    reply.header('cache-control', 'public, max-age=300');
    return {
      issuer: iss,
      token_endpoint: `${iss}${Paths.token}`,
      jwks_uri: `${iss}${Paths.jwks}`,
      introspection_endpoint: `${iss}${Paths.introspect}`,
      revocation_endpoint: `${iss}${Paths.revoke}`,
      grant_types_supported: [
        'client_credentials',
        'urn:ietf:params:oauth:grant-type:token-exchange',
        'urn:ietf:params:oauth:grant-type:jwt-bearer',
      ],
      response_types_supported: [],
      token_endpoint_auth_methods_supported: methods,
      token_endpoint_auth_signing_alg_values_supported: ctx.settings.clientAssertion.algorithms,
      introspection_endpoint_auth_methods_supported: methods,
      introspection_endpoint_auth_signing_alg_values_supported: ctx.settings.clientAssertion.algorithms,
      revocation_endpoint_auth_methods_supported: methods,
      revocation_endpoint_auth_signing_alg_values_supported: ctx.settings.clientAssertion.algorithms,
      scopes_supported: [...new Set(ctx.registry.classes().flatMap((c) => c.scopes))].sort(),
      access_token_signing_alg_values_supported: ['ES256', 'EdDSA'],
      dpop_signing_alg_values_supported: ctx.settings.dpop.algorithms,
      // RFC 8705 §3.3: tokens of `binding: mtls` classes are bound to the client certificate.
      ...(mtls ? { tls_client_certificate_bound_access_tokens: true } : {}),
      // Classes whose tokens are bearer tokens: registered exceptions to holder binding.
      writ_bearer_token_classes: ctx.registry
        .classes()
        .filter((c) => c.binding === 'bearer')
        .map((c) => c.name)
        .sort(),
      // True while no policies/ directory is loaded: issuance is limited by the classes alone.
      writ_policy_built_in: ctx.policy.version.builtIn,
      // The keys of policy bundles, apart from `jwks_uri`: no key there can sign a bundle.
      writ_policy_bundle_jwks_uri: `${iss}${POLICY_BUNDLE_KEYS_PATH}`,
    };
  });
  app.get(Paths.jwks, async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=60');
    reply.header('content-type', 'application/jwk-set+json');
    return ctx.keys.publicJwks();
  });

  app.post(Paths.token, async (req, reply) => {
    const params = formBody(req);
    let res: Awaited<ReturnType<typeof handleTokenRequest>>;
    try {
      res = await handleTokenRequest(ctx, params, info(req));
    } catch (err) {
      // Audited already (every refusal is, in handleTokenRequest): sent from here rather than through
      // the framework's error path, the cheaper way for the floods of refusals this endpoint gets.
      if (isAuditedRefusal(err)) return sendError(reply, err);
      throw err;
    }
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    reply.header('dpop-nonce', ctx.dpopNonces.current());
    return res;
  });
  app.post(Paths.introspect, async (req, reply) => {
    const res = await handleIntrospection(ctx, formBody(req), info(req));
    reply.headers(NO_STORE);
    return res;
  });
  app.post(Paths.revoke, async (req, reply) => {
    await handleRevocation(ctx, formBody(req), info(req));
    reply.headers(NO_STORE);
    return reply.code(200).send();
  });
}
