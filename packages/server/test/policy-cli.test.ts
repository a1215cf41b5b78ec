import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GrantType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import { readPolicyDir } from '../src/policy/policy-dir.js';
import { clientAuth, rawDoc } from './helpers/dpop.js';
import { type Harness, startHarness, testKey } from './helpers/harness.js';
import { applyPolicies } from './helpers/policy.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
/** The repo's own policy set and test cases (a config directory): packages/server/test/policy-cases. */
const CASES = fileURLToPath(new URL('../../test/policy-cases', import.meta.url));

function writ(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('writ policy test | explain | validate', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'writ-policy-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  /** A copy of the repo's case directory in which `edit` may change files. */
  const copy = (name: string, edit: (dir: string) => void = () => undefined) => {
    const dir = join(tmp, name);
    cpSync(CASES, dir, { recursive: true });
    edit(dir);
    return dir;
  };

  it('the repo policy cases pass: time, network, environments, sensitivity, purpose, risk, people vs workloads', () => {
    const r = writ('policy', 'test', CASES);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /(\d+) case\(s\), \1 passed, 0 failed/);
    for (const file of [
      'time-windows',
      'network',
      'environments',
      'sensitivity',
      'purpose',
      'risk',
      'principals',
    ])
      assert.match(r.stdout, new RegExp(`^ok +\\S*${file}\\.yaml: `, 'm'), `cases of ${file}.yaml ran`);
    assert.doesNotMatch(r.stdout, /^FAIL/m);
  });

  it('fails, naming the cases, when a rule the cases rely on is removed', () => {
    const dir = copy('no-env-separation', (d) => {
      const f = join(d, 'policies', 'tokens.cedar');
      writeFileSync(
        f,
        readFileSync(f, 'utf8').replace('@id("env-separation")\nforbid', '@id("env-separation")\npermit'),
      );
    });
    const r = writ('policy', 'test', dir);
    assert.equal(r.status, 1);
    assert.match(
      r.stdout,
      /^FAIL +\S*environments\.yaml: a dev workload cannot get a prod audience\n +expected deny, got allow/m,
    );
    assert.match(r.stdout, / [1-9]\d* failed/);
  });

  it('fails on a wrong expectation and on unexpected determining policies', () => {
    const cases = join(tmp, 'wrong.yaml');
    writeFileSync(
      cases,
      [
        'name: expects allow but risk denies',
        'principal: { id: spiffe://acme.test/reports/exporter, owner: team-reports, environment: prod }',
        'action: read',
        'resource: https://reports.acme.test',
        'context: { risk: 90 }',
        'expect: allow',
        '---',
        'name: right decision, wrong reason',
        'principal: { id: spiffe://acme.test/reports/exporter, owner: team-reports, environment: prod }',
        'action: read',
        'resource: https://reports.acme.test',
        'context: { risk: 90 }',
        'expect: deny',
        'policies: [owner-read-write]',
      ].join('\n'),
    );
    const r = writ('policy', 'test', CASES, '--cases', cases);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /expected allow, got deny by risk-ceiling/);
    assert.match(r.stdout, /expected determining policies \[owner-read-write\], got \[risk-ceiling\]/);
    assert.match(r.stdout, /2 case\(s\), 0 passed, 2 failed/);
  });

  it('refuses a case whose risk is out of range, as the server and the verifier do', () => {
    const cases = join(tmp, 'risk.yaml');
    writeFileSync(
      cases,
      [
        'name: risk beyond the scale',
        'principal: { id: spiffe://acme.test/reports/exporter, owner: team-reports, environment: prod }',
        'action: read',
        'resource: https://reports.acme.test',
        'context: { risk: 101 }',
        'expect: deny',
      ].join('\n'),
    );
    const r = writ('policy', 'test', CASES, '--cases', cases);
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /risk\.yaml: case "risk beyond the scale": context: risk must be an integer from 0 to 100/,
    );
  });

  it('explain names the determining policies with file and line, and what the slice considered', () => {
    const r = writ(
      'policy',
      'explain',
      CASES,
      join(CASES, 'policies', 'tests', 'environments.yaml'),
      '--name',
      'a dev workload cannot get a prod audience',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^a dev workload cannot get a prod audience: DENY \(policy set 1-[0-9a-f]{12}\)/);
    assert.match(r.stdout, /forbid env-separation \(policies\/tokens\.cedar:7\)/);
    assert.match(r.stdout, /considered \d+ policies whose scope matches: .*token-baseline/);
    assert.doesNotMatch(r.stdout, /considered .*viewer-read/, 'people-only rules are sliced away');
  });

  it('validate and test refuse a broken set with file, line and reason', () => {
    const dir = copy('broken', (d) => {
      writeFileSync(
        join(d, 'policies', 'zz-bad.cedar'),
        '// a typo\n\npermit (principal is Workload, action, resource)\nwhen { resource.sensitivty == "internal" };\n',
      );
    });
    for (const cmd of ['validate', 'test']) {
      const r = writ('policy', cmd, dir);
      assert.equal(r.status, 1, `${cmd}: ${r.stdout}`);
      assert.match(r.stderr, /policies\/zz-bad\.cedar:4: .*sensitivty/);
    }
    const ok = writ('policy', 'validate', CASES);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^valid: \d+ policies in 3 file\(s\), 4 resource\(s\); version 1-[0-9a-f]{12}/);
  });

  it('the same set decides at the token endpoint: source network and environments over HTTP', async () => {
    const clock = fakeClock(Date.UTC(2026, 4, 6, 10));
    const prodKey = testKey();
    const devKey = testKey();
    const docs = [
      rawDoc('class', {
        name: 'reports',
        max_ttl: '5m',
        audiences: ['https://reports.acme.test', 'https://reports.dev.acme.test'],
        scopes: ['reports:read'],
        default_scopes: ['reports:read'],
        binding: 'bearer',
      }),
      rawDoc('workload', {
        id: 'spiffe://acme.test/reports/exporter',
        owner: 'team-reports',
        environment: 'prod',
        classes: ['reports'],
        jwks: { keys: [prodKey.publicJwk] },
      }),
      rawDoc('workload', {
        id: 'spiffe://acme.test/reports/dev-exporter',
        owner: 'team-reports',
        environment: 'dev',
        classes: ['reports'],
        jwks: { keys: [devKey.publicJwk] },
      }),
    ];
    const h: Harness = await startHarness({ clock, extraDocs: docs });
    try {
      const sources = readPolicyDir(CASES)!;
      const applied = await applyPolicies(h, sources, docs);
      assert.equal(applied.status, 200, JSON.stringify(applied.body));
      const token = async (id: string, key: typeof prodKey, resource: string, ip: string) => {
        const res = await h.writ.app.inject({
          method: 'POST',
          url: '/oauth2/token',
          remoteAddress: ip,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams({
            grant_type: GrantType.clientCredentials,
            ...clientAuth(h, id, key),
            resource,
          }).toString(),
        });
        return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
      };
      const prod = 'spiffe://acme.test/reports/exporter';
      const dev = 'spiffe://acme.test/reports/dev-exporter';
      assert.equal((await token(prod, prodKey, 'https://reports.acme.test', '10.20.3.4')).status, 200);
      const outside = await token(prod, prodKey, 'https://reports.acme.test', '192.0.2.10');
      assert.equal(outside.status, 400);
      assert.equal(outside.body['error'], 'access_denied');
      const refused = await h.auditEvents('token.refused');
      assert.deepEqual(refused[refused.length - 1]!.data['policies'], ['prod-tokens-from-prod-network']);
      assert.equal((await token(dev, devKey, 'https://reports.acme.test', '10.20.3.4')).status, 400);
      assert.equal((await token(dev, devKey, 'https://reports.dev.acme.test', '192.0.2.10')).status, 200);
    } finally {
      await h.close();
    }
  });
});
