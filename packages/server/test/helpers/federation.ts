// Config documents the federation tests share: an issuer backed by a local OIDC issuer, the `ci` class.
import { classDoc, rawDoc } from './dpop.js';
import type { LocalIssuer } from './oidc-issuer.js';

/** An `issuer` document trusting `local` (its URL and JWKS URI) in trust domain test.writ. */
export function localIssuerDoc(
  name: string,
  preset: string,
  local: LocalIssuer,
  audience: string | string[],
  extra: Record<string, unknown> = {},
) {
  return rawDoc('issuer', {
    name,
    preset,
    issuer: local.url,
    jwks_uri: local.jwksUri,
    audience,
    trust_domain: 'test.writ',
    ...extra,
  });
}

/** The `ci` token class: one audience, scope deploy:read (also the default). */
export function ciClassDoc(audience: string) {
  return classDoc({
    name: 'ci',
    audiences: [audience],
    scopes: ['deploy:read'],
    default_scopes: ['deploy:read'],
  });
}
