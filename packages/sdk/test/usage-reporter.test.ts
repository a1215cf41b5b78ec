import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { SIGNAL_WAIT_MS, UsageReporter } from '../src/verifier/usage.js';

// The reporter's side of security signals: a record carrying one is sent on the next turn, with whatever
// else is buffered, instead of waiting for the interval; the wire record holds what the server checks.
// Against a real server (and a real verifier): packages/server/test/usage.test.ts.

const ISSUER = 'https://writ.example';
const SHA = 'q'.repeat(43);

/** A client whose reports are answered 202 and handed to whoever waits for the next one. */
function reportingClient() {
  const reports: Array<{ records: Array<Record<string, unknown>>; dropped: number }> = [];
  const waiting: Array<() => void> = [];
  return {
    reports,
    next: () => new Promise<void>((resolve) => waiting.push(resolve)),
    client: {
      fetch: async (_url: string, init: RequestInit & { audience: string }) => {
        reports.push(JSON.parse(String(init.body)));
        for (const w of waiting.splice(0)) w();
        return new Response('{"accepted":1,"aggregates":1,"refused":[]}', { status: 202 });
      },
    },
  };
}

const use = { operation: 'GET /reports/:id', source: '10.0.0.1' };

/** One turn of the event loop: whatever a resolved report set going has happened by then. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('UsageReporter: one report at a time', () => {
  it('sends what is buffered, not each use recorded while the report was on its way (no reports back to back)', async () => {
    const r = reportingClient();
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const client = {
      fetch: async (url: string, init: RequestInit & { audience: string }) => {
        const res = await r.client.fetch(url, init);
        await held;
        return res;
      },
    };
    const usage = new UsageReporter({ issuer: ISSUER, client, batchSize: 2, flushIntervalMs: 3_600_000 });
    const sent = r.next();
    // A full batch goes at once; a use recorded while it is on its way waits for the next interval.
    usage.record({ jti: 'j1', ...use, decision: 'allow' });
    usage.record({ jti: 'j2', ...use, decision: 'allow' });
    await sent;
    usage.record({ jti: 'j3', ...use, decision: 'allow' });
    release();
    await turn();
    await turn();
    assert.equal(r.reports.length, 1, 'no second report right behind the first');
    assert.equal(usage.stats().buffered, 1);
    assert.equal((await usage.close()).sent, 3);
    assert.deepEqual(
      r.reports.map((x) => x.records.map((y) => y['jti'])),
      [['j1', 'j2'], ['j3']],
    );
  });

  it('a flood of refusals with signals is one report per signal wait, not one per refusal', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
    try {
      const r = reportingClient();
      const usage = new UsageReporter({ issuer: ISSUER, client: r.client, flushIntervalMs: 3_600_000 });
      const signal = (jti: string) =>
        usage.record({ jti, ...use, decision: 'deny', reason: 'revoked', signal: 'revoked' });
      for (let i = 0; i < 5; i++) {
        signal(`j${i}`);
        await turn();
      }
      assert.equal(r.reports.length, 0, 'the signals wait a moment for one another');
      const sent = r.next();
      mock.timers.tick(SIGNAL_WAIT_MS);
      await sent;
      assert.deepEqual(
        r.reports.map((x) => x.records.length),
        [5],
      );
      await usage.close();
    } finally {
      mock.timers.reset();
    }
  });
});

describe('UsageReporter: security signals', () => {
  it('refuses a flush interval under 100 ms or not finite, naming the setting', async () => {
    const { client } = reportingClient();
    for (const flushIntervalMs of [99, 0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      assert.throws(
        () => new UsageReporter({ issuer: ISSUER, client, flushIntervalMs }),
        (err: unknown) => err instanceof RangeError && /flushIntervalMs must be .*≥ 100/.test(err.message),
      );
    await new UsageReporter({ issuer: ISSUER, client, flushIntervalMs: 100 }).close();
  });

  it('sends a burst of signals at once, in one report with what was buffered, without waiting for the interval', async () => {
    const r = reportingClient();
    const usage = new UsageReporter({ issuer: ISSUER, client: r.client, flushIntervalMs: 3_600_000 });
    const sent = r.next();
    usage.record({ jti: 'j0', ...use, decision: 'allow' });
    usage.record({
      jti: 'j1',
      ...use,
      decision: 'deny',
      reason: 'revoked',
      signal: 'revoked',
      tokenSha256: SHA,
    });
    usage.record({ jti: 'j2', ...use, decision: 'deny', reason: 'dpop_jkt', signal: 'key_mismatch' });
    await sent;
    assert.equal(r.reports.length, 1, 'one report for the burst');
    const records = r.reports[0]!.records;
    assert.deepEqual(
      records.map((x) => [x['jti'], x['signal'], x['token_sha256']]),
      [
        ['j0', undefined, undefined],
        ['j1', 'revoked', SHA],
        ['j2', 'key_mismatch', undefined],
      ],
    );
    assert.deepEqual((await usage.close()).sent, 3);
  });

  it('sends a stale signal without a jti; drops a signal on an allowed use and a malformed token hash', async () => {
    const r = reportingClient();
    const usage = new UsageReporter({ issuer: ISSUER, client: r.client, flushIntervalMs: 3_600_000 });
    // No token and no signal: not reported (the server takes only uses of tokens it issued).
    usage.record({ jti: '', ...use, decision: 'deny', reason: 'bad_signature' });
    usage.record({ jti: '', ...use, decision: 'deny', reason: 'revoked', signal: 'revoked' });
    assert.equal(usage.stats().buffered, 0);
    usage.record({ jti: 'j1', ...use, decision: 'allow', signal: 'expired', tokenSha256: 'short' });
    const sent = r.next();
    usage.record({ jti: '', ...use, decision: 'deny', reason: 'stale', signal: 'stale' });
    await sent;
    assert.deepEqual(
      r.reports[0]!.records.map((x) => [x['jti'], x['decision'], x['signal'], x['token_sha256']]),
      [
        ['j1', 'allow', undefined, undefined],
        ['', 'deny', 'stale', undefined],
      ],
    );
    await usage.close();
  });
});
