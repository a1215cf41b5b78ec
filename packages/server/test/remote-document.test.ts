import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { fakeClock } from '../src/clock.js';
import { RemoteDocument } from '../src/net/remote-document.js';

// The fetch safeguards the issuer JWKS cache and the leak partner keys share (net/remote-document.ts),
// against a real HTTP server on loopback.

class Unavailable extends Error {}

describe('RemoteDocument', () => {
  let server: Server;
  let base: string;
  let hits = 0;
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    '/ok': (_q, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"n":1}'),
    '/big-declared': (_q, res) => res.writeHead(200, { 'content-length': '70000' }).end('x'.repeat(70_000)),
    '/big-streamed': (_q, res) => {
      res.writeHead(200);
      for (let i = 0; i < 70; i++) res.write('x'.repeat(1000));
      res.end();
    },
    '/redirect': (_q, res) => res.writeHead(302, { location: '/ok' }).end(),
    '/status': (_q, res) => res.writeHead(500).end(),
    '/silent': () => {
      // never answers
    },
  };
  before(async () => {
    server = createServer((req, res) => {
      hits++;
      routes[req.url ?? '']?.(req, res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const doc = (path: string, clock = fakeClock()) =>
    new RemoteDocument(`${base}${path}`, {
      clock,
      cooldownMs: 60_000,
      maxAgeMs: 3_600_000,
      timeoutMs: path === '/silent' ? 500 : 10_000,
      maxBytes: 65_536,
      name: 'the test keys',
      unavailable: (m) => new Unavailable(m),
      parse: (body) => JSON.parse(body) as { n: number },
    });

  it('fetches once and serves from its cache until the max age', async () => {
    const clock = fakeClock();
    const d = doc('/ok', clock);
    const before = hits;
    assert.deepEqual(await d.current(), { n: 1 });
    assert.deepEqual(await d.current(), { n: 1 });
    assert.equal(hits - before, 1);
    clock.advance(3_600_000);
    await d.current();
    assert.equal(hits - before, 2, 'fetched again past the max age');
  });

  for (const [path, why] of [
    ['/big-declared', /larger than 65536 bytes/],
    ['/big-streamed', /larger than 65536 bytes/],
    ['/redirect', /cannot fetch the test keys/],
    ['/status', /HTTP 500/],
    ['/silent', /cannot fetch the test keys/],
  ] as const) {
    it(`refuses ${path.slice(1)}, and tries again only after the cooldown`, async () => {
      const clock = fakeClock();
      const d = doc(path, clock);
      await assert.rejects(d.current(), (e: unknown) => e instanceof Unavailable && why.test(e.message));
      const before = hits;
      await assert.rejects(d.current(), /retrying after the cooldown/);
      assert.equal(hits, before, 'no fetch within the cooldown');
      clock.advance(60_000);
      await assert.rejects(d.current(), Unavailable);
      assert.equal(hits, before + 1);
    });
  }

  it('a redirect is not followed: the target is never fetched', async () => {
    const before = hits;
    await assert.rejects(doc('/redirect').current(), Unavailable);
    assert.equal(hits - before, 1, 'only the redirecting URL was asked');
  });
});
