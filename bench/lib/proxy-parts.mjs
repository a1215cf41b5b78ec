// Child processes of bench/proxy.mjs: a fake vendor (node:http, checks the injected key) and a bare
// pass-through proxy on the same HTTP client as Writ's (undici, streaming both ways, no checks).
// Run as `node proxy-parts.mjs vendor|bare` with a JSON config on stdin; prints {"port": N} when up.
import { createServer } from 'node:http';
import { Agent, request } from 'undici';

const role = process.argv[2];
const config = JSON.parse(
  await new Promise((r) => {
    let s = '';
    process.stdin.on('data', (c) => {
      s += c;
    });
    process.stdin.on('end', () => r(s));
  }),
);

let server;
if (role === 'vendor') {
  const body = JSON.stringify({
    id: 'ch_1',
    object: 'charge',
    amount: 1200,
    currency: 'eur',
    padding: 'x'.repeat(120),
  });
  server = createServer((req, res) => {
    const ok = req.headers.authorization === `Bearer ${config.key}`;
    res.writeHead(ok ? 200 : 401, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
} else if (role === 'bare') {
  const agent = new Agent({ headersTimeout: 30_000, bodyTimeout: 30_000 });
  server = createServer(async (req, res) => {
    try {
      const up = await request(`${config.upstream}${req.url.replace(/^\/vendors\/[^/]+/, '')}`, {
        method: req.method,
        headers: { authorization: `Bearer ${config.key}`, 'accept-encoding': 'identity' },
        body: null,
        dispatcher: agent,
      });
      res.writeHead(up.statusCode, up.headers);
      for await (const chunk of up.body) res.write(chunk);
      res.end();
    } catch {
      res.writeHead(502).end();
    }
  });
} else throw new Error(`unknown role ${role}`);
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () =>
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`),
);
// Exit cleanly on SIGTERM, so a CPU profile (node --cpu-prof) is written.
process.once('SIGTERM', () => process.exit(0));
