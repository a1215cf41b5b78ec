#!/usr/bin/env node
import { commandContext } from './command-context.js';
import { COMMAND_LOADERS } from './command-loaders.js';
import { createRootProgram } from './program-root.js';
import { terminalText } from './terminal.js';

/** The command word of `argv` (after node and the script): the first argument not an option or its value. */
function commandName(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--data-dir' || a === '--server' || a === '--operator-key') i++;
    else if (a.startsWith('--data-dir=') || a.startsWith('--server=') || a.startsWith('--operator-key='))
      continue;
    else if (a.startsWith('-')) return undefined;
    else return a;
  }
  return undefined;
}

/** Only the modules of the command run are loaded; `--help`, `--version` or no command load them all. */
async function program() {
  const root = createRootProgram();
  const cli = commandContext(root);
  const name = commandName(process.argv.slice(2));
  const own = COMMAND_LOADERS.filter(([n]) => n === name);
  for (const [, load] of own.length > 0 ? own : COMMAND_LOADERS) (await load())(root, cli);
  return root;
}

program()
  .then((p) => p.parseAsync(process.argv))
  .catch((err: unknown) => {
    // Whatever failed (a refusal the server described, a config error, anything else): its message,
    // escaped, since a server's description is text the terminal must not obey.
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`writ: ${terminalText(message)}\n`);
    process.exit(1);
  });
