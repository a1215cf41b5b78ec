import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { jwkThumbprint } from '@writ/sdk/jose';
import {
  WRIT_TOKEN_HEADER_CHARS,
  WRIT_TOKEN_PREFIX,
  WRIT_TOKEN_REGEX_SOURCE,
  writTokenRegExp,
} from '@writ/sdk/leaks';
import { AUDIENCE, type Harness, startHarness } from './helpers/harness.js';

// Issue 17 item 1: every access token a real Writ signs has the narrow shape of @writ/sdk/leaks, with
// both signing algorithms, and the published JWKS carries the same `writ-<thumbprint>` kid.

describe('recognisable access tokens', () => {
  const harnesses: Harness[] = [];
  after(() => Promise.all(harnesses.map((h) => h.close())));

  for (const alg of ['ES256', 'EdDSA'] as const) {
    it(`${alg}: the token matches the pattern, its header is typ, kid, alg, and the kid is writ-<thumbprint>`, async () => {
      const h = await startHarness({ settings: { 'signing.algorithm': alg } });
      harnesses.push(h);
      const r = await h.requestToken({ resource: AUDIENCE });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const token = r.body['access_token'] as string;
      assert.ok(token.startsWith(WRIT_TOKEN_PREFIX));
      assert.deepEqual(token.match(writTokenRegExp()), [token]);
      const headerPart = token.split('.')[0]!;
      assert.equal(headerPart.length, WRIT_TOKEN_HEADER_CHARS);
      const header = JSON.parse(Buffer.from(headerPart, 'base64url').toString()) as Record<string, string>;
      assert.deepEqual(Object.keys(header), ['typ', 'kid', 'alg']);
      assert.equal(header['typ'], 'at+jwt');
      assert.equal(header['alg'], alg);
      const jwks = (await h.writ.app.inject({ url: '/.well-known/jwks.json' })).json() as {
        keys: Array<Record<string, string>>;
      };
      const published = jwks.keys.find((k) => k.kid === header['kid']);
      assert.ok(published, 'the kid is published');
      assert.equal(header['kid'], `writ-${jwkThumbprint(published)}`);
    });
  }

  it('docs/leaks.md quotes the exported pattern exactly, in every scanner config it gives', () => {
    const doc = readFileSync(new URL('../../../../docs/leaks.md', import.meta.url), 'utf8');
    const quoted = doc.split(WRIT_TOKEN_REGEX_SOURCE).length - 1;
    assert.ok(quoted >= 4, `the pattern is quoted ${quoted} times (block, GitHub, gitleaks, trufflehog)`);
    const prefixes = doc.match(/eyJ0eXAi[A-Za-z0-9]*/g) ?? [];
    for (const p of prefixes) assert.equal(p, WRIT_TOKEN_PREFIX, 'every prefix quoted is the exported one');
  });
});
