import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WorkloadClient } from '@writ/sdk/client';
import { createDpopProof } from '@writ/sdk/dpop';
import { createVerifier, RequestRefusal, UsageReporter, type Verifier } from '@writ/sdk/verifier';
import type { TokenTrace } from '../src/usage/trace.js';
import { classDoc, decodeClaims, workloadDoc } from './helpers/dpop.js';
import { AUDIENCE, freePort, type Harness, startHarness, type TestKey, testKey } from './helpers/harness.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const VERIFIER = 'spiffe://test.writ/reports/api';

/** Polls `probe` (bounded: 200 × 25 ms) until it returns true. */
async function until(what: string, probe: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}

function privateJwk(k: TestKey) {
  return { ...k.privateKey.export({ format: 'jwk' }), kid: k.kid, alg: k.alg };
}

/**
 * A loopback proxy in front of the server: answers 503 to the first `failUsage` usage reports (a
 * struggling control plane), passes everything else through. The server's issuer is the proxy's URL.
 */
function startProxy(port: number, target: number): Promise<Server & { failUsage: number; refused: number }> {
  const proxy = createServer((req, res) => {
    if (req.url === '/v1/usage' && p.failUsage > 0) {
      p.failUsage--;
      p.refused++;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"error":"temporarily_unavailable"}');
      return;
    }
    const upstream = request(
      { host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const p = Object.assign(proxy, { failUsage: 0, refused: 0 });
  return new Promise((resolve) => proxy.listen(port, '127.0.0.1', () => resolve(p)));
}

describe('usage reports: a verifier reports each use; writ audit trace shows them', () => {
  const verifierKey = testKey();
  let h: Harness;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let issuer: string;
  let client: WorkloadClient;
  let keyFile: string;

  before(async () => {
    const [serverPort, proxyPort] = [await freePort(), await freePort()];
    issuer = `http://127.0.0.1:${proxyPort}`;
    h = await startHarness({
      listen: true,
      settings: { 'listen.port': serverPort, issuer, 'events.heartbeat': 1 },
      extraDocs: [
        classDoc({
          name: 'verifier',
          audiences: [`${issuer}/v1/events`, `${issuer}/v1/usage`],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
        }),
        workloadDoc(VERIFIER, verifierKey, ['verifier'], { serves: [AUDIENCE] }),
      ],
    });
    proxy = await startProxy(proxyPort, serverPort);
    client = new WorkloadClient({ issuer, clientId: VERIFIER, privateJwk: privateJwk(verifierKey) });
    keyFile = join(h.dir, 'operator.jwk');
    writeFileSync(keyFile, JSON.stringify({ operator: 'ops', key: privateJwk(h.operatorKey) }), {
      mode: 0o600,
    });
  });
  after(async () => {
    await new Promise((r) => proxy.close(r));
    await h.close();
  });

  const bearerToken = async (): Promise<string> => {
    const r = await h.requestToken();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['access_token'] as string;
  };
  const writ = async (args: string[]) =>
    promisify(execFile)(process.execPath, [MAIN, '--server', issuer, '--operator-key', keyFile, ...args], {
      timeout: 20_000,
    });
  const request = (token: string, operation: string, source: string) => ({
    authorization: `Bearer ${token}`,
    dpop: [],
    method: operation.split(' ')[0]!,
    url: `${AUDIENCE}/reports/1`,
    operation,
    source,
    userAgent: 'report-cli/1.0',
  });

  it('records allowed and denied uses with where they came from; the trace reads issued → used → revoked', async () => {
    const usage = new UsageReporter({ issuer, client, flushIntervalMs: 3_600_000 });
    const verifier: Verifier = createVerifier({ issuer, audience: AUDIENCE, client, usage });
    try {
      await verifier.ready();
      const token = await bearerToken();
      const jti = decodeClaims(token)['jti'] as string;

      for (let i = 0; i < 3; i++) await verifier.verify(request(token, 'GET /reports/:id', '10.1.2.3'));
      await verifier.verify(request(token, 'POST /reports', '10.9.9.9'));
      await assert.rejects(
        verifier.verify({
          ...request(token, 'DELETE /reports/:id', '10.1.2.3'),
          check: () => {
            throw new RequestRefusal('insufficient_scope', 'insufficient_scope', 'needs reports:delete');
          },
        }),
        RequestRefusal,
      );

      const before = verifier.status().revocations;
      const revoked = await h.admin('POST', '/revocations', {
        kind: 'jti',
        value: jti,
        reason: 'trace test',
      });
      assert.equal(revoked.status, 201);
      await until('the verifier to hear the revocation', () => verifier.status().revocations > before);
      await assert.rejects(
        verifier.verify(request(token, 'GET /reports/:id', '10.1.2.3')),
        (err) => err instanceof RequestRefusal && err.reason === 'revoked',
      );
      // A token that fails its signature check is denied, but its claims are not trusted: it names no
      // token Writ issued, so the use is not reported.
      await assert.rejects(
        verifier.verify(request(`${token.slice(0, -4)}AAAA`, 'GET /reports/:id', '6.6.6.6')),
      );

      assert.deepEqual(usage.stats(), { buffered: 6, dropped: 0, sent: 0, refused: 0, failures: 0 });
      await usage.flush();
      assert.deepEqual(usage.stats(), { buffered: 0, dropped: 0, sent: 6, refused: 0, failures: 0 });

      const reported = (await h.auditEvents('usage.reported')).at(-1)!;
      assert.equal(reported.actor, VERIFIER);
      assert.equal(reported.data['records'], 6);
      assert.equal(reported.data['denied'], 2);
      assert.equal(reported.data['refused'], 0);

      const json = JSON.parse((await writ(['audit', 'trace', jti, '--json'])).stdout) as TokenTrace;
      assert.equal(json.token?.sub, 'spiffe://test.writ/reports/exporter');
      assert.deepEqual(json.totals, { allow: 4, deny: 2 });
      const uses = json.uses.map((u) => [u.operation, u.source, u.decision, u.reason, u.count]);
      assert.deepEqual(
        uses.sort((a, b) => String(a).localeCompare(String(b))),
        [
          ['DELETE /reports/:id', '10.1.2.3', 'deny', 'insufficient_scope', 1],
          ['GET /reports/:id', '10.1.2.3', 'allow', '', 3],
          ['GET /reports/:id', '10.1.2.3', 'deny', 'revoked', 1],
          ['POST /reports', '10.9.9.9', 'allow', '', 1],
        ],
      );
      assert.ok(json.uses.every((u) => u.user_agent === 'report-cli/1.0' && u.reporter === VERIFIER));
      assert.deepEqual(
        json.revocations.map((r) => [r.kind, r.value, r.reason]),
        [['jti', jti, 'trace test']],
      );
      const what = json.timeline.map((e) => e.what);
      assert.equal(what[0], 'issued');
      assert.ok(
        what.indexOf('revoked') > what.indexOf('used'),
        `issued → used → revoked, got ${what.join(' → ')}`,
      );
      const denialAfterRevocation = json.timeline.find((e) => e.detail.includes('denied (revoked)'));
      assert.ok(denialAfterRevocation);

      const text = (await writ(['audit', 'trace', jti])).stdout;
      assert.match(text, new RegExp(`^token ${jti}`));
      assert.match(text, /uses: 4 allowed, 2 denied; revoked \(jti#\d+\)/);
      assert.match(
        text,
        /issued +to spiffe:\/\/test\.writ\/reports\/exporter for https:\/\/reports\.test\.writ/,
      );
      assert.match(text, /used +GET \/reports\/:id from 10\.1\.2\.3: allowed ×3/);
      assert.match(text, /used +GET \/reports\/:id from 10\.1\.2\.3: denied \(revoked\) ×1/);
      assert.match(text, /revoked +by jti=.*: trace test/);
      const kinds = text
        .split('\n')
        .slice(4)
        .filter((l) => l !== '')
        .map((l) => l.split(/ +/)[1]);
      assert.deepEqual(kinds, ['issued', 'used', 'used', 'used', 'revoked', 'used']);
    } finally {
      verifier.close();
      await usage.close();
    }
  });

  it('a full buffer drops the oldest records and counts them; the server hears the count', async () => {
    const usage = new UsageReporter({ issuer, client, maxBuffer: 3, flushIntervalMs: 3_600_000 });
    const jti = decodeClaims(await bearerToken())['jti'] as string;
    for (const n of [1, 2, 3, 4, 5])
      usage.record({
        jti,
        operation: `GET /op-${n}`,
        source: '10.0.0.1',
        decision: 'allow',
      });
    assert.deepEqual(usage.stats(), { buffered: 3, dropped: 2, sent: 0, refused: 0, failures: 0 });
    await usage.flush();
    assert.deepEqual(usage.stats(), { buffered: 0, dropped: 2, sent: 3, refused: 0, failures: 0 });
    const trace = (await h.admin('GET', `/audit/trace/${jti}`)).body as unknown as TokenTrace;
    assert.deepEqual(
      trace.uses.map((u) => u.operation).sort(),
      ['GET /op-3', 'GET /op-4', 'GET /op-5'],
      'the two oldest were dropped',
    );
    assert.equal((await h.auditEvents('usage.reported')).at(-1)!.data['dropped_by_reporter'], 2);
    await usage.close();
  });

  it('a failed report is retried with backoff (records keep their place); close flushes what is left', async () => {
    const usage = new UsageReporter({ issuer, client, flushIntervalMs: 20, minBackoffMs: 20 });
    const jti = decodeClaims(await bearerToken())['jti'] as string;
    const use = (operation: string) =>
      usage.record({
        jti,
        operation,
        source: '10.0.0.2',
        decision: 'allow',
      });
    proxy.failUsage = 2;
    use('GET /first');
    use('GET /second');
    await until('the report to get through', () => usage.stats().sent === 2);
    assert.equal(proxy.refused, 2);
    assert.equal(usage.stats().failures, 2);
    assert.equal(usage.stats().dropped, 0);

    use('GET /at-close');
    const stats = await usage.close();
    assert.deepEqual(stats, { buffered: 0, dropped: 0, sent: 3, refused: 0, failures: 2 });
    const trace = (await h.admin('GET', `/audit/trace/${jti}`)).body as unknown as TokenTrace;
    assert.deepEqual(trace.uses.map((u) => u.operation).sort(), [
      'GET /at-close',
      'GET /first',
      'GET /second',
    ]);
  });

  it('a report the server refuses (out of time) is counted as refused, not retried', async () => {
    const usage = new UsageReporter({ issuer, client, flushIntervalMs: 3_600_000 });
    const jti = decodeClaims(await bearerToken())['jti'] as string;
    usage.record({
      jti,
      operation: 'GET /x',
      source: '10.0.0.3',
      decision: 'allow',
      time: Date.now() + 3_600_000,
    });
    const refusals = (await h.auditEvents('usage.refused')).length;
    await usage.flush();
    assert.deepEqual(usage.stats(), { buffered: 0, dropped: 0, sent: 0, refused: 1, failures: 0 });
    const refused = await h.auditEvents('usage.refused');
    assert.equal(refused.length, refusals + 1);
    assert.equal(refused.at(-1)!.actor, VERIFIER);
    assert.equal(refused.at(-1)!.data['reason'], 'time');
    assert.equal((await h.writ.ctx.store.usageForToken(jti, 10)).length, 0);
    await usage.close();
  });

  it('refuses and audits reports from callers without a usage token, and stores nothing', async () => {
    const url = `${issuer}/v1/usage`;
    const jti = decodeClaims(await bearerToken())['jti'] as string;
    const body = JSON.stringify({
      records: [
        { jti, sub: 'x', operation: 'GET /forged', source: '1.2.3.4', decision: 'allow', time: Date.now() },
      ],
    });
    const post = (headers: Record<string, string>) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const before = (await h.auditEvents('usage.refused')).length;

    const anonymous = await post({});
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^DPoP /);
    assert.equal(((await anonymous.json()) as Record<string, unknown>)['error'], 'invalid_token');

    // A token for another audience (the API's own), presented as it was issued.
    assert.equal((await post({ authorization: `Bearer ${await bearerToken()}` })).status, 401);

    // The verifier's usage token is DPoP-bound: without a proof, or with someone else's, it is refused.
    const usageToken = await client.token({ audience: url });
    assert.equal((await post({ authorization: `DPoP ${usageToken}` })).status, 401);
    assert.equal((await post({ authorization: `Bearer ${usageToken}` })).status, 401);
    const thief = new WorkloadClient({ issuer, clientId: VERIFIER, privateJwk: privateJwk(verifierKey) });
    const stolenProof = createDpopProof(thief.dpopKey, { method: 'POST', url, accessToken: usageToken });
    assert.equal((await post({ authorization: `DPoP ${usageToken}`, dpop: stolenProof })).status, 401);

    const refused = (await h.auditEvents('usage.refused')).slice(before);
    assert.equal(refused.length, 5);
    assert.ok(refused.every((e) => e.outcome === 'refused' && e.actor === 'anonymous'));
    assert.deepEqual(
      refused.map((e) => e.data['reason']),
      ['no_token', 'aud', 'dpop_single_header', 'dpop_bound_as_bearer', 'dpop_jkt'],
    );
    assert.deepEqual(await h.writ.ctx.store.usageForToken(jti, 10), []);

    // The same report with the verifier's proof goes through: the refusals were about the caller.
    const ok = await client.fetch(url, {
      method: 'POST',
      audience: url,
      headers: { 'content-type': 'application/json' },
      body,
    });
    assert.equal(ok.status, 202);
    assert.equal((await h.writ.ctx.store.usageForToken(jti, 10)).length, 1);
  });
});
