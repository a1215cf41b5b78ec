#!/usr/bin/env node
import { Command } from 'commander';
import { DEFAULT_DATA_DIR } from '../data-dir.js';
import { ConfigError } from '../errors.js';
import { CliError } from './client.js';
import { commandContext } from './command-context.js';
import { registerApi } from './commands/api.js';
import { registerApply } from './commands/apply.js';
import { registerAudit } from './commands/audit.js';
import { registerClasses } from './commands/classes.js';
import { registerConfig } from './commands/config.js';
import { registerDetections } from './commands/detections.js';
import { registerDpop } from './commands/dpop.js';
import { registerExec } from './commands/exec.js';
import { registerInit } from './commands/init.js';
import { registerKeygen } from './commands/keygen.js';
import { registerKeys } from './commands/keys.js';
import { registerMigrate } from './commands/migrate.js';
import { registerPolicy } from './commands/policy.js';
import { registerRevoke } from './commands/revoke.js';
import { registerServe } from './commands/serve.js';
import { registerTasks } from './commands/tasks.js';
import { registerToken } from './commands/token.js';
import { registerWorkloads } from './commands/workloads.js';
import { terminalText } from './terminal.js';

const program = new Command('writ')
  .description('Writ: short-lived, narrowly scoped credentials for non-human identities.')
  .option('--data-dir <dir>', 'data directory', process.env['WRIT_DATA_DIR'] ?? DEFAULT_DATA_DIR)
  .option('--server <url>', 'Writ server URL', process.env['WRIT_URL'] ?? 'http://127.0.0.1:8080')
  .option(
    '--operator-key <file>',
    'operator key file (default: <data-dir>/operator.jwk)',
    process.env['WRIT_OPERATOR_KEY'],
  )
  .showHelpAfterError();

const cli = commandContext(program);
// The order here is the order `writ --help` lists the commands in.
for (const register of [
  registerInit,
  registerServe,
  registerMigrate,
  registerApply,
  registerWorkloads,
  registerDetections,
  registerClasses,
  registerKeys,
  registerRevoke,
  registerAudit,
  registerKeygen,
  registerToken,
  registerExec,
  registerDpop,
  registerTasks,
  registerPolicy,
  registerConfig,
  registerApi,
])
  register(program, cli);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CliError || err instanceof ConfigError) {
    process.stderr.write(`writ: ${terminalText(err.message)}\n`);
  } else {
    process.stderr.write(`writ: ${terminalText((err as Error).message ?? String(err))}\n`);
  }
  process.exit(1);
});
