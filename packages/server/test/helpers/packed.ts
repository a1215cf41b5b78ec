// What the tests of the installable packages share: `npm pack` of the workspace's two packages, a user's
// environment to run npm in, and a local prebuild of better-sqlite3 so an install need not compile it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SETTINGS_REFERENCE } from '../../src/config/settings.js';

/** The repository root. */
export const REPO = fileURLToPath(new URL('../../../../../', import.meta.url));

/** npm settings of the environment that say where and how to reach the registry: a user's, kept. */
const NPM_REACH =
  /^npm_config_(.*registry|cache|userconfig|proxy|https_proxy|noproxy|strict_ssl|cafile|ca)$/i;

/**
 * The environment of a user's shell: no npm_* variables of an `npm test` that may be running this (npm
 * would take the workspace's prefix and package from them) but those saying how to reach the registry,
 * no WRIT_* of the test run; this Node first on PATH.
 */
export function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if ((!/^npm_/i.test(k) || NPM_REACH.test(k)) && k !== 'INIT_CWD' && !k.startsWith('WRIT_')) env[k] = v;
  env['PATH'] = [dirname(process.execPath), env['PATH'] ?? ''].join(delimiter);
  return { ...env, ...extra };
}

/** Runs a command to its end (killed after `timeout` ms): exit code and output. */
export function run(cmd: string, args: string[], cwd: string, env = userEnv(), timeout = 240_000) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

/** Why an install from the npm registry cannot be tested here, or false when it can. */
export function registryUnreachable(): string | false {
  const ping = run('npm', ['ping', '--fetch-retries=0', '--fetch-timeout=15000'], REPO, userEnv(), 30_000);
  const error = ping.error as NodeJS.ErrnoException | undefined;
  if (error?.code === 'ETIMEDOUT') return 'the npm registry did not answer `npm ping` within 30 s';
  if (error) return `npm could not be run (${error.message})`;
  if (ping.code !== 0)
    return `the npm registry is unreachable (npm ping: ${
      ping.stderr
        .split('\n')
        .filter((l) => /error/i.test(l) && !/complete log/i.test(l))
        .slice(0, 2)
        .join(' ') || `exit ${ping.code}`
    })`;
  return false;
}

export interface Packed {
  name: string;
  version: string;
  filename: string;
  files: { path: string }[];
}

/** `npm pack` of @writ/sdk and @writ/server (as built) into `dir`: what npm says it packed. */
export function packWorkspace(dir: string): Packed[] {
  const pack = run(
    'npm',
    ['pack', '--json', '--pack-destination', dir, './packages/sdk', './packages/server'],
    REPO,
  );
  assert.equal(pack.code, 0, `npm pack failed:\n${pack.stderr}`);
  return JSON.parse(pack.stdout) as Packed[];
}

/**
 * A folder prebuild-install takes prebuilt addons from (its `local-prebuilds` setting), holding the
 * better-sqlite3 addon this workspace compiled, named for its version and this Node's ABI as
 * prebuild-install looks it up. Returns the folder and the version. An install of another version finds
 * nothing there and compiles.
 */
export function localPrebuilds(dir: string): { folder: string; version: string } {
  const sqlite = join(REPO, 'node_modules', 'better-sqlite3');
  const { version } = JSON.parse(readFileSync(join(sqlite, 'package.json'), 'utf8')) as { version: string };
  const folder = join(dir, 'prebuilds');
  mkdirSync(folder, { recursive: true });
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  const tar = run('tar', ['czf', join(folder, name), 'build/Release/better_sqlite3.node'], sqlite);
  assert.equal(tar.code, 0, `could not make the local prebuild:\n${tar.stderr}`);
  return { folder, version };
}

/** The environment variables writ reads: one per setting that has one, the KEK and the data directory. */
export const WRIT_ENV_NAMES: ReadonlySet<string> = new Set([
  ...Object.values(SETTINGS_REFERENCE).flatMap((s) => ('env' in s && s.env ? [s.env] : [])),
  'WRIT_KEK', // the key-encryption key (keys/kek.ts)
  'WRIT_DATA_DIR', // the CLI's --data-dir default (cli/program.ts)
]);

/** The image's runtime stage: its user and its environment (the Dockerfile's last stage, ENV lines). */
export function imageRuntime(): { uid: number; env: Record<string, string> } {
  const text = readFileSync(join(REPO, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const last = text.slice(text.lastIndexOf('\nFROM '));
  const uid = Number(/^USER (\d+)/m.exec(last)?.[1]);
  const env: Record<string, string> = {};
  for (const m of last.matchAll(/^ENV (.+)$/gm))
    for (const kv of m[1]!.trim().split(/\s+/)) {
      const [k, v] = kv.split('=', 2) as [string, string];
      env[k] = v;
    }
  return { uid, env };
}
