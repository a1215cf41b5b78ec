import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateDpopKey } from '@writ/sdk/dpop';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import { dpopTokenRequest, rawDoc } from './helpers/dpop.js';
import { ciClassDoc, localIssuerDoc } from './helpers/federation.js';
import { freePort, type Harness, type Reply, startHarness, testKey } from './helpers/harness.js';
import { githubClaims, type LocalIssuer, startLocalIssuer } from './helpers/oidc-issuer.js';
import { type ExpectedRefusal, expectRefusal } from './helpers/refusals.js';
import { assertCovers, type SayWhyRow } from './helpers/say-why.js';

/**
 * Issue 21 item 1, for tokens from trusted issuers: every refused federation token says which check
 * failed and the issuer setting that decides it (`issuers/<name>: audience`, `max_token_age`,
 * `clock_skew`, `algorithms`), never the token, and never whether a workload it does not map to exists.
 */

const WRIT = 'https://writ.test';
const DEPLOY = 'https://deploy.test';
const GH = 'spiffe://test.writ/github/acme/deployer';
const PLAIN = 'spiffe://test.writ/github/acme/plain';

interface Row extends SayWhyRow {
  prepare?: () => Promise<void>;
  send: () => Promise<Reply>;
  expect: ExpectedRefusal & { description: RegExp };
}

describe('say why: federation tokens', () => {
  const clock = fakeClock(Date.UTC(2026, 4, 1, 8));
  const now = () => Math.floor(clock.now() / 1000);
  let h: Harness;
  let github: LocalIssuer;
  let rogue: LocalIssuer;
  let rotated: LocalIssuer;
  let raw: LocalIssuer;
  let downPort: number;

  before(async () => {
    [github, rogue, rotated, raw] = await Promise.all([
      startLocalIssuer('RS256'),
      startLocalIssuer('RS256'),
      startLocalIssuer('RS256'),
      startLocalIssuer('RS256'),
    ]);
    // Two keys published, and tokens without a kid: which one signed cannot be told.
    await rotated.rotate();
    downPort = await freePort();
    h = await startHarness({
      clock,
      settings: { 'limits.source_burst': 10_000 },
      extraDocs: [
        ciClassDoc(DEPLOY),
        localIssuerDoc('github', 'github-actions', github, WRIT, {
          condition: 'claims.repository_owner == "acme"',
          algorithms: ['RS256'],
        }),
        localIssuerDoc('rotated', 'github-actions', rotated, WRIT),
        // An issuer whose subject rule maps the token's own sub, which is no SPIFFE ID.
        rawDoc('issuer', {
          name: 'raw',
          issuer: raw.url,
          jwks_uri: raw.jwksUri,
          audience: WRIT,
          subject: 'claims.sub',
        }),
        rawDoc('issuer', {
          name: 'down',
          issuer: 'https://down.test',
          jwks_uri: `http://127.0.0.1:${downPort}/jwks`,
          audience: WRIT,
          subject: '"spiffe://test.writ/down"',
        }),
        rawDoc('workload', {
          id: GH,
          owner: 'team-ci',
          environment: 'prod',
          classes: ['ci'],
          federation: ['github', 'rotated'],
        }),
        // Registered, with a key of its own, but it does not take GitHub tokens.
        rawDoc('workload', {
          id: PLAIN,
          owner: 'team-ci',
          environment: 'prod',
          classes: ['ci'],
          jwks: { keys: [testKey('EdDSA').publicJwk] },
        }),
      ],
    });
  });
  after(async () => {
    await h.close();
    await Promise.all([github, rogue, rotated, raw].map((i) => i.close()));
  });

  /** The jwt-bearer grant with this token (refusals come before any DPoP proof is looked at). */
  const grant = (assertion: string) =>
    h.post('/oauth2/token', { grant_type: GrantType.jwtBearer, assertion, resource: DEPLOY });
  const mint = (over: Record<string, unknown> = {}, header: Record<string, unknown> = {}, by = github) =>
    by.mint({ ...githubClaims(now()), ...over }, header);
  const refused = (
    reason: SayWhyRow['reason'],
    description: RegExp,
    error = 'invalid_grant',
    status = 400,
  ) => ({
    status,
    error,
    reason,
    description,
  });
  /** The token spent by a first holder (the replay row). */
  let taken = '';

  const rows: Row[] = [
    {
      reason: 'malformed',
      what: 'no JWS at all',
      send: () => grant('not-a-token'),
      expect: refused('malformed', /^the federation token is not acceptable: it is not a compact JWS/),
    },
    {
      reason: 'iss',
      what: 'no iss',
      send: async () => grant(await mint({ iss: undefined })),
      expect: refused('iss', /^the federation token is not acceptable: iss is required$/),
    },
    {
      reason: 'untrusted_issuer',
      what: 'an issuer nobody configured',
      send: async () => grant(await mint({}, {}, rogue)),
      expect: refused(
        'untrusted_issuer',
        /^the federation token is not acceptable: its iss is not the issuer of any trusted issuer configured \(issuers\/\)$/,
      ),
    },
    {
      reason: 'embedded_key',
      what: 'a key in the header',
      send: async () => grant(await mint({}, { jku: 'https://evil.example/jwks' })),
      expect: refused(
        'embedded_key',
        /its header carries jku, which is never trusted: the issuer keys come from its JWKS$/,
      ),
    },
    {
      reason: 'typ',
      what: 'an access token instead of an identity token',
      send: async () => grant(await mint({}, { typ: 'at+jwt' })),
      expect: refused('typ', /its typ is at\+jwt, which is no identity token$/),
    },
    {
      reason: 'algorithm',
      what: 'an algorithm the issuer is not configured with',
      send: async () => grant(await mint({}, { alg: 'PS256' })),
      expect: refused('algorithm', /alg must be one of RS256 \(issuers\/github: algorithms\)$/),
    },
    {
      reason: 'unknown_key',
      what: 'a kid the issuer never published',
      send: async () => grant(await mint({}, { kid: 'nope' })),
      expect: refused('unknown_key', /no key of issuer github matches its kid and alg$/),
    },
    {
      reason: 'ambiguous_key',
      what: 'no kid and two keys that could have signed',
      send: async () => grant(await mint({}, { kid: undefined }, rotated)),
      expect: refused('ambiguous_key', /several keys of issuer rotated match: the token needs a kid$/),
    },
    {
      reason: 'signature',
      what: 'claims changed after signing',
      send: async () => {
        const [head, , sig] = (await mint()).split('.');
        const other = (await mint({ repository: 'acme/other' })).split('.')[1];
        return grant(`${head}.${other}.${sig}`);
      },
      expect: refused('signature', /its signature does not verify with the key of issuer github$/),
    },
    {
      reason: 'audience',
      what: 'a token minted for another service',
      send: async () => grant(await mint({ aud: 'https://elsewhere.example' })),
      expect: refused(
        'audience',
        /its aud is none of https:\/\/writ\.test \(issuers\/github: audience\): ask the issuer for a token with that audience$/,
      ),
    },
    {
      reason: 'expired',
      what: 'a token that expired',
      send: async () => grant(await mint({ iat: now() - 600, nbf: now() - 600, exp: now() - 120 })),
      expect: refused('expired', /it expired 120s ago \(issuers\/github: clock_skew 30s\): get a fresh one$/),
    },
    {
      reason: 'not_yet_valid',
      what: 'nbf ahead',
      send: async () => grant(await mint({ nbf: now() + 120 })),
      expect: refused(
        'not_yet_valid',
        /it is not valid yet: nbf is 120s ahead \(issuers\/github: clock_skew 30s\)$/,
      ),
    },
    {
      reason: 'too_old',
      what: 'a token older than max_token_age',
      send: async () => grant(await mint({ iat: now() - 7200, nbf: now() - 7200 })),
      expect: refused(
        'too_old',
        /its iat is 7200s ago; issuer github takes tokens at most 3600s old \(issuers\/github: max_token_age\): get a fresh one$/,
      ),
    },
    {
      reason: 'iat_future',
      what: 'iat ahead of the clock',
      send: async () => grant(await mint({ iat: now() + 120, nbf: now() })),
      expect: refused(
        'iat_future',
        /its iat is 120s ahead of the server clock \(issuers\/github: clock_skew 30s\)$/,
      ),
    },
    {
      reason: 'exp',
      what: 'no exp',
      send: async () => grant(await mint({ exp: undefined })),
      expect: refused('exp', /: exp is required$/),
    },
    {
      reason: 'iat',
      what: 'iat that is no number',
      send: async () => grant(await mint({ iat: 'now' })),
      expect: refused('iat', /: iat must be a number of seconds since the epoch$/),
    },
    {
      reason: 'jwks_unavailable',
      what: 'an issuer whose keys cannot be fetched',
      send: async () => {
        const t = now();
        const token = await github.mint({
          iss: 'https://down.test',
          sub: 'x',
          aud: WRIT,
          iat: t,
          exp: t + 60,
        });
        return grant(token);
      },
      expect: refused(
        'jwks_unavailable',
        /^the keys of issuer down cannot be fetched right now \(its JWKS\); retry later$/,
        'temporarily_unavailable',
        503,
      ),
    },
    {
      reason: 'condition_false',
      what: 'a repository the condition does not admit',
      send: async () => grant(await mint(githubClaims(now(), { repo: 'evil/deployer' }))),
      expect: refused(
        'condition_false',
        /^the federation token does not satisfy the condition of issuer github \(issuers\/github: condition\): its claims are not ones the operator admits$/,
      ),
    },
    {
      reason: 'subject',
      what: 'a subject rule that yields no SPIFFE ID',
      send: async () => {
        const t = now();
        return grant(await raw.mint({ sub: 'repo:acme/x', aud: WRIT, iat: t, exp: t + 60 }));
      },
      expect: refused(
        'subject',
        /^the subject expression of issuer raw \(issuers\/raw: subject\) yields no SPIFFE ID for this token$/,
      ),
    },
    {
      reason: 'unknown_workload',
      what: 'a repository no workload is registered for',
      send: async () => grant(await mint(githubClaims(now(), { repo: 'acme/nobody' }))),
      expect: refused(
        'unknown_workload',
        /^the federation token maps to spiffe:\/\/test\.writ\/github\/acme\/nobody, which is no registered workload listing issuer github under federation, and no workload template of issuer github covers it$/,
      ),
    },
    {
      reason: 'federation_not_allowed',
      what: 'a registered workload that does not take this issuer',
      send: async () => grant(await mint(githubClaims(now(), { repo: 'acme/plain' }))),
      expect: refused(
        'federation_not_allowed',
        /^the federation token maps to spiffe:\/\/test\.writ\/github\/acme\/plain, which is no registered workload listing issuer github under federation, and no workload template of issuer github covers it$/,
      ),
    },
    {
      reason: 'federation_token_replay',
      what: 'a token already used by another holder',
      prepare: async () => {
        taken = await mint();
        const first = await dpopTokenRequest(
          h,
          () => ({ grant_type: GrantType.jwtBearer, assertion: taken, resource: DEPLOY }),
          generateDpopKey(),
        );
        assert.equal(first.status, 200, JSON.stringify(first.body));
      },
      send: () =>
        dpopTokenRequest(
          h,
          () => ({ grant_type: GrantType.jwtBearer, assertion: taken, resource: DEPLOY }),
          generateDpopKey(),
        ),
      expect: refused(
        'federation_token_replay',
        /^this federation token was already used by another holder \(another DPoP key, or none\): each holder needs its own token from the issuer$/,
      ),
    },
  ];

  it('has a row for every reason of federation tokens', () => {
    assertCovers('federation', rows);
  });

  for (const row of rows) {
    it(`${row.reason}: ${row.what}`, async () => {
      await row.prepare?.();
      await expectRefusal(h, row.send, row.expect);
    });
  }

  it('answers a token mapping to an unregistered workload and to one that does not take the issuer alike', async () => {
    const [nobody, plain] = await Promise.all([
      grant(await mint(githubClaims(now(), { repo: 'acme/nobody' }))),
      grant(await mint(githubClaims(now(), { repo: 'acme/plain' }))),
    ]);
    const shape = (r: Reply) => String(r.body['error_description']).replace(/acme\/\w+/, 'acme/*');
    assert.equal(nobody.status, plain.status);
    assert.equal(shape(nobody), shape(plain));
  });

  it('a federation token as a client assertion at the task endpoints says the same, as invalid_client', async () => {
    await expectRefusal(
      h,
      async () =>
        h.post('/v1/tasks', {
          purpose: 'deploy',
          client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
          client_assertion: await mint({ aud: 'https://elsewhere.example' }),
        }),
      {
        status: 401,
        error: 'invalid_client',
        event: 'task.refused',
        reason: 'audience',
        description: /its aud is none of https:\/\/writ\.test \(issuers\/github: audience\)/,
      },
    );
  });
});
