import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { WorkloadClient } from '@writ/sdk/client';
import { UsageReporter } from '@writ/sdk/verifier';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import { tokenFingerprint } from '../../src/tokens/access-token.js';
import type { UsageAggregate } from '../../src/usage/usage-aggregate.js';
import { classDoc, decodeClaims, tokenOverHttp, workloadDoc } from '../helpers/dpop.js';
import {
  AUDIENCE,
  freePort,
  type Harness,
  OTHER_AUDIENCE,
  OTHER_WORKLOAD,
  startHarness,
  testKey,
  WORKLOAD,
} from '../helpers/harness.js';
import { workloadClient } from '../helpers/verifier.js';

// Forged usage: detection and `writ audit trace` read what verifiers report, so a workload that holds a
// verifier identity (a token for the usage audience) must not be able to write uses of tokens of APIs it
// does not serve, of tokens Writ never issued, under another workload's name, or with text that takes
// over the terminal of the operator reading the trace. Nor can it frame a workload with forged security
// signals: a `wrong_audience` signal names a token of an API the reporter does not serve, so it is taken
// only with the token's SHA-256 (the holder of a jti alone could have copied it from a log).

const REPORTS_API = 'spiffe://test.writ/reports/api';
const BILLING_API = 'spiffe://test.writ/billing/api';
const ROGUE = 'spiffe://test.writ/tools/rogue';
const ESC = '\u001b';

describe('usage reports take only uses of Writ tokens for APIs the reporter serves (real HTTP)', () => {
  const keys = { reportsApi: testKey(), billingApi: testKey(), rogue: testKey() };
  let h: Harness;
  let usageUrl: string;
  const clients: Record<'reportsApi' | 'billingApi' | 'rogue', WorkloadClient> = {} as never;
  let reportsToken: string;
  let reportsJti: string;
  let billingJti: string;
  let billingToken: string;

  before(async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    usageUrl = `${issuer}/v1/usage`;
    h = await startHarness({
      listen: true,
      settings: { 'listen.port': port },
      extraDocs: [
        // Every reporter holds a verifier identity: DPoP-bound tokens for the stream and for usage.
        classDoc({
          name: 'verifier',
          audiences: [`${issuer}/v1/events`, usageUrl],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
        }),
        workloadDoc(REPORTS_API, keys.reportsApi, ['verifier'], { serves: [AUDIENCE] }),
        workloadDoc(BILLING_API, keys.billingApi, ['verifier'], { serves: [OTHER_AUDIENCE] }),
        workloadDoc(ROGUE, keys.rogue, ['verifier']),
      ],
    });
    clients.reportsApi = workloadClient(issuer, REPORTS_API, keys.reportsApi);
    clients.billingApi = workloadClient(issuer, BILLING_API, keys.billingApi);
    clients.rogue = workloadClient(issuer, ROGUE, keys.rogue);
    reportsToken = await tokenOverHttp(h, WORKLOAD, h.workloadKey, AUDIENCE);
    reportsJti = decodeClaims(reportsToken)['jti'] as string;
    billingToken = await tokenOverHttp(h, OTHER_WORKLOAD, h.otherKey, OTHER_AUDIENCE, 'billing:write');
    billingJti = decodeClaims(billingToken)['jti'] as string;
  });
  after(() => h.close());

  const use = (jti: string, extra: Record<string, unknown> = {}) => ({
    jti,
    operation: 'GET /reports/:id',
    source: '10.0.0.1',
    decision: 'allow',
    time: h.writ.ctx.clock.now(),
    ...extra,
  });
  const report = async (as: keyof typeof clients, records: unknown[]) => {
    const res = await clients[as].fetch(usageUrl, {
      method: 'POST',
      audience: usageUrl,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const usesOf = (jti: string): Promise<UsageAggregate[]> => h.store.usageForToken(jti, 100);
  const lastEvent = async (type: string): Promise<AuditEvent> => (await h.auditEvents(type)).at(-1)!;

  /** A report none of whose records is taken: 400, one `usage.refused` event by the reporter, nothing stored. */
  const expectRefused = async (
    as: keyof typeof clients,
    reporter: string,
    records: unknown[],
    reason: string,
    jti: string,
  ) => {
    const refusalsBefore = (await h.auditEvents('usage.refused')).length;
    const reportedBefore = (await h.auditEvents('usage.reported')).length;
    const r = await report(as, records);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body['error'], 'invalid_request');
    assert.match(String(r.body['error_description']), /^no record of the report was taken: records\.0/);
    const refusals = (await h.auditEvents('usage.refused')).slice(refusalsBefore);
    assert.equal(refusals.length, 1, 'one refusal audited');
    assert.equal(refusals[0]!.actor, reporter);
    assert.equal(refusals[0]!.data['reason'], reason);
    assert.equal((await h.auditEvents('usage.reported')).length, reportedBefore, 'no report taken');
    assert.deepEqual(await usesOf(jti), [], 'nothing stored for the token');
  };

  it('a workload that serves no API reports uses of a reports token: refused, nothing stored', async () => {
    await expectRefused(
      'rogue',
      ROGUE,
      [use(reportsJti), use(reportsJti, { decision: 'deny', reason: 'revoked' })],
      'audience_not_served',
      reportsJti,
    );
  });

  it("another API's verifier reports uses of a reports token: refused, nothing stored", async () => {
    await expectRefused('billingApi', BILLING_API, [use(reportsJti)], 'audience_not_served', reportsJti);
  });

  it('the reports verifier reports uses of a token for another API (billing): refused, nothing stored', async () => {
    await expectRefused('reportsApi', REPORTS_API, [use(billingJti)], 'audience_not_served', billingJti);
  });

  it('a verifier reports uses of a token Writ never issued (a made-up jti): refused as unknown', async () => {
    const madeUp = 'AZPxwqS3Qm9sZXR0ZQAAAA';
    await expectRefused('reportsApi', REPORTS_API, [use(madeUp)], 'unknown_token', madeUp);
  });

  it('a verifier reports uses of its own usage token (a Writ endpoint, which no workload serves): refused', async () => {
    const own = decodeClaims(await clients.reportsApi.token({ audience: usageUrl }))['jti'] as string;
    await expectRefused('reportsApi', REPORTS_API, [use(own)], 'audience_not_served', own);
  });

  it('a record naming no token (an empty jti) is refused as malformed', async () => {
    const r = await report('reportsApi', [use('', { sub: '', decision: 'deny', reason: 'bad_signature' })]);
    assert.equal(r.status, 400);
    assert.equal((await lastEvent('usage.refused')).data['reason'], 'malformed_report');
  });

  it('the refusal does not tell a foreign jti from a made-up one (no oracle of which tokens exist)', async () => {
    const foreign = await report('billingApi', [use(reportsJti, { sub: WORKLOAD })]);
    const madeUp = await report('billingApi', [use('AZPxwqS3Qm9sZXR0ZQBBBB', { sub: WORKLOAD })]);
    assert.equal(foreign.status, 400);
    assert.equal(madeUp.status, 400);
    assert.deepEqual(foreign.body, madeUp.body);
  });

  it('sub and tid come from the token record: a verifier cannot put a use under another workload or task', async () => {
    const r = await report('reportsApi', [
      use(reportsJti, { sub: OTHER_WORKLOAD, tid: 'task-of-someone-else', operation: 'GET /framed' }),
    ]);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const stored = (await usesOf(reportsJti)).find((u) => u.operation === 'GET /framed')!;
    assert.equal(stored.sub, WORKLOAD);
    assert.equal(stored.tid, null);
    assert.equal(stored.reporter, REPORTS_API);
  });

  it('one forged record among honest ones is refused on its own, with its index and why; the rest are taken', async () => {
    const r = await report('reportsApi', [
      use(reportsJti, { operation: 'GET /mixed' }),
      use(billingJti, { operation: 'GET /mixed' }),
      use(reportsJti, { operation: 'GET /mixed', time: h.writ.ctx.clock.now() + 3_600_000 }),
    ]);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body['accepted'], 1);
    const refused = r.body['refused'] as Array<Record<string, unknown>>;
    assert.deepEqual(
      refused.map((x) => [x['index'], x['error']]),
      [
        [1, 'invalid_request'],
        [2, 'invalid_request'],
      ],
    );
    assert.match(
      String(refused[0]!['error_description']),
      /^records\.1\.jti: .*APIs its workload lists under serves/,
    );
    assert.match(String(refused[1]!['error_description']), /^records\.2\.time: outside the accepted window/);
    const event = await lastEvent('usage.reported');
    assert.equal(event.data['records'], 1);
    assert.equal(event.data['refused'], 2);
    assert.deepEqual(event.data['refusals'], { audience_not_served: 1, time: 1 });
    assert.deepEqual(await usesOf(billingJti), []);
    assert.equal((await usesOf(reportsJti)).filter((u) => u.operation === 'GET /mixed').length, 1);
  });

  it('control characters and overlong text in operation, source and user agent are stored escaped and bounded', async () => {
    const nasty = {
      operation: `GET /x${ESC}[2J${ESC}]0;owned\u0007\nused  GET /admin from 127.0.0.1: allowed ×1`,
      source: `10.0.0.9\r\u009b31m\u202eevil`,
      user_agent: `curl/8${ESC}[1A${'A'.repeat(2000)}`,
    };
    const r = await report('reportsApi', [use(reportsJti, nasty)]);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const trace = (await h.admin('GET', `/audit/trace/${reportsJti}`)).body as {
      uses: Array<{ operation: string; source: string; user_agent: string | null }>;
    };
    const stored = trace.uses.find((u) => u.operation.startsWith('GET /x'))!;
    for (const text of [stored.operation, stored.source, stored.user_agent ?? '']) {
      assert.deepEqual(controlCharacters(text), [], JSON.stringify(text));
    }
    assert.equal(
      stored.operation,
      'GET /x\\u001b[2J\\u001b]0;owned\\u0007\\nused  GET /admin from 127.0.0.1: allowed ×1',
    );
    assert.equal(stored.source, '10.0.0.9\\r\\u009b31m\\u202eevil');
    assert.ok(stored.user_agent!.length <= 512 && stored.user_agent!.startsWith('curl/8\\u001b[1A'));
  });

  it('through the SDK: a reporter escapes what it relays, and counts a refused record without retrying', async () => {
    const errors: Error[] = [];
    const usage = new UsageReporter({
      issuer: h.issuer,
      client: clients.reportsApi,
      flushIntervalMs: 3_600_000,
      onError: (e) => errors.push(e),
    });
    usage.record({
      jti: reportsJti,
      operation: 'GET /sdk',
      source: '10.0.0.7',
      userAgent: `agent${ESC}[31m\u2028two`,
      decision: 'allow',
    });
    usage.record({ jti: billingJti, operation: 'GET /sdk', source: '10.0.0.7', decision: 'allow' });
    // A denial of a token that did not verify names none: not sent at all.
    usage.record({
      jti: '',
      operation: 'GET /sdk',
      source: '10.0.0.7',
      decision: 'deny',
      reason: 'bad_signature',
    });
    await usage.flush();
    assert.deepEqual(usage.stats(), { buffered: 0, dropped: 0, sent: 1, refused: 1, failures: 0 });
    assert.match(errors[0]?.message ?? '', /1 of 2 records refused/);
    const stored = (await usesOf(reportsJti)).find((u) => u.operation === 'GET /sdk')!;
    assert.equal(stored.userAgent, 'agent\\u001b[31m\\u2028two');
    await usage.close();
  });

  /** A wrong_audience signal about `jti` (a token the reports verifier does not serve), proved by `sha`. */
  const wrongAudience = (jti: string, sha?: string, extra: Record<string, unknown> = {}) =>
    use(jti, {
      decision: 'deny',
      reason: 'aud',
      signal: 'wrong_audience',
      ...(sha ? { token_sha256: sha } : {}),
      operation: 'GET /wrong-audience',
      ...extra,
    });
  const otherSha = (token: string) => tokenFingerprint(`${token}x`);

  it("a wrong_audience signal with another token's SHA-256 is refused as an unknown token would be, and audited", async () => {
    await expectRefused(
      'reportsApi',
      REPORTS_API,
      [wrongAudience(billingJti, otherSha(billingToken))],
      'token_sha256',
      billingJti,
    );
    // The answer is the one for a jti Writ never issued: it tells nothing of which tokens exist.
    const forged = await report('reportsApi', [wrongAudience(billingJti, otherSha(billingToken))]);
    const madeUp = await report('reportsApi', [
      wrongAudience('AZPxwqS3Qm9sZXR0ZQCCCC', otherSha(billingToken)),
    ]);
    assert.equal(forged.status, 400);
    assert.deepEqual(forged.body, madeUp.body);
    assert.equal((await lastEvent('usage.refused')).data['reason'], 'unknown_token');
  });

  it('a wrong_audience signal without a SHA-256 is refused as malformed (a jti alone proves nothing)', async () => {
    const r = await report('reportsApi', [wrongAudience(billingJti)]);
    assert.equal(r.status, 400);
    assert.match(
      String(r.body['error_description']),
      /records\.0\.token_sha256: a wrong_audience signal proves/,
    );
    assert.equal((await lastEvent('usage.refused')).data['reason'], 'malformed_report');
    assert.deepEqual(await usesOf(billingJti), []);
  });

  it('a use of a served token with a SHA-256 that is not its own is refused too; with its own, taken', async () => {
    const reportsSha = tokenFingerprint(reportsToken);
    const r = await report('reportsApi', [
      use(reportsJti, { operation: 'GET /sha-wrong', token_sha256: otherSha(reportsToken) }),
      use(reportsJti, { operation: 'GET /sha-right', token_sha256: reportsSha }),
    ]);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(
      (r.body['refused'] as Array<Record<string, unknown>>).map((x) => x['index']),
      [0],
    );
    assert.deepEqual((await lastEvent('usage.reported')).data['refusals'], { token_sha256: 1 });
    const ops = (await usesOf(reportsJti)).map((u) => u.operation);
    assert.ok(ops.includes('GET /sha-right') && !ops.includes('GET /sha-wrong'));
  });

  it("with the token's SHA-256, a wrong_audience signal is taken under the token's own workload", async () => {
    const r = await report('reportsApi', [wrongAudience(billingJti, tokenFingerprint(billingToken))]);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const [stored] = await usesOf(billingJti);
    assert.equal(stored?.sub, OTHER_WORKLOAD);
    assert.equal(stored?.reporter, REPORTS_API);
    assert.equal(stored?.reason, 'aud');
    assert.deepEqual((await lastEvent('usage.reported')).data['signals'], { wrong_audience: 1 });
  });

  it('a signal on an allowed use, or one Writ does not know, is refused as malformed', async () => {
    for (const [record, description] of [
      [
        use(reportsJti, { signal: 'revoked' }),
        /^no record of the report was taken: records\.0\.signal: only a denied use carries a signal/,
      ],
      [
        use(reportsJti, { decision: 'deny', reason: 'revoked', signal: 'framed' }),
        /^no record of the report was taken: records\.0\.signal: must be one of dpop_replay, /,
      ],
    ] as const) {
      const refusals = (await h.auditEvents('usage.refused')).length;
      const r = await report('reportsApi', [record]);
      assert.equal(r.status, 400);
      assert.match(String(r.body['error_description']), description);
      const refused = (await h.auditEvents('usage.refused')).slice(refusals);
      assert.equal(refused.length, 1);
      assert.equal(refused[0]!.data['reason'], 'malformed_report');
    }
  });

  it('a record naming no token is refused unless it is a stale signal, which is about the reporter itself', async () => {
    const noToken = use('', { decision: 'deny', reason: 'revoked', signal: 'revoked' });
    const r = await report('rogue', [noToken]);
    assert.equal(r.status, 400);
    assert.match(String(r.body['error_description']), /records\.0\.jti: a record names its token/);
    const stale = await report('rogue', [use('', { decision: 'deny', reason: 'stale', signal: 'stale' })]);
    assert.equal(stale.status, 202, JSON.stringify(stale.body));
    const event = await lastEvent('usage.reported');
    assert.equal(event.actor, ROGUE, 'about the reporter, and only it');
    assert.deepEqual(event.data['signals'], { stale: 1 });
    assert.equal(event.data['aggregates'], 0);
  });

  it('a record with a field claiming another verifier (reporter, verifier) is refused and audited: the schema is strict', async () => {
    for (const extra of [{ reporter: BILLING_API }, { verifier: BILLING_API }, { client_id: BILLING_API }]) {
      await expectRefused(
        'reportsApi',
        REPORTS_API,
        [use(reportsJti, { ...extra, operation: 'GET /claimed' })],
        'malformed_report',
        '-',
      );
      assert.ok(!(await usesOf(reportsJti)).some((u) => u.operation === 'GET /claimed'));
    }
  });

  it('an oversized record is refused; an oversized report, or one with too many records, is refused whole', async () => {
    const big = await report('reportsApi', [use(reportsJti, { operation: `GET /${'a'.repeat(9000)}` })]);
    assert.equal(big.status, 400);
    assert.match(String(big.body['error_description']), /records\.0\.operation/);
    assert.equal((await lastEvent('usage.refused')).data['reason'], 'malformed_report');

    const limit = h.settings.usage.bodyBytes;
    const records = Array.from({ length: Math.ceil(limit / 1000) }, () =>
      use(reportsJti, { operation: 'GET /huge', user_agent: 'u'.repeat(1000) }),
    );
    const httpRefusals = (await h.auditEvents('http.refused')).length;
    const huge = await report('reportsApi', records);
    assert.equal(huge.status, 413);
    const refused = (await h.auditEvents('http.refused')).slice(httpRefusals);
    assert.deepEqual(
      refused.map((e) => e.data['reason']),
      ['body_too_large'],
    );

    const many = Array.from({ length: h.settings.usage.batchRecords + 1 }, () =>
      use(reportsJti, { operation: 'GET /many' }),
    );
    const tooMany = await report('reportsApi', many);
    assert.equal(tooMany.status, 400);
    assert.equal((await lastEvent('usage.refused')).data['reason'], 'too_many');
    assert.ok(!(await usesOf(reportsJti)).some((u) => ['GET /huge', 'GET /many'].includes(u.operation)));
  });
});

/** The code points of `text` that a terminal would obey rather than show (C0, DEL, C1, separators, bidi). */
function controlCharacters(text: string): number[] {
  return [...text]
    .map((c) => c.codePointAt(0)!)
    .filter(
      (n) =>
        n < 0x20 || (n >= 0x7f && n <= 0x9f) || (n >= 0x2028 && n <= 0x202e) || (n >= 0x2066 && n <= 0x2069),
    );
}
