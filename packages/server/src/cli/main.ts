#!/usr/bin/env node
import { createProgram } from './program.js';
import { terminalText } from './terminal.js';

createProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    // Whatever failed (a refusal the server described, a config error, anything else): its message,
    // escaped, since a server's description is text the terminal must not obey.
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`writ: ${terminalText(message)}\n`);
    process.exit(1);
  });
