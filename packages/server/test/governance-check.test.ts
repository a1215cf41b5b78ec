import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import AjvDraft04 from 'ajv-draft-04';
import ajvFormats from 'ajv-formats';
import { AdminClient, CliError } from '../src/cli/client.js';
import { apply } from '../src/cli/commands/apply.js';
import { governanceCheck } from '../src/cli/commands/govern-check.js';
import { loadConfigDir, readConfigDir } from '../src/config/config-dir.js';
import { ConfigError } from '../src/errors.js';
import { formatReport } from '../src/governance/report.js';
import { execWrit, type OperatorCli, operatorCli, WRIT_MAIN } from './helpers/cli.js';
import { writeHarnessConfig } from './helpers/config-dir.js';
import { type Harness, startHarness } from './helpers/harness.js';

// `writ govern check`: every rule of governance.yaml has a fixture config directory that passes it and
// one that breaks it (test/fixtures/governance/<rule>/{pass,fail}). The check names file, field and
// rule of each violation; SARIF output validates against the official SARIF 2.1.0 schema; the exit
// code gates CI; `writ apply` refuses on errors and prints warnings.

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/governance', import.meta.url));
const SARIF_SCHEMA = fileURLToPath(
  new URL('../../test/fixtures/sarif/sarif-schema-2.1.0.json', import.meta.url),
);
/** The fixtures' exceptions are judged on this day. */
const NOW = Date.UTC(2026, 11, 7);

const fixture = (rule: string, variant: 'pass' | 'fail') => join(FIXTURES, rule, variant);
const shown = (rule: string, variant: 'pass' | 'fail', file: string) =>
  relative(process.cwd(), join(fixture(rule, variant), file));

/** Each rule: its fixture folder, its id there, and the one violation its failing fixture has. */
const RULES = [
  {
    dir: 'max-ttl',
    id: 'prod-max-ttl',
    file: 'classes/reports.yaml',
    field: 'max_ttl',
    line: 2,
    says: /max_ttl is 1h; rule prod-max-ttl allows at most 15m in environment prod: set max_ttl to 15m or less/,
  },
  {
    dir: 'renewal-lifetime',
    id: 'prod-renewal',
    file: 'classes/reports.yaml',
    field: 'renewal.max_lifetime',
    line: 8,
    says: /renewal lifetime is 1d; .* at most 8h in environment prod: set renewal.max_lifetime to 8h or less/,
  },
  {
    dir: 'binding',
    id: 'prod-bound',
    file: 'classes/reports.yaml',
    field: 'binding',
    line: 7,
    says: /binding is bearer; rule prod-bound allows dpop or mtls in environment prod: set binding to dpop or mtls/,
  },
  {
    dir: 'audiences',
    id: 'restricted-one-audience',
    file: 'classes/ledger.yaml',
    field: 'audiences',
    line: 4,
    says: /lists 2 audiences; .* at most 1 in sensitivity restricted: split it into classes of at most 1 audience/,
  },
  {
    dir: 'scopes',
    id: 'few-scopes',
    file: 'classes/reports.yaml',
    field: 'scopes',
    line: 6,
    says: /lists 4 scopes; rule few-scopes allows at most 3: keep at most 3 scopes/,
  },
  {
    dir: 'owner',
    id: 'owned',
    file: 'workloads/exporter.yaml',
    field: 'owner',
    line: 2,
    says: /owner "team-report" is no person or team of people\/; rule owned wants every workload owned in environment prod by a known, active person or team: set owner to the id of one in people\//,
  },
  {
    dir: 'exception',
    id: 'exceptions-90d',
    file: 'exceptions/legacy.yaml',
    field: 'expires',
    line: 10,
    says: /expires on 2099-01-01, more than 90d out: set an expiry no later than 2027-03-07/,
  },
  {
    dir: 'issuer-condition',
    id: 'issuers-conditioned',
    file: 'issuers/github.yaml',
    field: 'condition',
    line: 1,
    says: /issuer github has no condition of its own: give a CEL condition/,
  },
] as const;

describe('governance rules: every rule has a passing and a failing fixture', () => {
  for (const r of RULES) {
    it(`${r.id} (${r.dir}): the passing fixture has no violation`, () => {
      const { rules, violations } = governanceCheck(fixture(r.dir, 'pass'), NOW);
      assert.deepEqual(
        rules.map((x) => x.id),
        [r.id],
      );
      assert.deepEqual(violations, []);
    });
    it(`${r.id} (${r.dir}): the failing fixture has one violation naming file, field, line and rule`, () => {
      const { violations } = governanceCheck(fixture(r.dir, 'fail'), NOW);
      assert.equal(violations.length, 1, JSON.stringify(violations));
      const v = violations[0]!;
      assert.equal(v.rule, r.id);
      assert.equal(v.file, shown(r.dir, 'fail', r.file));
      assert.equal(v.field, r.field);
      assert.equal(v.line, r.line);
      assert.match(v.message, r.says);
    });
  }

  it('an exception past its expiry breaks the rule too, naming the renewal window', () => {
    const { violations } = governanceCheck(fixture('exception', 'pass'), Date.UTC(2027, 2, 8));
    assert.equal(violations.length, 1);
    assert.match(
      violations[0]!.message,
      /the exception expired on 2027-03-07: renew it with an expiry after today and no later than 2027-06-06/,
    );
  });

  it('an exception owned by someone no longer active, with no compensating control, breaks the rule twice', () => {
    const { violations } = governanceCheck(join(FIXTURES, 'exception', 'fail-fields'), NOW);
    assert.deepEqual(
      violations.map((v) => [v.field, v.line]),
      [
        ['owner', 5],
        ['controls', 1],
      ],
    );
    assert.match(violations[0]!.message, /owner "bob@acme\.test" is a person who is no longer active/);
    assert.match(
      violations[1]!.message,
      /give at least one of controls\.source_networks, controls\.rate or controls\.scopes/,
    );
  });

  it('a bearer class in prod passes the binding rule only while a bearer_class exception covers it', () => {
    const dir = fixture('binding', 'pass');
    // The pass fixture's exception ends on 2027-02-01.
    const later = governanceCheck(dir, Date.UTC(2027, 1, 2)).violations;
    assert.equal(later.length, 1);
    assert.equal(later[0]!.object, 'class legacy');
    assert.match(later[0]!.message, /or declare a bearer_class exception for the class in exceptions\//);
  });

  it('an issuer condition of `true` is no condition', () => {
    const dir = copyOf(fixture('issuer-condition', 'pass'));
    const file = join(dir, 'issuers', 'github.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^condition: .*$/m, 'condition: "true"'));
    assert.equal(governanceCheck(dir, NOW).violations.length, 1);
  });
});

describe('governance rules see workload templates as the workloads they admit', () => {
  /** The owner fixture that passes, with an issuer and a template (owner and environment given). */
  const withTemplate = (base: string, owner: string, environment: string) => {
    const dir = copyOf(base);
    mkdirSync(join(dir, 'issuers'), { recursive: true });
    writeFileSync(
      join(dir, 'issuers', 'github.yaml'),
      'name: github\npreset: github-actions\naudience: https://writ.acme.test\ntrust_domain: acme.test\ncondition: claims.repository_owner == "acme"\n',
    );
    mkdirSync(join(dir, 'templates'), { recursive: true });
    writeFileSync(
      join(dir, 'templates', 'repos.yaml'),
      [
        'id: repos',
        `owner: ${owner}`,
        `environment: ${environment}`,
        'federation: github',
        'match:',
        '  prefixes: [spiffe://acme.test/github/acme/]',
        'classes: [reports]',
        'derive:',
        '  owner: \'"team-reports"\'',
        `  environment: '"${environment}"'`,
        '',
      ].join('\n'),
    );
    return dir;
  };

  it("workload.owner checks a template's owner: an inactive one is reported, naming the template file and field", () => {
    const dir = withTemplate(fixture('owner', 'pass'), 'bob@acme.test', 'prod');
    const { violations } = governanceCheck(dir, NOW);
    assert.equal(violations.length, 1, JSON.stringify(violations));
    const v = violations[0]!;
    assert.equal(v.rule, 'owned');
    assert.equal(v.object, 'template repos');
    assert.equal(v.field, 'owner');
    assert.equal(v.line, 2);
    assert.equal(v.file, relative(process.cwd(), join(dir, 'templates', 'repos.yaml')));
    assert.match(v.message, /owner "bob@acme\.test" is a person who is no longer active; rule owned/);
    assert.match(v.message, /set the template's owner/);
    // An unknown owner too; an active team passes.
    const unknown = governanceCheck(withTemplate(fixture('owner', 'pass'), 'team-nobody', 'prod'), NOW);
    assert.match(
      unknown.violations[0]?.message ?? '',
      /owner "team-nobody" is no person or team of people\//,
    );
    assert.deepEqual(
      governanceCheck(withTemplate(fixture('owner', 'pass'), 'team-reports', 'prod'), NOW).violations,
      [],
    );
  });

  it("a template takes its environment into rule scoping: out of the rule's environments it is not checked", () => {
    assert.deepEqual(
      governanceCheck(withTemplate(fixture('owner', 'pass'), 'bob@acme.test', 'dev'), NOW).violations,
      [],
    );
  });

  it('a class a prod template lists is a prod class: its max_ttl is judged by the prod rule', () => {
    // The passing max-ttl fixture: the 1h class `sandbox` is used in dev only.
    const dir = copyOf(fixture('max-ttl', 'pass'));
    assert.deepEqual(governanceCheck(dir, NOW).violations, []);
    const withProd = withTemplate(dir, 'team-reports', 'prod');
    writeFileSync(
      join(withProd, 'templates', 'repos.yaml'),
      readFileSync(join(withProd, 'templates', 'repos.yaml'), 'utf8').replace('[reports]', '[sandbox]'),
    );
    const { violations } = governanceCheck(withProd, NOW);
    assert.equal(violations.length, 1, JSON.stringify(violations));
    assert.equal(violations[0]!.object, 'class sandbox');
    assert.match(
      violations[0]!.message,
      /max_ttl is 1h; rule prod-max-ttl allows at most 15m in environment prod/,
    );
  });
});

describe('governance.yaml is validated like every config file: errors name the file and the field', () => {
  const refusal = (yaml: string): ConfigError => {
    const dir = copyOf(fixture('scopes', 'pass'));
    writeFileSync(join(dir, 'governance.yaml'), yaml);
    try {
      loadConfigDir(dir);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.file, /governance\.yaml$/);
      return err;
    }
    assert.fail('governance.yaml was accepted');
  };

  it('an unknown check is refused, listing the checks there are', () => {
    const err = refusal('rules:\n  - { id: a, check: class.maxttl, max: 15m }\n');
    assert.equal(err.field, 'rules.0.check');
    assert.match(err.message, /must be one of class\.max_ttl, class\.renewal_lifetime/);
  });

  it('a misspelled parameter is named with the missing one', () => {
    const err = refusal('rules:\n  - { id: a, check: class.max_ttl, maximum: 15m }\n');
    assert.equal(err.field, 'rules.0');
    assert.match(err.message, /unknown field maximum; required field max missing/);
  });

  it('a count out of range, a bad duration, a bad severity and a twice-used id are refused', () => {
    assert.match(
      refusal('rules:\n  - { id: a, check: class.scopes, max: 0 }\n').message,
      /rules\.0\.max: must be a whole number from 1 to 200/,
    );
    assert.match(
      refusal('rules:\n  - { id: a, check: class.max_ttl, max: soon }\n').message,
      /rules\.0\.max: must be a positive duration/,
    );
    assert.match(
      refusal('rules:\n  - { id: a, check: issuer.condition, severity: fatal }\n').message,
      /rules\.0\.severity/,
    );
    const twice = refusal(
      'rules:\n  - { id: a, check: issuer.condition }\n  - { id: a, check: class.scopes, max: 3 }\n',
    );
    assert.equal(twice.field, 'rules.1.id');
    assert.match(twice.message, /"a" is already the id of rules\.0/);
  });

  it('a stale threshold per environment must be a duration', () => {
    const err = refusal('stale:\n  environments: { prod: never }\n');
    assert.equal(err.field, 'stale.environments.prod');
  });
});

describe('writ govern check: formats and exit code', () => {
  /** Every failing fixture's rules and violations together, as one report. */
  const everything = () => {
    const all = RULES.map((r) => governanceCheck(fixture(r.dir, 'fail'), NOW));
    return {
      rules: all.flatMap((a) => a.rules),
      violations: all.flatMap((a) => a.violations),
      version: '0.1.0',
    };
  };

  it('SARIF output validates against the SARIF 2.1.0 schema, one result per violation', () => {
    // Both are CommonJS modules whose default export is `exports.default`.
    const ajv = new AjvDraft04.default({ allErrors: true, strict: false });
    ajvFormats.default(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync(SARIF_SCHEMA, 'utf8')));
    const sarif = JSON.parse(formatReport(everything(), 'sarif')) as {
      runs: Array<{
        tool: { driver: { rules: Array<{ id: string }> } };
        results: Array<{
          ruleId: string;
          ruleIndex: number;
          level: string;
          message?: unknown;
          locations: Array<{
            physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number } };
          }>;
        }>;
      }>;
    };
    assert.ok(validate(sarif), JSON.stringify(validate.errors, null, 2));
    const run = sarif.runs[0]!;
    const results = run.results;
    assert.equal(results.length, RULES.length);
    for (const [i, r] of RULES.entries()) {
      assert.equal(results[i]!.ruleId, r.id);
      assert.equal(run.tool.driver.rules[results[i]!.ruleIndex]!.id, r.id);
      assert.equal(
        results[i]!.locations[0]!.physicalLocation.artifactLocation.uri,
        shown(r.dir, 'fail', r.file),
      );
      assert.equal(results[i]!.locations[0]!.physicalLocation.region.startLine, r.line);
    }
    assert.equal(results.find((x) => x.ruleId === 'few-scopes')!.level, 'warning');
    // The validator is not a rubber stamp: a result without a message is refused.
    delete results[0]!.message;
    assert.equal(validate(sarif), false);
  });

  it('JUnit: one test case per rule, a failure for each rule broken by an error', () => {
    const xml = formatReport(everything(), 'junit');
    assert.match(
      xml,
      /^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites name="writ govern check" tests="8" failures="7">/,
    );
    assert.equal(xml.match(/<testcase /g)?.length, 8);
    assert.equal(xml.match(/<failure /g)?.length, 7);
    assert.match(xml, /<testcase classname="governance" name="few-scopes \(class\.scopes\)"><system-out>/);
    // Text is escaped: the issuer rule's message quotes a CEL string.
    assert.match(xml, /claims\.repository == &quot;acme\/deploy&quot;/);
  });

  it('the CLI exits 1 on an error, 0 on a pass and on warnings alone; every format names file, field and rule', async () => {
    const fail = await execWrit(WRIT_MAIN, ['govern', 'check', fixture('max-ttl', 'fail')]);
    assert.equal(fail.code, 1, fail.stderr);
    assert.match(fail.stdout, /^SEVERITY +RULE +FILE +FIELD +MESSAGE$/m);
    assert.match(fail.stdout, /error +prod-max-ttl +\S*classes\/reports\.yaml:2 +max_ttl +max_ttl is 1h/);
    assert.match(fail.stdout, /governance: 1 error, 0 warnings \(1 rule checked\)/);

    const pass = await execWrit(WRIT_MAIN, ['govern', 'check', fixture('max-ttl', 'pass')]);
    assert.equal(pass.code, 0, pass.stderr);
    assert.match(pass.stdout, /governance: every rule holds; 0 errors, 0 warnings/);

    const warned = await execWrit(WRIT_MAIN, [
      'govern',
      'check',
      '--format',
      'json',
      fixture('scopes', 'fail'),
    ]);
    assert.equal(warned.code, 0, warned.stderr);
    const json = JSON.parse(warned.stdout);
    assert.deepEqual(json.summary, { rules: 1, errors: 0, warnings: 1, passed: true });
    assert.equal(json.violations[0].rule, 'few-scopes');
    assert.equal(json.violations[0].field, 'scopes');
    assert.match(json.violations[0].file, /scopes\/fail\/classes\/reports\.yaml$/);

    const sarif = await execWrit(WRIT_MAIN, [
      'govern',
      'check',
      '--format',
      'sarif',
      fixture('binding', 'fail'),
    ]);
    assert.equal(sarif.code, 1);
    assert.equal(JSON.parse(sarif.stdout).runs[0].results[0].ruleId, 'prod-bound');

    const broken = await execWrit(WRIT_MAIN, [
      'govern',
      'check',
      fixture('max-ttl', 'fail'),
      '--format',
      'xml',
    ]);
    assert.notEqual(broken.code, 0);
    assert.match(broken.stderr, /allowed choices are table, json, sarif, junit/i);
  });

  it('a config directory that does not validate fails with its file and field, not a report', async () => {
    const dir = copyOf(fixture('max-ttl', 'pass'));
    writeFileSync(join(dir, 'classes', 'reports.yaml'), 'name: reports\nmax_tll: 15m\n');
    const r = await execWrit(WRIT_MAIN, ['govern', 'check', dir]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /classes\/reports\.yaml: unknown field max_tll; required fields max_ttl, audiences, scopes missing/,
    );
  });
});

describe('writ apply runs the same check: refuses on errors, prints warnings', () => {
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

  it('an error-severity violation refuses the apply before anything is sent; nothing changes', async () => {
    const before = await h.store.listClasses();
    const appliedBefore = await h.store.queryAudit({ type: 'config.applied', limit: 100 });
    writeFileSync(
      join(config, 'governance.yaml'),
      'rules:\n  - { id: short-tokens, check: class.max_ttl, max: 1s }\n',
    );
    const r = await writ(['apply', config]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /governance rules refuse this configuration/);
    assert.match(r.stderr, /error +short-tokens +\S+classes\/\S+\.json:1 +max_ttl +max_ttl is/);
    assert.deepEqual(await h.store.listClasses(), before);
    const applied = await h.store.queryAudit({ type: 'config.applied', limit: 100 });
    assert.equal(applied.length, appliedBefore.length);
  });

  it('a warning is printed and the apply goes on', async () => {
    writeFileSync(
      join(config, 'governance.yaml'),
      'rules:\n  - { id: short-tokens, check: class.max_ttl, severity: warning, max: 1s }\n',
    );
    const r = await writ(['apply', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^warning: short-tokens: \S+classes\/\S+\.json: max_ttl: max_ttl is .* set max_ttl to 1s or less$/m,
    );
  });

  it('the server checks too: an apply sent past the CLI is refused (400 governance_rule, audited), nothing changes', async () => {
    writeFileSync(
      join(config, 'governance.yaml'),
      'rules:\n  - { id: short-tokens, check: class.max_ttl, max: 1s }\n',
    );
    const before = await h.store.listClasses();
    const raw = readConfigDir(config);
    const r = await h.admin('POST', '/config', { documents: raw.documents, policies: null, dry_run: false });
    assert.equal(r.status, 400);
    assert.equal(r.body['error'], 'invalid_request');
    assert.match(
      String(r.body['error_description']),
      /^governance rule short-tokens refuses \S+classes\/\S+\.json: max_ttl: max_ttl is \S+; rule short-tokens allows at most 1s: set max_ttl to 1s or less \(and 2 more violations: `writ govern check` lists them\)$/,
    );
    const refused = (await h.auditEvents('admin.refused')).at(-1);
    assert.equal(refused?.data['reason'], 'governance_rule');
    assert.equal(refused?.data['rule'], 'short-tokens');
    assert.deepEqual(await h.store.listClasses(), before);
    // A warning does not refuse there either.
    writeFileSync(
      join(config, 'governance.yaml'),
      'rules:\n  - { id: short-tokens, check: class.max_ttl, severity: warning, max: 1s }\n',
    );
    const warned = await h.admin('POST', '/config', {
      documents: readConfigDir(config).documents,
      policies: null,
      dry_run: true,
    });
    assert.equal(warned.status, 200, JSON.stringify(warned.body));
  });

  it('a whole-directory apply refuses before it sends anything (a server that keeps no record of applied files)', async () => {
    writeFileSync(
      join(config, 'governance.yaml'),
      'rules:\n  - { id: short-tokens, check: class.max_ttl, max: 1s }\n',
    );
    const client = new NoFileRecordClient();
    await assert.rejects(apply(client, config, false), /governance rules refuse this configuration/);
    // It asked which files the server holds (none: a whole apply), then sent nothing.
    assert.deepEqual(client.calls, ['GET /config/files']);
  });
});

/**
 * The CLI's side of an apply without a server: the server keeps no record of applied files (404, as an
 * older one answers), so the CLI reads and checks the whole directory; any POST is recorded and fails.
 */
class NoFileRecordClient extends AdminClient {
  readonly calls: string[] = [];
  constructor() {
    super({ server: 'http://127.0.0.1:9', operatorKey: join(tmpdir(), 'writ-no-such-key.jwk') });
  }
  override async get<T>(path: string): Promise<T> {
    this.calls.push(`GET ${path}`);
    throw new CliError('404 not_found: no such route');
  }
  override async post<T>(path: string): Promise<T> {
    this.calls.push(`POST ${path}`);
    throw new CliError('the apply was sent');
  }
}

const copies: string[] = [];
after(() => {
  for (const d of copies) rmSync(d, { recursive: true, force: true });
});

/** A scratch copy of a fixture directory, removed after the tests. */
function copyOf(dir: string): string {
  const to = mkdtempSync(join(tmpdir(), 'writ-governance-'));
  copies.push(to);
  cpSync(dir, to, { recursive: true });
  return to;
}
