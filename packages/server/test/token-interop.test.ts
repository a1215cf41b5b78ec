import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { AUDIENCE, type Harness, startHarness, WORKLOAD } from './helpers/harness.js';
import { tokenRows } from './helpers/refusals.js';

/**
 * Acceptance: an OAuth client written by someone else (oauth4webapi) gets a token with private_key_jwt
 * from a listening server, and a JOSE library written by someone else (jose) verifies it against the
 * published JWKS. Nothing here uses Writ's own client or verifier.
 */
describe('interop: oauth4webapi client, jose verifier', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ listen: true });
  });
  after(() => h.close());

  // oauth4webapi refuses plain http unless told otherwise; the server listens on loopback http here.
  const insecure = { [oauth.allowInsecureRequests]: true } as const;

  it('discovers the server, gets a token with private_key_jwt and resource, and jose verifies it', async () => {
    assert.match(h.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    const issuer = new URL(h.issuer);
    const as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
    );
    assert.equal(as.issuer, h.issuer);
    assert.equal(as.token_endpoint, `${h.issuer}/oauth2/token`);
    assert.ok(as.token_endpoint_auth_methods_supported?.includes('private_key_jwt'));
    assert.ok(as.token_endpoint_auth_signing_alg_values_supported?.includes('ES256'));
    assert.equal(typeof as.jwks_uri, 'string');

    const key = await webcrypto.subtle.importKey(
      'pkcs8',
      h.workloadKey.privateKey.export({ format: 'der', type: 'pkcs8' }),
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['sign'],
    );
    const client: oauth.Client = { client_id: WORKLOAD };
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.PrivateKeyJwt({ key: key as oauth.CryptoKey, kid: h.workloadKey.kid }),
      { resource: AUDIENCE },
      insecure,
    );
    const result = await oauth.processClientCredentialsResponse(as, client, response);
    assert.equal(result.token_type, 'bearer');
    assert.equal(result.scope, 'reports:read');
    assert.equal(typeof result.expires_in, 'number');

    const jwks = createRemoteJWKSet(new URL(as.jwks_uri!));
    const { payload, protectedHeader } = await jwtVerify(result.access_token, jwks, {
      issuer: h.issuer,
      audience: AUDIENCE,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    assert.deepEqual(Object.keys(payload).sort(), [
      'aud',
      'client_id',
      'cls',
      'exp',
      'iat',
      'iss',
      'jti',
      'nbf',
      'scope',
      'sub',
    ]);
    assert.equal(payload.iss, h.issuer);
    assert.equal(payload.sub, WORKLOAD);
    assert.equal(payload.aud, AUDIENCE);
    assert.equal(payload['client_id'], WORKLOAD);
    assert.equal(payload['scope'], 'reports:read');
    assert.equal(payload['cls'], 'reports-read');
    assert.equal(payload.nbf, payload.iat);
    assert.equal(payload.exp! - payload.iat!, result.expires_in);
    assert.equal(protectedHeader.typ, 'at+jwt');
    assert.equal(protectedHeader.alg, 'ES256');

    const published = (await (await fetch(as.jwks_uri!)).json()) as { keys: { kid?: string }[] };
    assert.equal(typeof protectedHeader.kid, 'string');
    assert.ok(
      published.keys.some((k) => k.kid === protectedHeader.kid),
      'the token kid is in the published JWKS',
    );

    // The server's own record of the issuance agrees with what the client got.
    const issued = await h.auditEvents('token.issued');
    assert.equal(issued.length, 1);
    assert.equal(issued[0]!.jti, payload.jti);
    assert.equal(issued[0]!.data['auth_method'], 'private_key_jwt');
    assert.equal(await tokenRows(h), 1);
  });

  it('jose refuses the token for another audience and under another typ', async () => {
    const r = await h.requestToken();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const jwks = createRemoteJWKSet(new URL(`${h.issuer}/.well-known/jwks.json`));
    const token = r.body['access_token'] as string;
    await assert.rejects(jwtVerify(token, jwks, { issuer: h.issuer, audience: 'https://other.example' }), {
      code: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
    });
    await assert.rejects(jwtVerify(token, jwks, { issuer: h.issuer, audience: AUDIENCE, typ: 'JWT' }), {
      code: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
    });
    await assert.rejects(jwtVerify(token, jwks, { issuer: 'https://evil.example', audience: AUDIENCE }), {
      code: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
    });
  });
});
