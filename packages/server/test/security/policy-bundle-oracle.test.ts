import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { WorkloadClient } from '@writ/sdk/client';
import { importPublicJwk } from '@writ/sdk/jose';
import { createVerifier, RequestRefusal, TokenError, verifyAccessTokenJwt } from '@writ/sdk/verifier';
import { POLICY_BUNDLE_PATH } from '@writ/sdk/wire';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { classDoc, workloadDoc } from '../helpers/dpop.js';
import {
  AUDIENCE,
  freePort,
  type Harness,
  OTHER_AUDIENCE,
  startHarness,
  testKey,
} from '../helpers/harness.js';
import { ready, workloadClient } from '../helpers/verifier.js';

// The policy-bundle endpoint as an attacker holding a verifier identity (a token for the events
// audience) would use it: as a signing oracle (a JWS with `iss` Writ and any `aud` the caller names,
// signed by the key that signs access tokens, which a resource server checking only signature, issuer
// and audience would take for a token), and as a window on other APIs' policies and the attributes of
// their workloads.

const REPORTS_API = 'spiffe://test.writ/reports/api';
const BILLING_API = 'spiffe://test.writ/billing/api';
const ROGUE = 'spiffe://test.writ/tools/rogue';
const IDS = { reportsApi: REPORTS_API, billingApi: BILLING_API, rogue: ROGUE } as const;

describe('policy bundles: only for an API the caller serves, never usable as an access token (real HTTP)', () => {
  const keys = { reportsApi: testKey(), billingApi: testKey(), rogue: testKey() };
  let h: Harness;
  let issuer: string;
  let eventsAudience: string;
  const clients: Record<'reportsApi' | 'billingApi' | 'rogue', WorkloadClient> = {} as never;

  before(async () => {
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    eventsAudience = `${issuer}/v1/events`;
    h = await startHarness({
      listen: true,
      settings: { 'listen.port': port },
      extraDocs: [
        classDoc({
          name: 'verifier',
          audiences: [eventsAudience],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
        }),
        workloadDoc(REPORTS_API, keys.reportsApi, ['verifier'], { serves: [AUDIENCE] }),
        workloadDoc(BILLING_API, keys.billingApi, ['verifier'], { serves: [OTHER_AUDIENCE] }),
        workloadDoc(ROGUE, keys.rogue, ['verifier']),
      ],
    });
    clients.reportsApi = workloadClient(issuer, REPORTS_API, keys.reportsApi);
    clients.billingApi = workloadClient(issuer, BILLING_API, keys.billingApi);
    clients.rogue = workloadClient(issuer, ROGUE, keys.rogue);
  });
  after(() => h.close());

  /** `GET /v1/policy/bundle?audience=…` as workload `as`, with its DPoP-bound events token. */
  const bundle = async (as: keyof typeof clients, audience: string) => {
    const res = await clients[as].fetch(
      `${issuer}${POLICY_BUNDLE_PATH}?audience=${encodeURIComponent(audience)}`,
      { audience: eventsAudience },
    );
    return { status: res.status, text: await res.text() };
  };

  const refusedCases: Array<[string, keyof typeof clients, () => string]> = [
    ['a workload that serves nothing asks for the reports API', 'rogue', () => AUDIENCE],
    ["another API's verifier asks for the reports API", 'billingApi', () => AUDIENCE],
    ['the reports verifier asks for another API (billing)', 'reportsApi', () => OTHER_AUDIENCE],
    ['a verifier names an audience no class issues tokens for', 'reportsApi', () => 'https://victim.example'],
    ['a verifier names the reports API spelled with a trailing slash', 'reportsApi', () => `${AUDIENCE}/`],
    ["a verifier names Writ's own admin audience", 'reportsApi', () => `${issuer}/admin`],
    ["a verifier names Writ's own events audience (a class lists it)", 'reportsApi', () => eventsAudience],
  ];
  for (const [name, as, audience] of refusedCases) {
    it(`${name}: 403, audited, nothing signed`, async () => {
      const servedBefore = (await h.auditEvents('policy.bundle.served')).length;
      const refusedBefore = (await h.auditEvents('policy_bundle.refused')).length;
      const r = await bundle(as, audience());
      assert.equal(r.status, 403, r.text);
      const body = JSON.parse(r.text) as Record<string, unknown>;
      assert.equal(body['error'], 'access_denied');
      assert.match(String(body['error_description']), /does not serve this API/);
      assert.doesNotMatch(r.text, /^ey/, 'no JWS in the answer');
      const refused = (await h.auditEvents('policy_bundle.refused')).slice(refusedBefore);
      assert.equal(refused.length, 1);
      assert.equal(refused[0]!.data['reason'], 'audience_not_served');
      assert.equal(refused[0]!.actor, IDS[as]);
      assert.equal((await h.auditEvents('policy.bundle.served')).length, servedBefore, 'nothing served');
    });
  }

  it('a registered API and an unregistered audience get the same refusal (no map of the APIs)', async () => {
    const registered = await bundle('rogue', AUDIENCE);
    const unregistered = await bundle('rogue', 'https://victim.example');
    assert.equal(registered.status, unregistered.status);
    assert.equal(registered.text, unregistered.text);
  });

  describe('a bundle a verifier legitimately holds is no access token', () => {
    let jws: string;
    before(async () => {
      const r = await bundle('reportsApi', AUDIENCE);
      assert.equal(r.status, 200, r.text);
      jws = r.text;
    });

    it('it expires within minutes and names its own typ', () => {
      const claims = decodeJwt(jws);
      assert.equal(decodeProtectedHeader(jws).typ, 'writ-policy-bundle+jwt');
      assert.equal(claims.aud, AUDIENCE);
      assert.equal(typeof claims.exp, 'number');
      assert.ok(claims.exp! - claims.iat! <= 300, `lives ${claims.exp! - claims.iat!} s`);
    });

    it('jose.jwtVerify with what an access-token verifier of the API passes refuses it, the laxest options too', async () => {
      const metadata = (await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json()) as {
        jwks_uri: string;
        writ_policy_bundle_jwks_uri: string;
      };
      const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
      const strict = {
        issuer,
        audience: AUDIENCE,
        typ: 'at+jwt',
        algorithms: ['ES256', 'EdDSA'],
        requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'],
      };
      // The bundle's key is not in the token JWKS: no option set, however lax, gets past the signature.
      for (const options of [strict, { issuer, audience: AUDIENCE }, {}]) {
        await assert.rejects(jwtVerify(jws, jwks, options), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
      }
      // Even a verifier misconfigured to trust the bundle keys refuses it as an RFC 9068 token.
      const bundleJwks = createRemoteJWKSet(new URL(metadata.writ_policy_bundle_jwks_uri));
      await assert.rejects(jwtVerify(jws, bundleJwks, strict), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' });
    });

    it("the Writ SDK's access-token check and a running verifier refuse it", async () => {
      const tokenKeys = (
        (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: unknown[] }
      ).keys.map((k) => importPublicJwk(k));
      assert.throws(
        () =>
          verifyAccessTokenJwt(jws, {
            keys: tokenKeys,
            issuer,
            audience: AUDIENCE,
            nowSeconds: Math.floor(Date.now() / 1000),
            leeway: 5,
            maxBytes: 1 << 20,
          }),
        (err) => err instanceof TokenError && err.reason === 'no_key',
      );
      const verifier = createVerifier({ issuer, audience: AUDIENCE, client: clients.reportsApi });
      try {
        await ready(verifier);
        await assert.rejects(
          verifier.verify({ authorization: `Bearer ${jws}`, dpop: [], method: 'GET', url: `${AUDIENCE}/x` }),
          (err) => err instanceof RequestRefusal && err.code === 'invalid_token',
        );
      } finally {
        verifier.close();
      }
    });
  });
});
