import type { Command } from 'commander';
import { commandContext } from './command-context.js';
import { registerApi } from './commands/api.js';
import { registerApply } from './commands/apply.js';
import { registerAudit } from './commands/audit.js';
import { registerBreakglass } from './commands/breakglass.js';
import { registerClasses } from './commands/classes.js';
import { registerConfig } from './commands/config.js';
import { registerConsole } from './commands/console.js';
import { registerDetections } from './commands/detections.js';
import { registerDpop } from './commands/dpop.js';
import { registerExceptions } from './commands/exceptions.js';
import { registerExec } from './commands/exec.js';
import { registerGovernVerify } from './commands/govern.js';
import { registerGovernCheck } from './commands/govern-check.js';
import { registerGovernStale } from './commands/govern-stale.js';
import { registerInit } from './commands/init.js';
import { registerKeygen } from './commands/keygen.js';
import { registerKeys } from './commands/keys.js';
import { registerMigrate } from './commands/migrate.js';
import { registerPolicy } from './commands/policy.js';
import { registerProxy } from './commands/proxy.js';
import { registerRevoke } from './commands/revoke.js';
import { registerScan } from './commands/scan.js';
import { registerServe } from './commands/serve.js';
import { registerTasks } from './commands/tasks.js';
import { registerToken } from './commands/token.js';
import { registerVendorKeys } from './commands/vendor-keys.js';
import { registerWorkloads } from './commands/workloads.js';
import { createRootProgram } from './program-root.js';

/**
 * The `writ` command tree, every command registered and nothing parsed: `main.ts` runs it, and the
 * CLI's own tests walk it (every command has a description in `--help`).
 */
export function createProgram(): Command {
  const program = createRootProgram();

  const cli = commandContext(program);
  // The order here is the order `writ --help` lists the commands in.
  for (const register of [
    registerInit,
    registerServe,
    registerMigrate,
    registerApply,
    registerWorkloads,
    registerDetections,
    registerVendorKeys,
    registerProxy,
    registerClasses,
    registerKeys,
    registerRevoke,
    registerScan,
    registerAudit,
    registerGovernVerify,
    registerGovernCheck,
    registerGovernStale,
    registerKeygen,
    registerToken,
    registerExec,
    registerDpop,
    registerTasks,
    registerPolicy,
    registerExceptions,
    registerBreakglass,
    registerConsole,
    registerConfig,
    registerApi,
  ])
    register(program, cli);
  return program;
}
