import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkloadClient } from '@writ/sdk/client';
import { createVerifier, RequestRefusal, UsageReporter, type Verifier } from '@writ/sdk/verifier';
import { applyConfig } from '../src/admin/operations.js';
import type { AuditEvent } from '../src/audit/audit-event.js';
import { fakeClock } from '../src/clock.js';
import { type RawDocument, validateConfig } from '../src/config/config-dir.js';
import type { Baseline } from '../src/detection/baseline.js';
import type { ObservedUse } from '../src/detection/detector.js';
import type { Finding } from '../src/detection/finding.js';
import type { IssuedToken } from '../src/tokens/issued-token.js';
import {
  type BenignWeek,
  benignWeek,
  traffic,
  WEEK_START,
  type WeekEvent,
  type WeekToken,
  type WorkloadSpec,
} from './helpers/benign-week.js';
import { rawDoc } from './helpers/dpop.js';
import {
  freePort,
  type Harness,
  harnessDocuments,
  privateJwk,
  startHarness,
  type TestKey,
  testKey,
} from './helpers/harness.js';
import { presenting, ready, startTcpProxy, type TcpProxy } from './helpers/verifier.js';

/**
 * Issue 13's false-positive acceptance: a generated week of benign usage for 50 workloads (diurnal
 * rhythm, addresses rotating inside known networks, a deployment adding pods on day 3, an API granted
 * by a config change on day 5; test/helpers/benign-week.ts) causes no automatic revocation or
 * quarantine, and the only alerts it raises are the expected ones. A real Writ (real store, fake clock
 * moved with the records) runs the built-in rules in enforce mode with the default learning settings.
 *
 * How the week reaches the detector: a week is about 570,000 uses and 260,000 issuances, minutes of
 * work over HTTP, so it is fed to the Detector directly at the two places the server feeds it. Each use
 * goes through `ctx.detection.observeUses(reporter, [{ use, token }])`, as `POST /v1/usage` calls it once
 * the report is stored, with the `ObservedUse` it builds from the record and the `IssuedToken` Writ
 * records for the token (built from the generated token, not stored: recording 260,000 tokens through
 * the issuance path would not change a signal). Each issuance goes through
 * `ctx.detection.observeAudited(event)` with the `token.issued` audit event `issueAccessToken` appends,
 * which is what the audit log's commit tap hands it. From there on every signal is built by the
 * server's own code. The networks (`networks.yaml`) and the day-5 change are real configuration, the
 * change applied with `applyConfig`. The second suite replays one hour of the same generator over real
 * HTTP (SDK workload clients, DPoP-bound tokens, SDK verifiers reporting usage) and shows that both
 * paths leave the same baselines and the same detections.
 */

const HOUR = 3_600_000;
/**
 * The week's seed. Its day-3 deployment (a service going from 6 to 11 pods, all replaced) raised
 * many-hosts while the rule fired at three times the usual number of hosts; it fires at 3.5 now.
 */
const SEED = 1;
/** The issuer of a harness that does not listen (its default). */
const DIRECT_ISSUER = 'http://127.0.0.1:8080';

/** Responses that act on tokens or workloads: none may be asked for by benign traffic. */
const ACTIONS = new Set(['revoke_token', 'revoke_task', 'quarantine', 'reattest']);

const keysOf = (week: BenignWeek): Map<string, TestKey> =>
  new Map(
    [...week.workloads.map((w) => w.id), ...week.apis.map((a) => a.reporter)].map((id) => [
      id,
      testKey('EdDSA'),
    ]),
  );

/**
 * The week's networks, classes and workloads, and a verifier workload for each API; `granted`: after day
 * 5's change.
 */
function weekDocs(
  week: BenignWeek,
  issuer: string,
  keys: Map<string, TestKey>,
  granted: boolean,
): RawDocument[] {
  return [
    rawDoc('networks', { networks: week.networks }),
    ...week.workloads.map((w) =>
      rawDoc('class', {
        name: w.className,
        max_ttl: '15m',
        default_ttl: '10m',
        audiences: [...w.apis.map((a) => a.audience), ...(granted && w.grant ? [w.grant.api.audience] : [])],
        scopes: ['api:call'],
        default_scopes: ['api:call'],
      }),
    ),
    ...week.workloads.map((w) =>
      rawDoc('workload', {
        id: w.id,
        owner: w.owner,
        environment: w.environment,
        classes: [w.className],
        jwks: { keys: [keys.get(w.id)!.publicJwk] },
      }),
    ),
    rawDoc('class', {
      name: 'api-verifier',
      max_ttl: '10m',
      audiences: [`${issuer}/v1/events`, `${issuer}/v1/usage`],
      scopes: ['events:read'],
      default_scopes: ['events:read'],
    }),
    ...week.apis.map((a) =>
      rawDoc('workload', {
        id: a.reporter,
        owner: 'team-platform',
        environment: 'production',
        classes: ['api-verifier'],
        serves: [a.audience],
        jwks: { keys: [keys.get(a.reporter)!.publicJwk] },
      }),
    ),
  ];
}

/**
 * Feeds generated events to a harness's Detector where the server feeds it (see the file's comment),
 * moving the clock with them and letting the findings of each minute be handled within it. Checks on the
 * way that the registry would have issued each kind of token and taken each kind of report.
 */
class DirectFeed {
  readonly #h: Harness;
  readonly #clock: ReturnType<typeof fakeClock>;
  readonly #recorded = new WeakMap<WeekToken, IssuedToken>();
  readonly #checked = new Set<string>();
  readonly problems: string[] = [];
  issued = 0;
  used = 0;
  /** The most recently issued token used so far, with its pod's address and the API's verifier. */
  last: { token: IssuedToken; source: string; reporter: string } | undefined;
  #minute = 0;

  constructor(h: Harness, clock: ReturnType<typeof fakeClock>) {
    this.#h = h;
    this.#clock = clock;
  }

  async feed(events: readonly WeekEvent[]): Promise<void> {
    const ctx = this.#h.writ.ctx;
    const d = ctx.detection;
    for (const e of events) {
      const minute = Math.floor(e.time / 60_000);
      if (minute !== this.#minute) {
        await d.settled();
        this.#minute = minute;
      }
      this.#clock.set(Math.max(this.#clock.now(), e.time));
      if (e.kind === 'issue') {
        this.#check(`issue ${e.token.sub} ${e.token.aud}`, () => {
          const w = ctx.registry.workload(e.token.sub);
          return (
            w?.classes.includes(e.token.cls) === true &&
            ctx.registry.tokenClass(e.token.cls)?.audiences.includes(e.token.aud) === true
          );
        });
        const token = this.#record(e.token, ctx.keys.activeKid());
        d.observeAudited(issuedEvent(token, e.source, e.time));
        this.issued++;
        continue;
      }
      this.#check(`report ${e.reporter} ${e.token.aud}`, () => ctx.registry.serves(e.reporter, e.token.aud));
      const token = this.#recorded.get(e.token)!;
      const use: ObservedUse = {
        operation: e.operation,
        source: e.source,
        userAgent: e.userAgent,
        decision: e.decision,
        reason: e.reason,
        signal: '',
        time: e.time,
      };
      d.observeUses(e.reporter, [{ use, token }]);
      this.used++;
      if (!this.last || token.iat >= this.last.token.iat)
        this.last = { token, source: e.source, reporter: e.reporter };
    }
    await d.settled();
  }

  #record(t: WeekToken, kid: string): IssuedToken {
    const token: IssuedToken = { ...t, kid, fingerprint: `generated:${t.jti}` };
    this.#recorded.set(t, token);
    return token;
  }

  /** Checks each kind of event once: a generator that strays from the registry fails the test. */
  #check(what: string, ok: () => boolean): void {
    if (this.#checked.has(what)) return;
    this.#checked.add(what);
    if (!ok()) this.problems.push(`${what} at ${new Date(this.#clock.now()).toISOString()}`);
  }
}

/** The audit event `issueAccessToken` appends for a client_credentials issuance (DPoP-bound, as the SDK asks). */
function issuedEvent(t: IssuedToken, ip: string, ts: number): AuditEvent {
  return {
    seq: 0,
    prevHash: '',
    hash: '',
    ts,
    type: 'token.issued',
    outcome: 'success',
    actor: t.clientId,
    subject: t.sub,
    jti: t.jti,
    data: {
      grant_type: 'client_credentials',
      auth_method: 'private_key_jwt',
      cls: t.cls,
      aud: t.aud,
      scope: t.scope,
      iat: t.iat,
      exp: t.exp,
      kid: t.kid,
      fingerprint: t.fingerprint,
      binding: 'dpop',
      ip,
      policy: { decision: 'allow' },
    },
  };
}

async function allFindings(h: Harness): Promise<Finding[]> {
  const found = await h.store.listFindings({ limit: 1000 });
  assert.ok(found.length < 1000, 'more findings than one page: a flood, not a benign week');
  return found;
}

function tally(findings: readonly Finding[]): Record<string, Record<string, number>> {
  const by: Record<string, Record<string, number>> = {};
  for (const f of findings) {
    const r = by[f.rule] ?? {};
    r[f.outcome] = (r[f.outcome] ?? 0) + 1;
    by[f.rule] = r;
  }
  return by;
}

async function detectionMetrics(h: Harness): Promise<Record<string, number>> {
  const m = await h.writ.ctx.metrics.detections.get();
  return Object.fromEntries(
    m.values
      .map((v) => [`${v.labels['rule']} ${v.labels['outcome']}`, v.value] as const)
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

describe('detection: a benign week of 50 workloads', () => {
  const week = benignWeek(SEED);
  const keys = keysOf(week);
  const clock = fakeClock(WEEK_START - 10 * 60_000);
  let h: Harness;
  let feed: DirectFeed;
  let cpuMs = 0;
  let changed = 0;

  before(async () => {
    h = await startHarness({ clock, extraDocs: weekDocs(week, DIRECT_ISSUER, keys, false) });
    feed = new DirectFeed(h, clock);
    const cpu = process.cpuUsage();
    for (const hour of traffic(week)) {
      if (hour.length > 0 && hour[0]!.time >= week.grant.at && changed === 0) {
        // Day 5, 10:00: the operators apply the config that grants the ledger API to eight more workloads.
        clock.set(week.grant.at);
        const bundle = validateConfig(
          harnessDocuments(h, weekDocs(week, DIRECT_ISSUER, keys, true)),
          h.settings.tokens.maxLifetime,
          h.settings.issuer,
        );
        changed = (await applyConfig(h.writ.ctx, bundle, 'ops', false)).length;
      }
      await feed.feed(hour);
    }
    const used = process.cpuUsage(cpu);
    cpuMs = (used.user + used.system) / 1000;
  });
  after(async () => {
    await h?.close();
  });

  it('is the week the issue asks for, and every token and report is one Writ would issue and take', (t) => {
    assert.equal(week.workloads.length, 50);
    assert.equal(changed, week.grant.workloads.length, 'the config change touched the granted classes only');
    assert.deepEqual(feed.problems, []);
    t.diagnostic(
      `${week.workloads.length} workloads, ${feed.issued} issuances, ${feed.used} uses over 7 days; ` +
        `${Math.round(cpuMs)} ms of CPU to feed them`,
    );
    const d = h.writ.ctx.detection;
    assert.equal(d.engine.stats.signals, feed.issued + feed.used);
    // The baselines learned: past the learning period and its events, so the rules that read them act.
    const learning = week.workloads.filter((w) => {
      const b = d.engine.baseline(w.id)!;
      return (
        clock.now() - b.firstSeen < h.settings.detection.learningPeriod * 1000 ||
        b.uses + b.issuances < h.settings.detection.learningEvents
      );
    });
    assert.deepEqual(
      learning.map((w) => w.id),
      [],
    );
    // Addresses rotated: every workload was seen from several networks (all inside networks.yaml's ranges).
    const networks = week.workloads.map((w) => d.engine.baseline(w.id)!.networks.size).sort((a, b) => a - b);
    assert.ok(networks[0]! >= 2, `networks per workload: ${networks.join()}`);
    for (const w of week.workloads)
      for (const net of d.engine.baseline(w.id)!.networks.keys())
        assert.equal(d.networks.environment(net), w.environment, `${w.id} ${net}`);
    t.diagnostic(`networks per workload: ${networks[0]} to ${networks.at(-1)}, median ${networks[25]}`);
  });

  it('causes no automatic revocation, quarantine or re-attestation, and raises no risk', async () => {
    const byDetector = (await h.auditEvents('revocation.created')).filter((e) =>
      e.actor.startsWith('detector:'),
    );
    assert.deepEqual(byDetector, []);
    assert.deepEqual(await h.auditEvents('workload.quarantined'), []);
    assert.deepEqual(await h.auditEvents('detection.budget_exhausted'), []);
    const findings = await allFindings(h);
    assert.deepEqual(
      findings
        .filter((f) => f.mode === 'enforce' && ACTIONS.has(f.response))
        .map((f) => `${f.rule} ${f.workload}`),
      [],
      'no finding asks for an action, whatever became of it',
    );
    // Risk decays within hours, so the findings say whether any was raised, not the risk at the week's end.
    assert.deepEqual(
      findings
        .filter((f) => f.risk > 0 || (f.mode === 'enforce' && f.response !== 'alert'))
        .map((f) => `${f.rule} ${f.workload} ${f.risk}`),
      [],
    );
  });

  it('raises only the drift alert for the newly granted API, once it is used', async (t) => {
    const findings = await allFindings(h);
    t.diagnostic(`alerts (rule → outcome → count): ${JSON.stringify(tally(findings))}`);
    t.diagnostic(
      `rules that fired while learning or acting (metrics): ${JSON.stringify(await detectionMetrics(h))}`,
    );
    const unexpected = findings.filter((f) => {
      const s = f.evidence.signals.at(-1);
      return !(
        f.rule === 'new-audience-or-operation' &&
        f.outcome === 'alert' &&
        week.grant.workloads.includes(f.workload) &&
        f.createdAt >= week.grant.at &&
        s?.kind === 'usage' &&
        s.data.aud === week.grant.audience
      );
    });
    assert.deepEqual(
      unexpected.map((f) => `${f.rule} ${f.outcome} ${f.workload} ${new Date(f.createdAt).toISOString()}`),
      [],
    );
    // The rule is live: each workload granted the API is flagged at its first use of it.
    assert.deepEqual([...new Set(findings.map((f) => f.workload))].sort(), [...week.grant.workloads].sort());
  });

  it('the same rules on the learned baselines still revoke a stolen token', async () => {
    const d = h.writ.ctx.detection;
    const { token, source, reporter } = feed.last!;
    const now = clock.now();
    assert.ok(token.exp * 1000 > now + 2000, 'the last token is still valid');
    const use = (from: string, time: number): { use: ObservedUse; token: IssuedToken } => ({
      use: {
        operation: 'GET /entries',
        source: from,
        userAgent: 'python-requests/2.32.3',
        decision: 'allow',
        reason: '',
        signal: '',
        time,
      },
      token,
    });
    clock.set(now + 1000);
    d.observeUses(reporter, [use(source, now + 1000)]);
    clock.set(now + 2000);
    d.observeUses(reporter, [use('203.0.113.50', now + 2000)]);
    await d.settled();
    const revoked = (await h.auditEvents('revocation.created')).filter(
      (e) => e.actor === 'detector:token-two-networks',
    );
    assert.equal(revoked.length, 1);
    assert.equal(revoked[0]!.data['value'], token.jti);
  });
});

describe('detection: an hour of the week over real HTTP agrees with the direct path', () => {
  const week = benignWeek(SEED);
  const keys = keysOf(week);
  // Monday 10:00, a busy hour, for the smallest workload of each kind (environment, address family,
  // rhythm): six workloads, a few hundred token requests (an hour of all 50 takes minutes on PostgreSQL).
  const from = WEEK_START + 10 * HOUR;
  const kinds = new Map<string, WorkloadSpec>();
  for (const w of week.workloads) {
    const kind = `${w.environment} ${w.cluster.family} ${w.rhythm}`;
    const held = kinds.get(kind);
    if (!held || w.pods < held.pods) kinds.set(kind, w);
  }
  const slice = [...kinds.values()].map((w) => w.id);
  const events = [...traffic(week, { from, hours: 1, workloads: slice })][0]!;
  let overHttp: Harness;
  let proxy: TcpProxy;
  let direct: Harness;
  const verifiers: Verifier[] = [];
  let issuedOverHttp: Map<string, number>;

  before(async () => {
    const httpClock = fakeClock(from - 60_000);
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    overHttp = await startHarness({
      clock: httpClock,
      listen: true,
      settings: { 'listen.port': port, 'events.heartbeat': 1 },
      extraDocs: weekDocs(week, issuer, keys, false),
    });
    // Everything goes through a TCP proxy, closed before the server: the sockets of the event streams the
    // verifiers drop at the end go with it, rather than holding the server's close for its keep-alive timeout.
    proxy = await startTcpProxy(port);
    const viaProxy: typeof fetch = (input, init) =>
      fetch(String(input).replace(issuer, `http://127.0.0.1:${proxy.port}`), init);
    const client = (id: string) =>
      new WorkloadClient({
        issuer,
        fetch: viaProxy,
        clientId: id,
        privateJwk: privateJwk(keys.get(id)!),
        now: () => Math.floor(httpClock.now() / 1000),
      });
    // One verifier per API called, each reporting the uses it sees; reports are sent each simulated minute.
    const reporters = new Map<string, { verifier: Verifier; usage: UsageReporter }>();
    const reported = new Set(events.map((e) => (e.kind === 'use' ? e.reporter : '')));
    for (const api of week.apis.filter((a) => reported.has(a.reporter))) {
      const c = client(api.reporter);
      const usage = new UsageReporter({ issuer, client: c, flushIntervalMs: 3_600_000, now: httpClock.now });
      const verifier = createVerifier({
        issuer,
        fetch: viaProxy,
        audience: api.audience,
        client: c,
        now: httpClock.now,
        stalenessMs: 4 * HOUR,
        usage,
      });
      verifiers.push(verifier);
      await ready(verifier);
      reporters.set(api.reporter, { verifier, usage });
    }
    const flush = () => Promise.all([...reporters.values()].map((r) => r.usage.flush()));
    // Each pod is a workload client of its own: its tokens are its own, renewed by the SDK's cache.
    const pods = new Map<string, WorkloadClient>();
    let minute = Math.floor(from / 60_000);
    for (const e of events) {
      if (e.kind === 'issue') continue;
      if (Math.floor(e.time / 60_000) !== minute) {
        await flush();
        minute = Math.floor(e.time / 60_000);
      }
      httpClock.set(e.time);
      const pod = pods.get(e.pod) ?? client(e.token.sub);
      pods.set(e.pod, pod);
      const token = await pod.token({ audience: e.token.aud });
      const url = `${e.token.aud}${e.operation.split(' ')[1]}`;
      const method = e.operation.split(' ')[0]!;
      const refuse = () => {
        throw new RequestRefusal(
          'insufficient_scope',
          'insufficient_scope',
          'this route wants another scope',
        );
      };
      try {
        await reporters.get(e.reporter)!.verifier.verify({
          ...presenting(token, { holder: pod.dpopKey, url, method, nowSeconds: Math.floor(e.time / 1000) }),
          operation: e.operation,
          source: e.source,
          userAgent: e.userAgent,
          ...(e.decision === 'deny' ? { check: refuse } : {}),
        });
        assert.equal(e.decision, 'allow');
      } catch (err) {
        if (!(err instanceof RequestRefusal) || e.decision !== 'deny') throw err;
      }
    }
    await flush();
    await overHttp.writ.ctx.detection.settled();
    issuedOverHttp = new Map();
    for (const ev of await overHttp.auditEvents('token.issued'))
      if (ev.subject && slice.includes(ev.subject))
        issuedOverHttp.set(ev.subject, (issuedOverHttp.get(ev.subject) ?? 0) + 1);

    const directClock = fakeClock(from - 60_000);
    direct = await startHarness({
      clock: directClock,
      extraDocs: weekDocs(week, DIRECT_ISSUER, keys, false),
    });
    const feed = new DirectFeed(direct, directClock);
    await feed.feed(events);
    assert.deepEqual(feed.problems, []);
  });
  after(async () => {
    for (const v of verifiers) v.close();
    await proxy?.close();
    await overHttp?.close();
    await direct?.close();
  });

  it('the SDK renews tokens when the generator says it does', () => {
    const generated = new Map<string, number>();
    for (const e of events)
      if (e.kind === 'issue') generated.set(e.token.sub, (generated.get(e.token.sub) ?? 0) + 1);
    assert.deepEqual(issuedOverHttp, generated);
  });

  it('both paths leave the same baselines', (t) => {
    const uses = events.filter((e) => e.kind === 'use').length;
    t.diagnostic(`${slice.length} workloads, ${uses} uses, ${events.length - uses} issuances over HTTP`);
    const shape = (b: Baseline | undefined) => {
      assert.ok(b);
      const keysOf = (m: Map<string, number>) => [...m.keys()].sort();
      return {
        firstSeen: b.firstSeen,
        uses: b.uses,
        issuances: b.issuances,
        networks: keysOf(b.networks),
        userAgents: keysOf(b.userAgents),
        audiences: keysOf(b.audiences),
        operations: keysOf(b.operations),
        hours: b.hours,
        hosts: keysOf(b.hosts),
      };
    };
    for (const id of slice) {
      const a = overHttp.writ.ctx.detection.engine.baseline(id);
      const b = direct.writ.ctx.detection.engine.baseline(id);
      assert.deepEqual(shape(a), shape(b), id);
      // Moving averages depend on the order records arrive in (a report per verifier per minute).
      for (const k of ['useRate', 'issueRate'] as const)
        assert.ok(Math.abs(a![k].long - b![k].long) <= 0.05 * b![k].long + 1e-9, `${id} ${k}`);
    }
  });

  it('both paths detect the same', async () => {
    assert.deepEqual(await detectionMetrics(overHttp), await detectionMetrics(direct));
    assert.deepEqual(tally(await allFindings(overHttp)), tally(await allFindings(direct)));
  });
});
