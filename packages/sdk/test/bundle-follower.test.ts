import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VerificationKey } from '../src/jose/jwk.js';
import { type BundleFollower, followBundle } from '../src/verifier/local-policy/bundle-follower.js';
import type { PolicyBundleClaims } from '../src/wire/index.js';
import { API, bundleClaims, bundleKey, ISSUER, signBundle } from './helpers/bundles.js';

// Following the policy bundle of one API: what the verifier accepts, refuses and waits for. The server
// side (signing, announcing, serving) is in packages/server/test/policy-bundle.test.ts.

const key = bundleKey();

/** A stand-in for the bundle endpoint that serves whatever `serve` returns, counting requests. */
function endpoint(serve: (n: number) => Response) {
  const calls: Array<{ url: string; headers: Record<string, string> }> = [];
  const fetchBundle = (async (url: string, init?: RequestInit) => {
    calls.push({ url, headers: init?.headers as Record<string, string> });
    return serve(calls.length);
  }) as typeof fetch;
  return { calls, fetchBundle };
}

function follow(
  fetchBundle: typeof fetch,
  opts: {
    keys?: VerificationKey[];
    maxBytes?: number;
    authorized?: boolean[];
    /** Milliseconds; default 2 s, inside the default bundle's life (iat 1, exp 301). */
    now?: () => number;
    prepared?: number[];
  } = {},
): BundleFollower<{ claims: PolicyBundleClaims }> {
  return followBundle({
    issuer: ISSUER,
    audience: API,
    fetch: fetchBundle,
    now: opts.now ?? (() => 2000),
    leewaySeconds: 5,
    keys: () => opts.keys ?? [key.verification],
    refreshKeys: async () => undefined,
    authorize: async (_url, fresh) => {
      opts.authorized?.push(fresh);
      return { authorization: `DPoP token-${fresh ? 'fresh' : 'held'}` };
    },
    maxBytes: opts.maxBytes ?? 1_000_000,
    prepare: async (claims) => {
      opts.prepared?.push(claims.version);
      return { claims };
    },
  });
}

const served = (claims: PolicyBundleClaims, signer = key) =>
  new Response(signBundle(signer, claims), { headers: { 'content-type': 'application/jwt' } });

describe('followBundle', () => {
  it('loads a verified bundle from the endpoint, asking for this API', async () => {
    const { calls, fetchBundle } = endpoint(() => served(bundleClaims({ version: 4 })));
    const f = follow(fetchBundle);
    await f.refresh();
    assert.equal(await f.loaded(), 4);
    assert.equal(f.current()?.claims.version, 4);
    assert.equal(calls[0]!.url, `${ISSUER}/v1/policy/bundle?audience=${encodeURIComponent(API)}`);
    assert.equal(calls[0]!.headers['accept'], 'application/jwt');
    assert.deepEqual(f.status(), {
      version: 4,
      expires: 301,
      policyVersion: '1-000000000000',
      announced: 0,
      lastError: undefined,
      refused: 0,
    });
    f.close();
  });

  it('refuses a bundle signed by a key the server does not publish', async () => {
    const attacker = bundleKey('k1');
    const { fetchBundle } = endpoint(() => served(bundleClaims({ version: 9 }), attacker));
    const f = follow(fetchBundle);
    await f.refresh();
    assert.equal(f.current(), undefined);
    assert.equal(f.status().refused, 1);
    assert.match(f.status().lastError ?? '', /policy bundle/);
    f.close();
  });

  it('refuses a bundle for another API and one older than the one held', async () => {
    let next = bundleClaims({ version: 5 });
    const { fetchBundle } = endpoint(() => served(next));
    const f = follow(fetchBundle);
    await f.refresh();
    assert.equal(f.current()?.claims.version, 5);
    next = bundleClaims({ version: 3 });
    await f.refresh();
    assert.equal(f.current()?.claims.version, 5, 'never goes back');
    next = bundleClaims({ version: 6, aud: 'https://other.test' });
    await f.refresh();
    assert.equal(f.current()?.claims.version, 5);
    assert.equal(f.status().refused, 2);
    f.close();
  });

  it('refuses an expired bundle, and one without exp: a signed bundle cannot be replayed for long', async () => {
    let next = bundleClaims({ iat: 1, exp: 100 });
    const { fetchBundle } = endpoint(() => served(next));
    const f = follow(fetchBundle, { now: () => 106_000 });
    await f.refresh();
    assert.equal(f.current(), undefined);
    assert.match(f.status().lastError ?? '', /expired/);
    const { exp: _e, ...withoutExp } = bundleClaims({ iat: 100 });
    next = withoutExp as PolicyBundleClaims;
    await f.refresh();
    assert.equal(f.current(), undefined);
    assert.match(f.status().lastError ?? '', /exp is missing/);
    // Within the leeway (5 s) it is still taken.
    next = bundleClaims({ iat: 1, exp: 102 });
    await f.refresh();
    assert.equal(f.current()?.claims.exp, 102);
    f.close();
  });

  it('fetches a fresh bundle past half its life; the same version re-signed extends it without preparing it again', async () => {
    let nowMs = 2000;
    const prepared: number[] = [];
    const { calls, fetchBundle } = endpoint(() => {
      const iat = Math.floor(nowMs / 1000);
      return served(bundleClaims({ iat, exp: iat + 300 }));
    });
    const f = follow(fetchBundle, { now: () => nowMs, prepared });
    await f.refresh();
    assert.equal(f.status().expires, 302);
    nowMs = 100_000;
    assert.equal(await f.upToDate(1000), true, 'before half its life: no fetch');
    assert.equal(calls.length, 1);
    nowMs = 160_000;
    assert.equal(await f.upToDate(1000), true, 'past half its life: still valid, renewed in the background');
    await f.refresh();
    assert.equal(f.status().expires, 460);
    assert.deepEqual(prepared, [1], 'the same version is not prepared again');
    f.close();
  });

  it('an expired bundle decides nothing: not up to date until a fresh one is fetched', async () => {
    let nowMs = 2000;
    let up = true;
    const { fetchBundle } = endpoint(() => {
      if (!up) return new Response('', { status: 503 });
      const iat = Math.floor(nowMs / 1000);
      return served(bundleClaims({ iat, exp: iat + 300 }));
    });
    const f = follow(fetchBundle, { now: () => nowMs });
    await f.refresh();
    up = false;
    nowMs = 400_000;
    assert.equal(f.expired(), true);
    assert.equal(await f.upToDate(50), false);
    up = true;
    await f.refresh();
    assert.equal(f.expired(), false);
    assert.equal(await f.upToDate(50), true);
    f.close();
  });

  it('refuses a bundle larger than the bound without reading it all', async () => {
    const { fetchBundle } = endpoint(() => served(bundleClaims({ schema: 'x'.repeat(5000) })));
    const f = follow(fetchBundle, { maxBytes: 1000 });
    await f.refresh();
    assert.equal(f.current(), undefined);
    assert.match(f.status().lastError ?? '', /larger than 1000 bytes/);
    f.close();
  });

  it('asks again with a fresh token when the endpoint answers 401', async () => {
    const authorized: boolean[] = [];
    const { fetchBundle } = endpoint((n) =>
      n === 1 ? new Response('', { status: 401 }) : served(bundleClaims()),
    );
    const f = follow(fetchBundle, { authorized });
    await f.refresh();
    assert.deepEqual(authorized, [false, true]);
    assert.equal(f.current()?.claims.version, 1);
    f.close();
  });

  it('fetches again until the announced version is in force', async () => {
    // The node asked first has not applied the change yet: it serves version 1 once more, then 2.
    const { calls, fetchBundle } = endpoint((n) => served(bundleClaims({ version: n <= 2 ? 1 : 2 })));
    const f = follow(fetchBundle);
    await f.refresh();
    // The follower's retry timer does not hold the process open (a verifier must not); this test does.
    const alive = setInterval(() => undefined, 1000);
    f.announce(2);
    assert.equal(await f.loaded(2), 2);
    clearInterval(alive);
    assert.equal(calls.length, 3);
    assert.equal(await f.upToDate(1000), true);
    f.close();
  });

  it('is not up to date while an announced version cannot be had: no decision under an older bundle', async () => {
    const { fetchBundle } = endpoint(() => served(bundleClaims({ version: 1 })));
    const f = follow(fetchBundle);
    await f.refresh();
    f.announce(7);
    assert.equal(await f.upToDate(50), false);
    assert.equal(f.status().announced, 7);
    f.announce(Number.NaN);
    f.announce(3);
    assert.equal(f.status().announced, 7, 'an announcement never lowers what is awaited');
    f.close();
  });

  it('is not up to date before any bundle was asked for, and fails waiters when closed', async () => {
    const { fetchBundle } = endpoint(() => new Response('', { status: 503 }));
    const f = follow(fetchBundle);
    assert.equal(await f.upToDate(1000), false);
    const waiting = f.loaded();
    f.close();
    await assert.rejects(waiting, /closed/);
  });
});
