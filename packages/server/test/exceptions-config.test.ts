import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfigDir } from '../src/config/config-dir.js';
import { ConfigError } from '../src/errors.js';
import { type ExceptionRecord, effectiveExpiry, exceptionStatus } from '../src/governance/exception.js';

const CLASS = 'name: legacy-cron\nbinding: bearer\nmax_ttl: 5m\naudiences: [https://r.test]\nscopes: [r]\n';
const BOUND = 'name: bound\nmax_ttl: 5m\naudiences: [https://r.test]\nscopes: [r]\n';
const CRON = 'spiffe://test.writ/legacy/cron';
const WORKLOAD = `id: ${CRON}\nowner: team\nenvironment: prod\nclasses: [legacy-cron]\nclient_secret_sha256: ${'a'.repeat(64)}\n`;
const EXCEPTION = [
  'id: cron-secret',
  'covers: { kind: legacy_client_secret, class: legacy-cron }',
  'owner: team-reports',
  'justification: the vendor cron cannot sign JWTs',
  'expires: 2027-03-31',
].join('\n');

describe('exceptions/*.yaml: schema and loader', () => {
  let dir: string;
  const roots: string[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-exceptions-'));
    roots.push(dir);
    for (const d of ['classes', 'workloads', 'exceptions']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'classes', 'cron.yaml'), `${CLASS}---\n${BOUND}`);
  });
  after(() => {
    for (const d of roots) rmSync(d, { recursive: true, force: true });
  });

  const write = (sub: string, name: string, text: string) => writeFileSync(join(dir, sub, name), text);
  function refusal(): ConfigError {
    try {
      loadConfigDir(dir);
    } catch (err) {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      return err;
    }
    assert.fail('the config was accepted');
  }

  it('loads a full exception: every field, defaults for review_every and alert_before', () => {
    write(
      'exceptions',
      'a.yaml',
      `${EXCEPTION}\ndescription: cron box\ncontrols: { source_networks: [10.0.0.0/8], rate: { requests: 60, per: 1h }, scopes: [r] }\n---\nid: bearer-reports\ncovers: { kind: bearer_class, class: legacy-cron }\nowner: team\njustification: a partner cannot do DPoP\nexpires: 2027-01-01T12:00:00+02:00\nreview_every: 30d\nalert_before: 7d\n`,
    );
    write('workloads', 'cron.yaml', WORKLOAD);
    const { exceptions } = loadConfigDir(dir);
    assert.deepEqual(exceptions, [
      {
        id: 'cron-secret',
        description: 'cron box',
        covers: { kind: 'legacy_client_secret', class: 'legacy-cron' },
        owner: 'team-reports',
        justification: 'the vendor cron cannot sign JWTs',
        controls: { sourceNetworks: ['10.0.0.0/8'], rate: { requests: 60, per: 3600 }, scopes: ['r'] },
        expiresAt: Date.parse('2027-03-31T23:59:59.999Z'),
        reviewEvery: 90 * 86_400,
        alertBefore: 14 * 86_400,
      },
      {
        id: 'bearer-reports',
        covers: { kind: 'bearer_class', class: 'legacy-cron' },
        owner: 'team',
        justification: 'a partner cannot do DPoP',
        controls: {},
        expiresAt: Date.parse('2027-01-01T10:00:00Z'),
        reviewEvery: 30 * 86_400,
        alertBefore: 7 * 86_400,
      },
    ]);
  });

  const cases: Array<[string, string, RegExp]> = [
    [
      'an unknown class',
      EXCEPTION.replace('class: legacy-cron', 'class: legacy-crom'),
      /a\.yaml: covers\.class: unknown class "legacy-crom"$/,
    ],
    [
      'an unknown kind',
      EXCEPTION.replace('legacy_client_secret', 'static_password'),
      /a\.yaml: covers(\.kind)?: .*kind must be legacy_client_secret, bearer_class, vendor_key or long_lived_token/,
    ],
    [
      'a date that is no date',
      EXCEPTION.replace('2027-03-31', 'next spring'),
      /a\.yaml: expires: must be a date YYYY-MM-DD or an RFC 3339 time/,
    ],
    [
      'a short justification',
      EXCEPTION.replace('the vendor cron cannot sign JWTs', 'because'),
      /a\.yaml: justification: /,
    ],
    [
      'a missing owner',
      EXCEPTION.replace('owner: team-reports\n', ''),
      /a\.yaml: required field owner missing$/,
    ],
    [
      'a range that is no CIDR range',
      `${EXCEPTION}\ncontrols: { source_networks: [10.0.0.0/33] }`,
      /a\.yaml: controls\.source_networks\.0: "10\.0\.0\.0\/33" is not a CIDR range/,
    ],
    [
      'a bearer exception for a class that binds its tokens',
      EXCEPTION.replace('kind: legacy_client_secret, class: legacy-cron', 'kind: bearer_class, class: bound'),
      /a\.yaml: covers\.class: class "bound" binds its tokens \(dpop\): it needs no bearer exception$/,
    ],
    [
      'an unknown workload',
      EXCEPTION.replace(
        'class: legacy-cron }',
        `class: legacy-cron, workloads: [spiffe://test.writ/nobody] }`,
      ),
      /a\.yaml: covers\.workloads\.0: unknown workload "spiffe:\/\/test\.writ\/nobody"$/,
    ],
    [
      'an id defined twice',
      `${EXCEPTION}\n---\n${EXCEPTION}`,
      /a\.yaml \(document 2\): id: exception "cron-secret" is also defined in .*a\.yaml$/,
    ],
  ];
  for (const [what, text, expected] of cases)
    it(`refuses ${what}, naming the file and the field`, () => {
      write('exceptions', 'a.yaml', text);
      assert.match(refusal().message, expected);
    });

  it('a client secret without an exception covering it is refused, saying what to declare', () => {
    write('workloads', 'cron.yaml', WORKLOAD);
    const err = refusal();
    assert.equal(err.field, 'client_secret_sha256');
    assert.match(err.message, /needs an exception in exceptions\/ with covers\.kind legacy_client_secret/);
    // Covering other workloads of the class is not covering this one.
    write(
      'workloads',
      'other.yaml',
      WORKLOAD.replace('cron\n', 'other\n').replace(CRON, 'spiffe://test.writ/legacy/other'),
    );
    write(
      'exceptions',
      'a.yaml',
      EXCEPTION.replace(
        'class: legacy-cron }',
        'class: legacy-cron, workloads: [spiffe://test.writ/legacy/other] }',
      ),
    );
    assert.equal(refusal().field, 'client_secret_sha256');
  });

  it('an old legacy_client_secret block is refused with the exception document that replaces it', () => {
    write(
      'classes',
      'cron.yaml',
      `${CLASS}legacy_client_secret: { justification: "vendor cron: cannot sign", owner: team-reports, expires: 2027-03-31 }\n`,
    );
    write('workloads', 'cron.yaml', WORKLOAD);
    const err = refusal();
    assert.equal(err.field, 'legacy_client_secret');
    assert.match(err.message, /write exceptions\/legacy-cron-client-secret\.yaml with:\n/);
    // What it says to write is a valid exception that makes the config load.
    const yaml = err.message.split(' with:\n')[1]!;
    assert.deepEqual(parse(yaml), {
      id: 'legacy-cron-client-secret',
      covers: { kind: 'legacy_client_secret', class: 'legacy-cron' },
      owner: 'team-reports',
      justification: 'vendor cron: cannot sign',
      expires: '2027-03-31',
    });
    write('classes', 'cron.yaml', CLASS);
    write('exceptions', 'legacy-cron-client-secret.yaml', yaml);
    assert.equal(loadConfigDir(dir).exceptions[0]?.id, 'legacy-cron-client-secret');
  });
});

describe('exception status and expiry', () => {
  const END = Date.UTC(2027, 2, 31);
  const base: ExceptionRecord = {
    id: 'x',
    covers: { kind: 'vendor_key', key: 'stripe' },
    owner: 'o',
    justification: 'j',
    controls: {},
    expiresAt: END,
    reviewEvery: 86_400,
    alertBefore: 14 * 86_400,
    runtime: {},
  };
  it('is active, then expiring alertBefore ahead, then expired at its end', () => {
    assert.equal(exceptionStatus(base, END - 14 * 86_400_000 - 1), 'active');
    assert.equal(exceptionStatus(base, END - 14 * 86_400_000), 'expiring');
    assert.equal(exceptionStatus(base, END - 1), 'expiring');
    assert.equal(exceptionStatus(base, END), 'expired');
  });
  it('a renewal extends the declared end it renewed, and no other; retired wins over everything', () => {
    const renewal = { expiresAt: END + 86_400_000, declaredExpiresAt: END, by: 'ops', at: 0, note: '' };
    const renewed = { ...base, runtime: { renewal } };
    assert.equal(effectiveExpiry(renewed), END + 86_400_000);
    assert.equal(exceptionStatus(renewed, END), 'expiring');
    const redeclared = { ...renewed, expiresAt: END - 1000 };
    assert.equal(effectiveExpiry(redeclared), END - 1000, 'a new declared end supersedes the renewal');
    const retired = { ...renewed, runtime: { renewal, retired: { by: 'ops', at: 0, note: '' } } };
    assert.equal(exceptionStatus(retired, 0), 'retired');
  });
});
