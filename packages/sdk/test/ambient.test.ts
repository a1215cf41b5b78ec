import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { githubActionsToken } from '../src/client/ambient.js';

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyZXBvOm8vciJ9.c2lnbmF0dXJlLXNlY3JldA';
const source = (respond: () => Response) =>
  githubActionsToken({
    url: 'https://actions.example/token?x=1',
    bearer: 'runner-request-token',
    audience: 'https://writ.example',
    fetch: (async () => respond()) as typeof fetch,
  });

describe('githubActionsToken: a hostile or broken OIDC endpoint', () => {
  it('returns the token of a well-formed response', async () => {
    assert.equal(await source(() => Response.json({ value: TOKEN }))(), TOKEN);
  });

  it('never puts the response body (which may hold the token) in the error of malformed JSON', async () => {
    const body = `${TOKEN}"}`;
    await assert.rejects(
      source(() => new Response(body)),
      (err: Error) => {
        assert.match(err.message, /not JSON/);
        assert.ok(!err.message.includes(TOKEN.slice(0, 8)), err.message);
        return true;
      },
    );
  });

  it('stops reading a body larger than the bound, declared or streamed', async () => {
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(c) {
        pulled++;
        c.enqueue(new Uint8Array(4096).fill(0x20));
      },
    });
    await assert.rejects(
      source(() => new Response(endless)),
      /too large/,
    );
    assert.ok(pulled < 64, `read ${pulled} chunks`);
    await assert.rejects(
      source(() => new Response('{}', { headers: { 'content-length': String(10_000_000) } })),
      /too large/,
    );
  });

  it('refuses a non-2xx response and a response without a value', async () => {
    await assert.rejects(
      source(() => new Response(TOKEN, { status: 500 })),
      (err: Error) => {
        assert.equal(err.message, 'GitHub Actions ID token request: HTTP 500');
        return true;
      },
    );
    await assert.rejects(
      source(() => Response.json(null)),
      /no value/,
    );
    await assert.rejects(
      source(() => Response.json({ value: 'not a jwt' })),
      /compact JWT/,
    );
  });
});
