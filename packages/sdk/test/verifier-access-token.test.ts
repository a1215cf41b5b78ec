import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { type AccessTokenCheck, TokenError, verifyAccessTokenJwt } from '../src/verifier/index.js';
import { accessTokenClaims, b64, type Signer, signer, signToken } from './helpers/access-tokens.js';

// RFC 8725 §3 and RFC 9068 §4 at a resource server: verifyAccessTokenJwt, the check every Writ verifier
// (and the server's own event stream) runs. Each negative case changes one thing of a token that the
// baseline shows is otherwise accepted. The same checks through a connected verifier, with tokens from
// a real server and DPoP, are in packages/server/test/verifier-negative.test.ts.

const ISSUER = 'https://writ.example';
const API = 'https://api.example';
const NOW = 1_800_000_000;

const es = signer('ES256', 'k-es');
const ed = signer('EdDSA', 'k-ed');
const attacker = signer('ES256', 'k-es');

function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  return accessTokenClaims(ISSUER, API, NOW, { cnf: { jkt: 'thumbprint' }, ...over });
}

/** Signs header and payload as given (the header may lie) with `s`'s private key. */
function token(header: Record<string, unknown> = {}, payload: unknown = claims(), s: Signer = es): string {
  return signToken(s, header, payload);
}

const CHECK: AccessTokenCheck = {
  keys: [es.key, ed.key],
  issuer: ISSUER,
  audience: API,
  nowSeconds: NOW,
  leeway: 5,
  maxBytes: 8192,
};

function refused(t: string, reasons: string | string[], over: Partial<AccessTokenCheck> = {}): void {
  const want = Array.isArray(reasons) ? reasons : [reasons];
  assert.throws(
    () => verifyAccessTokenJwt(t, { ...CHECK, ...over }),
    (err: unknown) => {
      assert.ok(err instanceof TokenError, `expected TokenError, got ${String(err)}`);
      assert.ok(want.includes(err.reason), `reason ${err.reason}, expected ${want.join(' or ')}`);
      return true;
    },
  );
}

const accepted = (t: string, over: Partial<AccessTokenCheck> = {}) =>
  verifyAccessTokenJwt(t, { ...CHECK, ...over });

describe('verifyAccessTokenJwt (RFC 8725 §3, RFC 9068 §4)', () => {
  it('accepts the baseline ES256 and EdDSA tokens every case below changes one thing of', () => {
    const v = accepted(token());
    assert.equal(v.kid, 'k-es');
    assert.equal(v.key, es.key);
    assert.equal(accepted(token({}, claims(), ed)).kid, 'k-ed');
  });

  it('§3.1: refuses alg none, with or without a signature, in any case', () => {
    const valid = token();
    for (const alg of ['none', 'None', 'NONE']) {
      const unsigned = `${b64({ alg, typ: 'at+jwt', kid: 'k-es' })}.${b64(claims())}.`;
      refused(unsigned, ['malformed', 'alg_not_allowed']);
      refused(`${unsigned}${valid.split('.')[2]}`, 'alg_not_allowed');
    }
  });

  it('§3.1: refuses HS256 keyed with the public key (algorithm confusion), as JWK and as PEM', () => {
    const pem = es.key.key.export({ format: 'pem', type: 'spki' }).toString();
    for (const secret of [JSON.stringify(es.publicJwk), pem, es.publicJwk['x']!]) {
      const input = `${b64({ alg: 'HS256', typ: 'at+jwt', kid: 'k-es' })}.${b64(claims())}`;
      refused(
        `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`,
        'alg_not_allowed',
      );
    }
  });

  it('§3.1: refuses an algorithm the key cannot have, and one outside the allow-list', () => {
    // The EC key's signature relabelled EdDSA: no EdDSA key is named k-es.
    refused(token({ alg: 'EdDSA' }), 'no_key');
    // ES384 and RS256 are not access-token algorithms, whatever the key.
    refused(token({ alg: 'ES384' }), 'alg_not_allowed');
    refused(token({ alg: 'RS256' }), 'alg_not_allowed');
  });

  it('§3.11: refuses typ other than at+jwt (RFC 9068 §4 also allows application/at+jwt)', () => {
    for (const typ of ['JWT', 'jwt', 'dpop+jwt', 'at+jwt ', 'application/jwt', 'secevent+jwt', 1])
      refused(token({ typ }), 'typ');
    refused(token({ typ: undefined }), 'typ');
    for (const typ of ['application/at+jwt', 'AT+JWT', 'Application/AT+JWT']) accepted(token({ typ }));
  });

  it('§3.8/§3.9: refuses another issuer or audience, and a missing one', () => {
    for (const iss of [`${ISSUER}/`, 'https://writ.example.evil', undefined, [ISSUER]])
      refused(token({}, claims({ iss })), 'iss');
    for (const aud of ['https://other.example', `${API}/`, undefined])
      refused(token({}, claims({ aud })), ['aud', 'claim_aud']);
    // Writ tokens carry exactly one audience: an array is not one, even holding this API.
    refused(token({}, claims({ aud: [API] })), 'claim_aud');
  });

  it('refuses an expired token and one not yet valid, each beyond the leeway; accepts inside it', () => {
    refused(token({}, claims({ exp: NOW - 5 })), 'expired');
    accepted(token({}, claims({ exp: NOW - 4 })));
    refused(token({}, claims({ nbf: NOW + 6 })), 'nbf');
    accepted(token({}, claims({ nbf: NOW + 5 })));
    refused(token({}, claims({ nbf: NOW + 1 })), 'nbf', { leeway: 0 });
  });

  it('refuses time claims that are missing or not numbers, and other claims of the wrong shape', () => {
    for (const k of ['exp', 'nbf', 'iat']) {
      refused(token({}, claims({ [k]: undefined })), `claim_${k}`);
      refused(token({}, claims({ [k]: String(NOW + 100) })), `claim_${k}`);
    }
    for (const k of ['sub', 'client_id', 'scope', 'jti', 'cls'])
      refused(token({}, claims({ [k]: 42 })), `claim_${k}`);
    refused(token({}, claims({ cnf: 'thumbprint' })), 'claim_cnf');
    // The exchange lineage revocations match on: unreadable means uncheckable, so refused.
    for (const ajti of ['j1', [42], [['j1']], { 0: 'j1' }])
      refused(token({}, claims({ ajti })), 'claim_ajti');
    refused(token({}, [claims()]), 'malformed');
    refused(token({}, 'not json'), 'malformed');
  });

  it('refuses an oversize token before looking at it', () => {
    const big = token({}, claims({ pad: 'x'.repeat(9000) }));
    refused(big, 'too_large');
    accepted(big, { maxBytes: 16_384 });
  });

  it('refuses a kid it has no key for, and a known kid signed by another key', () => {
    refused(token({ kid: 'k-unknown' }), 'no_key');
    refused(token({}, claims(), attacker), 'bad_signature');
  });

  it('refuses crit, whatever it names', () => {
    refused(token({ crit: ['exp'] }), 'crit');
    refused(token({ crit: [] }), 'crit');
  });

  it('§3.10: ignores keys the token brings along (jwk, jku, x5u, x5c): the attacker signature does not verify', () => {
    const own = {
      jwk: attacker.publicJwk,
      jku: 'https://attacker.example/jwks',
      x5u: 'https://attacker.example/c',
    };
    refused(token({ ...own, kid: undefined }, claims(), attacker), 'bad_signature');
    refused(token({ ...own }, claims(), attacker), 'bad_signature');
    refused(token({ ...own, kid: 'k-attacker' }, claims(), attacker), 'no_key');
  });

  it('a refusal after the signature verified (aud, exp, nbf) carries the claims; none before it does', () => {
    const claimsOf = (t: string, over: Partial<AccessTokenCheck> = {}) => {
      try {
        verifyAccessTokenJwt(t, { ...CHECK, ...over });
      } catch (err) {
        assert.ok(err instanceof TokenError);
        return { reason: err.reason, jti: err.claims?.jti };
      }
      assert.fail('accepted');
    };
    const jti = 'the-jti';
    const other = { jti, aud: 'https://other.example' };
    assert.deepEqual(claimsOf(token({}, claims(other))), { reason: 'aud', jti });
    assert.deepEqual(claimsOf(token({}, claims({ jti, exp: NOW - 10 }))), { reason: 'expired', jti });
    assert.deepEqual(claimsOf(token({}, claims({ jti, nbf: NOW + 60 }))), { reason: 'nbf', jti });
    // The same claims under a signature that does not verify, or of a shape Writ does not issue: unknown.
    const [h, , s] = token().split('.');
    const forged = `${h}.${b64(claims(other))}.${s}`;
    assert.deepEqual(claimsOf(forged), { reason: 'bad_signature', jti: undefined });
    const attackers = token({}, claims(other), attacker);
    assert.deepEqual(claimsOf(attackers), { reason: 'bad_signature', jti: undefined });
    assert.deepEqual(claimsOf(token({ kid: 'k-unknown' }, claims({ jti, exp: NOW - 10 }))), {
      reason: 'no_key',
      jti: undefined,
    });
    assert.deepEqual(claimsOf(token({}, claims({ jti, iss: 'https://evil.example' }))), {
      reason: 'iss',
      jti: undefined,
    });
    assert.deepEqual(claimsOf(token({}, claims({ jti, scope: 42 }))), {
      reason: 'claim_scope',
      jti: undefined,
    });
  });

  it('refuses a tampered payload and a truncated signature', () => {
    const [h, , s] = token().split('.');
    refused(`${h}.${b64(claims({ scope: 'reports:admin' }))}.${s}`, 'bad_signature');
    refused(`${h}.${b64(claims())}.${s!.slice(0, 40)}`, 'bad_signature');
  });
});
