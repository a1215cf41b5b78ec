import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { WorkloadClient } from '@writ/sdk/client';
import { accessTokenHash, createDpopProof, generateDpopKey } from '@writ/sdk/dpop';
import type { PresentedRequest } from '@writ/sdk/verifier';
import { b64json, classDoc, decodeClaims, signProof, workloadDoc } from './helpers/dpop.js';
import { signJwt, testKey } from './helpers/harness.js';
import {
  API,
  eventually,
  outcome,
  presenting,
  startVerifierWorld,
  type VerifierWorld,
  workloadClient,
} from './helpers/verifier.js';

// The negative suite through a connected verifier (createVerifier) with tokens from a real Writ:
// forged tokens (RFC 8725 §3), and a DPoP-bound token misused at the resource server (RFC 9449 §4.3,
// §7). Every DPoP case runs twice, on the first presentation and on a hit in the verified-token cache:
// the cache skips only the signature, never the binding. verifyAccessTokenJwt's own cases are in
// packages/sdk/test/verifier-access-token.test.ts, checkHolderBinding's in packages/sdk/test/dpop.test.ts.

const CLIENT = 'spiffe://test.writ/negative/client';
const OTHER_API = 'https://other.verifier.test';
const URL_ = `${API}/reports/7`;

describe('a connected verifier refuses forged and misused tokens', () => {
  const clientKey = testKey();
  let w: VerifierWorld;
  let client: WorkloadClient;
  let serverKid: string;
  let serverJwk: Record<string, unknown>;

  before(async () => {
    w = await startVerifierWorld({
      docs: () => [
        classDoc({
          name: 'negative-api',
          audiences: [API, OTHER_API],
          scopes: ['reports:read'],
          default_scopes: ['reports:read'],
        }),
        workloadDoc(CLIENT, clientKey, ['negative-api']),
      ],
    });
    client = workloadClient(w.issuer, CLIENT, clientKey, { nowMs: w.clock.now });
    const jwks = (await (await fetch(`${w.issuer}/.well-known/jwks.json`)).json()) as {
      keys: Record<string, unknown>[];
    };
    serverJwk = jwks.keys[0]!;
    serverKid = serverJwk['kid'] as string;
  });
  after(() => w.close());

  const nowS = () => Math.floor(w.clock.now() / 1000);
  const token = async (audience = API) => (await client.requestToken({ audience })).access_token;
  const check = (req: PresentedRequest) => outcome(w.verifier, req);
  const dpop = (t: string, o: { method?: string; url?: string } = {}) =>
    presenting(t, {
      holder: client.dpopKey,
      url: o.url ?? URL_,
      method: o.method ?? 'GET',
      nowSeconds: nowS(),
    });

  it('accepts a real DPoP-bound token with a proof by its key (the baseline), then from the cache', async () => {
    const t = await token();
    assert.equal(decodeClaims(t)['cnf'] !== undefined, true);
    const first = await w.verifier.verify(dpop(t));
    assert.equal(first.cached, false);
    assert.equal(first.claims.jti, decodeClaims(t)['jti']);
    const second = await w.verifier.verify(dpop(t));
    assert.equal(second.cached, true);
  });

  describe('forged tokens (RFC 8725 §3)', () => {
    const forgedClaims = () => ({ ...decodeClaims(realToken), jti: randomBytes(12).toString('base64url') });
    let realToken: string;
    before(async () => {
      realToken = await token();
    });
    const asBearer = (t: string) => presenting(t, { url: URL_ });

    it('alg none under the server kid, unsigned or with a real signature attached', async () => {
      const header = b64json({ alg: 'none', typ: 'at+jwt', kid: serverKid });
      const unsigned = `${header}.${b64json(forgedClaims())}.`;
      assert.match(await check(asBearer(unsigned)), /^(malformed|no_token|alg_not_allowed)$/);
      const borrowed = `${header}.${b64json(forgedClaims())}.${realToken.split('.')[2]}`;
      assert.equal(await check(asBearer(borrowed)), 'alg_not_allowed');
    });

    it('HS256 keyed with the server public key (its JWK, its x coordinate)', async () => {
      for (const secret of [JSON.stringify(serverJwk), String(serverJwk['x'])]) {
        const input = `${b64json({ alg: 'HS256', typ: 'at+jwt', kid: serverKid })}.${b64json(forgedClaims())}`;
        const forged = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
        assert.equal(await check(asBearer(forged)), 'alg_not_allowed');
      }
    });

    it('signed by another key under the server kid, or bringing its own key (jwk, jku) without a kid', async () => {
      const attacker = testKey();
      const claimsOf = { ...forgedClaims(), cnf: undefined };
      assert.equal(
        await check(asBearer(signJwt(attacker, claimsOf, { typ: 'at+jwt', kid: serverKid }))),
        'bad_signature',
      );
      const embedded = signJwt(attacker, claimsOf, {
        typ: 'at+jwt',
        kid: undefined,
        jwk: attacker.publicJwk,
        jku: `${w.issuer}/.well-known/jwks.json`,
      });
      assert.equal(await check(asBearer(embedded)), 'bad_signature');
    });

    it('a kid the server never had (after refetching the JWKS once)', async () => {
      const attacker = testKey();
      const forged = signJwt(attacker, forgedClaims(), { typ: 'at+jwt', kid: 'not-a-writ-key' });
      assert.equal(await check(asBearer(forged)), 'no_key');
      assert.equal(await check(asBearer(forged)), 'no_key');
    });

    it('a real token with its payload changed, and a real token for another audience', async () => {
      const [h, , s] = realToken.split('.');
      const widened = `${h}.${b64json({ ...decodeClaims(realToken), scope: 'reports:admin' })}.${s}`;
      assert.equal(await check(dpop(widened)), 'bad_signature');
      assert.equal(await check(dpop(await token(OTHER_API))), 'aud');
    });
  });

  describe('a DPoP-bound token misused at the resource server (RFC 9449 §4.3, §7)', () => {
    const other = generateDpopKey();
    /** Each case: a request that breaks one thing, and the refusal it must get. */
    const cases: [string, (t: string) => PresentedRequest, string][] = [
      ['sent as Bearer', (t) => ({ ...dpop(t), authorization: `Bearer ${t}` }), 'dpop_bound_as_bearer'],
      [
        'proof by another key',
        (t) => ({
          ...dpop(t),
          dpop: [createDpopProof(other, { method: 'GET', url: URL_, accessToken: t, nowSeconds: nowS() })],
        }),
        'dpop_jkt',
      ],
      [
        'proof for another token (ath)',
        (t) => ({
          ...dpop(t),
          dpop: [
            createDpopProof(client.dpopKey, {
              method: 'GET',
              url: URL_,
              accessToken: `${t}x`,
              nowSeconds: nowS(),
            }),
          ],
        }),
        'dpop_ath',
      ],
      ['proof for another method (htm)', (t) => ({ ...dpop(t), method: 'DELETE' }), 'dpop_htm'],
      [
        'proof for another URL (htu)',
        (t) => ({ ...dpop(t, { url: `${API}/reports/8` }), url: URL_ }),
        'dpop_htu',
      ],
      [
        'proof for another host (htu)',
        (t) => ({ ...dpop(t, { url: `${OTHER_API}/reports/7` }), url: URL_ }),
        'dpop_htu',
      ],
      ['no proof', (t) => ({ ...dpop(t), dpop: [] }), 'dpop_single_header'],
      ['two proofs', (t) => ({ ...dpop(t), dpop: [...dpop(t).dpop, ...dpop(t).dpop] }), 'dpop_single_header'],
      [
        'a proof from two minutes ago',
        (t) => {
          const proof = createDpopProof(client.dpopKey, {
            method: 'GET',
            url: URL_,
            accessToken: t,
            nowSeconds: nowS() - 120,
          });
          return { ...dpop(t), dpop: [proof] };
        },
        'dpop_iat',
      ],
      [
        'a proof without ath',
        (t) => {
          const parts = {
            header: { typ: 'dpop+jwt', alg: client.dpopKey.alg, jwk: client.dpopKey.publicJwk },
            claims: { jti: randomBytes(12).toString('base64url'), htm: 'GET', htu: URL_, iat: nowS() },
          };
          return { ...dpop(t), dpop: [signProof(client.dpopKey, parts)] };
        },
        'dpop_required_claims',
      ],
    ];

    for (const [label, request, reason] of cases) {
      it(`${label}: ${reason}, on the first presentation and from the cache`, async () => {
        const t = await token();
        assert.equal(await check(request(t)), reason, 'first presentation');
        // Now cached (a valid presentation), then the same misuse again.
        assert.equal(await check(dpop(t)), `ok:${decodeClaims(t)['jti']}`);
        assert.equal((await w.verifier.verify(dpop(t))).cached, true);
        assert.equal(await check(request(t)), reason, 'cache hit');
      });
    }

    it('a replayed proof: accepted once, refused after, also when the token comes from the cache', async () => {
      const t = await token();
      const req = dpop(t);
      assert.equal(await check(req), `ok:${decodeClaims(t)['jti']}`);
      assert.equal(await check(req), 'dpop_replay');
      const again = dpop(t);
      assert.equal(await check(again), `ok:${decodeClaims(t)['jti']}`);
      assert.equal(await check(again), 'dpop_replay');
    });

    it('the proof hash (ath) is over the token as presented', async () => {
      const t = await token();
      const req = dpop(t);
      assert.equal(
        JSON.parse(Buffer.from(req.dpop[0]!.split('.')[1]!, 'base64url').toString())['ath'],
        accessTokenHash(t),
      );
    });
  });

  describe('time is checked on cache hits too', () => {
    it('nbf: a cached token presented at a time before it is valid is refused', async () => {
      const t = await token();
      assert.equal(await check(dpop(t)), `ok:${decodeClaims(t)['jti']}`);
      const at = w.clock.now();
      // The verifier's clock goes back a minute (an NTP step); the cached token is not valid yet.
      w.clock.set(at - 60_000);
      try {
        assert.equal(await check(dpop(t)), 'nbf');
      } finally {
        w.clock.set(at);
      }
      assert.equal(await check(dpop(t)), `ok:${decodeClaims(t)['jti']}`);
    });

    it('exp: a cached token is refused once expired', async () => {
      const t = await token();
      assert.equal(await check(dpop(t)), `ok:${decodeClaims(t)['jti']}`);
      const exp = decodeClaims(t)['exp'] as number;
      w.clock.set((exp + 6) * 1000);
      // Time jumped: the verifier hears the stream again before it trusts its state.
      await eventually(
        'a current stream after the jump',
        () => (w.verifier.status().stale ? undefined : true),
        {
          attempts: 1200,
        },
      );
      assert.equal(await check(dpop(t)), 'expired');
    });
  });
});
