import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { WorkloadClient } from '@writ/sdk/client';
import { createDpopProof } from '@writ/sdk/dpop';
import { GrantType } from '@writ/sdk/wire';
import type { RawDocument } from '../../src/config/config-dir.js';
import { clientAuth, decodeClaims, httpForm, rawDoc } from './dpop.js';
import type { Harness, TestKey } from './harness.js';

/**
 * Test helpers for the vendor-key proxy (`writ proxy`, the proxy inside `writ serve`, and the one a test
 * builds itself): a fake vendor counts the requests that reach it, and every refusal must come before it.
 */

/** The exception a static vendor key must have on record before the server leases it. */
export function vendorKeyException(id: string, key: string, expires = '2099-12-31'): RawDocument {
  return rawDoc('exception', {
    id,
    covers: { kind: 'vendor_key', key },
    owner: 'team-payments',
    justification: 'the vendor only takes a static API key',
    expires,
  });
}

/** Stores vendor key `name` on the server, leased to the `proxies` workloads only. */
export async function addVendorKey(
  h: Harness,
  name: string,
  secret: string,
  proxies: string[],
): Promise<void> {
  const added = await h.admin('POST', '/vendor-keys', { name, secret, proxies });
  assert.equal(added.status, 201, JSON.stringify(added.body));
}

/**
 * Writes a proxy config folder `dir`: `vendors/NAME.yaml` for each of `routes` and, given `ca`, the
 * vendor's test CA at `ca.file` (the name the routes' `ca_file` uses). Returns `dir`.
 */
export function writeVendorConfig(
  dir: string,
  routes: Record<string, string>,
  ca?: { file: string; pem: string },
): string {
  mkdirSync(join(dir, 'vendors'), { recursive: true });
  if (ca) writeFileSync(join(dir, ca.file), ca.pem);
  for (const [name, yaml] of Object.entries(routes))
    writeFileSync(join(dir, 'vendors', `${name}.yaml`), yaml);
  return dir;
}

/** Listens on 127.0.0.1 at a port of the system's choosing; returns the port. */
export async function listenLocal(server: Pick<Server, 'listen' | 'address'>): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

/** Drops the open connections of `server` (keep-alive ones included) and closes it. */
export async function closeNow(server: Pick<Server, 'closeAllConnections' | 'close'>): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

/**
 * What a proxy test does against one route of a proxy: its URLs, DPoP headers, counting what reaches the
 * vendor, and the refusals every proxy must make. Its parts are read when called, after `before` set them.
 */
export interface RouteProbe {
  /** The proxy's URL for `path` at the vendor. */
  url(path: string): string;
  /** Runs `f` and returns how many requests reached the vendor meanwhile. */
  reached(f: () => Promise<unknown>): Promise<number>;
  /** Authorization and DPoP headers presenting token `t` for one request. */
  presenting(t: string, method: string, at: string): Promise<{ authorization: string; dpop: string }>;
  /** Checks that a bearer token of `clientId` (a class with `binding: bearer`) is refused at `path`. */
  expectBearerTokenRefused(h: Harness, o: { clientId: string; key: TestKey; path: string }): Promise<void>;
  /**
   * Revokes a token of the client by its jti (`revoke` returns once the proxy can know) and checks that
   * a GET of `path` with it is refused before the vendor, while the same request with a fresh token
   * passes: the refusal was the revocation.
   */
  expectRevokedRefused(o: { path: string; revoke: (jti: string) => Promise<void> }): Promise<void>;
}

/**
 * A probe of route `route` (for tokens to `audience`) at the proxy at `origin()`, whose vendor records
 * each request it gets in `seen()`; `client()` asks for the tokens and makes the proofs at `nowMs()`.
 */
export function routeProbe(o: {
  route: string;
  audience: string;
  origin: () => string;
  seen: () => readonly unknown[];
  client: () => WorkloadClient;
  nowMs: () => number;
}): RouteProbe {
  const url = (path: string) => `${o.origin()}/vendors/${o.route}${path}`;
  const reached = async (f: () => Promise<unknown>) => {
    const before = o.seen().length;
    await f();
    return o.seen().length - before;
  };
  const presenting = async (t: string, method: string, at: string) => ({
    authorization: `DPoP ${t}`,
    dpop: await createDpopProof(o.client().dpopKey, {
      method,
      url: at,
      accessToken: t,
      nowSeconds: Math.floor(o.nowMs() / 1000),
    }),
  });
  return {
    url,
    reached,
    presenting,
    async expectBearerTokenRefused(h, b) {
      const form = await httpForm(`${h.issuer}/oauth2/token`, {
        grant_type: GrantType.clientCredentials,
        ...clientAuth(h, b.clientId, b.key),
        resource: o.audience,
      });
      assert.equal(form.status, 200, JSON.stringify(form.body));
      const bearer = await fetch(url(b.path), {
        headers: { authorization: `Bearer ${form.body['access_token']}` },
      });
      assert.equal(bearer.status, 401, 'the route takes holder-bound tokens only');
    },
    async expectRevokedRefused(r) {
      const t = await o.client().requestToken({ audience: o.audience });
      await r.revoke(String(decodeClaims(t.access_token)['jti']));
      const n = await reached(async () => {
        const res = await fetch(url(r.path), {
          headers: await presenting(t.access_token, 'GET', url(r.path)),
        });
        assert.equal(res.status, 401);
      });
      assert.equal(n, 0);
      const fresh = await o.client().requestToken({ audience: o.audience });
      const ok = await fetch(url(r.path), {
        headers: await presenting(fresh.access_token, 'GET', url(r.path)),
      });
      assert.equal(
        ok.status,
        200,
        'the same request with a live token passes (the refusal was the revocation)',
      );
    },
  };
}

/**
 * Checks an answer from a vendor that echoes the request: it passed, and the key `key` is nowhere in it,
 * overwritten in the body and the header `echoHeader` that held it dropped.
 */
export async function expectKeyNotReturned(res: Response, key: string, echoHeader: string): Promise<void> {
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.ok(!text.includes(key), 'the key is not in the body');
  assert.ok(text.includes('*'.repeat(key.length)), 'it was overwritten in place');
  assert.equal(res.headers.get(echoHeader), null, 'a header holding it is dropped');
  for (const [, v] of res.headers) assert.ok(!v.includes(key));
}
