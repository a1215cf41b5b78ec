import assert from 'node:assert/strict';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createDpopProof, type DpopKey, generateDpopKey } from '@writ/sdk/dpop';
import { checkHolderBinding, type PresentedRequest, RequestRefusal } from '@writ/sdk/verifier';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import * as oauth from 'oauth4webapi';
import pino from 'pino';
import { setWorkloadState } from '../src/admin/operations.js';
import { verifyClientAssertion } from '../src/auth/client/private-key-jwt.js';
import {
  classDoc,
  clientAuth,
  injectForm,
  nowSeconds,
  type ProofParts,
  proofParts,
  rawDoc,
  serverNonce,
  signProof,
  workloadDoc,
} from './helpers/dpop.js';
import {
  AUDIENCE,
  type Harness,
  LEGACY_SECRET,
  LEGACY_WORKLOAD,
  type Reply,
  signJwt,
  startHarness,
  type TestKey,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';
import { type ExpectedRefusal, expectRefusal } from './helpers/refusals.js';
import { assertCovers, type SayWhyRow } from './helpers/say-why.js';

/**
 * Issue 21 item 1: every refused client authentication, client assertion and DPoP proof says in its
 * `error_description` which check failed, what was expected and which setting decides it, without
 * secrets, and without telling anyone which client ids exist. One row per reason, checked with the
 * whole refusal contract (`expectRefusal`: status, code, nothing issued, exactly one audit event).
 */

const DPOP_API = 'https://api.say-why.test';
const DPOP_CLIENT = 'spiffe://test.writ/say-why/dpop';
const DISABLED = 'spiffe://test.writ/say-why/disabled';
const QUARANTINED = 'spiffe://test.writ/say-why/quarantined';
const EXPIRED_LEGACY = 'spiffe://test.writ/say-why/expired-legacy';
const EXPIRED_SECRET = 'expired-secret-0123456789abcdef';
const NOBODY = 'spiffe://test.writ/nobody/here';

const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex');
const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** A row sent over HTTP, with the refusal it must get. */
interface HttpRow extends SayWhyRow {
  /** Runs before the refusal is looked for (a first use, which is no refusal). */
  prepare?: () => Promise<void>;
  send: () => Promise<Reply>;
  expect: ExpectedRefusal & { description: RegExp };
}
/** A row for a check no HTTP request reaches in this form: the check is called as the server calls it. */
interface DirectRow extends SayWhyRow {
  run: () => Promise<void> | void;
}
type Row = HttpRow | DirectRow;

describe('say why: client authentication, client assertions and DPoP proofs', () => {
  let h: Harness;
  const dpopClientKey = testKey();
  const keys: Record<string, TestKey> = { disabled: testKey(), quarantined: testKey() };
  const lines: string[] = [];
  before(async () => {
    h = await startHarness({
      listen: true,
      // Every row below is refused from one address: room for all of them in its budget of refusals.
      settings: { 'limits.source_burst': 10_000 },
      logger: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }),
      extraDocs: [
        classDoc({
          name: 'dpop-api',
          audiences: [DPOP_API],
          scopes: ['api:read'],
          default_scopes: ['api:read'],
        }),
        workloadDoc(DPOP_CLIENT, dpopClientKey, ['dpop-api']),
        workloadDoc(DISABLED, keys['disabled']!, ['reports-read']),
        workloadDoc(QUARANTINED, keys['quarantined']!, ['reports-read']),
        classDoc({
          name: 'legacy-expired',
          binding: 'bearer',
          audiences: [AUDIENCE],
          scopes: ['reports:read'],
        }),
        rawDoc('exception', {
          id: 'legacy-expired-secret',
          covers: { kind: 'legacy_client_secret', class: 'legacy-expired' },
          owner: 'team-reports',
          justification: 'retired late',
          expires: '2020-01-31',
        }),
        rawDoc('workload', {
          id: EXPIRED_LEGACY,
          owner: 'team-reports',
          environment: 'prod',
          classes: ['legacy-expired'],
          client_secret_sha256: sha256hex(EXPIRED_SECRET),
        }),
      ],
    });
    await setWorkloadState(h.writ.ctx, DISABLED, 'disabled', 'operator:ops', 'say-why');
    await setWorkloadState(h.writ.ctx, QUARANTINED, 'quarantined', 'operator:ops', 'say-why');
  });
  after(() => h.close());

  const now = () => nowSeconds(h);
  const tokenUrl = () => `${h.issuer}/oauth2/token`;
  /** A client_credentials request for WORKLOAD with this assertion (and extra fields). */
  const withAssertion = (assertion: string, extra: Record<string, string> = {}) =>
    h.post('/oauth2/token', {
      grant_type: GrantType.clientCredentials,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: assertion,
      resource: AUDIENCE,
      ...extra,
    });
  /** WORKLOAD's assertion with claim overrides (`undefined` drops a claim). */
  const assertionWith = (claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
    h.assertion({ claims, header });
  const invalidClient = (reason: SayWhyRow['reason'], description: RegExp) => ({
    status: 401,
    error: 'invalid_client',
    reason,
    description,
  });
  /** The one answer to an assertion no registered key verifies, whatever the cause. */
  const UNVERIFIED =
    /^client authentication failed: the assertion is not signed by a key registered for this client_id; check the client_id, the signing key and its kid$/;

  /** A DPoP token request by DPOP_CLIENT with this proof (a header given as an array is several lines). */
  const dpopRequest = (dpop: string | string[] | undefined) =>
    injectForm(
      h,
      '/oauth2/token',
      { grant_type: 'client_credentials', ...clientAuth(h, DPOP_CLIENT, dpopClientKey), resource: DPOP_API },
      dpop === undefined ? {} : { dpop },
    );
  /** A proof with the server's current nonce, broken by `change`; signed by `signer` (default: its own key). */
  const proof = async (change: (p: ProofParts) => void = () => {}, signer?: DpopKey): Promise<string> => {
    const key = generateDpopKey();
    const nonce = await serverNonce(h, DPOP_CLIENT, dpopClientKey, DPOP_API);
    const p = proofParts(key, { htu: tokenUrl(), iat: now(), nonce });
    change(p);
    return signProof(signer ?? key, p);
  };
  /** A proof made without asking the server for its nonce: with none, or with `nonce`. */
  const unaskedProof = (nonce?: string): string => {
    const key = generateDpopKey();
    return signProof(key, proofParts(key, { htu: tokenUrl(), iat: now(), ...(nonce ? { nonce } : {}) }));
  };
  /** A proof and an introspection form whose assertion are already spent (the replay rows). */
  let spent = '';
  let spentForm: Record<string, string> = {};
  const invalidProof = (reason: SayWhyRow['reason'], description: RegExp) => ({
    status: 400,
    error: 'invalid_dpop_proof',
    reason,
    description,
  });

  const rows: Row[] = [
    // Client authentication
    {
      reason: 'no_client_auth',
      what: 'no credential at all',
      send: () => h.post('/oauth2/token', { grant_type: 'client_credentials', resource: AUDIENCE }),
      expect: invalidClient(
        'no_client_auth',
        /^client authentication is required: send a client_assertion \(private_key_jwt, RFC 7523\)/,
      ),
    },
    {
      reason: 'multiple_client_auth',
      what: 'an assertion and a secret',
      send: () => withAssertion(h.assertion(), { client_secret: 'x' }),
      expect: {
        status: 400,
        error: 'invalid_request',
        reason: 'multiple_client_auth',
        description:
          /exactly one client authentication method; the request has client_assertion and client_secret/,
      },
    },
    {
      reason: 'unknown_client',
      what: 'an assertion for a client id nobody registered',
      send: () => withAssertion(h.assertion({ clientId: NOBODY })),
      expect: invalidClient('unknown_client', UNVERIFIED),
    },
    {
      reason: 'client_id_mismatch',
      what: 'client_id beside Basic naming another client',
      send: () =>
        h.post(
          '/oauth2/token',
          { grant_type: 'client_credentials', resource: AUDIENCE, client_id: WORKLOAD },
          { authorization: basic(LEGACY_WORKLOAD, LEGACY_SECRET) },
        ),
      expect: {
        status: 400,
        error: 'invalid_request',
        reason: 'client_id_mismatch',
        description: /the client_id parameter is not the client_id of Authorization: Basic/,
      },
    },
    {
      reason: 'assertion_type',
      what: 'a client_assertion_type that is not jwt-bearer',
      send: () => withAssertion(h.assertion(), { client_assertion_type: 'urn:example:saml' }),
      expect: {
        status: 400,
        error: 'invalid_request',
        reason: 'assertion_type',
        description:
          /^client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer \(RFC 7523 §2\.2\)$/,
      },
    },
    {
      reason: 'malformed_basic',
      what: 'Basic credentials without a colon',
      send: () =>
        h.post(
          '/oauth2/token',
          { grant_type: 'client_credentials', resource: AUDIENCE },
          { authorization: `Basic ${Buffer.from('no-colon').toString('base64')}` },
        ),
      expect: invalidClient(
        'malformed_basic',
        /^Authorization: Basic must be base64 of the form-urlencoded client_id, a colon and the secret/,
      ),
    },
    {
      reason: 'bad_secret',
      what: 'the wrong legacy secret',
      send: () =>
        h.post(
          '/oauth2/token',
          { grant_type: 'client_credentials', resource: AUDIENCE },
          { authorization: basic(LEGACY_WORKLOAD, `wrong-${LEGACY_SECRET}`) },
        ),
      expect: invalidClient(
        'bad_secret',
        /^client authentication failed: the client_id and secret do not match a client registered with a secret$/,
      ),
    },
    {
      reason: 'exception_expired',
      what: 'the right secret under an exception that expired',
      send: () =>
        h.post(
          '/oauth2/token',
          { grant_type: 'client_credentials', resource: AUDIENCE },
          { authorization: basic(EXPIRED_LEGACY, EXPIRED_SECRET) },
        ),
      expect: {
        status: 400,
        error: 'unauthorized_client',
        reason: 'exception_expired',
        description:
          /exception "legacy-expired-secret" \(legacy client secret for class legacy-expired, owner team-reports\) expired at 2020-01-31T23:59:59.999Z; an operator renews it \(writ exceptions renew legacy-expired-secret/,
      },
    },
    {
      reason: 'replay',
      what: 'an assertion used a second time (at introspection, which spends it at once)',
      prepare: async () => {
        spentForm = {
          token: 'x',
          client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
          client_assertion: h.assertion(),
        };
        assert.equal((await h.post('/oauth2/introspect', spentForm)).status, 200);
      },
      send: () => h.post('/oauth2/introspect', spentForm),
      expect: {
        ...invalidClient(
          'replay',
          /^client assertion has already been used \(its jti\): sign a new one, with a fresh jti, for every request$/,
        ),
        event: 'introspection.refused',
      },
    },
    {
      reason: 'workload_disabled',
      what: 'a disabled workload',
      send: () => withAssertion(h.assertion({ clientId: DISABLED, key: keys['disabled']! })),
      expect: {
        status: 400,
        error: 'unauthorized_client',
        reason: 'workload_disabled',
        description:
          /^the workload is disabled: it gets nothing until an operator runs writ workloads enable$/,
      },
    },
    {
      reason: 'workload_quarantined',
      what: 'a quarantined workload',
      send: () => withAssertion(h.assertion({ clientId: QUARANTINED, key: keys['quarantined']! })),
      expect: {
        status: 400,
        error: 'unauthorized_client',
        reason: 'workload_quarantined',
        description: /^the workload is quarantined/,
      },
    },
    {
      reason: 'unknown_operator',
      what: 'an operator assertion naming no operator',
      send: () => {
        const t = now();
        const assertion = signJwt(h.operatorKey, {
          iss: 'nobody',
          sub: 'nobody',
          aud: h.issuer,
          iat: t,
          exp: t + 60,
          jti: randomBytes(8).toString('hex'),
        });
        return h.post('/admin/v1/token', { grant_type: GrantType.jwtBearer, assertion });
      },
      expect: {
        status: 401,
        error: 'invalid_client',
        reason: 'unknown_operator',
        event: 'admin_token.refused',
        description:
          /^operator authentication failed: the assertion is not signed by a key registered for this operator \(its iss and sub\)/,
      },
    },

    // The client assertion (RFC 7523 §3)
    {
      reason: 'too_large',
      what: 'an assertion longer than limits.token_bytes (the form limit refuses it first over HTTP)',
      run: () => {
        const rules = {
          audiences: [h.issuer],
          algorithms: ['ES256' as const],
          maxLifetime: 300,
          clockSkew: 30,
          maxBytes: 64,
          nowMs: Date.now(),
        };
        assert.throws(
          () => verifyClientAssertion(h.assertion(), CLIENT_ASSERTION_TYPE_JWT_BEARER, WORKLOAD, [], rules),
          (err: Error & { reason?: string }) => {
            assert.equal(err.reason, 'too_large');
            assert.match(err.message, /^client assertion is longer than 64 bytes \(limits\.token_bytes\)$/);
            return true;
          },
        );
      },
    },
    {
      reason: 'malformed',
      what: 'an assertion that is no JWS',
      send: () => withAssertion('not-a-jwt', { client_id: WORKLOAD }),
      expect: invalidClient(
        'malformed',
        /^client assertion is not a compact JWS: not a compact JWS \(three dot-separated parts expected\)$/,
      ),
    },
    {
      reason: 'typ',
      what: 'an access token sent as the assertion',
      send: () => withAssertion(assertionWith({}, { typ: 'at+jwt' })),
      expect: invalidClient('typ', /^client assertion typ is at\+jwt, which is another kind of token/),
    },
    {
      reason: 'alg_not_allowed',
      what: 'an HMAC algorithm in the header',
      send: () => withAssertion(assertionWith({}, { alg: 'HS256' })),
      expect: invalidClient(
        'alg_not_allowed',
        /^client assertion alg is not accepted: client_assertion\.algorithms allows ES256, ES384, EdDSA, PS256, RS256$/,
      ),
    },
    {
      reason: 'crit',
      what: 'a crit header',
      send: () => withAssertion(assertionWith({}, { crit: ['exp'] })),
      expect: invalidClient('crit', /^client assertion has a crit header: no extension is supported$/),
    },
    {
      reason: 'no_key',
      what: 'a key the client never registered',
      send: () => withAssertion(h.assertion({ key: testKey() })),
      expect: invalidClient('no_key', UNVERIFIED),
    },
    {
      reason: 'bad_signature',
      what: 'another key claiming the registered kid',
      send: () => withAssertion(h.assertion({ key: testKey(), header: { kid: h.workloadKey.kid } })),
      expect: invalidClient('bad_signature', UNVERIFIED),
    },
    {
      reason: 'iss_sub',
      what: 'iss naming another client',
      send: () => withAssertion(assertionWith({ iss: 'spiffe://test.writ/someone/else' })),
      expect: invalidClient(
        'iss_sub',
        /^client assertion iss and sub must both be the client_id spiffe:\/\/test\.writ\/reports\/exporter$/,
      ),
    },
    {
      reason: 'aud',
      what: 'aud naming another server',
      send: () => withAssertion(assertionWith({ aud: 'https://elsewhere.example' })),
      expect: invalidClient(
        'aud',
        /^client assertion aud must be one of http:\/\/127\.0\.0\.1:\d+, http:\/\/127\.0\.0\.1:\d+\/oauth2\/token \(RFC 7523 §3: the issuer or the token endpoint URL\)$/,
      ),
    },
    {
      reason: 'aud',
      what: 'aud with two values',
      send: () => withAssertion(assertionWith({ aud: [h.issuer, tokenUrl()] })),
      expect: invalidClient('aud', /^client assertion aud must be one value, one of .*; it has 2$/),
    },
    {
      reason: 'exp',
      what: 'no exp',
      send: () => withAssertion(assertionWith({ exp: undefined })),
      expect: invalidClient('exp', /^client assertion exp is required: a number of seconds since the epoch$/),
    },
    {
      // The test's clock and the server's are read a moment apart: a second may tick between them,
      // so each figure below may be one off.
      reason: 'exp_too_far',
      what: 'the one-hour lifetime many client libraries default to',
      send: () => withAssertion(assertionWith({ exp: now() + 3600 })),
      expect: invalidClient(
        'exp_too_far',
        /^client assertion exp is (3599|3600|3601)s ahead; assertions may live at most 300s \(client_assertion\.max_lifetime, plus 30s client_assertion\.clock_skew\): set exp nearer$/,
      ),
    },
    {
      reason: 'expired',
      what: 'an assertion that expired',
      send: () => withAssertion(assertionWith({ iat: now() - 200, exp: now() - 60 })),
      expect: invalidClient(
        'expired',
        /^client assertion expired (59|60|61)s ago \(client_assertion\.clock_skew allows 30s\); sign a new one for each request$/,
      ),
    },
    {
      reason: 'nbf',
      what: 'nbf ahead',
      send: () => withAssertion(assertionWith({ nbf: now() + 120, exp: now() + 180 })),
      expect: invalidClient(
        'nbf',
        /^client assertion is not valid yet: nbf is (119|120|121)s ahead of the server clock \(client_assertion\.clock_skew allows 30s\)$/,
      ),
    },
    {
      reason: 'iat',
      what: 'iat that is no number',
      send: () => withAssertion(assertionWith({ iat: 'yesterday' })),
      expect: invalidClient('iat', /^client assertion iat must be a number of seconds since the epoch$/),
    },
    {
      reason: 'iat_future',
      what: 'iat ahead (a client clock running fast)',
      send: () => withAssertion(assertionWith({ iat: now() + 120, exp: now() + 180 })),
      expect: invalidClient(
        'iat_future',
        /^client assertion iat is (119|120|121)s ahead of the server clock \(client_assertion\.clock_skew allows 30s\)$/,
      ),
    },
    {
      reason: 'iat_old',
      what: 'an assertion kept for reuse',
      send: () => withAssertion(assertionWith({ iat: now() - 400 })),
      expect: invalidClient(
        'iat_old',
        /^client assertion iat is (399|400|401)s ago; assertions may be at most 300s old \(client_assertion\.max_lifetime is 300s, plus 30s client_assertion\.clock_skew\)$/,
      ),
    },
    {
      reason: 'jti',
      what: 'no jti',
      send: () => withAssertion(assertionWith({ jti: undefined })),
      expect: invalidClient(
        'jti',
        /^client assertion jti is required: a unique string of at most 256 characters$/,
      ),
    },

    // DPoP at the token endpoint (RFC 9449 §4.3)
    {
      reason: 'dpop_single_header',
      what: 'no proof for a class that binds to DPoP',
      send: () => dpopRequest(undefined),
      expect: invalidProof(
        'dpop_single_header',
        /^this token class binds tokens to a DPoP key \(binding: dpop\): send a DPoP proof header \(RFC 9449\)$/,
      ),
    },
    {
      reason: 'dpop_single_header',
      what: 'two DPoP header lines',
      send: async () => dpopRequest([await proof(), await proof()]),
      expect: invalidProof('dpop_single_header', /^exactly one DPoP header is required; the request has 2$/),
    },
    {
      reason: 'dpop_well_formed',
      what: 'a proof that is no JWS',
      send: () => dpopRequest('not-a-jwt'),
      expect: invalidProof('dpop_well_formed', /^DPoP proof is not a compact JWS: /),
    },
    {
      reason: 'dpop_required_claims',
      what: 'a proof without htm',
      send: async () => dpopRequest(await proof((p) => delete p.claims['htm'])),
      expect: invalidProof('dpop_required_claims', /^DPoP proof lacks htm$/),
    },
    {
      reason: 'dpop_typ',
      what: 'typ JWT',
      send: async () =>
        dpopRequest(
          await proof((p) => {
            p.header['typ'] = 'JWT';
          }),
        ),
      expect: invalidProof('dpop_typ', /^DPoP proof typ must be dpop\+jwt$/),
    },
    {
      reason: 'dpop_alg',
      what: 'an algorithm dpop.algorithms does not list',
      send: async () =>
        dpopRequest(
          await proof((p) => {
            p.header['alg'] = 'RS256';
          }),
        ),
      expect: invalidProof(
        'dpop_alg',
        /^DPoP proof alg must be one of ES256, EdDSA, ES384, PS256 \(dpop\.algorithms\)$/,
      ),
    },
    {
      reason: 'dpop_signature',
      what: 'signed by another key than its jwk',
      send: async () => dpopRequest(await proof(() => {}, generateDpopKey())),
      expect: invalidProof('dpop_signature', /^DPoP proof signature does not verify with its jwk$/),
    },
    {
      reason: 'dpop_private_key',
      what: 'the private key in the jwk header',
      send: async () => {
        const key = generateDpopKey();
        return dpopRequest(
          await proof((p) => {
            p.header['jwk'] = key.privateKey.export({ format: 'jwk' });
          }, key),
        );
      },
      expect: invalidProof(
        'dpop_private_key',
        /^DPoP proof jwk holds private key material: put the public key only in the header$/,
      ),
    },
    {
      reason: 'dpop_htm',
      what: 'htm GET for a POST',
      send: async () =>
        dpopRequest(
          await proof((p) => {
            p.claims['htm'] = 'GET';
          }),
        ),
      expect: invalidProof('dpop_htm', /^DPoP proof htm must be POST, the request method$/),
    },
    {
      reason: 'dpop_htu',
      what: 'htu of another server',
      send: async () =>
        dpopRequest(
          await proof((p) => {
            p.claims['htu'] = 'https://evil.example/oauth2/token';
          }),
        ),
      expect: invalidProof(
        'dpop_htu',
        /^DPoP proof htu must be http:\/\/127\.0\.0\.1:\d+\/oauth2\/token, the request URI without query and fragment$/,
      ),
    },
    {
      reason: 'dpop_nonce',
      what: 'a first proof without a nonce: a challenge, not a refusal',
      // Made without asking for a nonce: the one challenge looked for is this request's.
      send: () => dpopRequest(unaskedProof()),
      expect: {
        status: 400,
        error: 'use_dpop_nonce',
        reason: 'dpop_nonce',
        event: 'token.challenged',
        description:
          /^a server nonce is required in the DPoP proof: retry with the nonce sent in the DPoP-Nonce header$/,
      },
    },
    {
      reason: 'dpop_nonce',
      what: 'a nonce the server never sent',
      send: () => dpopRequest(unaskedProof('made.up')),
      expect: {
        status: 400,
        error: 'use_dpop_nonce',
        reason: 'dpop_nonce',
        event: 'token.challenged',
        description:
          /^the DPoP proof nonce is stale or not one this server issued: retry with the nonce sent/,
      },
    },
    {
      reason: 'dpop_iat',
      what: 'a proof made 400 s ago',
      send: async () =>
        dpopRequest(
          await proof((p) => {
            p.claims['iat'] = now() - 400;
          }),
        ),
      expect: invalidProof(
        'dpop_iat',
        /^DPoP proof iat is (399|400|401)s behind the server clock; proofs are accepted within 60s \(dpop\.iat_window\): make a new proof per request$/,
      ),
    },
    {
      reason: 'dpop_replay',
      what: 'a proof sent twice',
      prepare: async () => {
        spent = await proof();
        assert.equal((await dpopRequest(spent)).status, 200);
      },
      send: () => dpopRequest(spent),
      expect: invalidProof(
        'dpop_replay',
        /^DPoP proof jti was already used: make a new proof for every request$/,
      ),
    },

    // DPoP at a resource server (the SDK's check, as every Writ endpoint and verifier makes it)
    ...(
      [
        [
          'dpop_ath',
          'a proof made for another token',
          { ath: 'other-token' },
          /^DPoP proof ath must be the base64url SHA-256 of the access token sent with it$/,
        ],
        [
          'dpop_jkt',
          'a proof by a key the token is not bound to',
          { jkt: 'other' },
          /^DPoP proof key is not the key the token is bound to \(its cnf\.jkt\)$/,
        ],
        [
          'not_dpop_bound',
          'the DPoP scheme with an unbound token',
          { unbound: true },
          /^the token is not DPoP-bound \(no cnf\.jkt\): send it with Authorization: Bearer$/,
        ],
        [
          'dpop_bound_as_bearer',
          'a bound token sent as Bearer',
          { bearer: true },
          /^the token is DPoP-bound \(cnf\.jkt\): send it with Authorization: DPoP and a proof by its key$/,
        ],
        [
          'dpop_iat',
          'a stale proof at a verifier names its option',
          { iat: -400 },
          /^DPoP proof iat is (399|400|401)s behind the server clock; proofs are accepted within 60s \(dpopIatWindow\)/,
        ],
      ] as const
    ).map(
      ([reason, what, o, description]): DirectRow => ({
        reason,
        what,
        run: async () => {
          const holder = generateDpopKey();
          const token = 'an.access.token';
          const t = Math.floor(Date.now() / 1000);
          const url = 'https://api.example/reports';
          const req: PresentedRequest = {
            authorization: `${'bearer' in o ? 'Bearer' : 'DPoP'} ${token}`,
            dpop: [
              createDpopProof(holder, {
                method: 'GET',
                url,
                accessToken: 'ath' in o ? o.ath : token,
                nowSeconds: t + ('iat' in o ? o.iat : 0),
              }),
            ],
            method: 'GET',
            url,
          };
          const jkt = 'jkt' in o ? generateDpopKey().jkt : holder.jkt;
          await assert.rejects(
            checkHolderBinding(
              req,
              { scheme: 'bearer' in o ? 'Bearer' : 'DPoP', token },
              'unbound' in o ? {} : { cnf: { jkt } },
              {
                algorithms: ['ES256'],
                nowSeconds: t,
                iatWindow: 60,
                settingNames: { algorithms: 'dpopAlgorithms', iatWindow: 'dpopIatWindow' },
                consumeJti: () => true,
              },
            ),
            (err: unknown) => {
              assert.ok(err instanceof RequestRefusal);
              assert.equal(err.reason, reason);
              assert.match(err.description, description);
              return true;
            },
          );
        },
      }),
    ),
  ];

  it('has a row for every reason of client authentication, client assertions and DPoP', () => {
    assertCovers('assertions', rows);
  });

  for (const row of rows) {
    it(`${row.reason}: ${row.what}`, async () => {
      if ('run' in row) return row.run();
      await row.prepare?.();
      const { reply } = await expectRefusal(h, row.send, row.expect);
      // Nothing secret is ever in a description: no secret, no assertion, no key material.
      const description = String(reply.body['error_description']);
      for (const secret of [LEGACY_SECRET, EXPIRED_SECRET, 'BEGIN', '"d":'])
        assert.ok(!description.includes(secret), description);
    });
  }

  describe('aud: what RFC 7523 §3 allows, at every endpoint that takes a client assertion', () => {
    const endpoints = [
      {
        path: '/oauth2/token',
        form: () => ({ grant_type: 'client_credentials', resource: AUDIENCE }),
        ok: 200,
      },
      { path: '/oauth2/introspect', form: () => ({ token: 'x' }), ok: 200 },
      { path: '/oauth2/revoke', form: () => ({ token: 'x' }), ok: 200 },
      { path: '/v1/tasks', form: () => ({ purpose: 'say why' }), ok: 201 },
    ];
    const send = (path: string, form: Record<string, string>, aud: unknown) =>
      h.post(path, {
        ...form,
        client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
        client_assertion: assertionWith({ aud }),
      });
    for (const e of endpoints) {
      it(`${e.path} takes the issuer, the token endpoint URL and its own URL`, async () => {
        for (const aud of [h.issuer, tokenUrl(), `${h.issuer}${e.path}`, [tokenUrl()]]) {
          const r = await send(e.path, e.form(), aud);
          assert.equal(r.status, e.ok, `aud ${JSON.stringify(aud)}: ${JSON.stringify(r.body)}`);
        }
      });
      it(`${e.path} refuses another endpoint's URL, saying which are accepted`, async () => {
        const other = e.path === '/oauth2/revoke' ? '/oauth2/introspect' : '/oauth2/revoke';
        const r = await send(e.path, e.form(), `${h.issuer}${other}`);
        assert.equal(r.status, 401, JSON.stringify(r.body));
        const own = e.path === '/oauth2/token' ? '' : `, ${h.issuer}${e.path}`;
        assert.equal(
          r.body['error_description'],
          `client assertion aud must be one of ${h.issuer}, ${tokenUrl()}${own} (RFC 7523 §3: the issuer or the token endpoint URL)`,
        );
      });
    }
  });

  describe('oauth4webapi with its default settings', () => {
    // The server listens on loopback http here; the library refuses plain http unless told.
    const insecure = { [oauth.allowInsecureRequests]: true } as const;
    let as: oauth.AuthorizationServer;
    let signingKey: oauth.CryptoKey;
    const client: oauth.Client = { client_id: WORKLOAD };
    before(async () => {
      const issuer = new URL(h.issuer);
      as = await oauth.processDiscoveryResponse(
        issuer,
        await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
      );
      signingKey = (await webcrypto.subtle.importKey(
        'pkcs8',
        h.workloadKey.privateKey.export({ format: 'der', type: 'pkcs8' }),
        { name: 'ECDSA', namedCurve: 'P-256' },
        false,
        ['sign'],
      )) as oauth.CryptoKey;
    });
    const auth = (modify?: oauth.ModifyAssertionFunction) =>
      oauth.PrivateKeyJwt(
        { key: signingKey, kid: h.workloadKey.kid },
        modify ? { [oauth.modifyAssertion]: modify } : {},
      );

    /** A token, then introspection and revocation of it, all with assertions made by `clientAuth`. */
    const roundTrip = async (clientAuth: oauth.ClientAuth) => {
      const token = await oauth.processClientCredentialsResponse(
        as,
        client,
        await oauth.clientCredentialsGrantRequest(as, client, clientAuth, { resource: AUDIENCE }, insecure),
      );
      const info = await oauth.processIntrospectionResponse(
        as,
        client,
        await oauth.introspectionRequest(as, client, clientAuth, token.access_token, insecure),
      );
      assert.equal(info.active, true);
      await oauth.processRevocationResponse(
        await oauth.revocationRequest(as, client, clientAuth, token.access_token, insecure),
      );
      const after = await oauth.processIntrospectionResponse(
        as,
        client,
        await oauth.introspectionRequest(as, client, clientAuth, token.access_token, insecure),
      );
      assert.equal(after.active, false);
    };

    it('its default assertion (aud the issuer, 60 s) works at the token, introspection and revocation endpoints', async () => {
      await roundTrip(auth());
    });

    it('an assertion whose aud is always the token endpoint works at all three too', async () => {
      await roundTrip(
        auth((_h, c) => {
          c.aud = as.token_endpoint;
        }),
      );
    });

    it('a one-hour assertion is refused with a description that says what to change', async () => {
      const long = auth((_h, c) => {
        c.exp = (c.iat as number) + 3600;
      });
      await assert.rejects(
        async () =>
          oauth.processClientCredentialsResponse(
            as,
            client,
            await oauth.clientCredentialsGrantRequest(as, client, long, { resource: AUDIENCE }, insecure),
          ),
        (err: unknown) => {
          assert.ok(err instanceof oauth.ResponseBodyError);
          assert.equal(err.error, 'invalid_client');
          assert.match(
            String(err.error_description),
            /exp is 3600s ahead; assertions may live at most 300s \(client_assertion\.max_lifetime/,
          );
          return true;
        },
      );
    });
  });

  describe('a DPoP nonce challenge is not a refusal', () => {
    it('is audited as token.challenged, counted apart from refusals and logged at debug', async () => {
      lines.length = 0;
      const before = (await h.auditEvents('token.refused')).length;
      const holder = generateDpopKey();
      const first = await dpopRequest(createDpopProof(holder, { method: 'POST', url: tokenUrl() }));
      assert.equal(first.body['error'], 'use_dpop_nonce');
      const nonce = first.headers['dpop-nonce'];
      assert.equal(typeof nonce, 'string');
      const second = await dpopRequest(
        createDpopProof(holder, { method: 'POST', url: tokenUrl(), nonce: nonce as string }),
      );
      assert.equal(second.status, 200, JSON.stringify(second.body));

      assert.equal((await h.auditEvents('token.refused')).length, before, 'no refusal was audited');
      const [challenge] = (await h.auditEvents('token.challenged')).slice(-1);
      assert.equal(challenge?.outcome, 'challenged');
      assert.equal(challenge?.actor, DPOP_CLIENT, 'the client had authenticated');
      assert.equal(challenge?.data['reason'], 'dpop_nonce');

      const metrics = (await h.writ.app.inject({ method: 'GET', url: '/metrics' })).body;
      assert.match(metrics, /writ_challenges_total\{endpoint="token",challenge="use_dpop_nonce"\} [1-9]/);
      assert.doesNotMatch(metrics, /writ_refusals_total\{[^}]*error="use_dpop_nonce"/);

      const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const logged = records.filter((r) => r['error'] === 'use_dpop_nonce');
      assert.equal(logged.length, 1, JSON.stringify(logged));
      assert.equal(logged[0]!['msg'], 'challenged');
      assert.equal(logged[0]!['level'], 20, 'debug');
    });
  });
});
