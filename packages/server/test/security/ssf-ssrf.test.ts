import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WorkloadClient } from '@writ/sdk/client';
import { resolveSettings } from '../../src/config/settings.js';
import { ConfigError } from '../../src/errors.js';
import { type HostResolver, systemResolver } from '../../src/net/resolver.js';
import type { SsfStream } from '../../src/ssf/stream-record.js';
import type { AdminSession } from '../helpers/admin-session.js';
import type { Harness } from '../helpers/harness.js';
import { testKey } from '../helpers/harness.js';
import { expectRefusal } from '../helpers/refusals.js';
import {
  listeningHarness,
  operatorCall,
  type PushReceiver,
  privateJwk,
  RECEIVER,
  receiverCall,
  receiverDocs,
  replyOf,
  STRANGER,
  startPushReceiver,
  until,
} from '../helpers/ssf-receiver.js';

// Shared Signals push as an attacker would use it for server-side request forgery: a receiver workload
// (anyone allowed the `<issuer>/ssf` audience), or an operator's stream pointed somewhere by mistake or
// by a name whose DNS the attacker controls, makes Writ POST, with an Authorization header the creator
// chose, to what only Writ's network position reaches: loopback services, cloud metadata, the private
// network. The "internal service" here is a real HTTP server on loopback that counts every connection.

const PUSH = 'urn:ietf:rfc:8935';
const PUBLIC = '93.184.216.34';

/**
 * A DNS the test controls, as an attacker controls their own zone: names in `zone` answer what it says
 * (a trailing dot is the same name, as in DNS), `localhost` is the system's, anything else does not exist.
 * `asked` lists every name looked up, in order.
 */
function attackerDns() {
  const zone = new Map<string, () => string[]>();
  const asked: string[] = [];
  const resolve: HostResolver = async (name) => {
    asked.push(name);
    const key = name.replace(/\.$/, '').toLowerCase();
    if (key === 'localhost') return systemResolver(name);
    const answer = zone.get(key);
    if (!answer) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return answer().map((address) => ({
      address,
      family: isIP(address) === 6 ? (6 as const) : (4 as const),
    }));
  };
  const set = (name: string, ...addresses: string[]) => zone.set(name, () => addresses);
  return { zone, asked, resolve, set };
}

const create = (endpoint_url: string, extra: Record<string, unknown> = {}) => ({
  delivery: { method: PUSH, endpoint_url, authorization_header: 'Bearer chosen-by-the-attacker' },
  ...extra,
});

/** A push stream as the store holds it, written there directly (as before these checks existed). */
async function storedStream(h: Harness, owner: string, endpointUrl: string): Promise<SsfStream> {
  const now = Date.now();
  const s: SsfStream = {
    id: randomBytes(16).toString('hex'),
    owner,
    aud: [owner],
    deliveryMethod: PUSH,
    endpointUrl,
    sealedAuthorization: null,
    eventsRequested: [],
    description: null,
    status: 'enabled',
    statusReason: null,
    fromSeq: (await h.store.eventBounds()).last,
    createdAt: now,
    updatedAt: now,
  };
  await h.store.putSsfStream(s);
  return s;
}

const pushRefusals = async (h: Harness, streamId: string) =>
  (await h.auditEvents('ssf.push.refused')).filter((e) => e.data['stream_id'] === streamId);

describe('SSF push SSRF: the defaults (no origins for receivers, no address allowed)', () => {
  const keys = [testKey(), testKey()];
  const dns = attackerDns();
  let h: Harness;
  let issuer: string;
  let internal: PushReceiver;
  let admin: AdminSession;
  let workload: WorkloadClient;
  let port: number;

  before(async () => {
    internal = await startPushReceiver();
    port = internal.port;
    ({ h, issuer } = await listeningHarness((i) => receiverDocs(i, keys), {}, { resolveHost: dns.resolve }));
    admin = await h.adminSession();
    workload = new WorkloadClient({ issuer, clientId: RECEIVER, privateJwk: privateJwk(keys[0]!) });
    // Its token now, so the refusals below issue nothing.
    await workload.token({ audience: `${issuer}/ssf` });
  });
  after(async () => {
    await h.close();
    await internal.close();
  });

  const asOperator = (method: string, path: string, body?: unknown) =>
    operatorCall(issuer, admin, method, path, body).then(replyOf);
  const asReceiver = (method: string, path: string, body?: unknown) =>
    receiverCall(issuer, workload, method, path, body).then(replyOf);

  /** Refused with `reason`, audited once, no stream stored or changed, nothing connected to. */
  async function refused(
    send: () => ReturnType<typeof asOperator>,
    expected: { status: number; error: string; reason: string },
  ) {
    const streams = JSON.stringify(await h.store.listSsfStreams());
    const { reply, event } = await expectRefusal(h, send, { ...expected, event: 'ssf.refused' });
    assert.equal(JSON.stringify(await h.store.listSsfStreams()), streams, 'no stream stored or changed');
    assert.equal(internal.connections, 0, 'nothing connected to the internal service');
    assert.doesNotMatch(
      JSON.stringify(event.data),
      /chosen-by-the-attacker/,
      'the credential is not audited',
    );
    return { reply, event };
  }

  it('a receiver workload cannot create a push stream to any endpoint: only operators may, by default', async () => {
    const looked = dns.asked.length;
    for (const url of [internal.url, 'https://siem.example.com/events', `https://[::1]:${port}/`]) {
      const { reply } = await refused(() => asReceiver('POST', '/ssf/stream', create(url)), {
        status: 403,
        error: 'access_denied',
        reason: 'push_origin',
      });
      assert.match(reply.body['error_description'] as string, /ssf\.push_origins lists no origin/);
    }
    assert.equal(dns.asked.length, looked, 'no name was even looked up for it');
  });

  it('a receiver workload cannot turn its poll stream into a push stream (PATCH or PUT)', async () => {
    const made = await asReceiver('POST', '/ssf/stream', {});
    assert.equal(made.status, 201);
    const stream_id = made.body['stream_id'] as string;
    for (const method of ['PATCH', 'PUT'])
      await refused(() => asReceiver(method, '/ssf/stream', { stream_id, ...create(internal.url) }), {
        status: 403,
        error: 'access_denied',
        reason: 'push_origin',
      });
    assert.equal((await h.store.getSsfStream(stream_id))!.deliveryMethod, 'urn:ietf:rfc:8936');
  });

  it('an operator cannot point a push stream at loopback, in any spelling', async () => {
    dns.set('loop.attacker.test', '127.0.0.1');
    dns.set('mapped.attacker.test', '::ffff:127.0.0.1');
    for (const url of [
      internal.url,
      `http://0177.0.0.1:${port}/events`,
      `http://2130706433:${port}/events`,
      `http://0x7f.1:${port}/events`,
      `http://0x7f000001:${port}/events`,
      `http://127.1:${port}/events`,
      `http://127.0.0.1.:${port}/events`,
      `http://[::1]:${port}/events`,
      `http://[0:0:0:0:0:0:0:1]:${port}/events`,
      `http://[::ffff:127.0.0.1]:${port}/events`,
      `http://[::ffff:7f00:1]:${port}/events`,
      `https://[64:ff9b::7f00:1]:${port}/events`,
      `http://0.0.0.0:${port}/events`,
      `http://0:${port}/events`,
      `http://[::]:${port}/events`,
      `http://localhost:${port}/events`,
      `https://loop.attacker.test:${port}/events`,
      `https://loop.attacker.test.:${port}/events`,
      `https://LOOP.attacker.test:${port}/events`,
      `https://mapped.attacker.test:${port}/events`,
    ]) {
      const { reply, event } = await refused(
        () => asOperator('POST', '/ssf/stream', create(url, { aud: 'x' })),
        {
          status: 400,
          error: 'invalid_request',
          reason: 'endpoint_address',
        },
      );
      assert.match(
        reply.body['error_description'] as string,
        /which is (loopback|unspecified.*): push endpoints must be public addresses unless ssf\.push_allow_addresses allows them/,
        url,
      );
      assert.ok(typeof event.data['address'] === 'string', url);
    }
  });

  it('an operator cannot reach private, shared, link-local, multicast, broadcast or reserved addresses over https either', async () => {
    dns.set('metadata.attacker.test', '169.254.169.254');
    dns.set('mixed.attacker.test', PUBLIC, '10.0.0.5');
    const cases: Array<[string, RegExp]> = [
      ['https://10.0.0.1/events', /private/],
      ['https://172.16.5.4/events', /private/],
      ['https://192.168.0.1/events', /private/],
      ['https://100.64.0.1/events', /carrier-grade NAT/],
      ['https://169.254.169.254/latest/meta-data/', /link-local/],
      ['https://[::ffff:a9fe:a9fe]/latest/meta-data/', /link-local/],
      ['https://[64:ff9b::a9fe:a9fe]/latest/meta-data/', /link-local/],
      ['https://[fd00:ec2::254]/latest/meta-data/', /unique local/],
      ['https://[fe80::1]/events', /link-local/],
      ['https://[fc00::1]/events', /unique local/],
      ['https://224.0.0.1/events', /multicast/],
      ['https://[ff02::1]/events', /multicast/],
      ['https://255.255.255.255/events', /broadcast/],
      ['https://240.0.0.1/events', /reserved/],
      ['https://[::a9fe:a9fe]/events', /IPv4-compatible/],
      ['https://[2002:a9fe:a9fe::1]/events', /6to4/],
      ['https://metadata.attacker.test/latest/meta-data/', /169\.254\.169\.254, which is link-local/],
      ['https://mixed.attacker.test/events', /10\.0\.0\.5, which is private/],
    ];
    for (const [url, what] of cases) {
      const { reply } = await refused(() => asOperator('POST', '/ssf/stream', create(url, { aud: 'x' })), {
        status: 400,
        error: 'invalid_request',
        reason: 'endpoint_address',
      });
      assert.match(reply.body['error_description'] as string, what, url);
    }
  });

  it('refuses a host that does not resolve, and plain http to a public address', async () => {
    dns.set('public.attacker.test', PUBLIC);
    await refused(
      () => asOperator('POST', '/ssf/stream', create('https://nx.attacker.test/', { aud: 'x' })),
      {
        status: 400,
        error: 'invalid_request',
        reason: 'endpoint_address',
      },
    );
    for (const url of [`http://${PUBLIC}/events`, 'http://public.attacker.test/events']) {
      const { reply } = await refused(() => asOperator('POST', '/ssf/stream', create(url, { aud: 'x' })), {
        status: 400,
        error: 'invalid_request',
        reason: 'endpoint_url',
      });
      assert.match(reply.body['error_description'] as string, /must be https/);
    }
  });

  it('checks the address again before every push: a name rebound to loopback after creation is not connected to', async () => {
    // Public when the stream is created, loopback from then on (DNS rebinding).
    let answers = 0;
    dns.zone.set('rebind.attacker.test', () => (answers++ === 0 ? [PUBLIC] : ['127.0.0.1']));
    const made = await asOperator(
      'POST',
      '/ssf/stream',
      create(`https://rebind.attacker.test:${port}/events`, { aud: 'x' }),
    );
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const stream_id = made.body['stream_id'] as string;
    assert.equal((await asOperator('POST', '/ssf/verify', { stream_id })).status, 204);

    await until('the refused push', async () => (await pushRefusals(h, stream_id)).length > 0);
    const [event] = await pushRefusals(h, stream_id);
    assert.equal(event!.outcome, 'refused');
    assert.equal(event!.data['reason'], 'endpoint_address');
    assert.equal(event!.data['address'], '127.0.0.1');
    assert.equal(internal.connections, 0, 'the rebound name led to no connection');
    const [held] = await h.store.pendingSsfSets(stream_id, 10);
    assert.match(held!.lastError ?? '', /^refused: .*127\.0\.0\.1, which is loopback/, 'kept, not delivered');
    assert.ok(answers >= 2, 'the name was resolved again for the push');
  });

  it('a push stream already in the store (from before these checks, or a store edit) is not sent to', async () => {
    const byReceiver = await storedStream(h, RECEIVER, internal.url);
    const byOperator = await storedStream(h, 'operator:ops', `http://[::ffff:7f00:1]:${port}/events`);
    for (const s of [byReceiver, byOperator])
      assert.equal((await asOperator('POST', '/ssf/verify', { stream_id: s.id })).status, 204);
    await until('both pushes refused', async () => {
      return (
        (await pushRefusals(h, byReceiver.id)).length > 0 && (await pushRefusals(h, byOperator.id)).length > 0
      );
    });
    assert.equal((await pushRefusals(h, byReceiver.id))[0]!.data['reason'], 'push_origin');
    assert.equal((await pushRefusals(h, byOperator.id))[0]!.data['reason'], 'endpoint_address');
    assert.equal(internal.connections, 0);
  });
});

describe('SSF push SSRF: what operators allow, and nothing more', () => {
  const keys = [testKey(), testKey()];
  const dns = attackerDns();
  let h: Harness;
  let issuer: string;
  let receiver: PushReceiver;
  let other: PushReceiver;
  let admin: AdminSession;
  let workload: WorkloadClient;

  before(async () => {
    receiver = await startPushReceiver();
    other = await startPushReceiver();
    ({ h, issuer } = await listeningHarness(
      (i) => receiverDocs(i, keys),
      {
        'ssf.push_allow_addresses': ['127.0.0.1'],
        'ssf.push_origins': [`http://127.0.0.1:${receiver.port}`, 'https://siem.test'],
        'ssf.push_timeout': '1s',
      },
      { resolveHost: dns.resolve },
    ));
    admin = await h.adminSession();
    workload = new WorkloadClient({ issuer, clientId: RECEIVER, privateJwk: privateJwk(keys[0]!) });
    await workload.token({ audience: `${issuer}/ssf` });
  });
  after(async () => {
    await h.close();
    await receiver.close();
    await other.close();
  });

  const asOperator = (method: string, path: string, body?: unknown) =>
    operatorCall(issuer, admin, method, path, body).then(replyOf);
  const asReceiver = (method: string, path: string, body?: unknown) =>
    receiverCall(issuer, workload, method, path, body).then(replyOf);
  const pushStream = async (url: string) => {
    const made = await asOperator('POST', '/ssf/stream', create(url, { aud: 'https://receiver.test' }));
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const stream_id = made.body['stream_id'] as string;
    assert.equal((await asOperator('POST', '/ssf/verify', { stream_id })).status, 204);
    return stream_id;
  };
  const lastError = async (streamId: string) => (await h.store.pendingSsfSets(streamId, 1))[0]?.lastError;

  it('delivers to an allowed address, connecting to the address it checked: the name is not resolved again', async () => {
    // `.test` names never resolve in real DNS (RFC 6761): only the address checked can have been used.
    dns.set('pinned.receiver.test', '127.0.0.1');
    await pushStream(`http://pinned.receiver.test:${receiver.port}/events`);
    await until('the SET', () => receiver.accepted().length === 1);
    assert.equal(receiver.received[0]!.host, `pinned.receiver.test:${receiver.port}`);
    assert.equal(receiver.received[0]!.authorization, 'Bearer chosen-by-the-attacker');
    assert.deepEqual(
      dns.asked.filter((n) => n === 'pinned.receiver.test'),
      ['pinned.receiver.test', 'pinned.receiver.test'],
      'once when created, once for the push',
    );
  });

  it('allows exactly the listed address: other loopback addresses and private ranges stay refused', async () => {
    for (const url of [
      `http://127.0.0.2:${receiver.port}/events`,
      `http://[::1]:${receiver.port}/events`,
      'https://10.0.0.1/events',
    ])
      await expectRefusal(h, () => asOperator('POST', '/ssf/stream', create(url, { aud: 'x' })), {
        status: 400,
        error: 'invalid_request',
        event: 'ssf.refused',
        reason: 'endpoint_address',
      });
  });

  it('a receiver workload may push only to a listed origin, and the address checks still apply there', async () => {
    const ok = await asReceiver('POST', '/ssf/stream', create(receiver.url));
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    for (const url of [
      'https://siem.test.attacker.test/events',
      'https://siem.test:8443/events',
      'http://siem.test/events',
      'https://evil.test/?u=https://siem.test',
      `http://127.0.0.1:${other.port}/events`,
      `http://localhost:${receiver.port}/events`,
    ])
      await expectRefusal(h, () => asReceiver('POST', '/ssf/stream', create(url)), {
        status: 403,
        error: 'access_denied',
        event: 'ssf.refused',
        reason: 'push_origin',
      });
    await expectRefusal(h, () => asReceiver('POST', '/ssf/stream', create('https://siem.test@127.0.0.1/')), {
      status: 400,
      error: 'invalid_request',
      event: 'ssf.refused',
      reason: 'endpoint_url',
    });
    dns.set('siem.test', '10.0.0.8');
    await expectRefusal(h, () => asReceiver('POST', '/ssf/stream', create('https://siem.test/events')), {
      status: 400,
      error: 'invalid_request',
      event: 'ssf.refused',
      reason: 'endpoint_address',
    });
    assert.equal(other.connections, 0);
  });

  it('does not follow a redirect', async () => {
    const redirecting = await startPushReceiver();
    try {
      redirecting.plan.push((res: ServerResponse) => {
        res.writeHead(307, { location: other.url });
        res.end();
      });
      const stream = await pushStream(redirecting.url);
      await until('the redirect answered', async () => (await lastError(stream)) !== null);
      assert.equal(await lastError(stream), 'HTTP 307 (redirects are not followed)');
      assert.equal(other.connections, 0, 'the redirect target was never contacted');
    } finally {
      await redirecting.close();
    }
  });

  it('reads at most 4 KiB of an answer, and gives up on a receiver that never answers', async () => {
    const flooding = await startPushReceiver();
    const silent = await startPushReceiver();
    let sent = 0;
    let floodClosed = false;
    let silentClosed = false;
    try {
      // An answer that never ends.
      flooding.plan.push((res: ServerResponse) => {
        res.writeHead(400, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(16_384, 'x');
        const more = () => {
          while (!res.destroyed && res.write(chunk)) sent += chunk.length;
        };
        res.on('drain', more);
        res.on('close', () => {
          floodClosed = true;
        });
        more();
      });
      // No answer at all.
      silent.plan.push((res: ServerResponse) => {
        res.on('close', () => {
          silentClosed = true;
        });
      });
      const flooded = await pushStream(flooding.url);
      const waited = await pushStream(silent.url);
      await until('the endless answer cut', () => floodClosed);
      await until('the rejection', async () =>
        (await h.auditEvents('ssf.set.rejected')).some((e) => e.data['stream_id'] === flooded),
      );
      assert.ok(sent < 64 * 1024 * 1024, 'the transmitter stopped reading');
      await until('the silent receiver given up on', () => silentClosed);
      await until('the timeout recorded', async () => (await lastError(waited)) === 'timeout');
    } finally {
      await flooding.close();
      await silent.close();
    }
  });
});

describe('SSF stream quotas: receivers cannot lock operators out', () => {
  const keys = [testKey(), testKey()];
  let h: Harness;
  let issuer: string;
  let admin: AdminSession;
  const clients: Record<string, WorkloadClient> = {};

  before(async () => {
    ({ h, issuer } = await listeningHarness((i) => receiverDocs(i, keys), {
      'ssf.max_streams': 5,
      'ssf.max_streams_per_receiver': 2,
      'ssf.operator_reserved_streams': 2,
    }));
    admin = await h.adminSession();
    for (const [id, key] of [
      [RECEIVER, keys[0]!],
      [STRANGER, keys[1]!],
    ] as const) {
      clients[id] = new WorkloadClient({ issuer, clientId: id, privateJwk: privateJwk(key) });
      await clients[id].token({ audience: `${issuer}/ssf` });
    }
  });
  after(() => h.close());

  const asReceiver = (id: string) => () =>
    receiverCall(issuer, clients[id]!, 'POST', '/ssf/stream', {}).then(replyOf);
  const asOperator = () =>
    operatorCall(issuer, admin, 'POST', '/ssf/stream', { aud: 'https://siem.test' }).then(replyOf);

  it('one receiver holds at most its share, receivers together leave the reserve, operators still create streams', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await asReceiver(RECEIVER)()).status, 201);
    await expectRefusal(h, asReceiver(RECEIVER), {
      status: 403,
      error: 'access_denied',
      event: 'ssf.refused',
      reason: 'stream_limit_receiver',
    });
    assert.equal((await asReceiver(STRANGER)()).status, 201);
    await expectRefusal(h, asReceiver(STRANGER), {
      status: 403,
      error: 'access_denied',
      event: 'ssf.refused',
      reason: 'stream_limit_reserved',
    });
    // The two streams kept for operators are still there to create.
    for (let i = 0; i < 2; i++) assert.equal((await asOperator()).status, 201);
    await expectRefusal(h, asOperator, {
      status: 403,
      error: 'access_denied',
      event: 'ssf.refused',
      reason: 'stream_limit',
    });
    const owners = (await h.store.listSsfStreams()).map((s) => s.owner).sort();
    assert.deepEqual(owners, ['operator:ops', 'operator:ops', RECEIVER, RECEIVER, STRANGER].sort());
  });
});

describe('SSF push settings: an allowance means exactly what it says', () => {
  const load = (values: Record<string, unknown>) =>
    resolveSettings({ name: 'settings.yaml', values: { ssf: values } }, {});

  it('origins are normalised; anything but an origin is refused at load, naming the field', () => {
    assert.deepEqual(
      load({ push_origins: ['https://SIEM.example.com:443/', 'http://10.0.0.8:8080'] }).ssf.pushOrigins,
      ['https://siem.example.com', 'http://10.0.0.8:8080'],
    );
    for (const bad of [
      'https://siem.example.com/events',
      'https://siem.example.com/?x',
      'siem.example.com',
      'ftp://siem.example.com',
      'https://u:p@siem.example.com',
    ])
      assert.throws(
        () => load({ push_origins: [bad] }),
        (e: unknown) => e instanceof ConfigError && /ssf\.push_origins/.test(e.message),
        bad,
      );
  });

  it('addresses and CIDRs only', () => {
    assert.deepEqual(
      load({ push_allow_addresses: '127.0.0.1, 10.20.0.0/16,fd00::/8' }).ssf.pushAllowAddresses,
      ['127.0.0.1', '10.20.0.0/16', 'fd00::/8'],
    );
    for (const bad of ['localhost', '10.0.0.0/33', '0177.0.0.1', '*'])
      assert.throws(
        () => load({ push_allow_addresses: [bad] }),
        (e: unknown) => e instanceof ConfigError && /ssf\.push_allow_addresses/.test(e.message),
        bad,
      );
  });
});
