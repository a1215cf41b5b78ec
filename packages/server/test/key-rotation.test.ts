import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { GrantType } from '@writ/sdk/wire';
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import { fakeClock } from '../src/clock.js';
import { clientAuth, httpForm } from './helpers/dpop.js';
import {
  AUDIENCE,
  type Harness,
  OTHER_AUDIENCE,
  OTHER_WORKLOAD,
  startHarness,
  type TestKey,
  WORKLOAD,
} from './helpers/harness.js';
import { decodeJwt } from './helpers/refusals.js';

/**
 * Order of client-side events. JavaScript runs one callback at a time, so a counter bumped when a
 * request starts and when its answer arrives orders every start and end exactly, without reading a
 * clock. "A before B" below means A's answer arrived before B was sent: then the server handled A
 * before B.
 */
let tick = 0;

interface Issued {
  token: string;
  kid: string;
  exp: number;
  start: number;
  done: number;
}

interface Snapshot {
  jwks: JSONWebKeySet;
  kids: Set<string>;
  start: number;
  done: number;
  /** Wall time the request was sent (ms), to leave out snapshots taken after a token expired. */
  sentAt: number;
}

interface Rotation {
  activated: string;
  retired: string;
  next: string;
  start: number;
  done: number;
}

const ROTATIONS = 3;
/** A bound on the whole run, not an assertion: a stuck loop fails the test instead of hanging it. */
const LIMIT_MS = 15_000;
const MAX_TOKENS = 5000;

const verifyAgainst = (token: string, jwks: JSONWebKeySet, issuer: string) =>
  jwtVerify(token, createLocalJWKSet(jwks), {
    issuer,
    typ: 'at+jwt',
    audience: [AUDIENCE, OTHER_AUDIENCE],
    algorithms: ['ES256', 'EdDSA'],
  });

describe('key rotation', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('under continuous issuance, every token verifies against every JWKS fetched between its issuance and expiry', async () => {
    const harness = await startHarness({
      listen: true,
      settings: { 'limits.client_rate': 1_000_000, 'limits.client_burst': 1_000_000 },
    });
    h = harness;
    const url = (path: string) => `${harness.issuer}${path}`;
    const startedAt = Date.now();
    const issued: Issued[] = [];
    const snapshots: Snapshot[] = [];
    const rotations: Rotation[] = [];
    let stop = false;
    const bounded = () => {
      if (Date.now() - startedAt > LIMIT_MS) throw new Error('run exceeded its time bound');
      if (issued.length > MAX_TOKENS) throw new Error('run exceeded its token bound');
    };
    const until = async (cond: () => boolean) => {
      while (!cond()) {
        bounded();
        await new Promise((r) => setTimeout(r, 2));
      }
    };

    const ISSUERS = 4;
    /** Per issuer: when its last answered request was sent. */
    const lastAnsweredSent: number[] = new Array(ISSUERS).fill(0);
    const issuer =
      (id: number, client: string, key: TestKey, resource: string, scope: string) => async () => {
        while (!stop) {
          bounded();
          const start = ++tick;
          const r = await httpForm(url('/oauth2/token'), {
            grant_type: GrantType.clientCredentials,
            ...clientAuth(harness, client, key),
            resource,
            scope,
          });
          const done = ++tick;
          assert.equal(r.status, 200, `issuer ${id}: ${JSON.stringify(r.body)}`);
          const token = r.body['access_token'] as string;
          const { header, claims } = decodeJwt(token);
          issued.push({ token, kid: header['kid'] as string, exp: claims['exp'] as number, start, done });
          lastAnsweredSent[id] = start;
        }
      };
    const snapshotter = async () => {
      while (!stop) {
        bounded();
        const sentAt = Date.now();
        const start = ++tick;
        const res = await fetch(url('/.well-known/jwks.json'));
        const jwks = (await res.json()) as JSONWebKeySet;
        const done = ++tick;
        assert.equal(res.status, 200);
        snapshots.push({ jwks, kids: new Set(jwks.keys.map((k) => k.kid!)), start, done, sentAt });
      }
    };

    /**
     * Before each rotation (and before stopping): a snapshot sent after the previous rotation has
     * returned, and every issuer has finished a request sent after that snapshot returned. So each
     * key signs tokens for a while, and each new key is seen in a snapshot before it is activated.
     */
    const settle = async () => {
      const since = rotations.at(-1)?.done ?? 0;
      await until(() => snapshots.some((s) => s.start > since));
      const seen = snapshots.find((s) => s.start > since)!.done;
      await until(() => lastAnsweredSent.every((sent) => sent > seen));
    };
    const driver = async () => {
      try {
        for (let i = 0; i < ROTATIONS; i++) {
          await settle();
          const admin = await harness.adminHeaders('POST', '/admin/v1/keys/rotate');
          const start = ++tick;
          const res = await fetch(url('/admin/v1/keys/rotate'), {
            method: 'POST',
            headers: { ...admin, 'content-type': 'application/json' },
            body: '{}',
          });
          const body = (await res.json()) as Omit<Rotation, 'start' | 'done'>;
          const done = ++tick;
          assert.equal(res.status, 200, JSON.stringify(body));
          rotations.push({ ...body, start, done });
        }
        await settle();
      } finally {
        stop = true;
      }
    };

    const initial = (await (await fetch(url('/.well-known/jwks.json'))).json()) as JSONWebKeySet;
    const initialSnapshot: Snapshot = {
      jwks: initial,
      kids: new Set(initial.keys.map((k) => k.kid!)),
      start: ++tick,
      done: ++tick,
      sentAt: Date.now(),
    };
    snapshots.push(initialSnapshot);
    await Promise.all([
      driver(),
      snapshotter(),
      snapshotter(),
      issuer(0, WORKLOAD, harness.workloadKey, AUDIENCE, 'reports:read')(),
      issuer(1, WORKLOAD, harness.workloadKey, AUDIENCE, 'reports:read')(),
      issuer(2, WORKLOAD, harness.workloadKey, AUDIENCE, 'reports:read')(),
      issuer(3, OTHER_WORKLOAD, harness.otherKey, OTHER_AUDIENCE, 'billing:write')(),
    ]);

    // The keys in the order they signed: the first active one, then one per rotation.
    assert.equal(rotations.length, ROTATIONS);
    const kids = [rotations[0]!.retired, ...rotations.map((r) => r.activated)];
    assert.equal(new Set(kids).size, kids.length, 'every rotation activates a new key');
    for (let i = 1; i < ROTATIONS; i++) {
      assert.equal(rotations[i]!.retired, rotations[i - 1]!.activated);
      assert.equal(rotations[i]!.activated, rotations[i - 1]!.next, 'the published next key is activated');
    }
    assert.deepEqual(new Set(issued.map((t) => t.kid)), new Set(kids), 'every key signed tokens');

    // Issuance switches at once: a token requested after rotation i returned (and answered before
    // rotation i+1 was sent) is signed by the key rotation i activated.
    for (const t of issued) {
      let expected: string | undefined;
      for (let i = -1; i < ROTATIONS; i++) {
        const after = i < 0 ? 0 : rotations[i]!.done;
        const before = rotations[i + 1]?.start ?? Number.POSITIVE_INFINITY;
        if (t.start > after && t.done < before) expected = kids[i + 1];
      }
      if (expected !== undefined) assert.equal(t.kid, expected, 'signed by the key active at the time');
    }

    // A key is published before it signs anything: the latest snapshot answered before its first
    // token was requested already lists it.
    for (const kid of kids) {
      const first = Math.min(...issued.filter((t) => t.kid === kid).map((t) => t.start));
      const prior = snapshots.filter((s) => s.done < first);
      assert.ok(prior.length > 0, `a snapshot before the first token of ${kid}`);
      const last = prior.reduce((a, s) => (s.start > a.start ? s : a));
      assert.ok(last.kids.has(kid), `${kid} published before it signed`);
    }
    // And from the moment it is generated: every snapshot sent after the rotation that created it
    // (and answered before the next rotation was sent, while the key is still only the next one).
    for (let i = 0; i < ROTATIONS; i++) {
      const from = rotations[i]!.done;
      const to = rotations[i + 1]?.start ?? Number.POSITIVE_INFINITY;
      const window = snapshots.filter((x) => x.start > from && x.done < to);
      assert.ok(window.length > 0, `a snapshot between rotations ${i} and ${i + 1}`);
      for (const s of window)
        assert.ok(s.kids.has(rotations[i]!.next), 'the new next key is published at once');
    }

    // The main property. Verification depends only on the snapshot's content, so each token is
    // verified once per distinct JWKS among the snapshots that apply to it.
    const distinct = new Map<string, JSONWebKeySet>();
    let pairs = 0;
    const retiredSeenAfterLastRotation = new Set<string>();
    const lastRotation = rotations.at(-1)!.done;
    for (const t of issued) {
      const applicable = snapshots.filter((s) => s.start > t.done && s.sentAt < t.exp * 1000);
      const contents = new Set<string>();
      for (const s of applicable) {
        assert.ok(s.kids.has(t.kid), `token signed by ${t.kid} must verify with a snapshot taken after it`);
        if (s.start > lastRotation && t.kid !== kids.at(-1)) retiredSeenAfterLastRotation.add(t.kid);
        const c = JSON.stringify(s.jwks);
        distinct.set(c, s.jwks);
        contents.add(c);
        pairs++;
      }
      for (const c of contents) {
        const { protectedHeader, payload } = await verifyAgainst(t.token, distinct.get(c)!, harness.issuer);
        assert.equal(protectedHeader.kid, t.kid);
        assert.equal(payload.iss, harness.issuer);
      }
    }
    assert.ok(pairs > 0);
    // Retired keys stay published: tokens of every retired key were checked against snapshots taken
    // after the last rotation.
    assert.deepEqual(retiredSeenAfterLastRotation, new Set(kids.slice(0, -1)));

    // The check can fail: the last key's tokens do not verify with the JWKS fetched at the start.
    const newest = issued.find((t) => t.kid === kids.at(-1))!;
    assert.equal(initialSnapshot.kids.has(newest.kid), false);
    await assert.rejects(verifyAgainst(newest.token, initialSnapshot.jwks, harness.issuer), {
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    });
  });

  it('a retired key stays published until the last token it signed has expired, then is dropped', async () => {
    const clock = fakeClock(Date.UTC(2026, 6, 1, 9));
    // Retired keys stay published for tokens.max_lifetime; the class allows tokens that long.
    h = await startHarness({ clock, settings: { 'tokens.max_lifetime': 900 } });
    const harness = h;
    const jwks = async (): Promise<JSONWebKeySet> => {
      const res = await harness.writ.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
      return JSON.parse(res.body) as JSONWebKeySet;
    };
    const kidsOf = (s: JSONWebKeySet) => s.keys.map((k) => k.kid!);
    const r = await harness.requestToken({ ttl: '900' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['expires_in'], 900);
    const token = r.body['access_token'] as string;
    const { header, claims } = decodeJwt(token);
    const kid = header['kid'] as string;
    const exp = claims['exp'] as number;

    const rotation = await harness.admin('POST', '/keys/rotate');
    assert.equal(rotation.status, 200, JSON.stringify(rotation.body));
    assert.equal(rotation.body['retired'], kid);

    const verifyAt = (s: JSONWebKeySet, atMs: number) =>
      jwtVerify(token, createLocalJWKSet(s), {
        issuer: harness.issuer,
        typ: 'at+jwt',
        currentDate: new Date(atMs),
      });

    // One second before the token expires: still published, and the token verifies with it.
    clock.set(exp * 1000 - 1000);
    const late = await jwks();
    assert.ok(kidsOf(late).includes(kid), 'retired key published while its token lives');
    await verifyAt(late, clock.now());
    // A new token is signed by the activated key, not the retired one.
    const fresh = await harness.requestToken();
    assert.equal(decodeJwt(fresh.body['access_token'] as string).header['kid'], rotation.body['activated']);

    // Once no token it signed can still be alive, it is no longer published (nor accepted).
    const rotatedAt = (await harness.store.listKeys()).find((k) => k.kid === kid)!.notAfter!;
    assert.ok(rotatedAt >= exp * 1000, 'published at least until its last possible token expires');
    clock.set(rotatedAt);
    const gone = await jwks();
    assert.equal(kidsOf(gone).includes(kid), false, 'retired key dropped after its tokens expired');
    assert.ok(kidsOf(gone).includes(rotation.body['activated'] as string));
    assert.ok(kidsOf(gone).includes(rotation.body['next'] as string));
  });
});
