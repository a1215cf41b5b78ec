import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  accessTokenHash,
  createDpopProof,
  type DpopCheck,
  DpopError,
  type DpopKey,
  type DpopVerifyOptions,
  generateDpopKey,
  normalizeHtu,
  verifyDpopProof,
} from '../src/dpop/index.js';
import {
  checkHolderBinding,
  type PresentedRequest,
  presentedToken,
  ReplayCache,
  RequestRefusal,
} from '../src/verifier/index.js';

// RFC 9449 §4.3: every check refuses with its own reason; each negative case below breaks exactly one
// part of a proof that the "accepts" cases show is otherwise valid.

const URL_ = 'https://api.example.com/v1/reports';
const NOW = 1_800_000_000;
const WINDOW = 60;
const key = generateDpopKey();
const otherKey = generateDpopKey('EdDSA');

const b64json = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

interface Parts {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

function parts(k: DpopKey = key, claims: Record<string, unknown> = {}): Parts {
  return {
    header: { typ: 'dpop+jwt', alg: k.alg, jwk: k.publicJwk },
    claims: { jti: randomBytes(12).toString('base64url'), htm: 'POST', htu: URL_, iat: NOW, ...claims },
  };
}

/** Signs header and claims as given, with `k` (whatever the header says). */
function signed(p: Parts, k: DpopKey = key): string {
  const input = `${b64json(p.header)}.${b64json(p.claims)}`;
  const sig =
    k.alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key: k.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign(null, Buffer.from(input), k.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

function options(proof: string | string[], over: Partial<DpopVerifyOptions> = {}): DpopVerifyOptions {
  return {
    headerValues: Array.isArray(proof) ? proof : [proof],
    method: 'POST',
    url: URL_,
    algorithms: ['ES256', 'EdDSA'],
    nowSeconds: NOW,
    iatWindow: WINDOW,
    consumeJti: () => true,
    ...over,
  };
}

async function refused(
  o: DpopVerifyOptions,
  check: DpopCheck,
  code: DpopError['code'] = 'invalid_dpop_proof',
): Promise<void> {
  await assert.rejects(verifyDpopProof(o), (err: unknown) => {
    assert.ok(err instanceof DpopError, `expected DpopError, got ${String(err)}`);
    assert.equal(err.check, check, err.message);
    assert.equal(err.code, code);
    return true;
  });
}

/** Breaks one part of a valid proof and expects the named check to refuse it. */
async function breaks(
  mutate: (p: Parts) => void,
  check: DpopCheck,
  over: Partial<DpopVerifyOptions> = {},
): Promise<void> {
  const p = parts();
  mutate(p);
  await refused(options(signed(p), over), check);
}

describe('verifyDpopProof (RFC 9449 §4.3)', () => {
  it('accepts a proof made by createDpopProof and returns the key thumbprint (cnf.jkt)', async () => {
    const proof = createDpopProof(key, { method: 'post', url: URL_, nowSeconds: NOW });
    const v = await verifyDpopProof(options(proof));
    assert.equal(v.jkt, key.jkt);
    assert.equal(v.iat, NOW);
    const header = JSON.parse(Buffer.from(proof.split('.')[0]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    assert.deepEqual(Object.keys(header.jwk as object).sort(), ['crv', 'kty', 'x', 'y']);
  });

  it('accepts the hand-built baseline proof that every negative case below mutates', async () => {
    assert.equal((await verifyDpopProof(options(signed(parts())))).jkt, key.jkt);
    assert.equal((await verifyDpopProof(options(signed(parts(otherKey), otherKey)))).jkt, otherKey.jkt);
  });

  it('1: refuses zero or two DPoP header fields', async () => {
    const proof = signed(parts());
    await refused(options([]), 'single_header');
    await refused(options([proof, signed(parts())]), 'single_header');
  });

  it('2: refuses what is not a single well-formed JWT', async () => {
    const proof = signed(parts());
    for (const bad of [
      'not-a-jwt',
      'a.b',
      `${proof}.extra`,
      `${proof},${proof}`,
      `${proof} `.repeat(2).trim(),
      `${b64json(parts().header)}.bm90IGpzb24.${proof.split('.')[2]}`,
      `${b64json(parts().header)}.${b64json([1, 2])}.${proof.split('.')[2]}`,
      'x'.repeat(5000),
    ]) {
      await refused(options(bad), 'well_formed');
    }
  });

  for (const claim of ['jti', 'htm', 'htu', 'iat'] as const) {
    it(`3: refuses a proof without ${claim}`, async () => {
      await breaks((p) => delete p.claims[claim], 'required_claims');
    });
  }
  it('3: refuses a proof without jwk, or with a non-numeric iat', async () => {
    await breaks((p) => delete p.header['jwk'], 'required_claims');
    await breaks((p) => {
      p.claims['iat'] = String(NOW);
    }, 'required_claims');
  });
  it('3: refuses a proof without ath when a token is presented', async () => {
    await refused(options(signed(parts()), { accessToken: 'tok' }), 'required_claims');
  });

  it('4: refuses a typ other than dpop+jwt', async () => {
    await breaks((p) => {
      p.header['typ'] = 'JWT';
    }, 'typ');
    await breaks((p) => delete p.header['typ'], 'typ');
    await breaks((p) => {
      p.header['typ'] = 'at+jwt';
    }, 'typ');
  });

  it('5: refuses alg none, HS256, and asymmetric algorithms outside the allow-list', async () => {
    const none = parts();
    none.header['alg'] = 'none';
    await refused(options(`${b64json(none.header)}.${b64json(none.claims)}.AAAA`), 'alg');

    const hs = parts();
    hs.header['alg'] = 'HS256';
    const input = `${b64json(hs.header)}.${b64json(hs.claims)}`;
    const mac = createHmac('sha256', 'secret').update(input).digest('base64url');
    await refused(options(`${input}.${mac}`), 'alg');

    // A properly signed EdDSA proof is refused when only ES256 is allowed.
    await refused(options(signed(parts(otherKey), otherKey), { algorithms: ['ES256'] }), 'alg');
    // The header may not name an algorithm its key cannot have produced.
    await breaks((p) => {
      p.header['alg'] = 'EdDSA';
    }, 'alg');
  });

  it('6: refuses a bad signature (tampered claims, or signed by another key)', async () => {
    const p = parts();
    const proof = signed(p);
    const [h, , s] = proof.split('.');
    await refused(options(`${h}.${b64json({ ...p.claims, jti: 'other' })}.${s}`), 'signature');
    const forged = parts();
    forged.header['jwk'] = generateDpopKey().publicJwk;
    await refused(options(signed(forged)), 'signature');
  });

  it('a header known from a proof that verified still gets every other check on the next proof', async () => {
    // The same key, so the same encoded header: the second proof's header is the remembered one.
    const first = parts();
    const h = signed(first).split('.')[0]!;
    assert.equal((await verifyDpopProof(options(signed(first)))).jkt, key.jkt);
    const again = signed(parts());
    assert.equal(again.split('.')[0], h, 'the header text is the same');
    // A tampered payload under the known header: the signature is still checked.
    const [, , sig] = again.split('.');
    await refused(options(`${h}.${b64json({ ...parts().claims, jti: 'tampered' })}.${sig}`), 'signature');
    // The caller's allow-list is still applied to the known header's algorithm.
    await refused(options(signed(parts()), { algorithms: ['EdDSA'] }), 'alg');
    // The binding to the token's key, the method, the window and replay are still checked.
    await refused(options(signed(parts()), { expectedJkt: otherKey.jkt }), 'jkt');
    await refused(options(signed(parts()), { method: 'GET' }), 'htm');
    await refused(options(signed(parts(key, { iat: NOW - 10 * WINDOW }))), 'iat');
    await refused(options(signed(parts()), { consumeJti: () => false }), 'replay');
    // A header whose proof failed is not remembered: its own checks run again (typ here).
    const odd = parts();
    odd.header['typ'] = 'jwt';
    await refused(options(signed(odd)), 'typ');
    await refused(options(signed(odd)), 'typ');
  });

  it('7: refuses a jwk that holds private or symmetric key material', async () => {
    const priv = key.privateKey.export({ format: 'jwk' });
    await breaks((p) => {
      p.header['jwk'] = priv;
    }, 'private_key');
    await breaks((p) => {
      p.header['jwk'] = { kty: 'oct', k: randomBytes(32).toString('base64url') };
    }, 'private_key');
  });

  it('8: refuses htm other than the request method', async () => {
    await breaks((p) => {
      p.claims['htm'] = 'GET';
    }, 'htm');
    await breaks((p) => {
      p.claims['htm'] = 'post';
    }, 'htm');
  });

  it('9: refuses htu for another URI', async () => {
    for (const htu of [
      'https://api.example.com/v1/other',
      'https://evil.example.com/v1/reports',
      'http://api.example.com/v1/reports',
      'https://api.example.com:8443/v1/reports',
      'https://api.example.com/v1/reports/',
      'https://user@api.example.com/v1/reports',
      'urn:example:reports',
      'not a uri',
    ]) {
      await breaks((p) => {
        p.claims['htu'] = htu;
      }, 'htu');
    }
  });

  it('9: accepts htu equal but for query, fragment, scheme/host case, default port or unreserved escapes', async () => {
    for (const htu of [
      `${URL_}?page=2`,
      `${URL_}#frag`,
      'HTTPS://API.EXAMPLE.COM/v1/reports',
      'https://Api.Example.Com:443/v1/reports',
      'https://api.example.com/v1/%72eports',
      'https://api.example.com/v1/./reports',
    ]) {
      const p = parts();
      p.claims['htu'] = htu;
      const v = await verifyDpopProof(options(signed(p)));
      assert.equal(v.jkt, key.jkt, htu);
    }
    // The request URI's own query does not matter either.
    await verifyDpopProof(options(signed(parts()), { url: `${URL_}?q=1` }));
  });

  it('9: normalizeHtu follows RFC 3986 normalisation and keeps case in the path', () => {
    assert.equal(normalizeHtu('HTTPS://Host.Example:443/a/../B?x#y'), 'https://host.example/B');
    assert.equal(normalizeHtu('http://h.example:80/%7Euser'), 'http://h.example/~user');
    assert.equal(normalizeHtu('http://h.example/%2f'), 'http://h.example/%2F');
    assert.notEqual(normalizeHtu('https://h.example/Path'), normalizeHtu('https://h.example/path'));
    assert.equal(normalizeHtu('ftp://h.example/'), undefined);
    assert.equal(normalizeHtu('/relative'), undefined);
  });

  it('10: asks for a nonce when it is missing or stale (use_dpop_nonce)', async () => {
    const nonce = (n: string | undefined) => n === 'fresh-nonce';
    await refused(options(signed(parts()), { nonce }), 'nonce', 'use_dpop_nonce');
    const p = parts();
    p.claims['nonce'] = 'stale-nonce';
    await refused(options(signed(p), { nonce }), 'nonce', 'use_dpop_nonce');
    p.claims['nonce'] = 'fresh-nonce';
    assert.equal((await verifyDpopProof(options(signed(p), { nonce }))).jkt, key.jkt);
  });

  it('11: refuses iat outside the window, in the past or the future; accepts at its edges', async () => {
    await breaks((p) => {
      p.claims['iat'] = NOW - WINDOW - 1;
    }, 'iat');
    await breaks((p) => {
      p.claims['iat'] = NOW + WINDOW + 1;
    }, 'iat');
    for (const iat of [NOW - WINDOW, NOW + WINDOW]) {
      const p = parts();
      p.claims['iat'] = iat;
      assert.equal((await verifyDpopProof(options(signed(p)))).iat, iat);
    }
  });

  it('12: refuses ath that is not the hash of the presented token', async () => {
    await breaks(
      (p) => {
        p.claims['ath'] = accessTokenHash('some-other-token');
      },
      'ath',
      { accessToken: 'the-token' },
    );
    const p = parts();
    p.claims['ath'] = accessTokenHash('the-token');
    await verifyDpopProof(options(signed(p), { accessToken: 'the-token' }));
  });

  it('12: with the token hash handed in (a verifier token cache), ath is held against that hash', async () => {
    const given = { accessToken: 'the-token', accessTokenSha256: accessTokenHash('the-token') };
    await breaks(
      (p) => {
        p.claims['ath'] = accessTokenHash('some-other-token');
      },
      'ath',
      given,
    );
    await breaks(
      (p) => {
        delete p.claims['ath'];
      },
      'required_claims',
      given,
    );
    const p = parts();
    p.claims['ath'] = accessTokenHash('the-token');
    await verifyDpopProof(options(signed(p), given));
  });

  it('12: refuses a proof key whose thumbprint is not the expected cnf.jkt', async () => {
    await refused(options(signed(parts()), { expectedJkt: otherKey.jkt }), 'jkt');
    await verifyDpopProof(options(signed(parts()), { expectedJkt: key.jkt }));
  });

  it('refuses a replayed jti within the window, and only records proofs that passed every check', async () => {
    const cache = new ReplayCache();
    const consumeJti = (k: string, exp: number) => cache.consume(k, exp, NOW);
    const proof = signed(parts());
    // A proof refused for its method does not burn its jti...
    await refused(options(proof, { consumeJti, method: 'GET' }), 'htm');
    // ...so its first valid use passes, and the second is a replay.
    await verifyDpopProof(options(proof, { consumeJti }));
    await refused(options(proof, { consumeJti }), 'replay');
    // A fresh jti from the same key is fine.
    await verifyDpopProof(options(signed(parts()), { consumeJti }));
  });

  it('createDpopProof drops query and fragment from htu and hashes the token into ath', async () => {
    const proof = createDpopProof(key, {
      method: 'GET',
      url: `${URL_}?a=1#b`,
      accessToken: 'tok',
      nonce: 'n1',
      nowSeconds: NOW,
    });
    const claims = JSON.parse(Buffer.from(proof.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    assert.equal(claims['htu'], URL_);
    assert.equal(claims['htm'], 'GET');
    assert.equal(claims['nonce'], 'n1');
    assert.equal(claims['ath'], accessTokenHash('tok'));
    await verifyDpopProof(
      options(proof, { method: 'GET', accessToken: 'tok', nonce: (n) => n === 'n1', expectedJkt: key.jkt }),
    );
  });
});

describe('checkHolderBinding (RFC 9449 §7, at a resource server)', () => {
  const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';
  const bound = { cnf: { jkt: key.jkt } };
  const check = () => {
    const cache = new ReplayCache();
    return {
      algorithms: ['ES256', 'EdDSA'] as const satisfies readonly ('ES256' | 'EdDSA')[],
      nowSeconds: NOW,
      iatWindow: WINDOW,
      consumeJti: (k: string, exp: number) => cache.consume(k, exp, NOW),
    };
  };
  const request = (authorization: string, dpop: string[], method = 'GET'): PresentedRequest => ({
    authorization,
    dpop,
    method,
    url: URL_,
  });
  const proofFor = (k: DpopKey, token: string = TOKEN) =>
    createDpopProof(k, { method: 'GET', url: URL_, accessToken: token, nowSeconds: NOW });

  async function refusedWith(p: Promise<void>, code: RequestRefusal['code'], reason: string) {
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof RequestRefusal, String(err));
      assert.equal(err.code, code);
      assert.equal(err.reason, reason);
      assert.match(err.challenge(), new RegExp(`^DPoP error="${code}"`));
      return true;
    });
  }

  it('accepts the DPoP scheme with a proof by the cnf.jkt key over this request and token', async () => {
    const auth = `DPoP ${TOKEN}`;
    await checkHolderBinding(request(auth, [proofFor(key)]), presentedToken(auth), bound, check());
  });

  it('refuses a DPoP-bound token presented as Bearer, even with a valid proof', async () => {
    const auth = `Bearer ${TOKEN}`;
    await refusedWith(
      checkHolderBinding(request(auth, [proofFor(key)]), presentedToken(auth), bound, check()),
      'invalid_token',
      'dpop_bound_as_bearer',
    );
  });

  it('refuses a proof signed by another key than cnf.jkt', async () => {
    const auth = `DPoP ${TOKEN}`;
    await refusedWith(
      checkHolderBinding(request(auth, [proofFor(otherKey)]), presentedToken(auth), bound, check()),
      'invalid_dpop_proof',
      'dpop_jkt',
    );
  });

  it('refuses a proof made for another token (ath), a missing proof, and another method', async () => {
    const auth = `DPoP ${TOKEN}`;
    await refusedWith(
      checkHolderBinding(
        request(auth, [proofFor(key, 'other.token.here')]),
        presentedToken(auth),
        bound,
        check(),
      ),
      'invalid_dpop_proof',
      'dpop_ath',
    );
    await refusedWith(
      checkHolderBinding(request(auth, []), presentedToken(auth), bound, check()),
      'invalid_dpop_proof',
      'dpop_single_header',
    );
    await refusedWith(
      checkHolderBinding(request(auth, [proofFor(key)], 'DELETE'), presentedToken(auth), bound, check()),
      'invalid_dpop_proof',
      'dpop_htm',
    );
  });

  it('refuses a replayed proof at the resource server', async () => {
    const auth = `DPoP ${TOKEN}`;
    const c = check();
    const proof = proofFor(key);
    await checkHolderBinding(request(auth, [proof]), presentedToken(auth), bound, c);
    await refusedWith(
      checkHolderBinding(request(auth, [proof]), presentedToken(auth), bound, c),
      'invalid_dpop_proof',
      'dpop_replay',
    );
  });

  it('refuses the DPoP scheme for an unbound token and accepts Bearer for it', async () => {
    await refusedWith(
      checkHolderBinding(request(`DPoP ${TOKEN}`, []), presentedToken(`DPoP ${TOKEN}`), {}, check()),
      'invalid_token',
      'not_dpop_bound',
    );
    await checkHolderBinding(request(`Bearer ${TOKEN}`, []), presentedToken(`Bearer ${TOKEN}`), {}, check());
  });

  it('presentedToken refuses a missing or malformed Authorization header', () => {
    for (const bad of [undefined, '', 'Basic abc', 'DPoP', 'DPoP a b', 'Bearer  tok en']) {
      assert.throws(
        () => presentedToken(bad),
        (err: unknown) => err instanceof RequestRefusal && err.reason === 'no_token',
        String(bad),
      );
    }
    assert.deepEqual(presentedToken('dpop abc.def'), { scheme: 'DPoP', token: 'abc.def' });
  });
});

describe('RSA and EdDSA proofs', () => {
  it('verifies an RS256 proof only when the allow-list has RS256', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = publicKey.export({ format: 'jwk' });
    const p = parts();
    p.header = { typ: 'dpop+jwt', alg: 'RS256', jwk };
    const input = `${b64json(p.header)}.${b64json(p.claims)}`;
    const proof = `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
    await refused(options(proof), 'alg');
    const v = await verifyDpopProof(options(proof, { algorithms: ['RS256'] }));
    assert.equal(typeof v.jkt, 'string');
  });
});
