import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { type RevocableToken, RevocationSet, revocationDigest } from '../src/verifier/index.js';
import { REVOCATION_KINDS, type Revocation, type VerifierRevocation } from '../src/wire/index.js';

// Verifiers receive revocation values as SHA-256 digests (docs/security.md, "What a verifier is sent"):
// a set built from digests must refuse exactly the tokens a set built from the values in clear does,
// and a revocation the set cannot read must never be taken as applied.

const token = (over: Partial<RevocableToken> = {}): RevocableToken => ({
  jti: 'j-own',
  sub: 'spiffe://t/own',
  client_id: 'spiffe://t/own',
  cls: 'own-class',
  iat: 1000,
  tid: 'task_own',
  kid: 'k-own',
  ...over,
});

/** One revocation in clear, as the server stores it. */
const stored = (seq: number, over: Partial<Revocation> = {}): Revocation => ({
  seq,
  kind: 'sub',
  value: 'spiffe://t/w',
  issued_before: null,
  created_at: 0,
  reason: 'a note verifiers are not sent',
  expires_at: 1_000_000,
  ...over,
});

/** The same revocation as the event stream sends it. */
const sent = (r: Revocation): VerifierRevocation => ({
  seq: r.seq,
  kind: r.kind,
  value_sha256: revocationDigest(r.value),
  issued_before: r.issued_before,
  created_at: r.created_at,
  ...(r.expires_at !== undefined ? { expires_at: r.expires_at } : {}),
});

describe('revocations matched by digest', () => {
  it('the digest is SHA-256 of the UTF-8 value in base64url without padding', () => {
    assert.equal(revocationDigest('abc'), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
    assert.equal(
      revocationDigest('é'),
      createHash('sha256').update(Buffer.from('é', 'utf8')).digest('base64url'),
    );
    assert.notEqual(revocationDigest('spiffe://t/a'), revocationDigest('spiffe://t/A'));
  });

  it('a set fed digests refuses exactly the tokens a set fed values in clear refuses, for every kind', () => {
    const revocations = [
      stored(1, { kind: 'jti', value: 'j-root', issued_before: 10 }),
      stored(2, { kind: 'tid', value: 'task_a' }),
      stored(3, { kind: 'sub', value: 'spiffe://t/suspect', issued_before: 2000 }),
      stored(4, { kind: 'client_id', value: 'spiffe://t/client' }),
      stored(5, { kind: 'cls', value: 'admin', issued_before: 1500 }),
      stored(6, { kind: 'kid', value: 'k-old' }),
      stored(7, { kind: 'jti', value: 'j-late', issued_before: 10, created_at: 500, expires_at: 500 }),
    ];
    const clear = new RevocationSet();
    for (const r of revocations) clear.apply(r);
    const hashed = new RevocationSet();
    for (const r of revocations) hashed.apply(sent(r));
    const snapshot = new RevocationSet();
    snapshot.reset(revocations.map(sent), 0);
    const tokens: Array<[RevocableToken, string | undefined]> = [
      [token(), undefined],
      [token({ jti: 'j-root', iat: 10 }), 'jti'],
      [token({ jti: 'j-root', iat: 11 }), undefined],
      [token({ jti: 'child', ajti: ['j-root'], iat: 99 }), 'jti'],
      [token({ jti: 'late-child', ajti: ['j-late'], iat: 99 }), undefined],
      [token({ tid: 'task_a' }), 'tid'],
      [token({ sub: 'spiffe://t/suspect', iat: 2000 }), 'sub'],
      [token({ sub: 'spiffe://t/suspect', iat: 2001 }), undefined],
      [token({ client_id: 'spiffe://t/client', iat: 9_999_999 }), 'client_id'],
      [token({ cls: 'admin', iat: 1500 }), 'cls'],
      [token({ cls: 'admin', iat: 1501 }), undefined],
      [token({ kid: 'k-old' }), 'kid'],
      // Another kind's value does not match: a sub revocation says nothing of a client_id.
      [token({ client_id: 'spiffe://t/suspect', iat: 1 }), undefined],
    ];
    for (const [t, expected] of tokens) {
      assert.equal(clear.match(t), expected, JSON.stringify(t));
      // Twice: the second lookup takes the remembered digests.
      for (let i = 0; i < 2; i++) {
        assert.equal(hashed.match(t), expected, JSON.stringify(t));
        assert.equal(snapshot.match(t), expected, JSON.stringify(t));
      }
    }
    assert.equal(hashed.size, clear.size);
    assert.equal(hashed.seq, 7);
  });

  it('a revocation it cannot read throws, is not counted as applied, and a bad snapshot leaves the set as it was', () => {
    const set = new RevocationSet();
    set.apply(sent(stored(1, { kind: 'jti', value: 'j-own' })));
    const good = sent(stored(2));
    const unreadable: unknown[] = [
      { ...good, value_sha256: undefined },
      { ...good, value_sha256: 'not a digest' },
      { ...good, value_sha256: revocationDigest('x').slice(1) },
      { ...good, kind: 'aud' },
      { ...good, seq: '2' },
      { ...good, issued_before: 'yesterday' },
      { ...good, issued_before: undefined },
    ];
    for (const r of unreadable) {
      assert.throws(() => set.apply(r as VerifierRevocation), TypeError, JSON.stringify(r));
      assert.equal(set.seq, 1, 'not applied, so heard again');
      assert.throws(() => set.reset([good, r as VerifierRevocation], 9), TypeError);
      assert.equal(set.seq, 1);
      assert.equal(set.match(token()), 'jti', 'the set in force before the snapshot still is');
    }
    // Every kind the wire names is one the set enforces.
    for (const kind of REVOCATION_KINDS) set.apply(sent(stored(set.seq + 1, { kind, value: `v-${kind}` })));
    assert.equal(set.size, REVOCATION_KINDS.length + 1);
  });
});

describe('revokedAt: when a token was revoked', () => {
  it('is the time of the revocation that covers it, undefined when none does', () => {
    const set = new RevocationSet();
    assert.equal(set.revokedAt(token()), undefined);
    set.apply(stored(1, { kind: 'tid', value: 'task_own', created_at: 5000 }));
    assert.equal(set.revokedAt(token()), 5000);
    assert.equal(set.revokedAt(token({ tid: 'task_other' })), undefined);
  });

  it('of several revocations of one value, the one whose bound covers the token, never an earlier one', () => {
    const set = new RevocationSet();
    // Tokens issued up to 500 revoked at 2000; later, tokens up to 1500 at 9000.
    set.apply(stored(1, { value: 'spiffe://t/own', issued_before: 500, created_at: 2000 }));
    set.apply(stored(2, { value: 'spiffe://t/own', issued_before: 1500, created_at: 9000 }));
    // Issued at 1000: only the second revocation covers it.
    assert.equal(set.revokedAt(token({ iat: 1000 })), 9000);
    assert.equal(set.revokedAt(token({ iat: 2000 })), undefined);
  });

  it('of several kinds that cover a token, the earliest; a descendant by its ancestor’s jti', () => {
    const set = new RevocationSet();
    set.apply(stored(1, { kind: 'tid', value: 'task_own', created_at: 7000 }));
    set.apply(stored(2, { kind: 'cls', value: 'own-class', issued_before: 2000, created_at: 3000 }));
    assert.equal(set.revokedAt(token()), 3000);
    set.apply(stored(3, { kind: 'jti', value: 'j-parent', created_at: 4000 }));
    assert.equal(set.revokedAt(token({ cls: 'c', tid: 't', ajti: ['j-parent'] })), 4000);
    // A set of digests answers alike.
    const digests = new RevocationSet();
    digests.apply(sent(stored(1, { kind: 'tid', value: 'task_own', created_at: 7000 })));
    assert.equal(digests.revokedAt(token()), 7000);
  });
});
