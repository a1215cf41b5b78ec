import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { settingsFileDigest } from '../src/config/settings.js';
import { type OperatorCli, operatorCli } from './helpers/cli.js';
import { writeHarnessConfig } from './helpers/config-dir.js';
import { type Harness, harnessDocuments, startHarness } from './helpers/harness.js';

// settings.yaml is read by `writ serve` at start. `writ apply` says so only when the directory's
// settings.yaml differs from the one the server started with; otherwise it says nothing about it.

describe('writ apply speaks of settings.yaml only when it differs from the running settings', () => {
  let h: Harness;
  let writ: OperatorCli;
  let config: string;
  before(async () => {
    h = await startHarness({ listen: true, settingsFile: { tokens: { max_lifetime: '2h' } } });
    writ = operatorCli(h);
    config = writeHarnessConfig(h);
  });
  after(async () => {
    await h.close();
  });

  const apply = async (settingsYaml: string | undefined, ...flags: string[]) => {
    const file = join(config, 'settings.yaml');
    if (settingsYaml === undefined) rmSync(file, { force: true });
    else writeFileSync(file, settingsYaml);
    const r = await writ(['apply', config, ...flags]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout + r.stderr;
  };

  it('the same settings, written differently (comments, layout): nothing about settings.yaml', async () => {
    const out = await apply('# the settings this server runs with\ntokens: { max_lifetime: 2h }\n');
    assert.doesNotMatch(out, /settings|restart/);
  });

  it('no settings.yaml in the directory: nothing about it', async () => {
    assert.doesNotMatch(await apply(undefined), /settings|restart/);
  });

  it('a changed settings.yaml: says it differs and waits for a restart, in a dry run too', async () => {
    const changed = 'tokens:\n  max_lifetime: 30m\n';
    assert.match(
      await apply(changed),
      /settings\.yaml differs from the settings the server started with; `writ serve` reads it at start: restart to apply it/,
    );
    assert.match(await apply(changed, '--dry-run'), /settings\.yaml differs .* restart to apply it/);
    // An empty file is not the running file either: the server started with a value in it.
    assert.match(await apply('# nothing set\n'), /settings\.yaml differs/);
  });
});

describe('the settings digest tells an operator whether a file is the running one, not what a secret in it is', () => {
  // The server's settings.yaml names its PostgreSQL store with a password (the harness keeps its own
  // store: the setting is only read here). An operator who knows every other line may send guesses.
  const running = (password: string) => ({
    store: `postgres://writ:${password}@db.internal:5432/writ?sslmode=require&sslpassword=${password}`,
    tokens: { max_lifetime: '2h' },
  });
  let h: Harness;
  before(async () => {
    h = await startHarness({ settingsFile: running('correct-horse') });
  });
  after(() => h.close());

  const answer = async (values: Record<string, unknown>) => {
    const r = await h.admin('POST', '/config', {
      documents: harnessDocuments(h),
      dry_run: true,
      settings_digest: settingsFileDigest(values),
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['settings'];
  };

  it('a right guess of the store password and a wrong one get the same answer', async () => {
    assert.deepEqual(await answer(running('correct-horse')), { changed: false });
    assert.deepEqual(await answer(running('wrong-guess')), { changed: false });
  });

  it('whatever else differs still does', async () => {
    assert.deepEqual(await answer({ ...running('correct-horse'), tokens: { max_lifetime: '1h' } }), {
      changed: true,
    });
    assert.deepEqual(await answer({ ...running('correct-horse'), store: 'sqlite' }), { changed: true });
    const otherHost = running('correct-horse').store.replace('db.internal', 'db2.internal');
    assert.deepEqual(await answer({ ...running('correct-horse'), store: otherHost }), { changed: true });
  });
});
