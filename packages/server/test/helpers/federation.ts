// What the federation tests share: config documents for an issuer backed by a local OIDC issuer and the
// `ci` class, and a token request exchanging an issuer's token.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { type DpopKey, generateDpopKey } from '@writ/sdk/dpop';
import { GrantType } from '@writ/sdk/wire';
import type { Writ } from '../../src/writ.js';
import { type WritPair, writPairForSuite } from './cluster.js';
import { classDoc, proofParts, rawDoc, signProof } from './dpop.js';
import { type LocalIssuer, startLocalIssuer } from './oidc-issuer.js';

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

/** A workload of the `ci` class (owner `ci`, `prod`) that the `github` issuer vouches for. */
export function githubWorkloadDoc(id: string) {
  return rawDoc('workload', {
    id,
    owner: 'ci',
    environment: 'prod',
    classes: ['ci'],
    federation: ['github'],
  });
}

/**
 * A jwt-bearer request at the token endpoint of the in-process node `w`: `assertion` (a token of a
 * trusted issuer) for an access token to `resource`, bound to `holder` by a DPoP proof.
 */
export function exchangeAt(
  w: Writ,
  assertion: string,
  resource: string,
  holder: DpopKey = generateDpopKey(),
) {
  return w.app.inject({
    method: 'POST',
    url: '/oauth2/token',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      dpop: signProof(
        holder,
        proofParts(holder, {
          htu: `${w.ctx.settings.issuer}/oauth2/token`,
          iat: Math.floor(Date.now() / 1000),
        }),
      ),
    },
    payload: new URLSearchParams({ grant_type: GrantType.jwtBearer, assertion, resource }).toString(),
  });
}

/**
 * For the tests of the enclosing `describe`: a local issuer (`github`) and a `WritPair` whose nodes do not
 * require DPoP nonces, started in its `before`, closed in its `after`.
 */
export function githubPairForSuite(): WritPair & { readonly github: LocalIssuer } {
  let github: LocalIssuer | undefined;
  before(async () => {
    github = await startLocalIssuer();
  });
  after(() => github?.close());
  const pair = writPairForSuite({ 'dpop.require_nonce': false });
  return {
    get github() {
      return github ?? assert.fail('the issuer starts before the suite’s tests');
    },
    get db() {
      return pair.db;
    },
    get a() {
      return pair.a;
    },
    get b() {
      return pair.b;
    },
  };
}
