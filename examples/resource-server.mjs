// A resource server that verifies Writ tokens locally and hears revocations over the event stream.
// Usage: node examples/resource-server.mjs --issuer URL --audience URI --client-id SPIFFE_ID --key FILE [--port 9090]
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { WorkloadClient } from '@writ/sdk/client';
import { createVerifier, RequestRefusal } from '@writ/sdk/verifier';

const { values: a } = parseArgs({
  options: {
    issuer: { type: 'string', default: 'http://127.0.0.1:8080' },
    audience: { type: 'string' },
    'client-id': { type: 'string' },
    key: { type: 'string' },
    port: { type: 'string', default: '9090' },
  },
});
if (!a.audience || !a['client-id'] || !a.key) {
  console.error(
    'usage: resource-server.mjs --audience URI --client-id SPIFFE_ID --key FILE [--issuer URL] [--port N]',
  );
  process.exit(2);
}
const client = new WorkloadClient({
  issuer: a.issuer,
  clientId: a['client-id'],
  privateJwk: JSON.parse(readFileSync(a.key, 'utf8')),
});
const verifier = createVerifier({ issuer: a.issuer, audience: a.audience, client });

const server = createServer(async (req, res) => {
  const url = `${a.audience.replace(/\/+$/, '')}${req.url}`;
  try {
    const dpop = req.headersDistinct.dpop ?? [];
    const { claims } = await verifier.verify({
      authorization: req.headers.authorization,
      dpop,
      method: req.method ?? 'GET',
      url,
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, sub: claims.sub, scope: claims.scope, tid: claims.tid ?? null }));
  } catch (err) {
    if (!(err instanceof RequestRefusal)) throw err;
    res.writeHead(err.code === 'invalid_request' ? 400 : 401, {
      'www-authenticate': err.challenge(),
      'content-type': 'application/json',
    });
    res.end(JSON.stringify({ error: err.code, error_description: err.message }));
  }
});
await verifier.ready();
server.listen(Number(a.port), '127.0.0.1', () =>
  console.error(`resource server for ${a.audience} on http://127.0.0.1:${a.port}`),
);
