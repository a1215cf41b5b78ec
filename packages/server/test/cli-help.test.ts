import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { commandContext } from '../src/cli/command-context.js';
import { COMMAND_LOADERS } from '../src/cli/command-loaders.js';
import { createProgram } from '../src/cli/program.js';
import { createRootProgram } from '../src/cli/program-root.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const PACKAGE_JSON = fileURLToPath(new URL('../../package.json', import.meta.url));

/** Every command under `command`, as the words a user types (`writ audit tail`), with the command. */
function commandsUnder(command: Command, path: string[]): Array<[string, Command]> {
  return command.commands.flatMap((sub) => {
    const words = [...path, sub.name()];
    return [[words.join(' '), sub] as [string, Command], ...commandsUnder(sub, words)];
  });
}

describe('writ --help and --version', () => {
  it('every command, at every depth, has a description in --help, and so does every option', () => {
    const program = createProgram();
    const commands = commandsUnder(program, ['writ']);
    assert.ok(commands.length > 40, `only ${commands.length} commands found: the walk is broken`);
    const bare = commands.filter(([, c]) => c.description().trim() === '').map(([name]) => name);
    assert.deepEqual(bare, [], `commands without a description: ${bare.join(', ')}`);
    const options = [['writ', program] as [string, Command], ...commands].flatMap(([name, c]) =>
      c.options.filter((o) => (o.description ?? '').trim() === '').map((o) => `${name} ${o.flags}`),
    );
    assert.deepEqual(options, [], `options without a description: ${options.join(', ')}`);
  });

  it('each command loads only the modules that register it, and they register what the whole program has', async () => {
    const program = createProgram();
    const lazy = createRootProgram();
    const cli = commandContext(lazy);
    for (const [, load] of COMMAND_LOADERS) (await load())(lazy, cli);
    const words = (c: Command) => commandsUnder(c, ['writ']).map(([w]) => w);
    assert.deepEqual(words(lazy), words(program));
    // Every top-level command has its loaders, and they register that command alone.
    for (const name of new Set(COMMAND_LOADERS.map(([n]) => n))) {
      const one = createRootProgram();
      const ctx = commandContext(one);
      for (const [n, load] of COMMAND_LOADERS) if (n === name) (await load())(one, ctx);
      assert.deepEqual(
        one.commands.map((c) => c.name()),
        [name],
      );
    }
    const r = spawnSync(process.execPath, [MAIN, '--server', 'http://127.0.0.1:9', 'apply', '--help'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: writ apply \[options\] <dir>/m);
  });

  it('a nested command lists its description in its parent help', () => {
    const r = spawnSync(process.execPath, [MAIN, 'audit', '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\s+tail \[options\]\s+\S/m);
    assert.match(r.stdout, /^\s+query \[options\]\s+\S/m);
  });

  it('writ --version prints the version of the installed package', () => {
    const { version } = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = spawnSync(process.execPath, [MAIN, flag], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${version}\n`);
    }
  });
});
