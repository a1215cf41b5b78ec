import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { GrantType } from '@writ/sdk/wire';
import { classDoc, clientAuth, httpForm, workloadDoc } from './helpers/dpop.js';
import { testKey } from './helpers/harness.js';
import {
  API,
  eventually,
  outcome,
  presenting,
  startVerifierWorld,
  type VerifierWorld,
} from './helpers/verifier.js';

// A verifier cut off from the event stream: inside its staleness bound it keeps going on what it knows;
// past it, it refuses everything (fail closed) until a stream has caught up with what it missed. Time
// is the fake clock the server and the verifier share; the network is a real TCP proxy that is cut.

const WORKLOAD = 'spiffe://test.writ/staleness/job';
const STALENESS = 10_000;

describe('a verifier whose stream is cut past its staleness bound', () => {
  const key = testKey();
  let w: VerifierWorld;

  beforeEach(async () => {
    w = await startVerifierWorld({
      docs: () => [
        classDoc({
          name: 'staleness-jobs',
          binding: 'bearer',
          audiences: [API],
          scopes: ['jobs:run'],
          default_scopes: ['jobs:run'],
        }),
        workloadDoc(WORKLOAD, key, ['staleness-jobs']),
      ],
      verifier: { stalenessMs: STALENESS },
    });
  });
  afterEach(() => w.close());

  const issue = async (): Promise<string> => {
    const r = await httpForm(`${w.issuer}/oauth2/token`, {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(w.h, WORKLOAD, key),
      resource: API,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };
  const jtiOf = (t: string) => JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString())['jti'];
  const check = (t: string) => outcome(w.verifier, presenting(t, { url: `${API}/jobs` }));
  const revoke = async (body: Record<string, unknown>) => {
    const r = await w.h.admin('POST', '/revocations', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };

  it('refuses everything as stale, stays stale while a reopened stream catches up, then resumes', async () => {
    const kept = await issue();
    const revoked = await issue();
    assert.equal(await check(kept), `ok:${jtiOf(kept)}`);
    assert.equal(await check(revoked), `ok:${jtiOf(revoked)}`);

    w.proxy.cut();
    await eventually('the stream to drop', () => (w.verifier.status().connected ? undefined : true));
    await revoke({ kind: 'jti', value: jtiOf(revoked), reason: 'while the verifier was cut off' });
    // Inside the bound the verifier goes on with what it knows: it has not heard of the revocation.
    assert.equal(await check(revoked), `ok:${jtiOf(revoked)}`, 'precondition: the verifier is cut off');

    w.clock.advance(STALENESS + 1);
    assert.equal(w.verifier.status().stale, true);
    assert.equal(await check(kept), 'stale');
    assert.equal(await check(revoked), 'stale');

    // The network comes back, but the response body (the catch-up) is held: connected is not current.
    w.proxy.hold();
    await eventually('a reopened stream', () => (w.verifier.status().connected ? true : undefined), {
      attempts: 1200,
    });
    assert.equal(w.verifier.status().synced, false);
    assert.equal(await check(kept), 'stale', 'an open stream that has not caught up is not fresh state');
    assert.equal(await check(revoked), 'stale');

    w.proxy.release();
    await eventually('the verifier to accept again', async () =>
      (await check(kept)).startsWith('ok:') ? true : undefined,
    );
    assert.equal(await check(revoked), 'revoked');
    const s = w.verifier.status();
    assert.equal(s.stale, false);
    assert.equal(s.synced, true);
  });

  it('drops a stream that went silent without closing and opens another', async () => {
    const token = await issue();
    assert.equal(await check(token), `ok:${jtiOf(token)}`);
    const before = w.proxy.accepted;
    // The connection stays open but nothing more arrives: no reset, no heartbeat.
    w.proxy.silence();
    w.clock.advance(Math.ceil((STALENESS * 2) / 3) + 1);
    await eventually('the verifier to open a new connection', () =>
      w.proxy.accepted > before ? true : undefined,
    );
    await eventually('a current stream again', async () =>
      w.verifier.status().synced && !w.verifier.status().stale ? true : undefined,
    );
    assert.equal(await check(token), `ok:${jtiOf(token)}`);
  });
});
