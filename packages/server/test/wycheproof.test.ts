import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import { resolveSettings } from '../src/config/settings.js';
import { importPublicJwk, JwkError, type VerificationKey, type VerifyAlgorithm } from '../src/jose/jwk.js';
import { JwsError, verifyCompactJws, verifySignature } from '../src/jose/jws.js';
import {
  AUDIENCE,
  type Harness,
  OTHER_AUDIENCE,
  OTHER_WORKLOAD,
  startHarness,
  type TestKey,
  WORKLOAD,
} from './helpers/harness.js';
import { expectRefusal } from './helpers/refusals.js';
import { countTests, type WycheproofGroup, withVectors } from './helpers/vectors.js';

/**
 * Wycheproof vectors through the exact JWS check client assertions go through: `verifyCompactJws` with
 * the configured allow-list (`client_assertion.algorithms`) and keys imported by `importPublicJwk`.
 * Every `invalid` case must be rejected; `valid` cases verify when their algorithm is allowed.
 */
const settings = resolveSettings(undefined, {}, {});
const ALGORITHMS: readonly string[] = settings.clientAssertion.algorithms;
const MAX_BYTES = settings.limits.tokenBytes;

type Verdict = { ok: true } | { ok: false; reason: string };

/** The assertion path's JWS verdict on `jws` with these keys. */
function verdict(jws: string, keys: readonly VerificationKey[]): Verdict {
  try {
    verifyCompactJws(jws, { algorithms: settings.clientAssertion.algorithms, keys, maxBytes: MAX_BYTES });
    return { ok: true };
  } catch (err) {
    if (err instanceof JwsError) return { ok: false, reason: err.reason };
    throw err;
  }
}

function headerAlg(jws: string): string | undefined {
  try {
    const h = JSON.parse(Buffer.from(jws.split('.')[0] ?? '', 'base64url').toString('utf8')) as unknown;
    return typeof h === 'object' && h !== null ? ((h as { alg?: string }).alg ?? undefined) : undefined;
  } catch {
    return undefined;
  }
}

function tryImport(jwk: unknown): VerificationKey | undefined {
  try {
    return importPublicJwk(jwk);
  } catch (err) {
    if (err instanceof JwkError) return undefined;
    throw err;
  }
}

const hasPrivateMaterial = (jwk: Record<string, unknown>) => 'k' in jwk || 'd' in jwk;

describe('Wycheproof json_web_signature_test.json (client assertion JWS check)', () => {
  withVectors('json_web_signature_test.json', (file) => {
    it('rejects every invalid case, verifies every valid case with an allowed algorithm', () => {
      const failures: string[] = [];
      const counts = { invalidRejected: 0, validVerified: 0, notAllowedRejected: 0, jsonRejected: 0 };
      /** The group's key as the assertion path would hold it: imported, or nothing if refused. */
      const keyFor = (group: WycheproofGroup): VerificationKey[] => {
        const pub = group['public'] as Record<string, unknown> | undefined;
        if (!pub) {
          // HMAC groups carry only a symmetric key: it can never become a verification key.
          if (tryImport(group['private']))
            failures.push(`${String(group['comment'])}: symmetric key imported`);
          return [];
        }
        const key = tryImport(pub);
        return key ? [key] : [];
      };
      /** The key without its `alg`: as if registered for any algorithm of its type. */
      const bareKeyFor = (group: WycheproofGroup): VerificationKey[] => {
        const pub = group['public'] as Record<string, unknown> | undefined;
        if (!pub) return [];
        const { alg: _alg, ...rest } = pub;
        const key = tryImport(rest);
        return key ? [key] : [];
      };
      for (const group of file.testGroups) {
        const keys = keyFor(group);
        for (const t of group.tests) {
          const jws = typeof t['jws'] === 'string' ? t['jws'] : JSON.stringify(t['jws']);
          const v = verdict(jws, keys);
          const id = `tc ${t.tcId} (${String(group['comment'])}/${t.comment})`;
          if (t.flags.includes('JsonSerialization')) {
            if (v.ok) failures.push(`${id}: JSON serialization accepted`);
            else counts.jsonRejected++;
          } else if (t.result === 'invalid') {
            if (v.ok) failures.push(`${id}: invalid case accepted`);
            else counts.invalidRejected++;
          } else if (t.result === 'valid') {
            const alg = headerAlg(jws);
            if (alg !== undefined && ALGORITHMS.includes(alg)) {
              if (v.ok) counts.validVerified++;
              else failures.push(`${id}: valid ${alg} case rejected (${v.reason})`);
            } else {
              // Refused whatever key the client registered: the allow-list, not the key, decides.
              const bare = verdict(jws, bareKeyFor(group));
              if (v.ok || bare.ok) failures.push(`${id}: ${alg} is not allowed but verified`);
              else counts.notAllowedRejected++;
            }
          }
        }
      }
      assert.deepEqual(failures, []);
      const invalid = file.testGroups
        .flatMap((g) => g.tests)
        .filter((t) => t.result === 'invalid' && !t.flags.includes('JsonSerialization')).length;
      assert.equal(counts.invalidRejected, invalid);
      assert.ok(counts.invalidRejected >= 300, `${counts.invalidRejected} invalid cases rejected`);
      assert.ok(counts.validVerified >= 10, `${counts.validVerified} valid cases verified`);
      assert.ok(counts.notAllowedRejected >= 20, `${counts.notAllowedRejected} HS*/RS384/… cases rejected`);
      assert.ok(counts.jsonRejected >= 1, 'JSON serialization cases seen');
      const acceptable = file.testGroups.flatMap((g) => g.tests).filter((t) => t.result === 'acceptable');
      assert.equal(
        counts.invalidRejected + counts.validVerified + counts.notAllowedRejected + counts.jsonRejected,
        countTests(file) - acceptable.length,
        'every case was judged',
      );
    });

    it('refuses every encryption key (use "enc" or key_ops without "verify")', () => {
      const enc = file.testGroups
        .map((g) => g['public'] as Record<string, unknown> | undefined)
        .filter((k): k is Record<string, unknown> => k !== undefined)
        .filter((k) => k['use'] === 'enc' || Array.isArray(k['key_ops']));
      assert.ok(enc.length >= 4);
      for (const k of enc) {
        const ops = k['key_ops'] as string[] | undefined;
        if (!ops?.includes('verify')) assert.throws(() => importPublicJwk(k), JwkError);
        else if (k['kty'] === 'RSA') assert.ok(tryImport(k), 'key_ops ["verify"] is a verification key');
      }
    });
  });
});

describe('Wycheproof json_web_key_test.json (key import and verification)', () => {
  withVectors('json_web_key_test.json', (file) => {
    it('refuses every invalid key or keyset case; no private or symmetric key is ever imported', () => {
      const failures: string[] = [];
      let invalidRejected = 0;
      let notAllowedRejected = 0;
      let validVerified = 0;
      for (const group of file.testGroups) {
        const set = (group['public'] ?? group['private']) as { keys: Record<string, unknown>[] };
        const keys: VerificationKey[] = [];
        for (const jwk of set.keys) {
          const key = tryImport(jwk);
          if (key && hasPrivateMaterial(jwk))
            failures.push(`${String(group['comment'])}: private key imported`);
          if (key) keys.push(key);
        }
        for (const t of group.tests) {
          const id = `tc ${t.tcId} (${String(group['comment'])}/${t.comment})`;
          const v = verdict(t['jws'] as string, keys);
          const alg = headerAlg(t['jws'] as string);
          if (t.result === 'invalid') {
            if (v.ok) failures.push(`${id}: invalid case accepted`);
            else invalidRejected++;
            // Public keysets here are bad keys with good signatures: the key itself must be refused.
            if (group['public'] && keys.length > 0) failures.push(`${id}: the bad key was imported`);
          } else if (t.result === 'valid') {
            if (alg !== undefined && ALGORITHMS.includes(alg)) {
              if (v.ok) validVerified++;
              else failures.push(`${id}: valid case rejected (${v.reason})`);
            } else if (v.ok) failures.push(`${id}: ${alg} is not allowed but verified`);
            else notAllowedRejected++;
          }
        }
      }
      assert.deepEqual(failures, []);
      assert.ok(invalidRejected >= 15, `${invalidRejected} invalid cases rejected`);
      assert.ok(validVerified >= 1);
      assert.ok(notAllowedRejected >= 1);
    });
  });
});

/** Raw-signature files: every case through `verifySignature` with the group's public key. */
for (const [name, alg] of [
  ['ecdsa_secp256r1_sha256_p1363_test.json', 'ES256'],
  ['ed25519_test.json', 'EdDSA'],
] as const) {
  describe(`Wycheproof ${name} (${alg} signatures)`, () => {
    withVectors(name, (file) => {
      it('verifies every valid signature and rejects every invalid one', () => {
        const failures: string[] = [];
        const counts = { valid: 0, invalid: 0, acceptable: 0 };
        for (const group of file.testGroups) {
          const key = createPublicKey({
            key: Buffer.from(group['publicKeyDer'] as string, 'hex'),
            format: 'der',
            type: 'spki',
          });
          // The same key through the JWK import the assertion path uses.
          const jwk = group['publicKeyJwk'] as Record<string, unknown> | undefined;
          if (jwk) {
            const imported = importPublicJwk(jwk);
            assert.ok(imported.key.equals(key), 'JWK and DER forms import to the same key');
            assert.deepEqual(imported.algorithms, [alg as VerifyAlgorithm]);
          }
          for (const t of group.tests) {
            const ok = verifySignature(
              alg,
              key,
              Buffer.from(t['msg'] as string, 'hex'),
              Buffer.from(t['sig'] as string, 'hex'),
            );
            counts[t.result]++;
            if (t.result === 'valid' && !ok) failures.push(`tc ${t.tcId} (${t.comment}): valid rejected`);
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

/** Curve order of P-256 and of the Ed25519 group, for signatures with out-of-range scalars. */
const P256_N = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex');
const ED25519_L = (1n << 252n) + 27742317777372353535851937790883648493n;

describe('vector-style bad signatures at the token endpoint', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  const now = () => Math.floor(h.writ.ctx.clock.now() / 1000);
  /** A correctly signed assertion split into signing input and raw signature. */
  const parts = (clientId: string, key: TestKey) => {
    const header = Buffer.from(JSON.stringify({ alg: key.alg, kid: key.kid })).toString('base64url');
    const claims = Buffer.from(
      JSON.stringify({
        iss: clientId,
        sub: clientId,
        aud: h.issuer,
        iat: now(),
        exp: now() + 60,
        jti: randomBytes(12).toString('base64url'),
      }),
    ).toString('base64url');
    const input = `${header}.${claims}`;
    const sig =
      key.alg === 'ES256'
        ? sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
        : sign(null, Buffer.from(input), key.privateKey);
    return { input, sig };
  };
  const send = (clientId: string, assertion: string) =>
    h.post('/oauth2/token', {
      grant_type: GrantType.clientCredentials,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: assertion,
      resource: clientId === WORKLOAD ? AUDIENCE : OTHER_AUDIENCE,
      ...(clientId === WORKLOAD ? {} : { scope: 'billing:write' }),
    });
  const refuse = (clientId: string, input: string, sig: Buffer) =>
    expectRefusal(h, () => send(clientId, `${input}.${sig.toString('base64url')}`), {
      status: 401,
      error: 'invalid_client',
      reason: 'bad_signature',
    });

  it('the unmodified signatures are accepted (baseline)', async () => {
    for (const [id, key] of [
      [WORKLOAD, h.workloadKey],
      [OTHER_WORKLOAD, h.otherKey],
    ] as const) {
      const { input, sig } = parts(id, key);
      const r = await send(id, `${input}.${sig.toString('base64url')}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  });

  const es256Cases: [string, (sig: Buffer, input: string) => Buffer][] = [
    ['truncated by one byte', (s) => s.subarray(0, 63)],
    ['truncated to r only', (s) => s.subarray(0, 32)],
    ['one byte appended', (s) => Buffer.concat([s, Buffer.from([0])])],
    ['a bit flipped in s', (s) => Buffer.concat([s.subarray(0, 63), Buffer.from([s[63]! ^ 1])])],
    ['r = 0', (s) => Buffer.concat([Buffer.alloc(32), s.subarray(32)])],
    ['s = 0', (s) => Buffer.concat([s.subarray(0, 32), Buffer.alloc(32)])],
    ['r = s = 0', () => Buffer.alloc(64)],
    ['r = n', (s) => Buffer.concat([P256_N, s.subarray(32)])],
    ['s = n', (s) => Buffer.concat([s.subarray(0, 32), P256_N])],
    ['r and s swapped', (s) => Buffer.concat([s.subarray(32), s.subarray(0, 32)])],
  ];
  for (const [label, modify] of es256Cases) {
    it(`ES256 signature with ${label} is invalid_client`, async () => {
      const { input, sig } = parts(WORKLOAD, h.workloadKey);
      await refuse(WORKLOAD, input, modify(sig, input));
    });
  }

  it('ES256 signature in DER (ASN.1) encoding instead of raw r||s is invalid_client', async () => {
    const { input } = parts(WORKLOAD, h.workloadKey);
    const der = sign('sha256', Buffer.from(input), { key: h.workloadKey.privateKey, dsaEncoding: 'der' });
    assert.equal(der[0], 0x30);
    await refuse(WORKLOAD, input, der);
  });

  it('Ed25519 signature with a non-canonical S (S + L) is invalid_client', async () => {
    const { input, sig } = parts(OTHER_WORKLOAD, h.otherKey);
    const s = BigInt(`0x${Buffer.from(sig.subarray(32)).reverse().toString('hex')}`) + ED25519_L;
    const sBytes = Buffer.from(s.toString(16).padStart(64, '0'), 'hex').reverse();
    await refuse(OTHER_WORKLOAD, input, Buffer.concat([sig.subarray(0, 32), sBytes]));
  });

  it('Ed25519 signature with S = 0 or all zero is invalid_client', async () => {
    const { input, sig } = parts(OTHER_WORKLOAD, h.otherKey);
    await refuse(OTHER_WORKLOAD, input, Buffer.concat([sig.subarray(0, 32), Buffer.alloc(32)]));
    const again = parts(OTHER_WORKLOAD, h.otherKey);
    await refuse(OTHER_WORKLOAD, again.input, Buffer.alloc(64));
  });

  it('a well-formed signature by another key over the same input is invalid_client', async () => {
    const { input } = parts(WORKLOAD, h.workloadKey);
    const forged = sign('sha256', Buffer.from(input), {
      key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    await refuse(WORKLOAD, input, forged);
  });
});
