import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestRefusal } from '../src/verifier/index.js';
import { createIntrospection } from '../src/verifier/introspection.js';

// The stale verifier's fallback: RFC 7662 at the issuer, with the verifier's own client authentication.
// Only an active token for this audience passes; every other answer is a refusal (fail closed).

const ISSUER = 'https://writ.example';
const API = 'https://api.example';

function issuer(answer: () => Response) {
  const requests: Array<{ url: string; body: URLSearchParams; type: string | null }> = [];
  const fetch = (async (url: string | URL | Request, init?: RequestInit) => {
    requests.push({
      url: String(url),
      body: new URLSearchParams(String(init?.body)),
      type: new Headers(init?.headers).get('content-type'),
    });
    return answer();
  }) as typeof globalThis.fetch;
  const introspect = createIntrospection({
    issuer: ISSUER,
    audience: API,
    fetch,
    clientAuth: () => ({ client_id: 'spiffe://example/api', client_assertion: 'assertion' }),
  });
  return { introspect, requests };
}

const refused = (reason: string) => (err: unknown) =>
  err instanceof RequestRefusal && err.code === 'invalid_token' && err.reason === reason;

describe('createIntrospection', () => {
  it('posts the token with the client authentication and returns the claims of an active token', async () => {
    const { introspect, requests } = issuer(() =>
      Response.json({ active: true, aud: API, jti: 'j1', sub: 's' }),
    );
    const claims = await introspect('the-token');
    assert.equal(claims.jti, 'j1');
    assert.equal(requests[0]!.url, `${ISSUER}/oauth2/introspect`);
    assert.equal(requests[0]!.type, 'application/x-www-form-urlencoded');
    assert.equal(requests[0]!.body.get('token'), 'the-token');
    assert.equal(requests[0]!.body.get('client_id'), 'spiffe://example/api');
    assert.equal(requests[0]!.body.get('client_assertion'), 'assertion');
  });

  it('refuses an inactive token, and an answer that is not a 200 with active: true', async () => {
    for (const answer of [
      () => Response.json({ active: false }),
      () => Response.json({ active: 'true', aud: API }),
      () => Response.json({ active: true, aud: API }, { status: 500 }),
      () => new Response('<html>', { status: 200 }),
    ])
      await assert.rejects(issuer(answer).introspect('t'), refused('inactive'));
  });

  it('refuses an active token for another audience, or for a list of them', async () => {
    for (const aud of ['https://other.example', [API], undefined])
      await assert.rejects(
        issuer(() => Response.json({ active: true, aud })).introspect('t'),
        refused('aud'),
      );
  });
});
