import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execWrit } from './helpers/cli.js';
import { writeConfigDocuments } from './helpers/config-dir.js';
import { configDocuments, type Harness, startHarness } from './helpers/harness.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

// settings.yaml is read by `writ serve` at start. `writ apply` says so only when the directory's
// settings.yaml differs from the one the server started with; otherwise it says nothing about it.

describe('writ apply speaks of settings.yaml only when it differs from the running settings', () => {
  let h: Harness;
  let dir: string;
  let config: string;
  let keyFile: string;
  before(async () => {
    h = await startHarness({ listen: true, settingsFile: { tokens: { max_lifetime: '2h' } } });
    dir = mkdtempSync(join(tmpdir(), 'writ-apply-settings-'));
    keyFile = join(dir, 'operator.jwk');
    const key = h.operatorKey;
    writeFileSync(
      keyFile,
      JSON.stringify({
        operator: 'ops',
        key: { ...key.privateKey.export({ format: 'jwk' }), kid: key.kid, alg: key.alg },
      }),
      { mode: 0o600 },
    );
    config = join(dir, 'config');
    writeConfigDocuments(
      config,
      configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey }),
    );
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const apply = async (settingsYaml: string | undefined, ...flags: string[]) => {
    const file = join(config, 'settings.yaml');
    if (settingsYaml === undefined) rmSync(file, { force: true });
    else writeFileSync(file, settingsYaml);
    const r = await execWrit(MAIN, [
      '--server',
      h.issuer,
      '--operator-key',
      keyFile,
      'apply',
      config,
      ...flags,
    ]);
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
