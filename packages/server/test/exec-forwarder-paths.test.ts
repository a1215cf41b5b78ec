import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startVendorForwarder } from '../src/vendor/exec-forwarder.js';

// The command under `writ exec --via-proxy` is handed one local URL per route it may use. A path with
// dot segments must not walk from the route it was given to another route of the same proxy: the
// forwarder would ask for a token for the first route's audience, and `fetch` would resolve the dots
// and send it to the second route's path.

describe('writ exec --via-proxy: the local forwarder refuses paths that could leave their route', () => {
  let proxy: Server;
  let proxyUrl = '';
  const seen: string[] = [];
  const audiences: string[] = [];
  let fw: Awaited<ReturnType<typeof startVendorForwarder>>;
  before(async () => {
    // A real HTTP server standing in for `writ proxy`: its route list, and a record of what reached it.
    proxy = createServer((req, res) => {
      if (req.url === '/.well-known/writ-proxy') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            routes: [
              { name: 'mail', audience: 'https://mail.vendor.test', scopes: [] },
              { name: 'payments', audience: 'https://payments.vendor.test', scopes: [] },
            ],
          }),
        );
        return;
      }
      seen.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    fw = await startVendorForwarder({
      proxyUrl,
      names: ['mail'],
      taskId: 'task_1',
      // The workload client's part (a DPoP-bound token for the audience) is not what is tested here.
      client: {
        fetch: ((url: string, init: RequestInit & { audience: string }) => {
          audiences.push(init.audience);
          const { audience: _a, taskId: _t, scope: _s, ...rest } = init as unknown as Record<string, unknown>;
          return fetch(url, rest as RequestInit);
        }) as never,
      },
    });
  });
  after(async () => {
    await fw.close();
    await new Promise<void>((r) => proxy.close(() => r()));
  });

  /** Sends `path` as written (no client-side normalisation of dot segments). */
  const raw = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const base = new URL(fw.env['WRIT_VENDOR_MAIL_URL']!);
      const req = request({ host: '127.0.0.1', port: base.port, path: `${base.pathname}${path}` }, (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });

  it('a plain path reaches the route it was given, with that route’s audience', async () => {
    const r = await raw('/v1/send?x=1');
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(seen, ['/vendors/mail/v1/send?x=1']);
    assert.deepEqual(audiences, ['https://mail.vendor.test']);
  });

  for (const path of [
    '/../payments/v1/charge',
    '/%2e%2e/payments/v1/charge',
    '/./v1/send',
    '//v1/send',
    '/a%2fb',
  ]) {
    it(`refuses ${path} with 400, and nothing reaches the proxy`, async () => {
      const before = seen.length;
      const r = await raw(path);
      assert.equal(r.status, 400, r.body);
      assert.match(r.body, /dot segments|empty segments|encoded/);
      assert.equal(seen.length, before);
    });
  }

  /** A GET of `path` on the forwarder's port, as any local process could send it. */
  const onPort = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const base = new URL(fw.env['WRIT_VENDOR_MAIL_URL']!);
      request({ host: '127.0.0.1', port: base.port, path }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });

  it('without the random path it was given, or for a route it was not given, answers 404 and forwards nothing', async () => {
    const before = seen.length;
    const capability = new URL(fw.env['WRIT_VENDOR_MAIL_URL']!).pathname.split('/')[1]!;
    assert.equal(await onPort('/mail/v1/send'), 404, 'no capability');
    const guess = `${capability.slice(0, -1)}${capability.endsWith('x') ? 'y' : 'x'}`;
    assert.equal(await onPort(`/${guess}/mail/v1/send`), 404, 'a capability one character off');
    assert.equal(await onPort(`/${capability}/payments/v1/charge`), 404, 'a route the command was not given');
    assert.equal(seen.length, before);
    assert.equal(fw.env['WRIT_VENDOR_PAYMENTS_URL'], undefined);
  });
});
