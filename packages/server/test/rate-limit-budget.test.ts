import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GrantType, TokenType } from '@writ/sdk/wire';
import { writeRefusalSummaries } from '../src/audit/refusal.js';
import { RefusalTally } from '../src/audit/refusal-tally.js';
import { fakeClock } from '../src/clock.js';
import { sourceKey } from '../src/rate-limit/source.js';
import { classDoc, clientAuth, workloadDoc } from './helpers/dpop.js';
import { AUDIENCE, type Harness, type Reply, startHarness, testKey } from './helpers/harness.js';

/**
 * Rate limits written as an attacker tries them: one budget per client across every endpoint (a
 * client limited at the token endpoint gets nothing more by exchanging, introspecting, revoking,
 * opening streams or tasks), and one budget of refusals per source address, whose flood of garbage
 * leaves a bounded number of audit rows that still carry the count.
 */

const CALLER = 'spiffe://test.writ/edge/limited';
const ISSUER = 'http://127.0.0.1:8080';

async function inject(
  h: Harness,
  o: {
    method: 'GET' | 'POST';
    url: string;
    authorization?: string;
    form?: Record<string, string>;
    json?: unknown;
    remoteAddress?: string;
  },
): Promise<Reply> {
  const res = await h.writ.app.inject({
    method: o.method,
    url: o.url,
    ...(o.remoteAddress ? { remoteAddress: o.remoteAddress } : {}),
    headers: {
      ...(o.authorization ? { authorization: o.authorization } : {}),
      ...(o.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      ...(o.json !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(o.form ? { payload: new URLSearchParams(o.form).toString() } : {}),
    ...(o.json !== undefined ? { payload: JSON.stringify(o.json) } : {}),
  });
  return {
    status: res.statusCode,
    body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {},
    headers: res.headers,
  };
}

const lastSeq = async (h: Harness) => (await h.store.queryAudit({ limit: 1, order: 'desc' }))[0]?.seq ?? 0;

describe('one budget per client across every endpoint', () => {
  const clock = fakeClock(Date.UTC(2026, 7, 3, 8));
  const key = testKey();
  let h: Harness;
  const audiences = [AUDIENCE, `${ISSUER}/v1/events`, `${ISSUER}/v1/usage`];

  before(async () => {
    h = await startHarness({
      clock,
      settings: { issuer: ISSUER, 'limits.client_rate': 1, 'limits.client_burst': 5 },
      extraDocs: [
        classDoc({ name: 'limited', audiences, scopes: ['x'], default_scopes: ['x'], binding: 'bearer' }),
        workloadDoc(CALLER, key, ['limited']),
      ],
    });
  });
  after(() => h.close());

  const auth = () => clientAuth(h, CALLER, key);
  const tokenFor = (resource: string) =>
    inject(h, {
      method: 'POST',
      url: '/oauth2/token',
      form: { grant_type: GrantType.clientCredentials, resource, ...auth() },
    });

  it('after the budget is used at the token endpoint, exchange, introspection, revocation, streams, usage and tasks are 429 and audited; closing a task is not', async () => {
    // Five requests: the whole burst, spent on what the attacker wants to use afterwards.
    const events = (await tokenFor(`${ISSUER}/v1/events`)).body['access_token'] as string;
    const usage = (await tokenFor(`${ISSUER}/v1/usage`)).body['access_token'] as string;
    const subject = (await tokenFor(AUDIENCE)).body['access_token'] as string;
    const task = await inject(h, { method: 'POST', url: '/v1/tasks', form: { ...auth(), purpose: 'work' } });
    assert.equal(task.status, 201, JSON.stringify(task.body));
    assert.equal((await tokenFor(AUDIENCE)).status, 200, 'the fifth request is the last of the burst');
    assert.equal((await tokenFor(AUDIENCE)).status, 429, 'the token endpoint is limited');

    const taskId = String(task.body['id']);
    // `repeat`: the second refusal of its kind (type, client, reason) in this window, counted for the
    // window's summary row instead of a row of its own.
    const attempts: { name: string; event: string; repeat?: boolean; send: () => Promise<Reply> }[] = [
      {
        name: 'token exchange',
        event: 'token.refused',
        repeat: true,
        send: () =>
          inject(h, {
            method: 'POST',
            url: '/oauth2/token',
            form: {
              grant_type: GrantType.tokenExchange,
              subject_token: subject,
              subject_token_type: TokenType.accessToken,
              ...auth(),
            },
          }),
      },
      {
        name: 'introspection',
        event: 'introspection.refused',
        send: () =>
          inject(h, { method: 'POST', url: '/oauth2/introspect', form: { token: subject, ...auth() } }),
      },
      {
        name: 'revocation',
        event: 'revocation.refused',
        send: () => inject(h, { method: 'POST', url: '/oauth2/revoke', form: { token: subject, ...auth() } }),
      },
      {
        name: 'event stream open',
        event: 'events.refused',
        send: () => inject(h, { method: 'GET', url: '/v1/events', authorization: `Bearer ${events}` }),
      },
      {
        name: 'usage report',
        event: 'usage.refused',
        send: () =>
          inject(h, {
            method: 'POST',
            url: '/v1/usage',
            authorization: `Bearer ${usage}`,
            json: { records: [] },
          }),
      },
      {
        name: 'task open',
        event: 'task.refused',
        send: () => inject(h, { method: 'POST', url: '/v1/tasks', form: { ...auth(), purpose: 'more' } }),
      },
      {
        name: 'task heartbeat',
        event: 'task.refused',
        repeat: true,
        send: () => inject(h, { method: 'POST', url: `/v1/tasks/${taskId}/heartbeat`, form: auth() }),
      },
    ];
    const issuedBefore = await h.countRows('tokens');
    const revocationsBefore = await h.countRows('revocations');
    for (const a of attempts) {
      const since = await lastSeq(h);
      const r = await a.send();
      assert.equal(r.status, 429, `${a.name}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body['error'], 'temporarily_unavailable', a.name);
      assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/, `${a.name}: Retry-After`);
      const rows = await h.store.queryAudit({ afterSeq: since, limit: 100 });
      const refused = rows.filter((e) => e.type === a.event && e.data['reason'] === 'rate_limited');
      if (a.repeat) assert.equal(refused.length, 0, `${a.name}: counted for the summary`);
      else assert.equal(refused.length, 1, `${a.name}: audited once`);
      for (const e of refused) assert.equal(e.actor, CALLER, `${a.name}: the authenticated client`);
    }
    assert.equal(await h.countRows('tokens'), issuedBefore, 'nothing issued past the budget');
    assert.equal(await h.countRows('revocations'), revocationsBefore, 'nothing revoked');

    // Closing its task is never limited: a client over its budget can still end its work.
    const closed = await inject(h, { method: 'POST', url: `/v1/tasks/${taskId}/close`, form: auth() });
    assert.equal(closed.status, 200, JSON.stringify(closed.body));

    // The window ends: the repeats are written as one summary row per kind, with their count.
    clock.advance(h.settings.audit.refusalWindow * 1000);
    const since = await lastSeq(h);
    await writeRefusalSummaries(h.writ.ctx);
    const summaries = await h.store.queryAudit({ afterSeq: since, limit: 100 });
    const tasks = summaries.find((e) => e.type === 'task.refused');
    assert.equal(tasks?.data['count'], 1, 'the heartbeat refusal, counted');
    assert.equal(tasks?.actor, CALLER);
    const tokens = summaries.find((e) => e.type === 'token.refused');
    assert.equal(tokens?.data['count'], 1, 'the exchange after the first token.refused');

    // The budget refills with time (one a second) for every endpoint alike.
    const again = await inject(h, {
      method: 'POST',
      url: '/oauth2/introspect',
      form: { token: subject, ...auth() },
    });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body['active'], true);
  });
});

describe('a flood of garbage from one address', () => {
  const clock = fakeClock(Date.UTC(2026, 7, 3, 9));
  let h: Harness;
  const ATTACKER = '203.0.113.7';
  before(async () => {
    h = await startHarness({ clock, settings: { issuer: ISSUER } });
  });
  after(() => h.close());

  it('1,000 garbage requests leave a bounded number of audit rows that carry the count; past its budget the address gets 429, but a valid signed credential from it still passes', async () => {
    const since = await lastSeq(h);
    const garbage = [
      () =>
        inject(h, {
          method: 'POST',
          url: '/oauth2/token',
          remoteAddress: ATTACKER,
          form: { grant_type: GrantType.clientCredentials, client_id: `spiffe://x/${Math.random()}` },
        }),
      () => inject(h, { method: 'GET', url: `/no/such/${Math.random()}`, remoteAddress: ATTACKER }),
      () =>
        inject(h, {
          method: 'GET',
          url: '/admin/v1/workloads',
          remoteAddress: ATTACKER,
          authorization: 'Bearer x.y.z',
        }),
      () => inject(h, { method: 'GET', url: '/v1/events', remoteAddress: ATTACKER }),
    ];
    const statuses = new Map<number, number>();
    for (let i = 0; i < 1000; i++) {
      const r = await garbage[i % garbage.length]!();
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 429) assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
    }
    const burst = h.settings.limits.sourceBurst;
    assert.equal(statuses.get(429), 1000 - burst, `past the burst every request is 429: ${[...statuses]}`);

    // A well-behaved client behind the same address (a NAT, a proxy) still gets its token: a signed
    // assertion cannot be guessed, so it is checked whatever the address's budget says.
    const valid = await inject(h, {
      method: 'POST',
      url: '/oauth2/token',
      remoteAddress: ATTACKER,
      form: {
        grant_type: GrantType.clientCredentials,
        client_id: 'spiffe://test.writ/reports/exporter',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: h.assertion(),
        resource: AUDIENCE,
      },
    });
    assert.equal(valid.status, 200, JSON.stringify(valid.body));
    // A guessable legacy secret from that address is not looked at until the budget refills.
    const guess = await inject(h, {
      method: 'POST',
      url: '/oauth2/token',
      remoteAddress: ATTACKER,
      form: {
        grant_type: GrantType.clientCredentials,
        client_id: 'spiffe://test.writ/legacy/cron',
        client_secret: 'legacy-secret-0123456789abcdef',
        resource: AUDIENCE,
      },
    });
    assert.equal(guess.status, 429);
    // Another address is not affected.
    assert.equal((await h.requestToken()).status, 200);

    const fromAttacker = async () =>
      (await h.store.queryAudit({ afterSeq: since, limit: 100_000 })).filter(
        (e) => e.data['ip'] === ATTACKER && e.type.endsWith('.refused'),
      );
    const written = await fromAttacker();
    assert.ok(
      written.length <= 2 * garbage.length + 1,
      `one row per kind, not per request: ${written.length}`,
    );

    clock.advance(h.settings.audit.refusalWindow * 1000);
    await writeRefusalSummaries(h.writ.ctx);
    const rows = await fromAttacker();
    assert.ok(rows.length <= 4 * garbage.length + 2, `bounded: ${rows.length} rows`);
    const counted = rows.reduce((n, e) => n + (typeof e.data['count'] === 'number' ? e.data['count'] : 1), 0);
    assert.equal(counted, 1001, 'every refusal is in the audit log, as a row or in a count');
    for (const e of rows.filter((r) => r.data['count'] !== undefined)) {
      assert.equal(e.actor, 'anonymous');
      assert.ok((e.data['first'] as number) <= (e.data['last'] as number));
    }
  });
});

describe('what the flood control counts by', () => {
  it('an IPv6 host counts by its /64; an IPv4-mapped address as IPv4', () => {
    assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), sourceKey('2001:db8:1:2:bbbb:cccc:dddd:2'));
    assert.notEqual(sourceKey('2001:db8:1:2::1'), sourceKey('2001:db8:1:3::1'));
    assert.equal(sourceKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(sourceKey('192.0.2.1'), '192.0.2.1');
  });

  it('a tally stays bounded when every refusal is a new kind, and loses no count', () => {
    const tally = new RefusalTally(60_000, 10);
    let written = 0;
    for (let i = 0; i < 1000; i++)
      if (
        tally.count(
          {
            type: 'http.refused',
            who: `198.51.100.${i}`,
            actor: 'anonymous',
            error: 'e',
            reason: 'r',
            status: 400,
          },
          i,
        )
      )
        written++;
    assert.equal(written, 10, 'past its size new kinds share one overflow kind');
    const summaries = tally.due(60_000 + 1000);
    assert.equal(summaries.length, 1);
    assert.equal(summaries[0]!.count, 990);
    assert.equal(summaries[0]!.reason, 'overflow');
    assert.deepEqual(tally.due(200_000, true), [], 'each summary is handed out once');
  });
});
