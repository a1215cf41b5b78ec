import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { describe, it } from 'node:test';
import pino from 'pino';
import { jwkThumbprint } from '../src/jose/index.js';
import {
  classifyTokenShape,
  findWritTokenFragments,
  peekToken,
  redactWritTokens,
  redactWritTokensDeep,
  WRIT_TOKEN_REGEX_SOURCE,
  writTokenCensor,
  writTokenFragmentRegExp,
  writTokenPinoOptions,
  writTokenRegExp,
} from '../src/leaks/index.js';
import { accessTokenClaims, b64, type Signer, signer } from './helpers/access-tokens.js';

// The shape of a Writ access token as scanners and redactors see it (@writ/sdk/leaks). That the
// server's own tokens have this shape is checked against a real server in
// packages/server/test/leak-token-shape.test.ts.

const NOW = 1_800_000_000;

/** A token in Writ's header form: typ, then `writ-<thumbprint>` as kid, then alg. */
function writToken(s: Signer, claims: Record<string, unknown> = {}, kid?: string): string {
  const k = kid ?? `writ-${jwkThumbprint(s.publicJwk)}`;
  const input = `${b64({ typ: 'at+jwt', kid: k, alg: s.alg })}.${b64({ ...accessTokenClaims('https://writ.example', 'https://api.example', NOW), ...claims })}`;
  const sig =
    s.alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key: s.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign(null, Buffer.from(input), s.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

const es = signer('ES256', 'x');
const ed = signer('EdDSA', 'x');

describe('Writ token pattern', () => {
  it('matches whole ES256 and EdDSA tokens, alone and inside text, JSON and URLs', () => {
    for (const s of [es, ed]) {
      const t = writToken(s, { jti: 'abc' });
      assert.ok(
        new RegExp(`^${WRIT_TOKEN_REGEX_SOURCE}$`).test(t),
        'the bare pattern matches the whole token',
      );
      for (const text of [
        t,
        `Authorization: DPoP ${t}`,
        JSON.stringify({ access_token: t, token_type: 'DPoP' }),
        `https://api.example/cb?access_token=${t}&x=1`,
        `"${t}"`,
        `payload=%7B%22access_token%22%3A%22${t}%22%7D`,
        `form: access_token%3D${t}%26x%3D1`,
      ]) {
        const found = text.match(writTokenRegExp());
        assert.deepEqual(found, [t], text.slice(0, 40));
      }
      assert.equal(classifyTokenShape(t), 'whole');
    }
  });

  it('does not match tokens of another shape: other header order, other kid form, other typ, longer runs', () => {
    const claims = b64(accessTokenClaims('https://writ.example', 'https://api.example', NOW));
    const sig = 'A'.repeat(86);
    const misses = [
      // alg first (the order before this form), same members
      `${b64({ alg: 'ES256', typ: 'at+jwt', kid: `writ-${'a'.repeat(43)}` })}.${claims}.${sig}`,
      // a bare thumbprint as kid
      `${b64({ typ: 'at+jwt', kid: 'a'.repeat(48), alg: 'ES256' })}.${claims}.${sig}`,
      // an ID token, a plain JWT
      `${b64({ typ: 'JWT', kid: `writ-${'a'.repeat(43)}`, alg: 'ES256' })}.${claims}.${sig}`,
      // glued to a longer base64url run on either side
      `x${writToken(es)}`,
      `${writToken(es)}x`,
      // a signature of another length (RS256 would be 342 characters)
      `${writToken(es).split('.').slice(0, 2).join('.')}.${'B'.repeat(342)}`,
    ];
    for (const m of misses) assert.equal(m.match(writTokenRegExp()), null, m.slice(0, 60));
  });

  it('tells truncated tokens from whole ones, and a longer part from both', () => {
    const t = writToken(es);
    const [h, p, s] = t.split('.') as [string, string, string];
    for (const cut of [
      t.slice(0, 40),
      h,
      `${h}.`,
      `${h}.${p.slice(0, 30)}`,
      `${h}.${p}`,
      `${h}.${p}.`,
      t.slice(0, -1),
    ]) {
      const found = cut.match(writTokenFragmentRegExp());
      assert.deepEqual(found, [cut], 'a fragment is found whole');
      assert.equal(classifyTokenShape(cut), 'truncated', cut.slice(-20));
    }
    assert.equal(classifyTokenShape(`${h}.${p}.${s}AAAA`), 'other');
    assert.equal(classifyTokenShape(`${h}AAAA.${p}.${s}`), 'other');
    assert.equal(classifyTokenShape(`${t}.x`), 'other');
  });

  it('the prefix-first search finds exactly what the fragment expression matches', () => {
    const t = writToken(es, { jti: 'p' });
    const texts = [
      `a ${t} b ${t.slice(0, 60)}\n${t}`,
      `x${t} %3D${t} %2${t} %zz${t} _${t} -${t}`,
      `${t}${t}`,
      `${t.slice(0, 37)}`,
      'eyJ0eXAiOiJhdCtqd3QiLCJraWQiOiJ3cml0 nothing',
    ];
    for (const text of texts) {
      const byRegExp = [...text.matchAll(writTokenFragmentRegExp())].map((m) => ({
        index: m.index,
        token: m[0],
      }));
      assert.deepEqual(findWritTokenFragments(text), byRegExp, text.slice(0, 40));
    }
    assert.equal(findWritTokenFragments(`x${t} %3D${t}`).length, 1, 'glued: no; after a percent-escape: yes');
    // From an offset: what lies before is not searched; a start there is judged by the character before.
    const two = `a ${t} b ${t}`;
    const second = two.lastIndexOf(t);
    assert.deepEqual(findWritTokenFragments(two, second), [{ index: second, token: t }]);
    assert.deepEqual(findWritTokenFragments(`x${t}`, 1), [], 'glued, even when the search starts there');
  });

  it('peeks kid and jti without verifying, and keeps only plain identifiers', () => {
    const t = writToken(es, { jti: 'jti-1' });
    assert.deepEqual(peekToken(t), {
      kid: `writ-${jwkThumbprint(es.publicJwk)}`,
      jti: 'jti-1',
      iss: 'https://writ.example',
    });
    const hostile = writToken(es, { jti: 'x\n[fake log line] admin=1', iss: 'javascript:alert(1)' });
    assert.deepEqual(
      Object.keys(peekToken(hostile)),
      ['kid'],
      'control characters and odd schemes are dropped',
    );
    assert.deepEqual(peekToken('eyJ0eXAiOiJhdCtqd3QiLCJraWQiOiJ3cml0L'), {}, 'a bare prefix says nothing');
  });
});

describe('redactWritTokens', () => {
  it('replaces every token in a line by its jti, whole or truncated, and leaves other text alone', () => {
    const a = writToken(es, { jti: 'first' });
    const b = writToken(ed, { jti: 'second' });
    const line = `GET /x authorization="DPoP ${a}" retry with ${b.slice(0, 150)}`;
    const out = redactWritTokens(line);
    assert.equal(
      out,
      'GET /x authorization="DPoP [writ-token jti=first]" retry with [writ-token jti=second]'.replace(
        '[writ-token jti=second]',
        // 150 characters end inside the payload: the jti cannot be read, the fragment is still removed
        '[writ-token]',
      ),
    );
    assert.ok(!out.includes('eyJ0eXAi'), 'no token characters left');
    assert.equal(
      redactWritTokens('nothing to see eyJhbGciOiJIUzI1NiJ9.e30.x'),
      'nothing to see eyJhbGciOiJIUzI1NiJ9.e30.x',
    );
  });

  it('redacts strings deep in objects and errors, and returns the same object when there is nothing', () => {
    const t = writToken(es, { jti: 'deep' });
    const clean = { a: 1, b: ['x', { c: 'y' }] };
    assert.equal(redactWritTokensDeep(clean), clean);
    const dirty = { headers: { authorization: `Bearer ${t}` }, list: [t], err: new Error(`refused ${t}`) };
    const out = redactWritTokensDeep(dirty);
    assert.equal(out.headers.authorization, 'Bearer [writ-token jti=deep]');
    assert.deepEqual(out.list, ['[writ-token jti=deep]']);
    assert.equal(out.err.message, 'refused [writ-token jti=deep]');
    assert.ok(!JSON.stringify(out).includes(t));
    assert.equal(dirty.headers.authorization, `Bearer ${t}`, 'the input is not changed');
    assert.equal(writTokenCensor(`x ${t}`), 'x [writ-token jti=deep]');
  });

  it('keeps tokens out of pino output: message, arguments, logged objects and redact paths', () => {
    const t = writToken(es, { jti: 'logged' });
    const lines: string[] = [];
    const dest = { write: (s: string) => lines.push(s) };
    const log = pino(
      { ...writTokenPinoOptions(), redact: { paths: ['req.auth'], censor: writTokenCensor } },
      dest,
    );
    log.info({ token: t, nested: { h: [`DPoP ${t}`] }, req: { auth: t } }, `calling with ${t}`);
    log.info('format %s', t);
    const text = lines.join('');
    assert.equal(lines.length, 2);
    assert.ok(!text.includes(t.split('.')[2]!), 'no signature characters in the log');
    assert.equal((text.match(/\[writ-token jti=logged\]/g) ?? []).length, 5, text);
    // The same logger without the options writes the token: the test above can fail.
    const raw: string[] = [];
    pino({}, { write: (s: string) => raw.push(s) }).info({ token: t });
    assert.ok(raw.join('').includes(t));
  });
});
