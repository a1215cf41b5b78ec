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
import type { TokenTrace, VerifierSignal } from '@writ/sdk/wire';
import type { AuditEvent } from '../src/audit/audit-event.js';
import { tokenFingerprint } from '../src/tokens/access-token.js';
import { classDoc, decodeClaims, tokenOverHttp, workloadDoc } from './helpers/dpop.js';
import {
  AUDIENCE,
  freePort,
  type Harness,
  OTHER_AUDIENCE,
  OTHER_WORKLOAD,
  startHarness,
  type TestKey,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';

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
      // One token used from two networks in a second is what the replay rule revokes; this suite traces
      // usage, detection has its own (detection-*.test.ts).
      settings: { 'listen.port': serverPort, issuer, 'events.heartbeat': 1, 'detection.enabled': false },
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
    const usage = new UsageReporter({ issuer, client, flushIntervalMs: 100, minBackoffMs: 20 });
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

describe('security signals: a real verifier reports them at once, and the server takes them (real HTTP)', () => {
  const keys = { verifier: testKey(), bound: testKey(), short: testKey() };
  const BOUND = 'spiffe://test.writ/reports/bound';
  const SHORT = 'spiffe://test.writ/reports/short';
  let h: Harness;
  let issuer: string;
  let client: WorkloadClient;
  let bound: WorkloadClient;
  let usage: UsageReporter;
  let verifier: Verifier;
  /** Added to the verifier's clock: a test moves it to make the verifier stale, or a token expired. */
  let skewMs = 0;
  /** Every record the reporter sent, as it went on the wire. */
  const sent: Array<Record<string, unknown>> = [];
  const STALENESS_MS = 30_000;

  before(async () => {
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    h = await startHarness({
      listen: true,
      // The signals below would trip detection's theft and replay rules, which revoke the tokens the
      // cases reuse; this suite checks the signals arrive, detection has its own tests.
      settings: { 'listen.port': port, issuer, 'events.heartbeat': 1, 'detection.enabled': false },
      extraDocs: [
        classDoc({
          name: 'verifier',
          audiences: [`${issuer}/v1/events`, `${issuer}/v1/usage`],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
        }),
        // DPoP-bound tokens for the API (the default binding), and bearer tokens that live 10 seconds.
        classDoc({
          name: 'reports-bound',
          audiences: [AUDIENCE],
          scopes: ['reports:read'],
          default_scopes: ['reports:read'],
        }),
        classDoc({
          name: 'reports-short',
          binding: 'bearer',
          max_ttl: '10s',
          default_ttl: '10s',
          audiences: [AUDIENCE],
          scopes: ['reports:read'],
          default_scopes: ['reports:read'],
        }),
        workloadDoc(VERIFIER, keys.verifier, ['verifier'], { serves: [AUDIENCE] }),
        workloadDoc(BOUND, keys.bound, ['reports-bound']),
        workloadDoc(SHORT, keys.short, ['reports-short']),
      ],
    });
    client = new WorkloadClient({ issuer, clientId: VERIFIER, privateJwk: privateJwk(keys.verifier) });
    bound = new WorkloadClient({ issuer, clientId: BOUND, privateJwk: privateJwk(keys.bound) });
    // An hour between reports: whatever reaches the server below was sent because it carried a signal.
    // Through a client that keeps a copy of each report, to read what the records carry.
    const copying = {
      fetch: (url: string, init: Parameters<WorkloadClient['fetch']>[1]) => {
        sent.push(...(JSON.parse(String(init.body)) as { records: Array<Record<string, unknown>> }).records);
        return client.fetch(url, init);
      },
    };
    usage = new UsageReporter({ issuer, client: copying, flushIntervalMs: 60_000 });
    verifier = createVerifier({
      issuer,
      audience: AUDIENCE,
      client,
      usage,
      stalenessMs: STALENESS_MS,
      now: () => Date.now() + skewMs,
    });
    await verifier.ready();
  });
  after(async () => {
    verifier.close();
    await usage.close();
    await h.close();
  });

  const url = `${AUDIENCE}/reports/1`;
  const jtiOf = (token: string) => decodeClaims(token)['jti'] as string;
  const bearer = (token: string) => ({ authorization: `Bearer ${token}`, dpop: [], method: 'GET', url });
  const withProof = (token: string, key = bound.dpopKey, proof?: string) => ({
    authorization: `DPoP ${token}`,
    dpop: [proof ?? createDpopProof(key, { method: 'GET', url, accessToken: token })],
    method: 'GET',
    url,
  });
  const refusedAs = async (req: Parameters<Verifier['verify']>[0], reason: string) =>
    assert.rejects(
      verifier.verify({ ...req, operation: 'GET /reports/:id', source: '10.7.7.7' }),
      (err) => err instanceof RequestRefusal && err.reason === reason,
    );
  /** The uses of `jti` the server stored denied for `reason`, once there are some (bounded poll). */
  const storedDenial = async (jti: string, reason: string) => {
    let found: Awaited<ReturnType<Harness['store']['usageForToken']>> = [];
    await until(`a ${reason} use of ${jti} at the server`, async () => {
      found = (await h.store.usageForToken(jti, 100)).filter((u) => u.reason === reason);
      return found.length > 0;
    });
    return found;
  };
  /** Signals counted by the usage.reported events after `from` events of that type. */
  const signalsSince = async (from: number): Promise<Record<string, number>> => {
    const counts: Record<string, number> = {};
    for (const e of (await h.auditEvents('usage.reported')).slice(from)) {
      assert.equal(e.actor, VERIFIER);
      for (const [k, n] of Object.entries((e.data['signals'] ?? {}) as Record<string, number>))
        counts[k] = (counts[k] ?? 0) + n;
    }
    return counts;
  };
  const reportedEvents = async (): Promise<AuditEvent[]> => h.auditEvents('usage.reported');
  const expectSignals = async (from: number, want: Partial<Record<VerifierSignal, number>>) => {
    await until(`signals ${JSON.stringify(want)} in usage.reported`, async () => {
      const got = await signalsSince(from);
      return Object.entries(want).every(([k, n]) => got[k] === n);
    });
  };

  it('a DPoP-bound token without its key (as Bearer, without a proof) and with another key: key_missing, key_mismatch', async () => {
    const from = (await reportedEvents()).length;
    const token = await bound.token({ audience: AUDIENCE });
    const thief = new WorkloadClient({ issuer, clientId: BOUND, privateJwk: privateJwk(testKey()) });
    await refusedAs(bearer(token), 'dpop_bound_as_bearer');
    await refusedAs({ ...withProof(token), dpop: [] }, 'dpop_single_header');
    await refusedAs(withProof(token, thief.dpopKey), 'dpop_jkt');
    await storedDenial(jtiOf(token), 'dpop_jkt');
    await expectSignals(from, { key_missing: 2, key_mismatch: 1 });
    const reasons = (await h.store.usageForToken(jtiOf(token), 100)).map((u) => [u.reason, u.sub]).sort();
    assert.deepEqual(reasons, [
      ['dpop_bound_as_bearer', BOUND],
      ['dpop_jkt', BOUND],
      ['dpop_single_header', BOUND],
    ]);
  });

  it('a DPoP proof presented twice: the first use is allowed, the replay is dpop_replay, both sent at once', async () => {
    const from = (await reportedEvents()).length;
    const token = await bound.token({ audience: AUDIENCE });
    const proof = createDpopProof(bound.dpopKey, { method: 'GET', url, accessToken: token });
    await verifier.verify({
      ...withProof(token, bound.dpopKey, proof),
      operation: 'GET /reports/:id',
      source: '10.7.7.7',
    });
    await refusedAs(withProof(token, bound.dpopKey, proof), 'dpop_replay');
    await storedDenial(jtiOf(token), 'dpop_replay');
    await expectSignals(from, { dpop_replay: 1 });
    // The allowed use waited in the buffer and went with the signal.
    assert.equal(
      (await h.store.usageForToken(jtiOf(token), 100)).filter((u) => u.decision === 'allow').length,
      1,
    );
  });

  it('a revoked token presented again: revoked', async () => {
    const from = (await reportedEvents()).length;
    const token = await tokenOverHttp(h, WORKLOAD, h.workloadKey, AUDIENCE);
    const before = verifier.status().revocations;
    const revoked = await h.admin('POST', '/revocations', {
      kind: 'jti',
      value: jtiOf(token),
      reason: 'kept',
    });
    assert.equal(revoked.status, 201);
    await until('the verifier to hear the revocation', () => verifier.status().revocations > before);
    await refusedAs(bearer(token), 'revoked');
    await storedDenial(jtiOf(token), 'revoked');
    await expectSignals(from, { revoked: 1 });
    // A token of this verifier's own API is reported on its jti: it is not hashed for the record.
    const record = sent.find((r) => r['jti'] === jtiOf(token));
    assert.equal(record?.['signal'], 'revoked');
    assert.equal(record?.['token_sha256'], undefined);
  });

  it("a Writ token for another API: wrong_audience, taken on the token's SHA-256 though the verifier does not serve that API", async () => {
    const from = (await reportedEvents()).length;
    const billing = await tokenOverHttp(h, OTHER_WORKLOAD, h.otherKey, OTHER_AUDIENCE, 'billing:write');
    await refusedAs(bearer(billing), 'aud');
    const [use] = await storedDenial(jtiOf(billing), 'aud');
    // Stored under the token's own workload, reported by this verifier.
    assert.equal(use!.sub, OTHER_WORKLOAD);
    assert.equal(use!.reporter, VERIFIER);
    await expectSignals(from, { wrong_audience: 1 });
    // The SDK's hash is the server's fingerprint of the token.
    assert.equal((await h.store.getTokens([jtiOf(billing)]))[0]!.fingerprint, tokenFingerprint(billing));
    assert.equal(sent.find((r) => r['jti'] === jtiOf(billing))?.['token_sha256'], tokenFingerprint(billing));
  });

  it('an expired token: expired, reported under its jti', async () => {
    const from = (await reportedEvents()).length;
    const token = await tokenOverHttp(h, SHORT, keys.short, AUDIENCE);
    // 17 s on: the 10-second token is past its exp and the 5 s leeway; the verifier is not yet stale.
    skewMs = 17_000;
    try {
      await refusedAs(bearer(token), 'expired');
    } finally {
      skewMs = 0;
    }
    await storedDenial(jtiOf(token), 'expired');
    await expectSignals(from, { expired: 1 });
  });

  it('stale revocation state: stale, a record about the verifier itself (no token, counted, not aggregated)', async () => {
    const from = (await reportedEvents()).length;
    const token = await tokenOverHttp(h, WORKLOAD, h.workloadKey, AUDIENCE);
    // Past the staleness bound on the verifier's clock: it refuses before looking at the token.
    skewMs = STALENESS_MS + 10_000;
    let refusal: Promise<void>;
    try {
      assert.equal(verifier.status().stale, true);
      refusal = refusedAs(bearer(token), 'stale');
    } finally {
      skewMs = 0;
    }
    await refusal;
    await expectSignals(from, { stale: 1 });
    const event = (await reportedEvents()).slice(from).find((e) => e.data['signals'] !== undefined)!;
    assert.equal(event.data['aggregates'], 0);
    assert.deepEqual(await h.store.usageForToken(jtiOf(token), 10), []);
  });
});
