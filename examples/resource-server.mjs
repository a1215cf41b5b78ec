// A resource server that verifies Writ tokens locally, hears revocations over the event stream and
// reports each use of a token back to Writ. The README's "Protect your API in five minutes" runs it.
// Usage: node examples/resource-server.mjs --audience URI --client-id SPIFFE_ID --key FILE
//          [--issuer URL (default: WRIT_URL, else http://127.0.0.1:8080)] [--port N (default: PORT, else 9090)]
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { WorkloadClient } from '@writ/sdk/client';
import { createVerifier, UsageReporter, writNodeHttp } from '@writ/sdk/verifier';

const { values: a } = parseArgs({
  options: {
    issuer: { type: 'string', default: process.env.WRIT_URL || 'http://127.0.0.1:8080' },
    audience: { type: 'string' },
    'client-id': { type: 'string' },
    key: { type: 'string' },
    port: { type: 'string', default: process.env.PORT || '9090' },
  },
});
if (!a.audience || !a['client-id'] || !a.key) {
  console.error(
    'usage: resource-server.mjs --audience URI --client-id SPIFFE_ID --key FILE [--issuer URL] [--port N]',
  );
  process.exit(2);
}
// The API's own workload: its class lets it follow <issuer>/v1/events and report to <issuer>/v1/usage,
// and its workload document `serves` the audience below.
const client = new WorkloadClient({
  issuer: a.issuer,
  clientId: a['client-id'],
  privateJwk: JSON.parse(readFileSync(a.key, 'utf8')),
});
const usage = new UsageReporter({ issuer: a.issuer, client });
const verifier = createVerifier({ issuer: a.issuer, audience: a.audience, client, usage });

// Proofs are checked against the URL clients use: this API's audience plus the request path.
const authenticate = writNodeHttp(verifier, { baseUrl: a.audience });

const server = createServer(async (req, res) => {
  // On refusal it has already answered (401/400/403 with WWW-Authenticate, or 503 while stale).
  const claims = await authenticate(req, res);
  if (!claims) return;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ ok: true, sub: claims.sub, scope: claims.scope, tid: claims.tid ?? null }));
});
await verifier.ready();
server.listen(Number(a.port), '127.0.0.1', () =>
  console.error(`resource server for ${a.audience} on http://127.0.0.1:${server.address().port}`),
);

// On Ctrl-C or SIGTERM: stop taking requests, then send the usage records still buffered.
for (const signal of ['SIGINT', 'SIGTERM'])
  process.once(signal, () => {
    server.close();
    verifier.close();
    usage.close().finally(() => process.exit(0));
  });
