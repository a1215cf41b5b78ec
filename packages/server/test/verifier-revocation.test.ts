import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { GrantType, TokenType } from '@writ/sdk/wire';
import { classDoc, clientAuth, httpForm, workloadDoc } from './helpers/dpop.js';
import { testKey } from './helpers/harness.js';
import { decodeJwt } from './helpers/refusals.js';
import {
  jti,
  type PredicateCase,
  predicateCases,
  STAMPED_NOW,
  type Tasks,
  TOKEN_NAMES,
  type World,
} from './helpers/revocation-cases.js';
import {
  API,
  eventually,
  outcome,
  presenting,
  startVerifierWorld,
  type VerifierWorld,
} from './helpers/verifier.js';

// Revocation by every predicate, as a resource server's verifier hears it over the event stream (the
// introspection side is revocation.test.ts). Each case issues tokens that differ in one dimension at a
// time, so every predicate has tokens it must refuse and tokens it must leave alone, before and after
// a key rotation, with and without `issued_before`. Every token is verified once before the revocation,
// so the second look is a hit in the verified-token cache: the revocation must apply there too.

const OWNER = 'spiffe://test.writ/verifier-rev/owner';
const RUNNER = 'spiffe://test.writ/verifier-rev/runner';

const NAMES = TOKEN_NAMES;
const CASES = predicateCases(OWNER, 'vr-admin');

describe('a connected verifier refuses tokens revoked by each predicate and keeps accepting the others', () => {
  const ownerKey = testKey();
  const runnerKey = testKey('EdDSA');
  let w: VerifierWorld;

  beforeEach(async () => {
    w = await startVerifierWorld({
      docs: () => [
        classDoc({
          name: 'vr-jobs',
          binding: 'bearer',
          audiences: [API],
          scopes: ['jobs:run'],
          default_scopes: ['jobs:run'],
          renewal: { max_lifetime: '1h' },
          delegation: { actors: [RUNNER] },
        }),
        classDoc({
          name: 'vr-admin',
          binding: 'bearer',
          audiences: [API],
          scopes: ['jobs:admin'],
          default_scopes: ['jobs:admin'],
        }),
        workloadDoc(OWNER, ownerKey, ['vr-jobs', 'vr-admin']),
        workloadDoc(RUNNER, runnerKey, ['vr-jobs']),
      ],
    });
  });
  afterEach(() => w.close());

  const token = async (form: Record<string, string>): Promise<string> => {
    const r = await httpForm(`${w.issuer}/oauth2/token`, form);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };
  const issue = (client: string, key: typeof ownerKey, extra: Record<string, string> = {}) =>
    token({
      grant_type: GrantType.clientCredentials,
      ...clientAuth(w.h, client, key),
      resource: API,
      ...extra,
    });

  const openTask = async (purpose: string): Promise<string> => {
    const r = await w.h.admin('POST', '/tasks', { workload: OWNER, purpose });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body['id'] as string;
  };

  const issueWorld = async (label: string, tasks: Tasks, exchange = true): Promise<World> => {
    const ownerJobsA = await issue(OWNER, ownerKey, { task_id: tasks.a });
    const tokens: World['tokens'] = {
      ownerJobs: await issue(OWNER, ownerKey),
      ownerJobsA,
      ownerJobsB: await issue(OWNER, ownerKey, { task_id: tasks.b }),
      ownerOtherClass: await issue(OWNER, ownerKey, { scope: 'jobs:admin' }),
      runnerJobs: await issue(RUNNER, runnerKey),
    };
    // RUNNER acting for OWNER: sub OWNER, client_id RUNNER, the task of the token it came from.
    if (exchange) {
      tokens.exchangedA = await token({
        grant_type: GrantType.tokenExchange,
        ...clientAuth(w.h, RUNNER, runnerKey),
        subject_token: ownerJobsA,
        subject_token_type: TokenType.accessToken,
      });
      // RUNNER narrows what it holds: a second exchange, from the first.
      tokens.exchangedTwice = await token({
        grant_type: GrantType.tokenExchange,
        ...clientAuth(w.h, RUNNER, runnerKey),
        subject_token: tokens.exchangedA,
        subject_token_type: TokenType.accessToken,
      });
    }
    const kids = new Set(Object.values(tokens).map((t) => decodeJwt(t!).header['kid'] as string));
    assert.equal(kids.size, 1, 'one world, one signing key');
    return { label, kid: [...kids][0]!, tokens };
  };

  const check = (t: string) => outcome(w.verifier, presenting(t, { url: `${API}/jobs` }));

  /**
   * Worlds w1 at t0, w2 at t0+10s (same key), a rotation, w3 at t0+20s (new key); the revocation at
   * t0+20s; w4 after it at t0+21s.
   */
  const scenario = async (c: PredicateCase, withCutoff: boolean) => {
    const t0 = Math.floor(w.clock.now() / 1000);
    const tasks = { a: await openTask('task A'), b: await openTask('task B') };
    const w1 = await issueWorld('w1', tasks);
    w.clock.advance(10_000);
    const w2 = await issueWorld('w2', tasks);
    const rotated = await w.h.admin('POST', '/keys/rotate');
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    w.clock.advance(10_000);
    const w3 = await issueWorld('w3', tasks);
    assert.notEqual(w3.kid, w1.kid, 'the rotation changed the signing key');
    const before = [w1, w2, w3].flatMap((x) => NAMES.flatMap((n) => x.tokens[n] ?? []));
    // Every token verifies (the verifier learns the new key from the stream), and is now cached.
    for (const t of before)
      await eventually(`token ${jti(t)} accepted`, async () =>
        (await check(t)) === `ok:${jti(t)}` ? true : undefined,
      );

    const cutoff = t0 + 5;
    const values = [...new Set([c.valueOf(w1, tasks), ...(withCutoff ? [c.valueOf(w2, tasks)] : [])])];
    for (const value of values) {
      const r = await w.h.admin('POST', '/revocations', {
        kind: c.kind,
        value,
        reason: `verifier test ${c.kind}`,
        ...(withCutoff ? { issued_before: cutoff } : {}),
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    w.clock.advance(1000);
    // After the revocation the subject token of an exchange may be revoked: w4 has no exchanged token.
    const w4 = await issueWorld('w4', tasks, false);
    const bound = withCutoff ? cutoff : STAMPED_NOW.has(c.kind) ? t0 + 20 : Number.POSITIVE_INFINITY;
    const revoked = new Set(values);
    const expectations = [w1, w2, w3, w4].flatMap((x) =>
      NAMES.flatMap((name) => {
        const t = x.tokens[name];
        if (t === undefined) return [];
        const iat = decodeJwt(t).claims['iat'] as number;
        const refused =
          revoked.has(c.valueOf(x, tasks)) &&
          (c.names.includes(name) || !!c.descendants?.includes(name)) &&
          iat <= bound;
        return [{ what: `${c.kind}${withCutoff ? ' issued_before' : ''}: ${x.label}.${name}`, t, refused }];
      }),
    );
    const firstRefused = expectations.find((e) => e.refused);
    assert.ok(firstRefused, 'every scenario revokes something');
    // The revocation travels over the stream: wait until it is heard, then check every token once.
    await eventually(`the ${c.kind} revocation to reach the verifier`, async () =>
      (await check(firstRefused.t)) === 'revoked' ? true : undefined,
    );
    let refused = 0;
    let accepted = 0;
    for (const e of expectations) {
      if (e.refused) {
        assert.equal(await check(e.t), 'revoked', `${e.what} must be refused`);
        refused++;
      } else {
        // w4 may need the verifier's stream back first (a kid revocation also ends the stream of its token).
        await eventually(`${e.what} accepted`, async () =>
          (await check(e.t)) === `ok:${jti(e.t)}` ? true : undefined,
        );
        accepted++;
      }
    }
    assert.ok(refused > 0 && accepted > 0, `refused ${refused}, accepted ${accepted}`);
    // And the verifier still follows the stream (it got a fresh token of its own if its old one went).
    await eventually('a current stream', () => {
      const s = w.verifier.status();
      return s.connected && s.synced && !s.stale ? true : undefined;
    });
    return { refused, accepted };
  };

  for (const c of CASES) {
    it(`${c.label ?? c.kind}: refuses exactly the tokens carrying the value`, async () => {
      await scenario(c, false);
    });
    it(`${c.label ?? c.kind} with issued_before: refuses only those issued at or before it`, async () => {
      await scenario(c, true);
    });
  }
});

describe('a connected verifier forgets revocations that can no longer match a live token', () => {
  const key = testKey();
  let w: VerifierWorld;

  beforeEach(async () => {
    w = await startVerifierWorld({
      docs: () => [
        classDoc({
          name: 'vr-expiry',
          binding: 'bearer',
          audiences: [API],
          scopes: ['jobs:run'],
          default_scopes: ['jobs:run'],
        }),
        workloadDoc(OWNER, key, ['vr-expiry']),
      ],
    });
  });
  afterEach(() => w.close());

  const issue = async () => {
    const r = await httpForm(`${w.issuer}/oauth2/token`, {
      grant_type: GrantType.clientCredentials,
      ...clientAuth(w.h, OWNER, key),
      resource: API,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };
  const check = (t: string) => outcome(w.verifier, presenting(t, { url: `${API}/jobs` }));

  it('drops a revocation after its expires_at (plus leeway), when the tokens it matched have expired', async () => {
    const revoked = await issue();
    const r = await w.h.admin('POST', '/revocations', { kind: 'jti', value: jti(revoked) });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const expiresAt = r.body['expires_at'] as number;
    assert.ok(
      expiresAt >= (decodeJwt(revoked).claims['exp'] as number) * 1000,
      'outlives the token it matches',
    );
    await eventually('the revocation', async () => ((await check(revoked)) === 'revoked' ? true : undefined));
    assert.equal(w.verifier.status().revocations, 1);

    // Just before expires_at + leeway it is kept; past it, the next verification drops it.
    w.clock.set(expiresAt + 5000);
    await eventually(
      'a current stream after the jump',
      () => (w.verifier.status().stale ? undefined : true),
      {
        attempts: 1200,
      },
    );
    const fresh = await issue();
    assert.equal(await check(fresh), `ok:${jti(fresh)}`);
    assert.equal(w.verifier.status().revocations, 1, 'kept through the leeway');
    w.clock.advance(61_000);
    await eventually(
      'a current stream after the jump',
      () => (w.verifier.status().stale ? undefined : true),
      {
        attempts: 1200,
      },
    );
    assert.equal(await check(fresh), `ok:${jti(fresh)}`);
    assert.equal(w.verifier.status().revocations, 0);
    assert.equal(await check(revoked), 'expired');
  });
});
