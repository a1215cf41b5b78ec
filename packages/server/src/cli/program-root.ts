import { Command } from 'commander';
import { DEFAULT_DATA_DIR } from '../data-dir.js';
import { packageVersion } from './package-version.js';

/** The `writ` program with its global options and no command yet. */
export function createRootProgram(): Command {
  const program = new Command('writ')
    .description('Writ: short-lived, narrowly scoped credentials for non-human identities.')
    .version(packageVersion(), '-V, --version', 'print the version of writ')
    .option('--data-dir <dir>', 'data directory', process.env['WRIT_DATA_DIR'] ?? DEFAULT_DATA_DIR)
    .option('--server <url>', 'Writ server URL', process.env['WRIT_URL'] ?? 'http://127.0.0.1:8080')
    .option(
      '--operator-key <file>',
      'operator key file (default: <data-dir>/operator.jwk)',
      process.env['WRIT_OPERATOR_KEY'],
    )
    .showHelpAfterError();
  return program;
}
