import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { GrantType } from '@writ/sdk/wire';
import type { AuditEvent } from '../src/audit/audit-event.js';
import { classDoc, clientAuth, decodeClaims, httpForm, workloadDoc } from './helpers/dpop.js';
import { testKey } from './helpers/harness.js';
import {
  API,
  eventually,
  outcome,
  presenting,
  startVerifierWorld,
  VERIFIER_ID,
  type VerifierWorld,
} from './helpers/verifier.js';

// A verifier that was disconnected while revocations were made: on reconnect it resumes after the
// last event it saw (Last-Event-ID) and refuses what was revoked meanwhile; one further behind than
// the server's event log reaches gets a snapshot of every revocation in force instead.

const ALICE = 'spiffe://test.writ/resume/alice';
const BOB = 'spiffe://test.writ/resume/bob';

describe('a verifier disconnected during revocations', () => {
  const aliceKey = testKey();
  const bobKey = testKey('EdDSA');
  let w: VerifierWorld;

  beforeEach(async () => {
    w = await startVerifierWorld({
      docs: () => [
        classDoc({
          name: 'resume-jobs',
          binding: 'bearer',
          audiences: [API],
          scopes: ['jobs:run'],
          default_scopes: ['jobs:run'],
        }),
        workloadDoc(ALICE, aliceKey, ['resume-jobs']),
        workloadDoc(BOB, bobKey, ['resume-jobs']),
      ],
    });
  });
  afterEach(() => w.close());

  const issue = async (who: string, key: typeof aliceKey): Promise<string> => {
    const r = await httpForm(`${w.issuer}/oauth2/token`, {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(w.h, who, key),
      resource: API,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };
  const jti = (t: string) => decodeClaims(t)['jti'] as string;
  const check = (t: string) => outcome(w.verifier, presenting(t, { url: `${API}/jobs` }));
  const revoke = async (body: Record<string, unknown>) => {
    const r = await w.h.admin('POST', '/revocations', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  /** The verifier's subscriptions, as the server audited them. */
  const subscriptions = async (): Promise<AuditEvent[]> =>
    (await w.h.auditEvents('events.subscribed'))
      .filter((e) => e.actor === VERIFIER_ID)
      .sort((a, b) => a.seq - b.seq);

  /** Cuts the stream and waits until the verifier knows it is down. */
  const disconnect = async () => {
    w.proxy.cut();
    await eventually('the stream to drop', () => (w.verifier.status().connected ? undefined : true));
  };

  it('resumes from Last-Event-ID and refuses every token revoked while it was away', async () => {
    const a1 = await issue(ALICE, aliceKey);
    const a2 = await issue(ALICE, aliceKey);
    const b1 = await issue(BOB, bobKey);
    for (const t of [a1, a2, b1]) assert.equal(await check(t), `ok:${jti(t)}`);
    const subscribedBefore = (await subscriptions()).length;
    const lastSeen = w.verifier.status().lastEventId;
    assert.ok(lastSeen !== undefined);

    await disconnect();
    await revoke({ kind: 'jti', value: jti(a1) });
    await revoke({ kind: 'sub', value: BOB });
    // Precondition: the verifier really missed them (it still accepts, inside its staleness bound).
    assert.equal(await check(a1), `ok:${jti(a1)}`);
    assert.equal(await check(b1), `ok:${jti(b1)}`);

    w.proxy.release();
    await eventually('the missed revocations', async () =>
      (await check(a1)) === 'revoked' ? true : undefined,
    );
    assert.equal(await check(b1), 'revoked');
    assert.equal(await check(a2), `ok:${jti(a2)}`, 'a token no revocation matches stays good');
    // A token Bob gets after his revocation is not affected by it ("issued before now").
    w.clock.advance(1000);
    const b2 = await issue(BOB, bobKey);
    assert.equal(await check(b2), `ok:${jti(b2)}`);

    const resumed = await eventually('the resumed subscription in the audit log', async () => {
      const subs = await subscriptions();
      return subs.length > subscribedBefore ? subs[subs.length - 1] : undefined;
    });
    assert.equal(resumed.data['snapshot'], false, 'caught up from the log, not a snapshot');
    assert.equal(resumed.data['from'], Number(lastSeen), 'resumed after the last event it had seen');
  });

  it('gets a snapshot when the log no longer reaches back to its last event', async () => {
    const a1 = await issue(ALICE, aliceKey);
    const a2 = await issue(ALICE, aliceKey);
    const b1 = await issue(BOB, bobKey);
    const lastSeen = Number(w.verifier.status().lastEventId);
    const subscribedBefore = (await subscriptions()).length;

    await disconnect();
    await revoke({ kind: 'jti', value: jti(a1) });
    await revoke({ kind: 'client_id', value: BOB });
    // Retention passes: the log keeps only its newest event, far past what the verifier saw.
    await w.h.store.trimEvents(w.clock.now() + 1);
    const bounds = await w.h.store.eventBounds();
    assert.ok(bounds.first > lastSeen + 1, `log starts at ${bounds.first}, verifier saw ${lastSeen}`);
    assert.equal(await check(a1), `ok:${jti(a1)}`, 'precondition: the verifier missed the revocation');

    w.proxy.release();
    await eventually('the snapshot', async () => ((await check(a1)) === 'revoked' ? true : undefined));
    assert.equal(await check(b1), 'revoked');
    assert.equal(await check(a2), `ok:${jti(a2)}`);
    const resumed = await eventually('the new subscription in the audit log', async () => {
      const subs = await subscriptions();
      return subs.length > subscribedBefore ? subs[subs.length - 1] : undefined;
    });
    assert.equal(resumed.data['snapshot'], true);
    assert.equal(w.verifier.status().lastEventId, String(bounds.last));
  });
});
