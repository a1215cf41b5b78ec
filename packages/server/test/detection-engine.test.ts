import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from '@bufbuild/cel';
import { compileExpression } from '../src/cel/expression.js';
import { compileFast } from '../src/cel/fast-eval.js';
import { hourOfWeek } from '../src/detection/baseline.js';
import { ruleSet } from '../src/detection/create-detector.js';
import { type Detection, DetectionEngine, type EngineSettings } from '../src/detection/engine.js';
import { NetworkMap } from '../src/detection/networks.js';
import { RiskBook } from '../src/detection/risk.js';
import { compileRule, RuleError } from '../src/detection/rule.js';
import type { Signal, SignalData } from '../src/detection/signal.js';

const SETTINGS: EngineSettings = {
  learningMs: 0,
  learningEvents: 0,
  hostsWindowMs: 3_600_000,
  replayWindowMs: 60_000,
  refusalWindowMs: 60_000,
};
const T0 = Date.UTC(2026, 11, 7, 10, 0, 0);
const WORKLOAD = 'spiffe://test.writ/reports/exporter';
const networks = new NetworkMap({ ipv4: 24, ipv6: 64 }, [
  { cidr: '10.1.0.0/16', environment: 'production' },
  { cidr: '10.9.0.0/16', environment: 'development' },
]);

function use(over: Partial<SignalData['usage']> & { time?: number } = {}): Signal<'usage'> {
  const { time = T0, ...data } = over;
  const source = data.source ?? '10.1.2.3';
  const network = networks.network(source);
  return {
    kind: 'usage',
    time,
    data: {
      sub: WORKLOAD,
      jti: 'jti-1',
      tid: '',
      aud: 'https://reports.test.writ',
      reporter: 'spiffe://test.writ/reports/api',
      operation: 'GET /reports/:id',
      source,
      network,
      network_environment: networks.environment(network),
      user_agent: 'writ-sdk/1',
      user_agent_kind: 'tool',
      decision: 'allow',
      reason: '',
      signal: '',
      token_revoked: false,
      ...data,
    },
  };
}

const ids = (found: Detection[]) => found.map((d) => d.rule.id).sort();

function engine(settings: Partial<EngineSettings> = {}) {
  return new DetectionEngine({ ...SETTINGS, ...settings }, ruleSet([]), {
    environment: (w) => (w === WORKLOAD ? 'production' : ''),
  });
}

describe('detection engine', () => {
  it('fires on a token used from a second network within the replay window, not from the same one', () => {
    const e = engine();
    assert.deepEqual(ids(e.observe(use({ source: '10.1.2.3' }))), ['new-audience-or-operation']);
    assert.deepEqual(ids(e.observe(use({ source: '10.1.2.99', time: T0 + 1000 }))), []);
    const found = e.observe(use({ source: '203.0.113.7', time: T0 + 2000 }));
    assert.ok(ids(found).includes('token-two-networks'), ids(found).join());
    assert.equal(found.find((d) => d.rule.id === 'token-two-networks')?.jti, 'jti-1');
  });

  it('a presentation refused with a security signal is judged by its own rule, not counted as a replay', () => {
    const e = engine();
    e.observe(use({ source: '10.1.2.3' }));
    const keyless = e.observe(
      use({
        source: '203.0.113.7',
        decision: 'deny',
        reason: 'dpop_bound_as_bearer',
        signal: 'key_missing',
        time: T0 + 1000,
      }),
    );
    assert.deepEqual(ids(keyless), ['bound-token-without-key']);
    const revoked = e.observe(
      use({
        source: '198.51.100.4',
        decision: 'deny',
        reason: 'revoked',
        signal: 'revoked',
        time: T0 + 2000,
      }),
    );
    assert.deepEqual(ids(revoked), ['revoked-token-used']);
    // Nor does either network count later: the holder's next use is still from one network.
    assert.deepEqual(ids(e.observe(use({ source: '10.1.2.3', time: T0 + 3000 }))), []);
    // A use the verifier let through from another network is the replay.
    assert.deepEqual(ids(e.observe(use({ source: '198.51.100.4', time: T0 + 4000 }))), [
      'token-two-networks',
    ]);
  });

  it('a second network after the window has passed is no replay', () => {
    const e = engine();
    e.observe(use({ source: '10.1.2.3' }));
    assert.ok(!ids(e.observe(use({ source: '10.1.7.3', time: T0 + 61_000 }))).includes('token-two-networks'));
  });

  it('fires on security signals, and a cooldown keeps it quiet for that workload', () => {
    const e = engine();
    e.observe(use());
    const deny = {
      decision: 'deny' as const,
      reason: 'dpop_bound_as_bearer',
      signal: 'key_missing' as const,
    };
    assert.deepEqual(ids(e.observe(use({ ...deny, time: T0 + 10 }))), ['bound-token-without-key']);
    assert.deepEqual(ids(e.observe(use({ ...deny, time: T0 + 20 }))), []);
    assert.deepEqual(ids(e.observe(use({ ...deny, time: T0 + 61_000 }))), ['bound-token-without-key']);
  });

  it('a workload under break-glass is watched at the highest sensitivity: no cooldown, no learning-only', () => {
    const e = engine({ learningMs: 3_600_000, learningEvents: 10 });
    const deny = {
      decision: 'deny' as const,
      reason: 'dpop_bound_as_bearer',
      signal: 'key_missing' as const,
    };
    e.heighten(WORKLOAD, T0 + 60_000);
    const first = e.observe(use());
    assert.equal(first[0]!.learning, false, 'a baseline rule acts even while the baseline learns');
    assert.deepEqual(ids(e.observe(use({ ...deny, time: T0 + 10 }))), ['bound-token-without-key']);
    assert.deepEqual(
      ids(e.observe(use({ ...deny, time: T0 + 20 }))),
      ['bound-token-without-key'],
      'no cooldown',
    );
    // At its end (or calm) the ordinary sensitivity is back: the cooldown holds again, learning observes.
    assert.deepEqual(ids(e.observe(use({ ...deny, time: T0 + 60_000 }))), []);
    e.heighten(WORKLOAD, T0 + 120_000);
    e.calm(WORKLOAD);
    assert.deepEqual(ids(e.observe(use({ ...deny, time: T0 + 60_010 }))), []);
    assert.equal(e.heightened(WORKLOAD, T0 + 60_010), false);
  });

  it('baseline rules only observe while learning', () => {
    const e = engine({ learningMs: 3_600_000, learningEvents: 10 });
    const found = e.observe(use());
    assert.equal(found.length, 1);
    assert.equal(found[0]!.learning, true);
    assert.equal(
      e.observe(use({ signal: 'dpop_replay', decision: 'deny', reason: 'dpop_replay', time: T0 + 5 }))[0]!
        .learning,
      false,
    );
  });

  it('counts refusals per claimed client and never names a workload for them', () => {
    const e = engine();
    let found: Detection[] = [];
    for (let i = 0; i < 20; i++)
      found = e.observe({
        kind: 'token.refused',
        time: T0 + i,
        data: { client_id: WORKLOAD, reason: 'bad_signature', source: '198.51.100.1' },
      });
    assert.deepEqual(ids(found), ['invalid-client-burst']);
    assert.equal(found[0]!.workload, '');
    assert.equal(found[0]!.claimed, WORKLOAD);
  });

  it('forgets a network once the window passes it: back on the first, one network; a third, two', () => {
    const e = engine();
    e.observe(use({ source: '10.1.2.3' }));
    assert.ok(ids(e.observe(use({ source: '203.0.113.7', time: T0 + 1000 }))).includes('token-two-networks'));
    // Past the window of the second network's use (and the rule's one-minute cooldown).
    const back = e.observe(use({ source: '10.1.2.3', time: T0 + 62_000 }));
    assert.ok(!ids(back).includes('token-two-networks'), ids(back).join());
    const third = e.observe(use({ source: '198.51.100.9', time: T0 + 63_000 }));
    assert.ok(ids(third).includes('token-two-networks'), ids(third).join());
  });

  it('a condition reads the signal as `event` with its kind and time; the signal is left as it was', () => {
    const rule = compileRule(
      {
        id: 'reads-event',
        signal: 'usage',
        condition: `event.kind == "usage" && event.time == ${T0 + 5} && event.operation == "GET /reports/:id"`,
        severity: 'low',
        response: 'alert',
        mode: 'enforce',
      },
      'test.yaml',
    );
    const e = new DetectionEngine(SETTINGS, [rule], { environment: () => '' });
    const s = use({ time: T0 + 5 });
    assert.deepEqual(ids(e.observe(s)), ['reads-event']);
    assert.ok(!('kind' in s.data) && !('time' in s.data), 'the payload itself is not changed');
    assert.deepEqual(ids(e.observe(use({ time: T0 + 6, jti: 'jti-2' }))), [], 'another time does not match');
  });

  it('a network of another environment fires; one of its own does not', () => {
    const e = engine();
    e.observe(use());
    assert.ok(
      !ids(e.observe(use({ source: '10.1.3.3', jti: 'jti-2', time: T0 + 100 }))).includes(
        'network-of-other-environment',
      ),
    );
    assert.ok(
      ids(e.observe(use({ source: '10.9.3.3', jti: 'jti-3', time: T0 + 200 }))).includes(
        'network-of-other-environment',
      ),
    );
  });
});

describe('network map', () => {
  it('maps a source by its own address, so a range narrower than its network decides; the most specific wins', () => {
    const map = new NetworkMap({ ipv4: 24, ipv6: 64 }, [
      { cidr: '10.1.0.0/16', environment: 'production' },
      { cidr: '10.1.2.128/28', environment: 'development' },
      { cidr: '2001:db8::/32', environment: 'production' },
    ]);
    assert.equal(map.network('10.1.2.130'), '10.1.2.0/24');
    assert.equal(map.environment('10.1.2.130'), 'development');
    assert.equal(map.environment('10.1.2.10'), 'production', 'the same /24, outside the /28');
    assert.equal(
      map.environment('::ffff:10.1.2.131'),
      'development',
      'an IPv4-mapped address is its IPv4 one',
    );
    assert.equal(map.environment('2001:db8:5::1'), 'production');
    assert.equal(map.environment('192.0.2.1'), '');
    assert.equal(map.environment('unknown'), '');
    assert.deepEqual(
      map.environments.map((e) => e.cidr),
      ['10.1.0.0/16', '10.1.2.128/28', '2001:db8::/32'],
    );
  });
});

describe('baseline hours', () => {
  it('hour of the week (UTC, Monday 00:00 is 0) agrees with the calendar, before the epoch too', () => {
    const byCalendar = (ms: number) => {
      const d = new Date(ms);
      return ((d.getUTCDay() + 6) % 7) * 24 + d.getUTCHours();
    };
    assert.equal(hourOfWeek(Date.UTC(2026, 11, 7, 0, 0, 0)), 0, 'Monday 7 December 2026, midnight');
    assert.equal(
      hourOfWeek(Date.UTC(2026, 11, 13, 23, 59, 59)),
      167,
      'the Sunday after, a second to midnight',
    );
    for (let ms = Date.UTC(1969, 11, 20); ms < Date.UTC(1970, 0, 10); ms += 1_799_999)
      assert.equal(hourOfWeek(ms), byCalendar(ms), new Date(ms).toISOString());
    for (let ms = Date.UTC(2026, 0, 1); ms < Date.UTC(2026, 0, 31); ms += 3_599_999)
      assert.equal(hourOfWeek(ms), byCalendar(ms), new Date(ms).toISOString());
  });
});

describe('detection rules: validation', () => {
  it('names the field of a broken rule', () => {
    const base = { id: 'x', signal: 'usage', condition: 'true', severity: 'low', response: 'alert' };
    const field = (r: unknown) => {
      try {
        compileRule(r, 'f.yaml');
        return 'ok';
      } catch (err) {
        assert.ok(err instanceof RuleError);
        return err.field;
      }
    };
    assert.equal(field(base), 'ok');
    assert.equal(field({ ...base, condition: 'event.decision ==' }), 'condition');
    assert.equal(field({ ...base, condition: 'secrets.key == 1' }), 'condition');
    assert.equal(field({ ...base, signal: 'nope' }), 'signal');
    assert.equal(field({ ...base, cooldown: 'soon' }), 'cooldown');
    assert.equal(field({ ...base, signal: 'token.refused', response: 'revoke_token' }), 'response');
    assert.equal(field({ ...base, extra: 1 }), '(document)');
  });
});

describe('fast CEL evaluation agrees with the CEL planner', () => {
  const vars = {
    event: {
      decision: 'allow',
      signal: '',
      n: 3,
      s: 'GET /a',
      list: ['a', 'b'],
      m: { a: 1 },
      m2: { a: 1 },
      u: 'h\u00e9llo \u{1f600}',
      nul: null,
      on: true,
      inf: Number.POSITIVE_INFINITY,
    },
    token: { networks: 2, revoked: false },
    baseline: { hosts: 25, hosts_usual: 4.5, audience_known: true },
    workload: { environment: 'production' },
  };
  const VARIABLES = ['event', 'token', 'baseline', 'workload'];
  const norm = (v: unknown) => (typeof v === 'bigint' ? Number(v) : v);
  for (const expr of [
    'token.networks > 1',
    'event.decision == "allow" && !baseline.audience_known',
    'event.signal == "key_missing" || event.signal == "key_mismatch"',
    'event.s.startsWith("GET ") && size(event.list) == 2',
    '"a" in event.list && !("c" in event.list)',
    'has(event.missing) || event.n >= 3',
    'event.missing == 1',
    'event.missing == 1 || true',
    'false && event.missing == 1',
    'event.n == "3"',
    'token.revoked ? 1 == 2 : workload.environment != ""',
    'baseline.hosts >= 20.0 && baseline.hosts > 3.0 * baseline.hosts_usual',
    // An error is absorbed by && and || only when the other side decides, in either order.
    'event.missing == 1 && false',
    'true || event.missing == 1',
    'event.missing == 1 && true',
    'false || event.missing == 1',
    'event.n && false',
    'event.n || false',
    'event.on ? event.missing : true',
    'event.n ? 1 == 1 : true',
    '!event.n',
    // has(): a present field, an absent one, a field under an absent one.
    'has(event.m.a)',
    'has(event.m.b)',
    'has(event.missing.a)',
    // Equality across types is false, not an error; ordering across types is an error.
    'event.n != "3"',
    'event.nul == null',
    'event.n == null',
    'event.list == event.m',
    '[1, "a"] == [1, 2]',
    'event.list == ["a", "b"]',
    'event.m == event.m2',
    'event.s < event.n',
    '"ab" < "b" && false < true',
    'event.n == 3u && event.n > 2.5',
    'event.inf >= event.inf && event.inf > event.n && -event.inf < event.n',
    // Indexing, membership, strings.
    'event.list[1] == "b"',
    'event.list[2] == "c"',
    'event.m["b"] == 1',
    '"a" in event.m && !("b" in event.m) && !(1 in event.m)',
    '1 in event.list',
    'event.list + ["c"] == ["a", "b", "c"]',
    'size(event.u) == 7 && event.u.size() == 7',
    'event.s.endsWith("/a") && event.s.contains(" /") && !event.s.startsWith("POST")',
    '"a" + "b" == "ab"',
    '"a" + 1 == "a1"',
    // Arithmetic errors: division by zero.
    'event.n / 0 > 1',
    '-event.n < 0',
    // matches(): RE2, unanchored; a pattern from a field; a number is no string.
    'event.s.matches("^GET /[a-z]$") && event.s.matches("/a") && !event.s.matches("^/a")',
    'event.s.matches(event.decision)',
    '"allow".matches(event.decision)',
    'event.s.matches(event.n)',
    'event.s.matches("\\\\d+") || true',
  ]) {
    it(expr, () => {
      const parsed = parse(expr);
      assert.ok(compileFast(parsed.expr), 'the direct evaluator covers it: not planner against planner');
      const fast = compileExpression(expr, VARIABLES, { fast: true });
      const slow = compileExpression(expr, VARIABLES);
      assert.deepEqual(norm(fast.run(vars)), norm(slow.run(vars)));
    });
  }

  it('numbers are one type in the direct evaluator (the planner has int and double apart)', () => {
    const fast = (expr: string) => compileExpression(expr, VARIABLES, { fast: true }).run(vars);
    assert.equal(fast('3 * baseline.hosts_usual'), 13.5);
    assert.equal(fast('event.n + 1'), 4);
    assert.equal(fast('7 / 2'), 3.5);
  });

  it('a function given the wrong number of arguments is refused, never a throw at evaluation', () => {
    // The engine evaluates rules inside usage ingestion and the audit log's commit tap: a throw there
    // would fail the request after the fact and silence every other rule for that signal.
    for (const expr of ['size() == 0', 'size(event.s, event.s) == 0', 'event.s.size(1) == 0']) {
      assert.throws(() => compileExpression(expr, VARIABLES, { fast: true }), /size\(\) takes one value/);
    }
    assert.throws(() => compileExpression('event.s.matches()', VARIABLES, { fast: true }), /one pattern/);
    assert.throws(() => compileExpression('"a".contains()', VARIABLES, { fast: true }), /one string/);
  });

  it('refuses what the direct evaluator does not run, naming it, rather than running it otherwise', () => {
    // On the planner `3 * baseline.hosts_usual` is an error (int times double): a rule that also used
    // `exists` would silently never fire.
    for (const [expr, what] of [
      ['event.list.exists(x, x == "a")', /macro over a list/],
      ['event.s.lowerAscii() == "get /a"', /function lowerAscii\(\)/],
      ['int(event.n) > 1', /function int\(\)/],
      ['{"a": 1}.a == 1', /map literal/],
      ['b"a" == b"a"', /bytes literal/],
    ] as const)
      assert.throws(
        () => compileExpression(expr, VARIABLES, { fast: true }),
        (err: Error) => what.test(err.message) && /outside the part of CEL/.test(err.message),
        expr,
      );
    assert.throws(
      () => compileExpression('event.s.matches("(")', VARIABLES, { fast: true }),
      /matches\(\): .*\(/,
    );
    // The planner still takes them, for claim rules.
    assert.equal(compileExpression('event.list.exists(x, x == "a")', VARIABLES).run(vars), true);
  });

  it('matches() is RE2 as CEL has it, its numbers those of the direct evaluator', () => {
    const fast = (expr: string) => compileExpression(expr, VARIABLES, { fast: true }).run(vars);
    assert.equal(fast('event.s.matches("^GET /[a-z]$") && 3 * baseline.hosts_usual > 10'), true);
  });
});

describe('risk', () => {
  it('adds points by severity, caps at 100 and halves every half-life', () => {
    const r = new RiskBook({
      points: { low: 10, medium: 30, high: 50, critical: 80 },
      halfLifeMs: 3_600_000,
    });
    assert.equal(r.of(WORKLOAD, T0), 0);
    r.raise(WORKLOAD, 'critical', T0);
    assert.equal(r.of(WORKLOAD, T0), 80);
    assert.equal(r.of(WORKLOAD, T0 + 3_600_000), 40);
    r.raise(WORKLOAD, 'high', T0);
    assert.equal(r.of(WORKLOAD, T0), 100);
  });
});
