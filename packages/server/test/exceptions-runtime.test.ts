import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { EventType } from '@writ/sdk/wire';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { fakeClock } from '../src/clock.js';
import type { RawDocument } from '../src/config/config-dir.js';
import { sweepGovernance } from '../src/governance/sweeper.js';
import { AUDIENCE, type Harness, OTHER_AUDIENCE, OTHER_WORKLOAD, startHarness } from './helpers/harness.js';
import { expectRefusal } from './helpers/refusals.js';
import { type PushReceiver, startPushReceiver } from './helpers/ssf-receiver.js';

const CRON = 'spiffe://test.writ/vendor/cron';
const SECRET = 'vendor-secret-0123456789abcdef';
const ID = 'vendor-cron-secret';
const DAY = 86_400_000;
const START = Date.UTC(2026, 0, 1);
const END = Date.parse('2026-01-20T23:59:59.999Z');

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const doc = (kind: RawDocument['kind'], d: unknown): RawDocument => ({
  kind,
  file: `x-${kind}.yaml`,
  index: 0,
  doc: d,
});

describe('the exceptions registry at runtime: expiry enforced, alert, renew, retire', () => {
  const clock = fakeClock(START);
  let h: Harness;
  const token = () =>
    h.post(
      '/oauth2/token',
      { grant_type: 'client_credentials', resource: AUDIENCE },
      { authorization: basic(CRON, SECRET) },
    );
  before(async () => {
    h = await startHarness({
      clock,
      extraDocs: [
        doc('class', {
          name: 'vendor-cron',
          binding: 'bearer',
          max_ttl: '5m',
          audiences: [AUDIENCE],
          scopes: ['reports:read'],
          default_scopes: ['reports:read'],
        }),
        doc('exception', {
          id: ID,
          covers: { kind: 'legacy_client_secret', class: 'vendor-cron', workloads: [CRON] },
          owner: 'team-vendor',
          justification: 'the vendor cron cannot sign JWTs',
          controls: { source_networks: ['10.0.0.0/8'] },
          expires: '2026-01-20',
        }),
        doc('workload', {
          id: CRON,
          owner: 'team-vendor',
          environment: 'prod',
          classes: ['vendor-cron'],
          client_secret_sha256: createHash('sha256').update(SECRET).digest('hex'),
        }),
      ],
    });
  });
  after(() => h.close());

  it('while the exception holds, the secret gets a token, audited with the exception id', async () => {
    const r = await token();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [issued] = (await h.auditEvents('token.issued')).slice(-1);
    assert.equal(issued?.data['exception'], ID);
    const list = await h.admin('GET', '/exceptions');
    const shown = (list.body['exceptions'] as Array<Record<string, unknown>>).find((e) => e['id'] === ID);
    assert.equal(shown?.['status'], 'active');
    assert.equal(shown?.['expires'], '2026-01-20T23:59:59.999Z');
  });

  it('alerts the owner once when the exception enters its alert window (event, audit), not before', async () => {
    await sweepGovernance(h.writ.ctx);
    assert.equal((await h.auditEvents('exception.expiring')).length, 0, '19 days ahead: no alert yet');
    clock.set(END - 14 * DAY);
    await sweepGovernance(h.writ.ctx);
    await sweepGovernance(h.writ.ctx);
    const alerts = await h.auditEvents('exception.expiring');
    assert.equal(alerts.length, 1, 'one alert per end, however many sweeps');
    assert.equal(alerts[0]?.actor, 'system');
    assert.equal(alerts[0]?.data['owner'], 'team-vendor');
    assert.equal(alerts[0]?.data['expires_at'], END);
    const logged = await h.store.readEvents(0, 10_000);
    const event = logged.filter((e) => e.type === EventType.exceptionChanged).at(-1);
    assert.deepEqual(event?.data, { id: ID, change: 'expiring', expires_at: END, owner: 'team-vendor' });
    assert.equal((await h.admin('GET', `/exceptions/${ID}`)).body['status'], 'expiring');
  });

  it('once expired, the right secret is refused with an error naming the exception and its end; audited', async () => {
    clock.set(END + 1);
    const { event } = await expectRefusal(h, token, {
      status: 400,
      error: 'unauthorized_client',
      reason: 'exception_expired',
      description:
        /exception "vendor-cron-secret" \(legacy client secret for class vendor-cron, owner team-vendor\) expired at 2026-01-20T23:59:59\.999Z; an operator renews it \(writ exceptions renew vendor-cron-secret/,
    });
    assert.equal(event.data['exception'], ID);
    assert.equal(event.data['expired_at'], END);
  });

  it('a renewal by an operator lets the secret through again, audited with the operator as actor', async () => {
    const bad = await h.admin('POST', `/exceptions/${ID}/renew`, { until: '2025-12-01', note: 'oops' });
    assert.equal(bad.status, 400, 'an end in the past is refused');
    const far = await h.admin('POST', `/exceptions/${ID}/renew`, { until: '2028-01-01', note: 'far' });
    assert.equal(far.status, 400, 'more than a year ahead is refused');
    assert.equal(
      (await h.admin('POST', '/exceptions/nope/renew', { until: '2026-03-01', note: 'x' })).status,
      404,
    );
    const r = await h.admin('POST', `/exceptions/${ID}/renew`, {
      until: '2026-03-01',
      note: 'vendor slipped',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['status'], 'active');
    assert.equal(r.body['expires'], '2026-03-01T23:59:59.999Z');
    const [renewed] = await h.auditEvents('exception.renewed');
    assert.equal(renewed?.actor, 'operator:ops');
    assert.equal(renewed?.subject, ID);
    assert.equal(renewed?.data['previous_expires_at'], END);
    assert.equal(renewed?.data['note'], 'vendor slipped');
    const ok = await token();
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });

  it('a retired exception refuses its credential at once, cannot be renewed, and is audited', async () => {
    const r = await h.admin('POST', `/exceptions/${ID}/retire`, { note: 'moved to private_key_jwt' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['status'], 'retired');
    const [retired] = await h.auditEvents('exception.retired');
    assert.equal(retired?.actor, 'operator:ops');
    await expectRefusal(h, token, {
      status: 400,
      error: 'unauthorized_client',
      reason: 'exception_retired',
      description: /exception "vendor-cron-secret" .* was retired at /,
    });
    const again = await h.admin('POST', `/exceptions/${ID}/renew`, { until: '2026-03-01', note: 'undo' });
    assert.equal(again.status, 400);
    assert.match(String(again.body['error_description']), /retired .* cannot be renewed/);
  });
});

describe('a bearer class under an exception issues only while the exception holds', () => {
  const clock = fakeClock(START);
  let h: Harness;
  before(async () => {
    h = await startHarness({
      clock,
      extraDocs: [
        doc('exception', {
          id: 'reports-bearer',
          covers: { kind: 'bearer_class', class: 'reports-read' },
          owner: 'team-reports',
          justification: 'the reports partner cannot do DPoP yet',
          expires: '2026-01-20',
        }),
      ],
    });
  });
  after(() => h.close());

  it('issues under the exception (audited with it), refuses once it expired, issues again once renewed', async () => {
    const ok = await h.requestToken();
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal((await h.auditEvents('token.issued')).at(-1)?.data['exception'], 'reports-bearer');
    clock.set(END + 1);
    const { event } = await expectRefusal(h, () => h.requestToken(), {
      status: 400,
      error: 'unauthorized_client',
      reason: 'exception_expired',
      description:
        /class reports-read issues bearer tokens under exception "reports-bearer" \(owner team-reports\), which expired at 2026-01-20T23:59:59\.999Z/,
    });
    assert.equal(event.data['exception'], 'reports-bearer');
    const r = await h.admin('POST', '/exceptions/reports-bearer/renew', {
      until: '2026-02-15',
      note: 'one more month',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const again = await h.requestToken();
    assert.equal(again.status, 200, JSON.stringify(again.body));
    // The other bearer class, which no exception names, is the governance rules' business: it issues.
    const other = await h.requestToken(
      { resource: OTHER_AUDIENCE, scope: 'billing:write' },
      { clientId: OTHER_WORKLOAD, key: h.otherKey },
    );
    assert.equal(other.status, 200, JSON.stringify(other.body));
  });
});

describe('an expiry alert reaches the owner through the signed findings webhook', () => {
  let receiver: PushReceiver;
  let h: Harness;
  let origin: string;
  before(async () => {
    receiver = await startPushReceiver();
    origin = new URL(receiver.url).origin;
    h = await startHarness({
      clock: fakeClock(START),
      settings: {
        'detection.webhook_url': `${origin}/hooks/owners`,
        'detection.webhook_origins': [origin],
        'ssf.push_allow_addresses': ['127.0.0.1'],
      },
      extraDocs: [
        doc('exception', {
          id: 'reports-bearer',
          covers: { kind: 'bearer_class', class: 'reports-read' },
          owner: 'team-reports',
          justification: 'the reports partner cannot do DPoP yet',
          expires: '2026-01-10',
        }),
      ],
    });
  });
  after(async () => {
    await h.close();
    await receiver.close();
  });

  it('one JWS signed by the server key, naming the exception, its owner and its end', async () => {
    await sweepGovernance(h.writ.ctx);
    await sweepGovernance(h.writ.ctx);
    await h.writ.ctx.detection.webhook!.settled();
    assert.equal(receiver.received.length, 1, 'one alert per end');
    const jwks = createLocalJWKSet(h.writ.ctx.keys.publicJwks() as Parameters<typeof createLocalJWKSet>[0]);
    const { payload } = await jwtVerify(receiver.received[0]!.set, jwks, {
      issuer: h.issuer,
      audience: origin,
    });
    const end = Date.parse('2026-01-10T23:59:59.999Z');
    assert.equal(payload.jti, `exception-reports-bearer-${end}`);
    assert.deepEqual(payload['exception'], {
      id: 'reports-bearer',
      kind: 'bearer_class',
      owner: 'team-reports',
      status: 'expiring',
      expires_at: Math.floor(end / 1000),
      days_left: 10,
    });
  });
});
