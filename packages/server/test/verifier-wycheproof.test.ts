import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { describe, it } from 'node:test';
import { importPublicJwk, JwkError, type VerificationKey, verifySignature } from '@writ/sdk/jose';
import { TokenError, verifyAccessTokenJwt } from '@writ/sdk/verifier';
import { countTests, type WycheproofGroup, type WycheproofTest, withVectors } from './helpers/vectors.js';

// Wycheproof vectors through a resource server's verification path: keys imported as the verifier
// imports the JWKS (importPublicJwk, refused keys skipped), tokens through verifyAccessTokenJwt with its
// own allow-list (ES256, EdDSA) and size bound. wycheproof.test.ts runs the same files through the
// client-assertion path (a wider allow-list); the JOSE code underneath is shared.

/** Refusals that come from the JWS layer: the signature (or the token's form) was not accepted. */
const JWS_REFUSALS = new Set([
  'malformed',
  'too_large',
  'alg_not_allowed',
  'crit',
  'no_key',
  'bad_signature',
]);
const VERIFIER_ALGS = new Set(['ES256', 'EdDSA']);
const MAX_TOKEN_BYTES = 8192;

/** The verifier's verdict: `signed` when the JWS layer accepted it (it may still fail on claims). */
function verdict(jws: string, keys: readonly VerificationKey[]): { signed: boolean; reason: string } {
  try {
    verifyAccessTokenJwt(jws, {
      keys,
      issuer: 'https://writ.test',
      nowSeconds: 0,
      leeway: 0,
      maxBytes: MAX_TOKEN_BYTES,
    });
    return { signed: true, reason: 'accepted' };
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    return { signed: !JWS_REFUSALS.has(err.reason), reason: err.reason };
  }
}

/** A JWKS entry as the verifier takes it: imported, or skipped when refused. */
function jwksKeys(jwks: unknown[]): VerificationKey[] {
  return jwks.flatMap((k) => {
    try {
      return [importPublicJwk(k)];
    } catch (err) {
      if (err instanceof JwkError) return [];
      throw err;
    }
  });
}

function headerAlg(jws: string): string | undefined {
  try {
    return (
      JSON.parse(Buffer.from(jws.split('.')[0] ?? '', 'base64url').toString('utf8')) as { alg?: string }
    ).alg;
  } catch {
    return undefined;
  }
}

/** Judges every case of a JWS file; returns failures and counts by outcome. */
function judge(groups: { keys: VerificationKey[]; tests: WycheproofTest[]; label: string }[]) {
  const failures: string[] = [];
  const counts = { invalidRefused: 0, validSigned: 0, validAlgRefused: 0 };
  for (const g of groups) {
    for (const t of g.tests) {
      const jws = typeof t['jws'] === 'string' ? t['jws'] : JSON.stringify(t['jws']);
      const v = verdict(jws, g.keys);
      const id = `tc ${t.tcId} (${g.label}/${t.comment})`;
      if (t.result === 'invalid' || t.flags.includes('JsonSerialization')) {
        if (v.signed) failures.push(`${id}: invalid case passed the signature check (then ${v.reason})`);
        else counts.invalidRefused++;
      } else if (t.result === 'valid') {
        const alg = headerAlg(jws);
        if (alg !== undefined && VERIFIER_ALGS.has(alg)) {
          if (v.signed) counts.validSigned++;
          else failures.push(`${id}: valid ${alg} signature refused (${v.reason})`);
        } else if (!v.signed) counts.validAlgRefused++;
        else failures.push(`${id}: ${alg} is not an access-token algorithm but its signature was accepted`);
      }
    }
  }
  return { failures, counts };
}

describe('Wycheproof json_web_signature_test.json through verifyAccessTokenJwt', () => {
  withVectors('json_web_signature_test.json', (file) => {
    it('refuses every invalid case at the JWS layer; valid ES256/EdDSA signatures verify; other algorithms are refused', () => {
      const groups = file.testGroups.map((g: WycheproofGroup) => ({
        keys: g['public'] ? jwksKeys([g['public']]) : jwksKeys([g['private']]),
        tests: g.tests,
        label: String(g['comment']),
      }));
      const { failures, counts } = judge(groups);
      assert.deepEqual(failures, []);
      const judged = file.testGroups.flatMap((g) => g.tests).filter((t) => t.result !== 'acceptable');
      assert.equal(counts.invalidRefused + counts.validSigned + counts.validAlgRefused, judged.length);
      assert.ok(counts.invalidRefused >= 300, JSON.stringify(counts));
      // The file has two valid ES256 cases (one with a high-s signature) and no EdDSA one.
      assert.ok(counts.validSigned >= 2, JSON.stringify(counts));
      assert.ok(counts.validAlgRefused >= 20, JSON.stringify(counts));
    });
  });
});

describe('Wycheproof json_web_key_test.json through the verifier JWKS import', () => {
  withVectors('json_web_key_test.json', (file) => {
    it('imports no private, symmetric or bad key and refuses every invalid case', () => {
      const groups = file.testGroups.map((g) => {
        const set = (g['public'] ?? g['private']) as { keys: Record<string, unknown>[] };
        const keys = jwksKeys(set.keys);
        for (const k of set.keys)
          if (('d' in k || 'k' in k) && jwksKeys([k]).length > 0)
            assert.fail(`${String(g['comment'])}: secret imported`);
        return { keys, tests: g.tests, label: String(g['comment']) };
      });
      const { failures, counts } = judge(groups);
      assert.deepEqual(failures, []);
      assert.ok(counts.invalidRefused >= 15, JSON.stringify(counts));
    });
  });
});

for (const [name, alg] of [
  ['ecdsa_secp256r1_sha256_p1363_test.json', 'ES256'],
  ['ed25519_test.json', 'EdDSA'],
] as const) {
  describe(`Wycheproof ${name} with keys imported from their JWK`, () => {
    withVectors(name, (file) => {
      it(`each key imports for ${alg} only; valid signatures verify, invalid ones never`, () => {
        const failures: string[] = [];
        const counts = { valid: 0, invalid: 0, acceptable: 0 };
        for (const group of file.testGroups) {
          // The key as a JWKS would publish it: its JWK, or the JWK of its DER form when the group has none.
          const jwk =
            group['publicKeyJwk'] ??
            createPublicKey({
              key: Buffer.from(group['publicKeyDer'] as string, 'hex'),
              format: 'der',
              type: 'spki',
            }).export({
              format: 'jwk',
            });
          const [key] = jwksKeys([jwk]);
          assert.ok(key, 'the group key imports');
          assert.deepEqual(key.algorithms, [alg]);
          for (const t of group.tests) {
            counts[t.result]++;
            const ok = verifySignature(
              alg,
              key.key,
              Buffer.from(t['msg'] as string, 'hex'),
              Buffer.from(t['sig'] as string, 'hex'),
            );
            if (t.result === 'valid' && !ok) failures.push(`tc ${t.tcId} (${t.comment}): valid refused`);
            if (t.result === 'invalid' && ok) failures.push(`tc ${t.tcId} (${t.comment}): invalid accepted`);
          }
        }
        assert.deepEqual(failures, []);
        assert.equal(
          counts.valid + counts.invalid + counts.acceptable,
          file.numberOfTests ?? countTests(file),
        );
        assert.ok(counts.valid > 50 && counts.invalid > 50, JSON.stringify(counts));
      });
    });
  });
}
