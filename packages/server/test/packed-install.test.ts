import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { lineMatching } from './helpers/cli.js';
import { freePort } from './helpers/harness.js';
import {
  localPrebuilds,
  type Packed,
  packWorkspace,
  REPO,
  registryUnreachable,
  run,
  userEnv,
} from './helpers/packed.js';

// `@writ/sdk` and `@writ/server` as a user outside this repository gets them: `npm pack` of both, then
// `npm install` of the two tarballs into an empty project (its dependencies come from the npm registry),
// and from there only: `writ --version`, `writ serve` on a fresh data directory, a workload registered
// and given a token with the installed CLI, and the README's resource server (examples/) verifying that
// token with the installed SDK. A TypeScript consumer is type-checked against the installed types.
//
// Speed, honestly: better-sqlite3's install script is `prebuild-install || node-gyp rebuild`. Without
// internet beyond npm, prebuild-install finds nothing to download and node-gyp compiles SQLite (one to
// three minutes). The test hands prebuild-install a local prebuild (its documented `local-prebuilds`
// setting) made from the addon this workspace already compiled: the same better-sqlite3 version (checked
// below) for the same Node ABI. The install script still runs; only the compiler is spared. Were the
// registry to resolve another better-sqlite3 version, the name would not match and it would compile.

const API = 'https://reports.example.internal';
const EXPORTER = 'spiffe://example.internal/reports/exporter';
const API_ID = 'spiffe://example.internal/reports/api';

const skip =
  process.env['WRIT_TEST_STORE'] === 'postgres'
    ? 'runs once, in the embedded-store pass'
    : registryUnreachable();
if (skip) console.log(`packed-install: skipped: ${skip}`);

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;

/** Every compiled file under `dir`, recursively. */
function jsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? jsFiles(p) : p.endsWith('.js') ? [p] : [];
  });
}

// Without the registry, from the compiled output: what the packed code imports is what its manifest
// declares. A package another change starts importing, but lists only in devDependencies (or in the
// workspace root), would install here and fail for every user; this says which file imports it.
describe('what @writ/sdk and @writ/server import at run time, their package.json declares', () => {
  for (const pkg of ['sdk', 'server']) {
    it(`@writ/${pkg}: every bare import a dependency (or a peer), every relative one inside dist/src, every file it reads packed`, () => {
      const root = join(REPO, 'packages', pkg);
      const manifest = readJson<{
        dependencies?: Record<string, string>;
        peerDependencies?: Record<string, string>;
        files: string[];
      }>(join(root, 'package.json'));
      const declared = new Set([
        ...Object.keys(manifest.dependencies ?? {}),
        ...Object.keys(manifest.peerDependencies ?? {}),
      ]);
      const builtins = new Set(builtinModules);
      const undeclared: string[] = [];
      const outside: string[] = [];
      const unpacked: string[] = [];
      const files = jsFiles(join(root, 'dist/src'));
      assert.ok(files.length > 10, `${pkg} is built`);
      for (const file of files) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(
          /^\s*(?:import|export)\b[^'"\n;]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\b(?:import|require|createRequire\([^)]*\))\(\s*['"]([^'"]+)['"]\s*\)/gm,
        )) {
          const spec = (m[1] ?? m[2] ?? m[3])!;
          if (spec.startsWith('node:') || builtins.has(spec)) continue;
          if (spec.startsWith('.')) {
            const target = relative(join(root, 'dist/src'), resolve(dirname(file), spec));
            if (target.startsWith('..')) outside.push(`${relative(root, file)}: ${spec}`);
            continue;
          }
          const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
          if (!declared.has(name)) undeclared.push(`${relative(root, file)}: ${spec}`);
        }
        // Files read beside the code (`new URL('…', import.meta.url)`): npm must pack them too.
        for (const m of text.matchAll(/new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g)) {
          const target = relative(root, resolve(dirname(file), m[1]!));
          const packed =
            target === 'package.json' ||
            manifest.files.some((f) => target === f || target.startsWith(`${f}/`));
          if (!packed || !existsSync(join(root, target)))
            unpacked.push(`${relative(root, file)}: ${m[1]} (${target})`);
        }
      }
      assert.deepEqual(undeclared, [], 'imported but not in dependencies');
      assert.deepEqual(outside, [], 'relative imports leaving dist/src (not packed)');
      assert.deepEqual(unpacked, [], 'files read at run time that npm does not pack');
    });
  }
});

describe('packed @writ/sdk and @writ/server installed into an empty project', { skip }, () => {
  let dir: string;
  let project: string;
  let packed: Packed[];
  const children: ChildProcess[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-packed-'));
    project = join(dir, 'project');
    mkdirSync(project);
    packed = packWorkspace(dir);

    const { folder: prebuilds, version } = localPrebuilds(dir);
    writeFileSync(join(project, '.prebuild-installrc'), `local-prebuilds=${prebuilds}\n`);

    // An empty project, approving the one install script the server needs (docs/install.md says so).
    writeFileSync(
      join(project, 'package.json'),
      `${JSON.stringify({ name: 'packed-install', private: true, type: 'module', allowScripts: { 'better-sqlite3': true } }, null, 2)}\n`,
    );
    const install = run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', ...packed.map((p) => join(dir, p.filename))],
      project,
    );
    assert.equal(install.code, 0, `npm install of the tarballs failed:\n${install.stderr}`);
    const installed = readJson<{ version: string }>(
      join(project, 'node_modules/better-sqlite3/package.json'),
    );
    if (installed.version !== version)
      console.log(
        `packed-install: better-sqlite3 ${installed.version} was compiled (the workspace has ${version})`,
      );
  });

  after(async () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('packs dist and the package.json, not tests or sources, and every export and the bin are in it', () => {
    assert.deepEqual(
      packed.map((p) => p.name),
      ['@writ/sdk', '@writ/server'],
    );
    for (const p of packed) {
      const files = new Set(p.files.map((f) => f.path));
      const stray = [...files].filter(
        (f) => !(f.startsWith('dist/src/') || f === 'package.json' || f === 'src/policy/schema.cedarschema'),
      );
      assert.deepEqual(stray, [], `${p.name} packs files outside dist/src`);
      const manifest = readJson<{
        exports: Record<string, { types: string; default: string }>;
        bin?: Record<string, string>;
      }>(join(project, 'node_modules', p.name, 'package.json'));
      const targets = Object.values(manifest.exports).flatMap((e) => [e.types, e.default]);
      targets.push(...Object.values(manifest.bin ?? {}));
      for (const target of targets) {
        const path = target.replace(/^\.\//, '');
        const found = path.includes('*')
          ? [...files].some((f) =>
              new RegExp(`^${path.replaceAll('.', '\\.').replace('*', '[^/]+')}$`).test(f),
            )
          : files.has(path);
        assert.ok(found, `${p.name}: ${target} is named in package.json but not packed`);
      }
    }
  });

  it('the server depends on the sdk by version, and nothing it runs is a devDependency', () => {
    const server = readJson<{ dependencies: Record<string, string> }>(
      join(project, 'node_modules/@writ/server/package.json'),
    );
    const sdk = readJson<{ version: string }>(join(project, 'node_modules/@writ/sdk/package.json'));
    assert.equal(server.dependencies['@writ/sdk'], `^${sdk.version}`);
    for (const [name, range] of Object.entries(server.dependencies))
      assert.doesNotMatch(range, /^(file|workspace|link):/, `${name} is a workspace path: ${range}`);
    // One @writ/sdk in the tree: the server uses the installed one, not a copy of its own.
    assert.equal(existsSync(join(project, 'node_modules/@writ/server/node_modules/@writ/sdk')), false);
  });

  it('writ --version, from the bin npm linked', () => {
    const { version } = readJson<{ version: string }>(
      join(project, 'node_modules/@writ/server/package.json'),
    );
    const r = run(join(project, 'node_modules/.bin/writ'), ['--version'], project);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), version);
  });

  it('a TypeScript consumer type-checks against the installed types (and a wrong call does not)', () => {
    writeFileSync(
      join(project, 'consumer.ts'),
      [
        "import { WorkloadClient } from '@writ/sdk/client';",
        "import { createVerifier, type Verifier } from '@writ/sdk/verifier';",
        "import type { TokenResponse } from '@writ/sdk/wire';",
        "import { createWrit, type WritOptions } from '@writ/server';",
        "const client = new WorkloadClient({ issuer: 'https://writ.example', clientId: 'spiffe://x/y' });",
        "export const verifier: Verifier = createVerifier({ issuer: 'https://writ.example', audience: 'https://api', client });",
        '// @ts-expect-error the audience is required: were the types missing (any), this line would be an error',
        "createVerifier({ issuer: 'https://writ.example', client });",
        'export type Made = ReturnType<typeof createWrit>;',
        'export type Options = WritOptions;',
        'export type Answer = TokenResponse;',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(REPO, 'node_modules/@types')],
        },
        files: ['consumer.ts'],
      }),
    );
    const r = run(join(REPO, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], project);
    assert.equal(r.code, 0, `tsc:\n${r.stdout}${r.stderr}`);
  });

  it('writ serve on a fresh data directory issues a token, and an API on the installed SDK verifies it', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const data = join(dir, 'writ-data');
    const bin = join(project, 'node_modules/.bin');
    // The user's shell: the installed writ on PATH (writ exec's command calls `writ dpop proof`).
    const env = userEnv({
      PATH: [bin, userEnv()['PATH']!].join(delimiter),
      WRIT_URL: url,
      WRIT_DATA_DIR: data,
    });
    const server = spawn(join(bin, 'writ'), ['--data-dir', data, 'serve', '--port', String(port)], {
      cwd: project,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(server);
    const serverLog = { text: '' };
    await lineMatching(server, serverLog, /writ is serving/);

    const writ = (...args: string[]) => {
      const r = run(join(bin, 'writ'), args, project, env, 60_000);
      assert.equal(r.code, 0, `writ ${args.join(' ')}:\n${r.stderr}\n${serverLog.text.slice(-2000)}`);
      return r.stdout;
    };
    const config = join(data, 'config');
    // The exporter (a class `writ serve` created: reports-read) and the API's own verifier workload.
    writeFileSync(
      join(config, 'workloads/exporter.pub.jwk'),
      writ('keygen', '--out', join(dir, 'exporter.jwk')),
    );
    writeFileSync(
      join(config, 'workloads/exporter.yaml'),
      `id: ${EXPORTER}\nowner: team-reports\nenvironment: prod\nclasses: [reports-read]\njwks_file: exporter.pub.jwk\n`,
    );
    writeFileSync(join(config, 'workloads/api.pub.jwk'), writ('keygen', '--out', join(dir, 'api.jwk')));
    writeFileSync(
      join(config, 'classes/reports-api.yaml'),
      `name: reports-api\nmax_ttl: 15m\naudiences: [${url}/v1/events, ${url}/v1/usage]\nscopes: [events:read]\ndefault_scopes: [events:read]\n`,
    );
    writeFileSync(
      join(config, 'workloads/api.yaml'),
      `id: ${API_ID}\nowner: team-reports\nenvironment: prod\nclasses: [reports-api]\njwks_file: api.pub.jwk\nserves: [${API}]\n`,
    );
    writ('apply', config);

    // A token request with the installed CLI, checked against the server's published keys.
    const token = writ(
      'token',
      'get',
      '--raw',
      '--client-id',
      EXPORTER,
      '--key',
      join(dir, 'exporter.jwk'),
      '--dpop-key',
      join(dir, 'exporter.dpop.jwk'),
      '--audience',
      API,
    ).trim();
    const verified = JSON.parse(writ('token', 'verify', token, '--audience', API)) as {
      claims: { sub: string; aud: string };
    };
    assert.equal(verified.claims.sub, EXPORTER);

    // The README's resource server, run from the project: its `@writ/sdk` imports resolve there only.
    copyFileSync(join(REPO, 'examples/resource-server.mjs'), join(project, 'resource-server.mjs'));
    const apiPort = await freePort();
    const api = spawn(
      process.execPath,
      ['resource-server.mjs', '--audience', API, '--client-id', API_ID, '--key', join(dir, 'api.jwk')],
      { cwd: project, env: { ...env, PORT: String(apiPort) }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(api);
    const apiLog = { text: '' };
    api.stderr.on('data', (d: Buffer) => {
      apiLog.text += d.toString();
    });
    // Ready once it answers at all (a 401 without a token); bounded by count, not by time.
    let up = false;
    for (let i = 0; i < 300 && !up && api.exitCode === null; i++) {
      up = await fetch(`http://127.0.0.1:${apiPort}/`).then(
        () => true,
        () => false,
      );
      if (!up) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(up, `the resource server did not start:\n${apiLog.text}`);

    // A job under writ exec: a task-bound DPoP token, a proof signed by `writ dpop proof`, then the same
    // token as a bearer without its key.
    const job = run(
      join(bin, 'writ'),
      [
        'exec',
        '--client-id',
        EXPORTER,
        '--key',
        join(dir, 'exporter.jwk'),
        '--audience',
        API,
        '--',
        'sh',
        '-c',
        `curl -sS "$API_URL/v1/reports" -H "Authorization: DPoP $(cat "$WRIT_TOKEN_FILE")" -H "DPoP: $(writ dpop proof --method GET --url ${API}/v1/reports)"
echo
curl -sS -o /dev/null -w "%{http_code}\\n" "$API_URL/v1/reports" -H "Authorization: Bearer $(cat "$WRIT_TOKEN_FILE")"`,
      ],
      project,
      { ...env, API_URL: `http://127.0.0.1:${apiPort}` },
      60_000,
    );
    assert.equal(job.code, 0, `writ exec:\n${job.stderr}\n${apiLog.text}`);
    const [answer, bearerStatus] = job.stdout.trim().split('\n');
    const body = JSON.parse(answer!) as { ok: boolean; sub: string; tid: string | null };
    assert.equal(body.ok, true);
    assert.equal(body.sub, EXPORTER);
    assert.match(body.tid ?? '', /^task_/);
    assert.equal(bearerStatus, '401', 'a DPoP-bound token without its key is refused');
  });
});
