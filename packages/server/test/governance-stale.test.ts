import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fakeClock } from '../src/clock.js';
import { jwkThumbprint } from '../src/jose/jwk.js';
import { type OperatorCli, operatorCli } from './helpers/cli.js';
import { writeHarnessConfig } from './helpers/config-dir.js';
import { rawDoc } from './helpers/dpop.js';
import {
  AUDIENCE,
  type Harness,
  LEGACY_WORKLOAD,
  OTHER_WORKLOAD,
  startHarness,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';

// `writ govern stale`: the fixture below has, 45 days after it was registered, exactly two stale
// workloads, one unused class, one silent issuer and one never-used key; the opt-in rule disables stale
// workloads only once the grace period has passed (the clock is injected), audited and reversible.

const DAY = 86_400_000;
const CI_WORKLOAD = 'spiffe://test.writ/ci/deploy';
const BATCH_WORKLOAD = 'spiffe://test.writ/batch/nightly';
const issuerKey = testKey();
const batchKey = testKey();

/** What the harness's own config adds: an unused class, an issuer, two workloads of `dev`. */
const EXTRA = [
  rawDoc('class', { name: 'orphaned', max_ttl: '5m', audiences: [AUDIENCE], scopes: ['reports:read'] }),
  rawDoc('issuer', {
    name: 'github',
    issuer: 'https://token.actions.example.test',
    jwks: { keys: [issuerKey.publicJwk] },
    audience: 'https://writ.test',
    subject: '"spiffe://test.writ/ci/" + claims.job',
    condition: 'claims.repository == "acme/deploy"',
  }),
  rawDoc('workload', {
    id: CI_WORKLOAD,
    owner: 'team-ci',
    environment: 'dev',
    classes: ['reports-read'],
    federation: ['github'],
  }),
  rawDoc('workload', {
    id: BATCH_WORKLOAD,
    owner: 'team-batch',
    environment: 'dev',
    classes: ['reports-read'],
    jwks: { keys: [batchKey.publicJwk] },
  }),
];

/** prod workloads are stale after 30 days, the others after 60; the disable rule waits 10 more days. */
const SETTINGS = { after: 60 * 86_400, environments: { prod: 30 * 86_400 }, disable_after: 10 * 86_400 };

interface Answer {
  now: number;
  workloads: Array<{
    id: string;
    state: string;
    staleSince: number;
    lastIssued: { at: number; seq?: number; jti?: string } | null;
    lastUsed: { at: number; jti?: string } | null;
  }>;
  classes: Array<{ name: string; lastIssued: unknown }>;
  issuers: Array<{ name: string; lastUsed: unknown }>;
  keys: Array<{ workload: string; thumbprint: string }>;
  disabled: string[];
}

describe('writ govern stale: exactly the fixture’s stale objects, with last-seen evidence', () => {
  const clock = fakeClock(Date.UTC(2026, 5, 1));
  const t0 = clock.now();
  let h: Harness;
  let issuedJti: string;
  before(async () => {
    h = await startHarness({ clock, extraDocs: EXTRA });
    // Day 0: the exporter gets a token (private_key_jwt: the key it signed with is recorded).
    const r = await h.requestToken();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [issued] = await h.auditEvents('token.issued');
    issuedJti = issued!.jti!;
    // Day 20: a verifier reports an allowed use of a token of the billing job.
    await h.store.addUsage([
      {
        jti: 'billing-token-1',
        sub: OTHER_WORKLOAD,
        tid: null,
        operation: 'POST /invoices',
        source: '10.0.0.7',
        decision: 'allow',
        reason: '',
        reporter: 'spiffe://test.writ/billing/api',
        userAgent: null,
        count: 3,
        firstSeen: t0 + 20 * DAY,
        lastSeen: t0 + 20 * DAY,
      },
    ]);
  });
  after(async () => {
    await h.close();
  });

  const stale = async (body: Record<string, unknown> = {}) => {
    const r = await h.admin('POST', '/govern/stale', { ...SETTINGS, ...body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as unknown as Answer;
  };

  it('day 45: two prod workloads, the unused class, the silent issuer, the never-used key; nothing else', async () => {
    clock.set(t0 + 45 * DAY);
    const r = await stale();
    assert.deepEqual(r.workloads.map((w) => w.id).sort(), [LEGACY_WORKLOAD, WORKLOAD].sort());
    assert.deepEqual(
      r.classes.map((c) => c.name),
      ['orphaned'],
    );
    assert.deepEqual(
      r.issuers.map((i) => i.name),
      ['github'],
    );
    assert.deepEqual(r.keys, [
      {
        workload: OTHER_WORKLOAD,
        thumbprint: jwkThumbprint(h.otherKey.publicJwk as unknown as Record<string, unknown>),
        registeredAt: t0,
        ...(typeof h.otherKey.publicJwk.kid === 'string' ? { kid: h.otherKey.publicJwk.kid } : {}),
      },
    ]);
    // The evidence: the exporter's last token, by audit seq and jti; the legacy cron never got one.
    const exporter = r.workloads.find((w) => w.id === WORKLOAD)!;
    const [event] = await h.auditEvents('token.issued');
    assert.deepEqual(exporter.lastIssued, { at: t0, what: 'issued', seq: event!.seq, jti: issuedJti });
    assert.equal(exporter.lastUsed, null);
    assert.equal(exporter.staleSince, t0 + 30 * DAY);
    const cron = r.workloads.find((w) => w.id === LEGACY_WORKLOAD)!;
    assert.equal(cron.lastIssued, null);
    assert.deepEqual(r.disabled, []);
  });

  it('day 25: nothing is stale yet but the class no workload lists and the issuer no token came from', async () => {
    clock.set(t0 + 25 * DAY);
    const r = await stale();
    assert.deepEqual(r.workloads, []);
    assert.deepEqual(r.keys, []);
    assert.deepEqual(
      r.classes.map((c) => c.name),
      ['orphaned'],
    );
  });

  it('the disable rule is opt-in: without disable_after the server refuses to run it', async () => {
    const { disable_after: _d, ...optOut } = SETTINGS;
    const refused = await h.admin('POST', '/govern/stale', { ...optOut, disable: true });
    assert.equal(refused.status, 400);
    assert.match(String(refused.body['error_description']), /disable needs disable_after/);
  });

  it('disables after the grace period, not before; audited; `workloads enable` reverses it', async () => {
    // Day 39: stale since day 30, 9 days into a 10-day grace: nothing disabled.
    clock.set(t0 + 39 * DAY);
    const early = await stale({ disable: true });
    assert.deepEqual(early.disabled, []);
    assert.equal((await h.store.getWorkload(WORKLOAD))!.state, 'active');
    assert.equal((await h.auditEvents('workload.disabled')).length, 0);

    // Day 41: past the grace: both stale prod workloads are disabled, each audited with the evidence.
    clock.set(t0 + 41 * DAY);
    const late = await stale({ disable: true });
    assert.deepEqual(late.disabled.sort(), [LEGACY_WORKLOAD, WORKLOAD].sort());
    assert.equal((await h.store.getWorkload(WORKLOAD))!.state, 'disabled');
    assert.equal((await h.store.getWorkload(OTHER_WORKLOAD))!.state, 'active');
    const audited = await h.auditEvents('workload.disabled');
    assert.equal(audited.length, 2);
    for (const e of audited) {
      assert.equal(e.actor, 'operator:ops');
      assert.match(
        String(e.data['reason']),
        /^stale: no issuance, no reported use and no change since 2026-06-01T00:00:00\.000Z \(threshold 2592000s, grace 864000s/,
      );
    }
    const refused = await h.requestToken();
    assert.notEqual(refused.status, 200);

    // Running it again disables nothing more (a disabled workload is left alone).
    assert.deepEqual((await stale({ disable: true })).disabled, []);

    // Reversible: enabling gives the workload tokens again. A state change is a change: the threshold
    // starts afresh from it, for the enabled workload and the one left disabled alike.
    const enabled = await h.admin('POST', `/workloads/${encodeURIComponent(WORKLOAD)}/enable`, {
      reason: 'still needed',
    });
    assert.equal(enabled.status, 200, JSON.stringify(enabled.body));
    assert.equal((await h.requestToken()).status, 200);
    assert.deepEqual((await stale({ disable: true })).workloads, []);
    clock.set(t0 + 72 * DAY);
    const again = await stale();
    const since = (id: string) => again.workloads.find((w) => w.id === id);
    assert.equal(since(WORKLOAD)!.state, 'active');
    assert.equal(since(WORKLOAD)!.staleSince, t0 + 71 * DAY);
    assert.equal(since(LEGACY_WORKLOAD)!.state, 'disabled');
    assert.equal(since(LEGACY_WORKLOAD)!.staleSince, t0 + 71 * DAY);
  });
});

describe('writ govern stale at a shell: thresholds from governance.yaml, one line per stale object', () => {
  let h: Harness;
  let writ: OperatorCli;
  let config: string;
  before(async () => {
    h = await startHarness({ listen: true, extraDocs: EXTRA });
    writ = operatorCli(h);
    config = writeHarnessConfig(h, EXTRA);
  });
  after(async () => {
    await h.close();
  });

  it('lists the unused class and the silent issuer (nothing was registered long enough for more)', async () => {
    writeFileSync(join(config, 'governance.yaml'), 'stale:\n  after: 30d\n  environments: { prod: 7d }\n');
    const r = await writ(['govern', 'stale', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 3, r.stdout);
    assert.match(lines[0]!, /^class +orphaned +no workload lists it; last issued never$/);
    assert.match(lines[1]!, /^issuer +github +no token from it for 30d; last token never$/);
    assert.match(lines[2]!, /^2 stale \(0 workloads, 1 classes, 1 issuers, 0 keys\) at /);
    const json = await writ(['govern', 'stale', '--config', config, '--format', 'json']);
    assert.equal(JSON.parse(json.stdout).settings.environments.prod, 7 * 86_400);
  });

  it('--disable without stale.disable_after is refused, saying how to opt in', async () => {
    const r = await writ(['govern', 'stale', '--config', config, '--disable']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /disable needs disable_after: set stale\.disable_after in governance\.yaml to opt in/,
    );
  });
});
