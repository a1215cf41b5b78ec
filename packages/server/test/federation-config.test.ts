import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateDpopKey } from '@writ/sdk/dpop';
import { GrantType } from '@writ/sdk/wire';
import { fakeClock } from '../src/clock.js';
import { loadConfigDir, type RawDocument, validateConfig } from '../src/config/config-dir.js';
import { ConfigError } from '../src/errors.js';
import { PRESETS } from '../src/federation/presets.js';
import { classDoc, dpopTokenRequest, lastEvent } from './helpers/dpop.js';
import { type Harness, startHarness } from './helpers/harness.js';
import { githubClaims, type LocalIssuer, startLocalIssuer } from './helpers/oidc-issuer.js';
import { applyPolicies } from './helpers/policy.js';

const WRIT = 'https://writ.test';
const DEPLOY = 'https://deploy.test';
const GH = 'spiffe://test.writ/github/acme/deployer';

const ciClass = classDoc({
  name: 'ci',
  audiences: [DEPLOY],
  scopes: ['deploy:read'],
  default_scopes: ['deploy:read'],
});
const issuerDoc = (doc: Record<string, unknown>): RawDocument => ({
  kind: 'issuer',
  file: 'issuers/github.yaml',
  index: 0,
  doc: {
    name: 'github',
    preset: 'github-actions',
    audience: WRIT,
    trust_domain: 'test.writ',
    ...doc,
  },
});
const workload = (extra: Record<string, unknown> = {}): RawDocument => ({
  kind: 'workload',
  file: 'workloads/deployer.yaml',
  index: 0,
  doc: { id: GH, owner: 'team-ci', environment: 'prod', classes: ['ci'], federation: ['github'], ...extra },
});

/** The ConfigError `validateConfig` throws, with its file and field. */
const configError = (docs: RawDocument[]): ConfigError => {
  try {
    validateConfig([ciClass, ...docs]);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail('expected a ConfigError');
};

describe('trusted issuers as configuration', () => {
  it('every preset expands and compiles (its CEL validated at load)', () => {
    for (const preset of Object.keys(PRESETS)) {
      const doc = issuerDoc({
        name: preset,
        preset,
        issuer: `https://${preset}.example`,
        jwks_uri: `https://${preset}.example/jwks`,
      });
      const { issuers } = validateConfig([ciClass, doc]);
      assert.equal(issuers[0]?.preset, preset);
      assert.ok(issuers[0]!.subject.length > 0);
    }
    const [gh] = validateConfig([ciClass, issuerDoc({})]).issuers;
    assert.equal(gh?.issuer, 'https://token.actions.githubusercontent.com');
    assert.equal(gh?.jwksUri, 'https://token.actions.githubusercontent.com/.well-known/jwks');
    assert.deepEqual(gh?.audiences, [WRIT]);
    assert.deepEqual(gh?.algorithms, ['RS256']);
    assert.equal(gh?.subject, '"spiffe://test.writ/" + "github/" + claims.repository');
  });

  it('an issuer without an audience rule is a configuration error', () => {
    const e = configError([issuerDoc({ audience: undefined })]);
    assert.equal(e.file, 'issuers/github.yaml');
    assert.equal(e.field, 'audience');
  });

  it('CEL errors name the file and the field', () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ condition: 'claims.ref ==' }, 'condition', /CEL syntax error/],
      [{ subject: 'secrets.key' }, 'subject', /unknown identifier "secrets"/],
      [{ attributes: { repository: 'claims.repository +' } }, 'attributes.repository', /CEL/],
      [
        { attributes: { favourite_colour: 'claims.x' } },
        'attributes.favourite_colour',
        /not a federation attribute/,
      ],
      [{ task: { labels: { run: 'claims.run_id ==' } } }, 'task.labels.run', /CEL/],
    ];
    for (const [doc, field, message] of cases) {
      const e = configError([issuerDoc(doc)]);
      assert.equal(e.file, 'issuers/github.yaml');
      assert.equal(e.field, field, e.message);
      assert.match(e.message, message);
    }
  });

  it('a condition cannot break out of the parentheses it is ANDed into with the preset check', () => {
    for (const condition of ['true) || (true', 'false) || true || (false']) {
      const e = configError([issuerDoc({ condition })]);
      assert.equal(e.field, 'condition', e.message);
      assert.match(e.message, /CEL syntax error/);
    }
    const [gh] = validateConfig([
      ciClass,
      issuerDoc({ condition: '(claims.ref == "refs/heads/main")' }),
    ]).issuers;
    assert.match(gh!.condition, /^\(.+\) && \(\(claims\.ref == "refs\/heads\/main"\)\)$/);
  });

  it('refuses symmetric algorithms and keys, a plain-http JWKS off loopback, and a missing subject', () => {
    assert.equal(configError([issuerDoc({ algorithms: ['HS256'] })]).field, 'algorithms.0');
    assert.equal(
      configError([issuerDoc({ jwks_uri: undefined, jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } })])
        .field,
      'jwks.keys.0',
    );
    assert.equal(configError([issuerDoc({ jwks_uri: 'http://keys.example/jwks' })]).field, 'jwks_uri');
    assert.equal(configError([issuerDoc({ trust_domain: undefined })]).field, 'subject');
    assert.equal(
      configError([issuerDoc({ preset: undefined, issuer: 'https://x.example' })]).field,
      'jwks_uri',
    );
  });

  it('a workload names only issuers that exist, and needs no key of its own when federated', () => {
    const e = configError([issuerDoc({}), workload({ federation: ['gitlab'] })]);
    assert.equal(e.file, 'workloads/deployer.yaml');
    assert.equal(e.field, 'federation.0');
    const { workloads } = validateConfig([ciClass, issuerDoc({}), workload()]);
    assert.deepEqual(workloads[0]?.federation, ['github']);
    assert.deepEqual(workloads[0]?.jwks, []);
  });

  it('reads issuers/ from a config directory, with keys from jwks_file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-issuers-'));
    try {
      mkdirSync(join(dir, 'issuers'));
      mkdirSync(join(dir, 'classes'));
      writeFileSync(
        join(dir, 'classes', 'ci.yaml'),
        'name: ci\nmax_ttl: 10m\naudiences: [https://deploy.test]\nscopes: [deploy:read]\n',
      );
      writeFileSync(
        join(dir, 'bundle.json'),
        JSON.stringify({
          keys: [
            { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', use: 'jwt-svid' },
          ],
        }),
      );
      writeFileSync(
        join(dir, 'issuers', 'spire.yaml'),
        'name: spire\npreset: spire\nissuer: https://spire.example\njwks_file: ../bundle.json\naudience: https://writ.test\n',
      );
      const loaded = loadConfigDir(dir);
      assert.equal(loaded.issuers[0]?.name, 'spire');
      assert.equal(loaded.issuers[0]?.jwks?.length, 1);
      assert.equal(loaded.issuers[0]?.jwksUri, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a jwks_file beside the issuer file, in issuers/, is read as keys and not as an issuer', () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-issuers-'));
    try {
      mkdirSync(join(dir, 'issuers'));
      const bundle = {
        keys: [
          { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', use: 'jwt-svid' },
        ],
      };
      writeFileSync(join(dir, 'issuers', 'bundle.json'), JSON.stringify(bundle));
      writeFileSync(
        join(dir, 'issuers', 'spire.yaml'),
        'name: spire\npreset: spire\nissuer: https://spire.example\njwks_file: bundle.json\naudience: https://writ.test\n',
      );
      const loaded = loadConfigDir(dir);
      assert.deepEqual(
        loaded.issuers.map((i) => i.name),
        ['spire'],
      );
      assert.equal(loaded.issuers[0]?.jwks?.length, 1);
      // A JSON file in issuers/ that nothing names is still an issuer document, and must be valid.
      writeFileSync(join(dir, 'issuers', 'stray.json'), JSON.stringify(bundle));
      assert.throws(() => loadConfigDir(dir), /stray\.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('issuers through writ apply, and federation attributes in policy', () => {
  const clock = fakeClock(Date.UTC(2026, 4, 1, 8));
  const now = () => Math.floor(clock.now() / 1000);
  let h: Harness;
  let github: LocalIssuer;
  const live = () =>
    issuerDoc({
      issuer: github.url,
      jwks_uri: github.jwksUri,
      condition: 'claims.repository_owner == "acme"',
    });

  before(async () => {
    github = await startLocalIssuer();
    h = await startHarness({ clock });
  });
  after(async () => {
    await h.close();
    await github.close();
  });

  const federate = async () =>
    dpopTokenRequest(
      h,
      () => ({ grant_type: GrantType.jwtBearer, assertion: token, resource: DEPLOY }),
      generateDpopKey(),
    );
  let token = '';

  it('the apply diff shows issuers; the change is audited and takes effect', async () => {
    token = await github.mint(githubClaims(now()));
    assert.equal((await federate()).body['error'], 'invalid_grant', 'no issuer trusted yet');
    const dry = await applyPolicies(h, null, [ciClass, live(), workload()], true);
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    assert.match(dry.body['diff'] as string, /\+ issuer github/);
    const r = await applyPolicies(h, null, [ciClass, live(), workload()]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const e = await lastEvent(h, 'config.applied');
    assert.ok(
      (e.data['changes'] as Array<{ kind: string; name: string }>).some(
        (c) => c.kind === 'issuer' && c.name === 'github',
      ),
    );
    assert.deepEqual(
      (await h.store.listIssuers()).map((i) => i.name),
      ['github'],
    );
    token = await github.mint(githubClaims(now()));
    assert.equal((await federate()).status, 200);

    const changed = await applyPolicies(
      h,
      null,
      [ciClass, issuerDoc({ ...(live().doc as object), max_token_age: '10m' }), workload()],
      true,
    );
    assert.match(changed.body['diff'] as string, /~ issuer github \(maxTokenAge\)/);
  });

  it('policies read context.federation (a deny on the environment claim)', async () => {
    const policy = `
@id("ci-baseline")
permit(principal is Workload, action in Action::"token", resource);

@id("prod-deploys-from-protected-environment")
forbid(principal is Workload, action in Action::"token", resource)
when { context.federation.issuer == "github" && context.federation.environment != "production" };
`;
    const r = await applyPolicies(h, { files: [{ file: 'policies/ci.cedar', text: policy }] }, [
      ciClass,
      live(),
      workload(),
    ]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    token = await github.mint(githubClaims(now()));
    assert.equal((await federate()).status, 200);
    token = await github.mint({ ...githubClaims(now()), environment: 'staging' });
    const denied = await federate();
    assert.equal(denied.status, 400);
    assert.equal(denied.body['error'], 'access_denied');
    const e = await lastEvent(h, 'token.refused');
    assert.equal(e.data['reason'], 'policy_denied');
    assert.deepEqual(e.data['policies'], ['prod-deploys-from-protected-environment']);
  });

  it('removing the issuer stops federation at once', async () => {
    const r = await applyPolicies(h, null, [ciClass]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body['diff'] as string, /- issuer github/);
    token = await github.mint(githubClaims(now()));
    const refused = await federate();
    assert.equal(refused.body['error'], 'invalid_grant');
    assert.equal((await lastEvent(h, 'token.refused')).data['reason'], 'untrusted_issuer');
  });
});
