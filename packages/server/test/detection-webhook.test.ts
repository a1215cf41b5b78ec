import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import pino from 'pino';
import { resolveSettings } from '../src/config/settings.js';
import type { Signal } from '../src/detection/signal.js';
import { ConfigError } from '../src/errors.js';
import type { HostResolver } from '../src/net/resolver.js';
import { decodeClaims } from './helpers/dpop.js';
import { AUDIENCE, type Harness, startHarness, WORKLOAD } from './helpers/harness.js';
import { type PushReceiver, startPushReceiver, until } from './helpers/ssf-receiver.js';

// The optional findings webhook (`detection.webhook_url`): each finding POSTed as a JWS signed by the
// server's key, to an origin an operator listed, at an address the push rules allow, without ever
// holding up detection. The receivers are real HTTP servers on loopback (allowed, where a test allows
// it, by `ssf.push_allow_addresses`, as the Shared Signals tests allow theirs).

/** The path of a chat relay's webhook is often its secret: it must not reach errors or logs. */
const SECRET_PATH = '/hooks/T0001/SECRET-PATH-7f3a';

/** A service log the test reads. */
function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n'))
          if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );
  return { logger, lines };
}

/** A use of `token` as a verifier serving the API reports it, with a security signal. */
function signalled(h: Harness, token: string, signal: 'key_missing' | 'dpop_replay'): Signal<'usage'> {
  return {
    kind: 'usage',
    time: h.writ.ctx.clock.now(),
    data: {
      sub: WORKLOAD,
      jti: decodeClaims(token)['jti'] as string,
      tid: '',
      aud: AUDIENCE,
      reporter: 'spiffe://test.writ/reports/api',
      operation: 'GET /reports/:id',
      source: '203.0.113.9',
      network: '203.0.113.0/24',
      network_environment: '',
      user_agent: 'writ-sdk/1',
      user_agent_kind: 'tool',
      decision: 'deny',
      reason: signal === 'key_missing' ? 'dpop_bound_as_bearer' : 'dpop_replay',
      signal,
      token_revoked: false,
    },
  };
}

async function token(h: Harness): Promise<string> {
  const r = await h.requestToken();
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body['access_token'] as string;
}

/** Findings the webhook counted with `outcome` (`writ_detection_webhook_total`). */
async function counted(h: Harness, outcome: string): Promise<number> {
  const m = await h.writ.ctx.metrics.detectionWebhook.get();
  return m.values.find((v) => v.labels['outcome'] === outcome)?.value ?? 0;
}

/** Waits until every finding so far was recorded and its delivery ended, one way or another. */
async function settled(h: Harness): Promise<void> {
  await h.writ.ctx.detection.settled();
  await h.writ.ctx.detection.webhook!.settled();
}

describe('detection webhook: refused at start for an origin not listed', () => {
  const url = `https://hooks.example.com${SECRET_PATH}`;
  const refusal = (settings: Record<string, unknown>, file?: Record<string, unknown>) => {
    try {
      resolveSettings(file && { name: 'settings.yaml', values: file }, {}, settings);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.field, 'detection.webhook_url');
      assert.ok(!err.message.includes('SECRET'), `the URL's path is not repeated: ${err.message}`);
      return err.message;
    }
    return 'accepted';
  };

  it('names the setting and the origin, whichever origins are listed', () => {
    assert.match(
      refusal({ 'detection.webhook_url': url }),
      /^command line: detection\.webhook_url: its origin https:\/\/hooks\.example\.com is not listed in detection\.webhook_origins \(which lists none\)/,
    );
    for (const listed of [
      'https://chat.example.com',
      'http://hooks.example.com', // another scheme
      'https://hooks.example.com:8443', // another port
      'https://example.com', // the parent domain
    ])
      assert.match(
        refusal({ 'detection.webhook_url': url, 'detection.webhook_origins': [listed] }),
        /detection\.webhook_url: its origin https:\/\/hooks\.example\.com is not listed in detection\.webhook_origins: /,
        listed,
      );
    // From a settings file, the error names the file.
    assert.match(
      refusal({}, { detection: { webhook_url: url, webhook_origins: ['https://chat.example.com'] } }),
      /^settings\.yaml: detection\.webhook_url: its origin/,
    );
  });

  it('refuses what is no http(s) URL, or one with credentials or a fragment', () => {
    const origins = { 'detection.webhook_origins': ['https://hooks.example.com'] };
    for (const bad of [
      'hooks.example.com/x',
      'ftp://hooks.example.com/x',
      'https://user:pass@hooks.example.com/x',
      'https://hooks.example.com/x#frag',
    ])
      assert.notEqual(refusal({ 'detection.webhook_url': bad, ...origins }), 'accepted', bad);
    assert.equal(refusal({ 'detection.webhook_url': url, ...origins }), 'accepted');
    assert.equal(refusal({}), 'accepted', 'no webhook: nothing to check');
  });
});

describe('detection webhook: each finding POSTed as a signed JWS', () => {
  let receiver: PushReceiver;
  let h: Harness;
  let origin: string;

  before(async () => {
    receiver = await startPushReceiver();
    origin = new URL(receiver.url).origin;
    h = await startHarness({
      settings: {
        'detection.webhook_url': `${origin}${SECRET_PATH}`,
        'detection.webhook_origins': [origin],
        'ssf.push_allow_addresses': ['127.0.0.1'],
      },
    });
  });
  after(async () => {
    await h.close();
    await receiver.close();
  });

  it('a finding about a workload: its summary, signed by the server key, and no token in it', async () => {
    const t = await token(h);
    h.writ.ctx.detection.observe(signalled(h, t, 'key_missing'));
    await settled(h);
    assert.equal(receiver.received.length, 1);
    const [got] = receiver.received;
    assert.equal(got!.contentType, 'application/jose');
    assert.ok(!got!.set.includes(t.split('.')[2]!), 'the token is not in the finding');
    const jwks = createLocalJWKSet(h.writ.ctx.keys.publicJwks() as Parameters<typeof createLocalJWKSet>[0]);
    const { payload, protectedHeader } = await jwtVerify(got!.set, jwks, {
      issuer: h.issuer,
      audience: origin,
      typ: 'writ-finding+jwt',
    });
    assert.equal(protectedHeader.typ, 'writ-finding+jwt');
    const [stored] = await h.store.listFindings({ rule: 'bound-token-without-key', limit: 1 });
    assert.equal(payload.jti, stored!.id);
    assert.deepEqual(payload['finding'], {
      id: stored!.id,
      rule: 'bound-token-without-key',
      severity: 'critical',
      mode: 'enforce',
      workload: WORKLOAD,
      jti: decodeClaims(t)['jti'],
      signal: 'usage',
      source: '203.0.113.9',
      response: 'revoke_token',
      outcome: 'revoke_token',
      risk: 80,
      created_at: Math.floor(stored!.createdAt / 1000),
    });
    assert.equal(await counted(h, 'delivered'), 1);
  });

  it('a finding about a client only claimed says so, and names no workload', async () => {
    const claimed = 'spiffe://test.writ/nobody/knows';
    for (let i = 0; i < 20; i++)
      h.writ.ctx.detection.observeRefusal(claimed, 'unknown_client', '198.51.100.7');
    await settled(h);
    const last = receiver.received.at(-1)!;
    const finding = decodeClaims(last.set)['finding'] as Record<string, unknown>;
    assert.equal(finding['rule'], 'invalid-client-burst');
    assert.equal(finding['claimed_client_id'], claimed);
    assert.equal('workload' in finding, false);
    assert.equal(finding['outcome'], 'alert');
    assert.equal(finding['source'], '198.51.100.7');
  });
});

describe('detection webhook: addresses judged as push endpoints are, before every delivery', () => {
  let receiver: PushReceiver;
  let h: Harness;
  const log = capturedLog();

  before(async () => {
    receiver = await startPushReceiver();
    // The listed origin's name resolves inward (the DNS the test controls answers loopback), and no
    // address is allowed: nothing may be sent.
    const resolveHost: HostResolver = async (name) =>
      name === 'hooks.attacker.test' ? [{ address: '127.0.0.1', family: 4 }] : [];
    const origin = `http://hooks.attacker.test:${receiver.port}`;
    h = await startHarness({
      resolveHost,
      logger: log.logger,
      settings: {
        'detection.webhook_url': `${origin}${SECRET_PATH}`,
        'detection.webhook_origins': [origin],
      },
    });
  });
  after(async () => {
    await h.close();
    await receiver.close();
  });

  it('a listed origin whose name resolves to loopback is not connected to; the refusal is logged without the URL and counted', async () => {
    h.writ.ctx.detection.observe(signalled(h, await token(h), 'key_missing'));
    await settled(h);
    assert.equal(receiver.connections, 0, 'no connection made');
    assert.equal(await counted(h, 'refused'), 1);
    assert.equal(await counted(h, 'delivered'), 0);
    const line = log.lines.find((l) => String(l['msg']).startsWith('detection webhook: not sent'));
    assert.ok(line, 'the refusal is in the service log');
    assert.match(String(line['msg']), /resolves to 127\.0\.0\.1, which is loopback/);
    assert.equal(line['reason'], 'endpoint_address');
    assert.ok(!JSON.stringify(log.lines).includes('SECRET'), 'the URL’s path is in no log line');
    // The finding and its response stand, whatever became of the webhook.
    assert.equal((await h.store.listFindings({ rule: 'bound-token-without-key', limit: 5 })).length, 1);
    assert.equal((await h.store.listRevocations(0, 0, 10)).length, 1);
  });
});

describe('detection webhook: a relay that fails or hangs never holds up detection', () => {
  let receiver: PushReceiver;
  let h: Harness;
  const hung: ServerResponse[] = [];

  before(async () => {
    receiver = await startPushReceiver();
    const origin = new URL(receiver.url).origin;
    h = await startHarness({
      settings: {
        'detection.webhook_url': `${origin}${SECRET_PATH}`,
        'detection.webhook_origins': [origin],
        'ssf.push_allow_addresses': ['127.0.0.1'],
      },
    });
  });
  after(async () => {
    for (const res of hung) res.destroy();
    await h.close();
    await receiver.close();
  });

  it('findings are recorded and acted on while a delivery hangs; failures are counted', async () => {
    // The first delivery gets no answer until the test gives one; the next gets a 500.
    receiver.plan.push((res) => hung.push(res), 500);
    const first = await token(h);
    const second = await token(h);
    h.writ.ctx.detection.observe(signalled(h, first, 'key_missing'));
    await until('the first delivery to hang at the relay', () => hung.length === 1);
    h.writ.ctx.detection.observe(signalled(h, second, 'dpop_replay'));
    // Detection goes on: the second finding is recorded and acted on while the first delivery hangs.
    await until('the second finding', async () => {
      const findings = await h.store.listFindings({ workload: WORKLOAD, limit: 10 });
      return findings.filter((f) => f.outcome === 'revoke_token').length === 2;
    });
    assert.equal((await h.store.listRevocations(0, 0, 10)).length, 2);
    assert.equal(await counted(h, 'failed'), 0);
    hung[0]!.writeHead(503).end();
    await h.writ.ctx.detection.webhook!.settled();
    assert.equal(await counted(h, 'failed'), 2, 'the 503 and the 500');
    assert.equal(await counted(h, 'delivered'), 0);
    assert.equal(receiver.received.length, 2);
  });
});
