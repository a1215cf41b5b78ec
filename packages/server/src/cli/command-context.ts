import type { Command } from 'commander';
import { dataPaths } from '../data-dir.js';
import { AdminClient } from './client.js';
import { terminalText } from './terminal.js';

/** The options every command may read: `--data-dir`, `--server`, `--operator-key`. */
export interface GlobalOptions {
  dataDir: string;
  server: string;
  operatorKey?: string;
}

/** What a noun's commands get from the program they are registered on. */
export interface CommandContext {
  /** The global options, read when a command runs (they are parsed by then). */
  globals(): GlobalOptions;
  /** An admin API client signing with the operator key. */
  admin(): AdminClient;
  /**
   * Prints a string as it is and anything else as indented JSON, one trailing newline; control
   * characters other than the line breaks are escaped (`terminalText`).
   */
  out(value: unknown): void;
}

export function commandContext(program: Command): CommandContext {
  const globals = () => program.opts<GlobalOptions>();
  return {
    globals,
    admin() {
      const g = globals();
      return new AdminClient({
        server: g.server,
        operatorKey: g.operatorKey ?? dataPaths(g.dataDir).operatorKey,
      });
    },
    out(value) {
      process.stdout.write(
        `${terminalText(typeof value === 'string' ? value : JSON.stringify(value, null, 2))}\n`,
      );
    },
  };
}
