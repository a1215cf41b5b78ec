import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkloadClient } from '../src/client/index.js';
import { generateDpopKey, verifyDpopProof } from '../src/dpop/index.js';
import { StreamCredential } from '../src/verifier/stream-credential.js';
import type { TokenResponse } from '../src/wire/index.js';
import { manualClock } from './helpers/access-tokens.js';

// The verifier's own token for the event stream: DPoP-bound ones come with a proof for the exact URL,
// and the token is asked for again at two thirds of its life or at once when told to.

const EVENTS = 'https://writ.example/v1/events';
const T0 = 1_800_000_000_000;

/** A workload client whose token endpoint hands out numbered tokens of the given type and lifetime. */
function client(tokenType: string, expiresIn = 300) {
  const audiences: string[] = [];
  const c: Pick<WorkloadClient, 'requestToken' | 'dpopKey'> = {
    dpopKey: generateDpopKey(),
    requestToken: async (r) => {
      audiences.push(r.audience);
      return {
        access_token: `token-${audiences.length}`,
        token_type: tokenType as TokenResponse['token_type'],
        expires_in: expiresIn,
        scope: '',
      };
    },
  };
  return { client: c, audiences };
}

describe('StreamCredential', () => {
  it('a DPoP-bound token goes with a proof for a GET of that URL, by the client key, over that token', async () => {
    const clock = manualClock(T0);
    const { client: c, audiences } = client('DPoP');
    const cred = new StreamCredential(c, EVENTS, clock.now);
    const headers = await cred.headers(EVENTS, false);
    assert.deepEqual(audiences, [EVENTS]);
    assert.equal(headers['authorization'], 'DPoP token-1');
    // The proof a resource server (here: the stream endpoint) would check.
    const streamProof = (h: Record<string, string>) =>
      verifyDpopProof({
        headerValues: [h['dpop']!],
        method: 'GET',
        url: EVENTS,
        algorithms: ['ES256'],
        nowSeconds: T0 / 1000,
        iatWindow: 1,
        accessToken: 'token-1',
        expectedJkt: c.dpopKey.jkt,
        consumeJti: () => true,
      });
    assert.equal((await streamProof(headers)).jkt, c.dpopKey.jkt);
    // The same token over another URL: the proof is for that URL, not the stream's.
    await assert.rejects(
      streamProof(await cred.headers('https://writ.example/v1/policy/bundle', false)),
      /htu/,
    );
  });

  it('a Bearer token goes alone, whatever the case of its token_type', async () => {
    const cred = new StreamCredential(client('Bearer').client, EVENTS, () => T0);
    assert.deepEqual(await cred.headers(EVENTS, false), { authorization: 'Bearer token-1' });
    const lower = new StreamCredential(client('dpop').client, EVENTS, () => T0);
    assert.ok((await lower.headers(EVENTS, false))['dpop'], 'token_type "dpop" is DPoP');
  });

  it('keeps the token until two thirds of its life, and takes a new one at once when fresh', async () => {
    const clock = manualClock(T0);
    const { client: c, audiences } = client('Bearer', 300);
    const cred = new StreamCredential(c, EVENTS, clock.now);
    await cred.headers(EVENTS, false);
    clock.advance(199_999);
    assert.equal((await cred.headers(EVENTS, false))['authorization'], 'Bearer token-1');
    clock.advance(1);
    assert.equal((await cred.headers(EVENTS, false))['authorization'], 'Bearer token-2');
    assert.equal((await cred.headers(EVENTS, true))['authorization'], 'Bearer token-3');
    assert.equal(audiences.length, 3);
  });
});
