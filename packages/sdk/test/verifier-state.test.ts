import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DpopNonces,
  ReplayCache,
  RequestRefusal,
  type RevocableToken,
  RevocationSet,
  refusal,
  revokedBy,
  type SseMessage,
  SseParser,
  safeDescription,
} from '../src/verifier/index.js';
import type { RefusalReason, Revocation } from '../src/wire/index.js';

// The verifier's local state: the event-stream parser, the revocation set, the replay cache, and the
// challenges it answers with. The end-to-end behaviour against a real server is in the server tests
// (packages/server/test/verifier-*.test.ts).

function parse(chunks: string[], max?: number): { messages: SseMessage[]; comments: number } {
  const messages: SseMessage[] = [];
  let comments = 0;
  const p = new SseParser(
    (m) => messages.push(m),
    () => comments++,
    max,
  );
  for (const c of chunks) p.push(c);
  return { messages, comments };
}

describe('SseParser (WHATWG HTML §9.2.6)', () => {
  const stream =
    'retry: 2000\n\nevent: head\ndata: {"head":2}\n\n: heartbeat 1\n\nid: 2\nevent: revocation\ndata: a\ndata: b\n\n';

  it('parses events, ids, multi-line data and comments; ignores events without data', () => {
    const { messages, comments } = parse([stream]);
    assert.deepEqual(messages, [
      { event: 'head', data: '{"head":2}' },
      { event: 'revocation', data: 'a\nb', id: '2' },
    ]);
    assert.equal(comments, 1);
  });

  it('gives the same result however the stream is split, CRLF split between chunks included', () => {
    const whole = parse([stream]).messages;
    for (const text of [stream, stream.replace(/\n/g, '\r\n'), stream.replace(/\n/g, '\r')]) {
      const expected = parse([text]).messages;
      assert.deepEqual(expected, whole);
      for (let size = 1; size <= 7; size++) {
        const chunks: string[] = [];
        for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
        assert.deepEqual(parse(chunks).messages, whole, `chunks of ${size}`);
      }
    }
    // A CR ending one chunk and a LF opening the next are one line end, not two (no empty event).
    assert.deepEqual(parse(['data: x\r', '\ndata: y\r\n\r\n']).messages, [
      { event: 'message', data: 'x\ny' },
    ]);
  });

  it('takes an event larger than any chunk (a snapshot) when it fits the bound', () => {
    const big = 'x'.repeat(300_000);
    const text = `event: snapshot\ndata: ${big}\n\n`;
    const chunks: string[] = [];
    for (let i = 0; i < text.length; i += 1000) chunks.push(text.slice(i, i + 1000));
    const { messages } = parse(chunks, 400_000);
    assert.equal(messages.length, 1);
    assert.equal(messages[0]!.data.length, big.length);
  });

  it('throws on an event over the bound: one long line, or many data lines', () => {
    assert.throws(() => parse([`data: ${'x'.repeat(2000)}`], 1000), /too large/);
    assert.throws(
      () =>
        parse(
          Array.from({ length: 200 }, () => 'data: 0123456789\n'),
          1000,
        ),
      /too large/,
    );
    // Many small events, together far over the bound, are fine.
    const many = Array.from({ length: 200 }, (_, i) => `id: ${i}\ndata: 0123456789\n\n`).join('');
    assert.equal(parse([many], 1000).messages.length, 200);
  });
});

const token = (over: Partial<RevocableToken> = {}): RevocableToken => ({
  jti: 'j1',
  sub: 'spiffe://t/w',
  client_id: 'spiffe://t/w',
  cls: 'c',
  iat: 1000,
  tid: 't1',
  kid: 'k1',
  ...over,
});

const rev = (seq: number, over: Partial<Revocation> = {}): Revocation => ({
  seq,
  kind: 'sub',
  value: 'spiffe://t/w',
  issued_before: null,
  created_at: 0,
  reason: 'test',
  ...over,
});

describe('RevocationSet', () => {
  it('merges two revocations of one value into their union and keeps the later expiry', () => {
    const set = new RevocationSet();
    set.apply(rev(1, { issued_before: 1000, expires_at: 10_000 }));
    set.apply(rev(2, { issued_before: 2000, expires_at: 5_000 }));
    assert.equal(set.match(token({ iat: 2000 })), 'sub');
    assert.equal(set.match(token({ iat: 2001 })), undefined);
    assert.equal(set.prune(9_999), 0, 'the merged entry lives as long as the longer one');
    assert.equal(set.match(token({ iat: 1500 })), 'sub');
    assert.equal(set.prune(10_000), 1);
    assert.equal(set.match(token({ iat: 1500 })), undefined);
    assert.equal(set.size, 0);
  });

  it('prunes only entries past expires_at; entries without it stay until the next snapshot', () => {
    const set = new RevocationSet();
    set.apply(rev(1, { kind: 'jti', value: 'j1', expires_at: 5_000 }));
    set.apply(rev(2, { kind: 'tid', value: 't1' }));
    set.apply(rev(3, { kind: 'kid', value: 'k9', issued_before: 10, expires_at: 7_000 }));
    assert.equal(set.prune(4_999), 0);
    assert.equal(set.match(token()), 'jti');
    assert.equal(set.prune(5_000), 1);
    assert.equal(set.match(token()), 'tid');
    assert.equal(set.prune(Number.MAX_SAFE_INTEGER), 1);
    assert.equal(set.match(token()), 'tid');
    assert.equal(set.size, 1);
    set.reset([], 10);
    assert.equal(set.match(token()), undefined);
    assert.equal(set.seq, 10);
  });

  it('a jti revocation matches the token and every token exchanged from it (ajti), whatever its cutoff', () => {
    const set = new RevocationSet();
    set.apply(rev(1, { kind: 'jti', value: 'root', issued_before: 10 }));
    assert.equal(set.match(token({ jti: 'root', iat: 10 })), 'jti');
    assert.equal(
      set.match(token({ jti: 'root', iat: 11 })),
      undefined,
      'the cutoff applies to the token it names',
    );
    assert.equal(set.match(token({ jti: 'child', ajti: ['root'], iat: 50 })), 'jti');
    assert.equal(set.match(token({ jti: 'grandchild', ajti: ['root', 'child'], iat: 60 })), 'jti');
    assert.equal(set.match(token({ jti: 'other', ajti: ['elsewhere'], iat: 5 })), undefined);
    // One stored already expired matched nothing live when it was made (the server found the token
    // it names issued after its cutoff): it is kept out, so the tokens exchanged from that one live on.
    set.apply(rev(3, { kind: 'jti', value: 'late', issued_before: 10, created_at: 500, expires_at: 500 }));
    assert.equal(set.match(token({ jti: 'late-child', ajti: ['late'], iat: 600 })), undefined);
    assert.equal(set.seq, 3);
    // Another kind's value in ajti means nothing: only jti revocations look at it.
    set.apply(rev(4, { kind: 'sub', value: 'sibling', issued_before: null }));
    assert.equal(set.match(token({ jti: 'x', sub: 'someone', ajti: ['sibling'] })), undefined);
  });

  it('applies revocations in sequence order only and a snapshot replaces everything', () => {
    const set = new RevocationSet();
    set.apply(rev(5, { kind: 'jti', value: 'a' }));
    set.apply(rev(4, { kind: 'jti', value: 'j1' }));
    assert.equal(set.match(token()), undefined, 'an older sequence number is not applied');
    set.reset([rev(2, { kind: 'jti', value: 'j1' })], 0);
    assert.equal(set.match(token()), 'jti');
    assert.equal(set.seq, 2);
  });

  it('revokedBy decides one revocation exactly as a set holding only it does', () => {
    const revocations = [
      rev(1, { kind: 'sub', value: 'spiffe://t/w', issued_before: 1000 }),
      rev(1, { kind: 'sub', value: 'spiffe://t/w', issued_before: null }),
      rev(1, { kind: 'jti', value: 'root', issued_before: 10 }),
      rev(1, { kind: 'jti', value: 'late', issued_before: 10, created_at: 500, expires_at: 500 }),
      rev(1, { kind: 'tid', value: 't1' }),
      rev(1, { kind: 'kid', value: 'k9', issued_before: 10 }),
      rev(1, { kind: 'cls', value: 'reports-read' }),
    ];
    const tokens = [
      token(),
      token({ iat: 1001 }),
      token({ jti: 'root', iat: 10 }),
      token({ jti: 'root', iat: 11 }),
      token({ jti: 'child', ajti: ['root'], iat: 50 }),
      token({ jti: 'late-child', ajti: ['late'], iat: 600 }),
      token({ tid: undefined }),
      token({ kid: 'k9', iat: 10 }),
      token({ kid: 'k9', iat: 11 }),
    ];
    let revoked = 0;
    for (const r of revocations)
      for (const t of tokens) {
        const one = new RevocationSet();
        one.apply(r);
        const expected = one.match(t) !== undefined;
        if (expected) revoked++;
        assert.equal(revokedBy(r, t), expected, `${r.kind}=${r.value} against ${JSON.stringify(t)}`);
      }
    assert.ok(revoked > 5 && revoked < revocations.length * tokens.length, 'the table has both outcomes');
  });
});

describe('ReplayCache', () => {
  it('refuses a key seen before it expires and takes it again afterwards', () => {
    const c = new ReplayCache(10);
    assert.equal(c.consume('a', 100, 50), true);
    assert.equal(c.consume('a', 100, 99), false);
    assert.equal(c.consume('a', 200, 100), true);
  });

  it('stays within its bound: expired entries go as new ones come, live ones are never forgotten', () => {
    const c = new ReplayCache(100);
    for (let i = 0; i < 10_000; i++) {
      // Each key lives 5 s and the clock moves one second per 10 keys: about 50 live at any time.
      const now = Math.floor(i / 10);
      assert.equal(c.consume(`k${i}`, now + 5, now), true, `k${i}`);
      assert.ok(c.size <= 100, `size ${c.size} at k${i}`);
    }
    // Full of live entries: new keys are refused (fail closed), replays still are.
    const full = new ReplayCache(3);
    for (const k of ['a', 'b', 'c']) assert.equal(full.consume(k, 100, 0), true);
    assert.equal(full.consume('d', 100, 0), false);
    assert.equal(full.consume('a', 100, 0), false);
    assert.equal(full.consume('d', 200, 100), true, 'room again once the others expired');
  });
});

describe('DpopNonces', () => {
  it('accepts its nonce during its period and the next, then refuses it; other keys never', () => {
    let t = 1_800_000_000_000;
    const nonces = new DpopNonces({ periodSeconds: 60, now: () => t });
    const n = nonces.current();
    assert.equal(nonces.valid(n), true);
    t += 60_000;
    assert.equal(nonces.valid(n), true);
    assert.notEqual(nonces.current(), n);
    t += 60_000;
    assert.equal(nonces.valid(n), false);
    assert.equal(nonces.valid(undefined), false);
    assert.equal(new DpopNonces({ now: () => t }).valid(nonces.current()), false);
  });
});

describe('refusals and challenges (RFC 6750 §3, RFC 9449 §7.1)', () => {
  it('error_description never carries a quote, backslash, control or non-ASCII character', () => {
    const hostile = 'bad "curve" \\ \r\nSet-Cookie: x=1 \u2028 é';
    const d = safeDescription(hostile);
    assert.doesNotMatch(d, /["\\\r\n\u2028é]/);
    const r = new RequestRefusal('invalid_dpop_proof', 'dpop_signature', hostile);
    assert.doesNotMatch(r.challenge(), /[\r\n]/);
    assert.match(
      r.challenge(),
      /^DPoP error="invalid_dpop_proof", error_description="[^"]*", algs="ES256 EdDSA"$/,
    );
    assert.ok(safeDescription('x'.repeat(1000)).length <= 200);
  });

  it('a request without credentials gets both challenges and no error (RFC 6750 §3.1)', () => {
    const r = refusal(undefined, undefined, {});
    assert.equal(r.status, 401);
    assert.deepEqual(r.headers['www-authenticate'], ['DPoP algs="ES256 EdDSA ES384 PS256"', 'Bearer']);
    assert.equal(r.body.error, undefined);
  });

  it('puts the error in the challenge of the scheme the client should use', () => {
    const expired = new RequestRefusal('invalid_token', 'expired', 'token has expired');
    assert.deepEqual(refusal(expired, 'Bearer', { realm: 'api' }).headers['www-authenticate'], [
      'DPoP realm="api", algs="ES256 EdDSA ES384 PS256"',
      'Bearer realm="api", error="invalid_token", error_description="token has expired"',
    ]);
    assert.deepEqual(refusal(expired, 'DPoP', { algs: ['ES256'] }).headers['www-authenticate'], [
      'DPoP error="invalid_token", error_description="token has expired", algs="ES256"',
      'Bearer',
    ]);
    const asBearer = new RequestRefusal('invalid_token', 'dpop_bound_as_bearer', 'use DPoP');
    assert.match(String(refusal(asBearer, 'Bearer', {}).headers['www-authenticate']), /^DPoP error=/);
    // Without Bearer accepted there is one challenge, and it carries the error.
    assert.deepEqual(
      refusal(expired, 'Bearer', { bearer: false, algs: ['ES256'] }).headers['www-authenticate'],
      ['DPoP error="invalid_token", error_description="token has expired", algs="ES256"'],
    );
  });

  it('maps codes to statuses; insufficient_scope names the scope; a nonce goes in DPoP-Nonce', () => {
    const at = (code: RequestRefusal['code'], reason: RefusalReason = 'invalid') =>
      refusal(new RequestRefusal(code, reason, 'x', { dpopNonce: 'n-1' }), 'DPoP', {
        scopes: ['a:read', 'b:write'],
      });
    assert.equal(at('invalid_request').status, 400);
    assert.equal(at('invalid_token').status, 401);
    assert.equal(at('invalid_dpop_proof').status, 401);
    const nonce = at('use_dpop_nonce');
    assert.equal(nonce.status, 401);
    assert.equal(nonce.headers['dpop-nonce'], 'n-1');
    const scope = at('insufficient_scope');
    assert.equal(scope.status, 403);
    assert.match(
      String(scope.headers['www-authenticate']),
      /error="insufficient_scope", .*scope="a:read b:write"/,
    );
    const stale = at('invalid_token', 'stale');
    assert.equal(stale.status, 503);
    assert.equal(stale.headers['www-authenticate'], undefined);
    assert.equal(stale.body.error, 'temporarily_unavailable');
  });
});
