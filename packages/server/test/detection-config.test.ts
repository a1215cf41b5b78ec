import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { fakeClock } from '../src/clock.js';
import { type RawDocument, readConfigDir, validateConfig } from '../src/config/config-dir.js';
import { resolveSettings } from '../src/config/settings.js';
import { BUILTIN_RULES } from '../src/detection/builtin-rules.js';
import type { Signal } from '../src/detection/signal.js';
import { ConfigError } from '../src/errors.js';
import { kekFromBytes } from '../src/keys/kek.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { createWrit, type Writ } from '../src/writ.js';
import { type OperatorCli, operatorCli } from './helpers/cli.js';
import { writeHarnessConfig } from './helpers/config-dir.js';
import { decodeClaims } from './helpers/dpop.js';
import {
  AUDIENCE,
  configDocuments,
  type Harness,
  startHarness,
  testKey,
  WORKLOAD,
} from './helpers/harness.js';

/**
 * Detection rules (`detections/*.yaml`) and networks (`networks.yaml`) are configuration: validated
 * with errors that name the file and the field, diffed, stored, applied by `writ apply` and at start,
 * and in force on the detector at once.
 */

/** A rule of our own, as a file would hold it. */
const CURL_RULE = {
  id: 'curl-at-reports',
  description: 'curl used a reports token',
  signal: 'usage',
  condition: 'event.user_agent.startsWith("curl/") && event.aud == "https://reports.test.writ"',
  severity: 'low',
  response: 'alert',
  mode: 'enforce',
  cooldown: '1m',
};

const doc = (kind: RawDocument['kind'], file: string, d: unknown, index = 0): RawDocument => ({
  kind,
  file,
  index,
  doc: d,
});

/** The ConfigError `validateConfig` throws for `docs`. */
function configError(docs: RawDocument[]): ConfigError {
  try {
    validateConfig(docs);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail('validateConfig accepted it');
}

const builtIn = (id: string) => BUILTIN_RULES.find((r) => r.id === id)!;

describe('detection config: validation', () => {
  it('takes rules with their defaults and the file relative to the config directory as the source', () => {
    const { detections, networks } = validateConfig([
      doc('detection', 'config/detections/custom.yaml', {
        ...CURL_RULE,
        mode: undefined,
        cooldown: undefined,
      }),
      doc('networks', 'config/networks.yaml', {
        networks: [
          { cidr: '10.1.0.0/16', environment: 'prod' },
          { cidr: '2001:db8:1::/48', environment: 'dev' },
          { cidr: '192.0.2.7', environment: 'dev' },
        ],
      }),
    ]);
    assert.deepEqual(detections, [
      {
        ...CURL_RULE,
        mode: 'observe',
        cooldown: '10m',
        enabled: true,
        source: 'detections/custom.yaml',
      },
    ]);
    assert.deepEqual(
      networks.map((n) => n.cidr),
      ['10.1.0.0/16', '2001:db8:1::/48', '192.0.2.7'],
    );
  });

  it('a rule with a built-in id may give only what it changes; the rest is the built-in rule', () => {
    const { detections } = validateConfig([
      doc('detection', 'detections/overrides.yaml', { id: 'human-user-agent', enabled: false }),
      doc('detection', 'detections/overrides.yaml', { id: 'many-hosts', mode: 'observe' }, 1),
    ]);
    const [off, observed] = detections;
    assert.equal(off?.enabled, false);
    assert.equal(off?.condition, builtIn('human-user-agent').condition);
    assert.equal(observed?.mode, 'observe');
    assert.equal(observed?.condition, builtIn('many-hosts').condition);
    assert.equal(observed?.source, 'detections/overrides.yaml');
    // A new id must be a whole rule.
    const e = configError([doc('detection', 'detections/new.yaml', { id: 'mine', enabled: false })]);
    assert.equal(e.file, 'detections/new.yaml');
    assert.match(e.message, /required fields signal, condition, severity, response missing/);
  });

  it('refuses a broken CEL condition, naming the file, the document and `condition`', () => {
    for (const condition of [
      'event.signal ==',
      'request.ip == "10.0.0.1"',
      // Outside the part of CEL rules run in: refused, not run another way.
      '["a", "b"].exists(x, event.aud == x)',
    ]) {
      const e = configError([
        doc('detection', 'detections/a.yaml', CURL_RULE),
        doc('detection', 'detections/a.yaml', { ...CURL_RULE, id: 'broken', condition }, 1),
      ]);
      assert.equal(e.file, 'detections/a.yaml (document 2)');
      assert.equal(e.field, 'condition');
      assert.match(e.message, /CEL/);
    }
  });

  it('refuses an id defined twice, naming both files', () => {
    const e = configError([
      doc('detection', 'detections/a.yaml', CURL_RULE),
      doc('detection', 'detections/b.yaml', { ...CURL_RULE, severity: 'high' }),
    ]);
    assert.equal(e.file, 'detections/b.yaml');
    assert.equal(e.field, 'id');
    assert.match(e.message, /rule "curl-at-reports" is also defined in detections\/a\.yaml/);
    // A built-in id overridden twice is the same mistake.
    const twice = configError([
      doc('detection', 'detections/a.yaml', { id: 'many-hosts', enabled: false }),
      doc('detection', 'detections/b.yaml', { id: 'many-hosts', mode: 'observe' }),
    ]);
    assert.match(twice.message, /detections\/b\.yaml: id: .*detections\/a\.yaml/);
  });

  it('refuses unknown fields, bad values and acting on a claimed client, by field', () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ ...CURL_RULE, colour: 'red' }, '', /unknown field colour/],
      [{ ...CURL_RULE, id: 'Has Spaces' }, 'id', /1 to 64/],
      [{ ...CURL_RULE, severity: 'extreme' }, 'severity', /./],
      [{ ...CURL_RULE, signal: 'token.minted' }, 'signal', /./],
      [{ ...CURL_RULE, cooldown: '8d' }, 'cooldown', /at most 7d/],
      [
        { ...CURL_RULE, signal: 'token.refused', condition: 'true', response: 'raise_risk' },
        'response',
        /only alert/,
      ],
    ];
    for (const [rule, field, message] of cases) {
      const e = configError([doc('detection', 'detections/x.yaml', rule)]);
      assert.equal(e.file, 'detections/x.yaml');
      assert.equal(e.field, field, JSON.stringify(rule));
      assert.match(e.message, message);
    }
  });

  it('refuses a range that is no CIDR, has bits past its prefix or is listed twice, and a second document', () => {
    const networks = (list: unknown[]) => [doc('networks', 'networks.yaml', { networks: list })];
    const prod = { cidr: '10.1.0.0/16', environment: 'prod' };
    for (const [cidr, message] of [
      ['10.300.0.0/16', /not a CIDR range/],
      ['10.1.0.0/33', /not a CIDR range/],
      ['10.1.0.0/x', /not a CIDR range/],
      ['prod-net', /not a CIDR range/],
      ['10.1.2.0/16', /bits set past its \/16 prefix/],
      ['2001:db8::1/64', /bits set past its \/64 prefix/],
    ] as const) {
      const e = configError(networks([prod, { cidr, environment: 'dev' }]));
      assert.equal(e.file, 'networks.yaml');
      assert.equal(e.field, 'networks.1.cidr', cidr);
      assert.match(e.message, message);
    }
    const twice = configError(networks([prod, { cidr: '10.1.0.0/16', environment: 'dev' }]));
    assert.equal(twice.field, 'networks.1.cidr');
    assert.match(twice.message, /already listed as networks\.0/);
    const env = configError(networks([{ cidr: '10.1.0.0/16', environment: 'Prod!' }]));
    assert.equal(env.field, 'networks.0.environment');
    const extra = configError(networks([{ ...prod, zone: 'a' }]));
    assert.equal(extra.field, 'networks.0');
    const two = configError([...networks([prod]), doc('networks', 'networks.yaml', { networks: [] }, 1)]);
    assert.equal(two.file, 'networks.yaml (document 2)');
    assert.match(two.message, /also defined in networks\.yaml/);
  });

  it('readConfigDir reads detections/ (several documents a file) and networks.yaml', () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-detection-dir-'));
    try {
      mkdirSync(join(dir, 'detections'));
      writeFileSync(
        join(dir, 'detections', 'rules.yaml'),
        `${JSON.stringify(CURL_RULE)}\n---\nid: human-user-agent\nenabled: false\n`,
      );
      writeFileSync(
        join(dir, 'networks.yaml'),
        'networks:\n  - cidr: 10.9.0.0/16\n    environment: development\n',
      );
      const raw = readConfigDir(dir);
      assert.deepEqual(
        raw.documents.map((d) => [d.kind, d.index]),
        [
          ['detection', 0],
          ['detection', 1],
          ['networks', 0],
        ],
      );
      const { detections, networks } = validateConfig(raw.documents);
      assert.deepEqual(
        detections.map((r) => [r.id, r.source, r.enabled]),
        [
          ['curl-at-reports', 'detections/rules.yaml', true],
          ['human-user-agent', 'detections/rules.yaml', false],
        ],
      );
      assert.deepEqual(networks, [{ cidr: '10.9.0.0/16', environment: 'development' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses networks.yaml beside networks.json rather than reading one and ignoring the other', () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-detection-dir-'));
    try {
      writeFileSync(join(dir, 'networks.yaml'), 'networks:\n  - cidr: 10.9.0.0/16\n    environment: dev\n');
      writeFileSync(join(dir, 'networks.json'), '{"networks": []}');
      assert.throws(
        () => readConfigDir(dir),
        (err: unknown) =>
          err instanceof ConfigError &&
          /networks\.json$/.test(err.file) &&
          /also in .*networks\.yaml/.test(err.message),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

interface RuleView {
  id: string;
  source: string;
  mode: string;
  enabled: boolean;
  condition: string;
}

describe('detection config: writ apply over real HTTP', () => {
  let h: Harness;
  let writ: OperatorCli;
  let config: string;
  before(async () => {
    h = await startHarness({ listen: true });
    writ = operatorCli(h);
    config = writeHarnessConfig(h);
  });
  after(async () => {
    await h.close();
  });

  const rules = async (): Promise<RuleView[]> => {
    const r = await h.admin('GET', '/detections');
    assert.equal(r.status, 200);
    return r.body['rules'] as RuleView[];
  };
  const rule = async (id: string) => (await rules()).find((r) => r.id === id);
  const write = (file: string, text: string) => {
    mkdirSync(join(config, 'detections'), { recursive: true });
    writeFileSync(join(config, file), text);
  };
  const applied = async () => (await h.auditEvents('config.applied')).length;
  /** A usage signal of `sub` with a curl user agent, classed as a person's (fires human-user-agent and curl-at-reports). */
  const curlUse = (sub: string): Signal => ({
    kind: 'usage',
    time: h.writ.ctx.clock.now(),
    data: {
      sub,
      jti: `jti-${sub}`,
      tid: '',
      aud: AUDIENCE,
      reporter: 'spiffe://test.writ/reports/api',
      operation: 'GET /reports/:id',
      source: '192.0.2.10',
      network: '192.0.2.0/24',
      network_environment: '',
      user_agent: 'curl/8.5.0',
      user_agent_kind: 'interactive',
      decision: 'allow',
      reason: '',
      signal: '',
      token_revoked: false,
    },
  });
  const findings = async (rule: string, workload: string) => {
    await h.writ.ctx.detection.settled();
    return h.store.listFindings({ rule, workload, limit: 10 });
  };

  it('applies rules and networks: --dry-run only shows them, then the diff names them and the rules are in force', async () => {
    write(
      'detections/custom.yaml',
      `${JSON.stringify(CURL_RULE)}\n---\n# The built-in rule, observing only\nid: human-user-agent\nmode: observe\n`,
    );
    write(
      'networks.yaml',
      [
        'networks:',
        '  - cidr: 10.1.0.0/16',
        '    environment: prod',
        // Narrower than the /24 sources are grouped in: the source itself decides.
        '  - cidr: 10.1.2.128/28',
        '    environment: development',
        '',
      ].join('\n'),
    );
    const before = await applied();
    const dry = await writ(['apply', '--dry-run', config]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^\+ detection curl-at-reports$/m);
    assert.match(dry.stdout, /^\+ detection human-user-agent$/m);
    assert.match(dry.stdout, /^\+ network 10\.1\.0\.0\/16$/m);
    assert.match(dry.stdout, /^\+ network 10\.1\.2\.128\/28$/m);
    assert.match(dry.stdout, /4 change\(s\) not applied \(dry run\)/);
    assert.equal(await rule('curl-at-reports'), undefined, 'a dry run applies nothing');
    assert.equal(await applied(), before);

    const r = await writ(['apply', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applied 4 change\(s\)/);
    const all = await rules();
    assert.equal(all.length, BUILTIN_RULES.length + 1);
    assert.deepEqual(
      all.find((x) => x.id === 'curl-at-reports'),
      {
        id: 'curl-at-reports',
        signal: 'usage',
        condition: CURL_RULE.condition,
        severity: 'low',
        response: 'alert',
        mode: 'enforce',
        cooldown_seconds: 60,
        enabled: true,
        source: 'detections/custom.yaml',
        learning_gated: false,
      },
    );
    const human = all.find((x) => x.id === 'human-user-agent');
    assert.equal(human?.source, 'detections/custom.yaml');
    assert.equal(human?.mode, 'observe');
    assert.equal(human?.condition, builtIn('human-user-agent').condition);
    assert.equal(all.find((x) => x.id === 'many-hosts')?.source, 'built-in');
    const event = (await h.auditEvents('config.applied')).at(-1)!;
    assert.deepEqual(
      ((event.data as { changes: Array<{ kind: string; name: string }> }).changes ?? []).map(
        (c) => `${c.kind} ${c.name}`,
      ),
      [
        'detection curl-at-reports',
        'detection human-user-agent',
        'network 10.1.0.0/16',
        'network 10.1.2.128/28',
      ],
    );

    const again = await writ(['apply', config]);
    assert.match(again.stdout, /^no changes/);
  });

  it('the rules fire as configured: a new rule enforces, an overridden built-in only observes', async () => {
    const sub = 'spiffe://test.writ/detect/curl';
    h.writ.ctx.detection.observe(curlUse(sub));
    const [mine] = await findings('curl-at-reports', sub);
    assert.equal(mine?.mode, 'enforce');
    assert.equal(mine?.outcome, 'alert');
    const [human] = await findings('human-user-agent', sub);
    assert.equal(human?.mode, 'observe', 'the override, not the built-in enforce mode');
    assert.equal(human?.outcome, 'observe');
    assert.equal(human?.risk, 0, 'an observing rule raises no risk');
  });

  it('networks.yaml is in force: a use from a range of another environment fires, one from its own does not', async () => {
    const res = await h.requestToken();
    assert.equal(res.status, 200);
    const token = await h.store.getToken(decodeClaims(res.body['access_token'] as string)['jti'] as string);
    assert.ok(token);
    const use = (source: string) => ({
      use: {
        operation: 'GET /reports/:id',
        source,
        userAgent: 'writ-sdk/1',
        decision: 'allow' as const,
        reason: '',
        signal: '' as const,
        time: h.writ.ctx.clock.now(),
      },
      token,
    });
    // The harness workload is prod: 10.1.2.10 is prod, 10.1.2.130 is in the development /28.
    h.writ.ctx.detection.observeUses('spiffe://test.writ/reports/api', [use('10.1.2.10')]);
    assert.deepEqual(await findings('network-of-other-environment', WORKLOAD), []);
    h.writ.ctx.detection.observeUses('spiffe://test.writ/reports/api', [use('10.1.2.130')]);
    const [found] = await findings('network-of-other-environment', WORKLOAD);
    assert.equal(found?.evidence.source, '10.1.2.130');
    const signal = found?.evidence.signals.at(-1) as Signal<'usage'>;
    assert.equal(signal.data.network, '10.1.2.0/24');
    assert.equal(signal.data.network_environment, 'development');
  });

  it('refuses a broken CEL condition, naming file and field, and nothing changes (CLI and server)', async () => {
    const rulesBefore = await rules();
    const appliedBefore = await applied();
    write(
      'detections/zz-broken.yaml',
      `${JSON.stringify({ ...CURL_RULE, id: 'broken', condition: 'event.signal ==' })}\n`,
    );
    try {
      const r = await writ(['apply', config]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /detections\/zz-broken\.yaml: condition: CEL syntax error/);
      // A client that skips the local check: the server validates again, and refuses the whole apply.
      const refusedBefore = (await h.auditEvents('admin.refused')).length;
      const sent = await h.admin('POST', '/config', {
        documents: readConfigDir(config).documents,
        policies: null,
      });
      assert.equal(sent.status, 400);
      assert.equal(sent.body['error'], 'invalid_request');
      assert.match(sent.body['error_description'] as string, /zz-broken\.yaml: condition: CEL syntax error/);
      const refused = await h.auditEvents('admin.refused');
      assert.equal(refused.length, refusedBefore + 1);
      assert.equal(refused.at(-1)?.data['reason'], 'invalid_config');
      assert.deepEqual(await rules(), rulesBefore);
      assert.equal(await applied(), appliedBefore);
    } finally {
      rmSync(join(config, 'detections', 'zz-broken.yaml'));
    }
  });

  it('refuses an id defined in two files, naming both', async () => {
    write('detections/zz-twin.yaml', `${JSON.stringify({ ...CURL_RULE, severity: 'high' })}\n`);
    try {
      const r = await writ(['apply', config]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /detections\/zz-twin\.yaml: id: rule "curl-at-reports" is also defined in \S*detections\/custom\.yaml/,
      );
      assert.equal((await rule('curl-at-reports'))?.source, 'detections/custom.yaml');
    } finally {
      rmSync(join(config, 'detections', 'zz-twin.yaml'));
    }
  });

  it('refuses a bad CIDR, naming networks.yaml and the entry', async () => {
    write(
      'networks.yaml',
      'networks:\n  - cidr: 10.1.0.0/16\n    environment: prod\n  - cidr: 10.300.0.0/16\n    environment: dev\n',
    );
    const appliedBefore = await applied();
    const r = await writ(['apply', config]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /networks\.yaml: networks\.1\.cidr: "10\.300\.0\.0\/16" is not a CIDR range/);
    assert.equal(await applied(), appliedBefore);
  });

  it('enabled: false turns a built-in rule off: the signal that fired it no longer does', async () => {
    write(
      'detections/custom.yaml',
      `${JSON.stringify(CURL_RULE)}\n---\nid: human-user-agent\nenabled: false\n`,
    );
    write('networks.yaml', 'networks: []\n');
    const r = await writ(['apply', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^~ detection human-user-agent \(enabled, mode\)$/m);
    assert.match(r.stdout, /^- network 10\.1\.0\.0\/16$/m);
    assert.equal((await rule('human-user-agent'))?.enabled, false);

    const sub = 'spiffe://test.writ/detect/after-off';
    h.writ.ctx.detection.observe(curlUse(sub));
    assert.equal((await findings('curl-at-reports', sub)).length, 1, 'the signal still reaches the rules');
    assert.deepEqual(await findings('human-user-agent', sub), []);
    const all = await h.store.listFindings({ workload: sub, limit: 10 });
    assert.deepEqual(
      all.map((f) => f.rule),
      ['curl-at-reports'],
    );
  });

  it('a config without detections/ and networks.yaml returns to the built-in rules', async () => {
    rmSync(join(config, 'detections'), { recursive: true });
    rmSync(join(config, 'networks.yaml'));
    const r = await writ(['apply', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^- detection curl-at-reports$/m);
    const all = await rules();
    assert.equal(all.length, BUILTIN_RULES.length);
    assert.ok(all.every((x) => x.source === 'built-in' && x.enabled));
  });
});

describe('detection config across restarts', () => {
  const kekBytes = randomBytes(32);
  const clock = fakeClock(Date.UTC(2026, 4, 6, 10));
  const keys = { workload: testKey(), other: testKey('EdDSA'), operator: testKey() };
  const settings = resolveSettings(undefined, {}, { 'log.level': 'silent' });
  const detectionDocs = [
    doc('detection', 'detections/custom.yaml', CURL_RULE),
    doc('detection', 'detections/custom.yaml', { id: 'human-user-agent', enabled: false }, 1),
    doc('networks', 'networks.yaml', { networks: [{ cidr: '10.9.0.0/16', environment: 'development' }] }),
  ];
  /** A process on `dir`'s store, applying `docs` at start (as `writ serve --config`), or none. */
  const start = (dir: string, docs: RawDocument[] | undefined) =>
    createWrit({
      settings,
      store: openSqliteStore({ path: join(dir, 'writ.db') }),
      kek: kekFromBytes(kekBytes, 'test'),
      clock,
      logger: pino({ level: 'silent' }),
      ...(docs ? { config: validateConfig(configDocuments(keys, docs), settings.tokens.maxLifetime) } : {}),
    });
  const inForce = (w: Writ) =>
    w.ctx.detection
      .rules()
      .filter((r) => r.source !== 'built-in')
      .map((r) => `${r.id} ${r.source} ${r.enabled}`);

  it('applies them at start, loads them again at the next start without a config, and a config without them removes them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-detection-restart-'));
    const expected = [
      'human-user-agent detections/custom.yaml false',
      'curl-at-reports detections/custom.yaml true',
    ];
    try {
      const first = await start(dir, detectionDocs);
      try {
        assert.deepEqual(inForce(first), expected);
        assert.equal(first.ctx.detection.networks.environment('10.9.3.4'), 'development');
      } finally {
        await first.close();
      }
      const second = await start(dir, undefined);
      try {
        assert.deepEqual(inForce(second), expected, 'loaded from the store before serving');
        assert.equal(second.ctx.detection.networks.environment('10.9.3.4'), 'development');
      } finally {
        await second.close();
      }
      const third = await start(dir, []);
      try {
        assert.deepEqual(inForce(third), []);
        assert.equal(third.ctx.detection.networks.environment('10.9.3.4'), '');
      } finally {
        await third.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
