import { after, before, describe, it } from 'node:test';
import { GrantType, TokenType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import { classDoc, rawDoc } from './helpers/dpop.js';
import { type Harness, startHarness } from './helpers/harness.js';
import { type LocalIssuer, spireClaims, startLocalIssuer } from './helpers/oidc-issuer.js';
import { expectRefusal } from './helpers/refusals.js';

// A `binding: mtls` class must never yield a token that is not bound to a client certificate, whatever
// the grant. client_credentials and token exchange refuse a client that did not authenticate with its
// certificate (mtls-token-endpoint.test.ts); a federation token proves the workload with no
// certificate at all, so the jwt-bearer grant and the federated exchange are refused by the check that
// guards every issuance.

const API = 'https://vault.test';
const SVID = 'spiffe://test.writ/batch/sealed';

describe('a certificate-binding class refuses federated grants (no certificate, no token)', () => {
  const clock = fakeClock(Date.UTC(2026, 4, 1, 8));
  const now = () => Math.floor(clock.now() / 1000);
  let h: Harness;
  let spire: LocalIssuer;

  before(async () => {
    spire = await startLocalIssuer('ES256');
    const keys = (await (await fetch(spire.jwksUri)).json()) as { keys: unknown[] };
    h = await startHarness({
      clock,
      extraDocs: [
        classDoc({
          name: 'sealed',
          audiences: [API],
          scopes: ['vault:read'],
          default_scopes: ['vault:read'],
          binding: 'mtls',
        }),
        rawDoc('issuer', {
          name: 'spire',
          preset: 'spire',
          issuer: spire.url,
          jwks: keys,
          audience: 'https://writ.test',
        }),
        rawDoc('workload', {
          id: SVID,
          owner: 'team-vault',
          environment: 'prod',
          classes: ['sealed'],
          federation: ['spire'],
          tls_client_auth: { x509_svid: true },
        }),
      ],
    });
  });
  after(async () => {
    await h.close();
    await spire.close();
  });

  for (const [name, form] of [
    ['jwt-bearer grant', (t: string) => ({ grant_type: GrantType.jwtBearer, assertion: t, resource: API })],
    [
      'token exchange with a federation token',
      (t: string) => ({
        grant_type: GrantType.tokenExchange,
        subject_token: t,
        subject_token_type: TokenType.jwt,
        resource: API,
      }),
    ],
  ] as const) {
    it(`${name}: unauthorized_client, nothing issued, audited`, async () => {
      const platformToken = await spire.mint(spireClaims(now(), SVID));
      await expectRefusal(h, () => h.post('/oauth2/token', form(platformToken)), {
        status: 400,
        error: 'unauthorized_client',
        reason: 'mtls_binding_required',
      });
    });
  }
});
