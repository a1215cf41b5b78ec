#!/usr/bin/env node
import { ConfigError } from '../errors.js';
import { CliError } from './client.js';
import { createProgram } from './program.js';
import { terminalText } from './terminal.js';

createProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    if (err instanceof CliError || err instanceof ConfigError) {
      process.stderr.write(`writ: ${terminalText(err.message)}\n`);
    } else {
      process.stderr.write(`writ: ${terminalText((err as Error).message ?? String(err))}\n`);
    }
    process.exit(1);
  });
