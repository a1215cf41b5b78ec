import type { Command } from 'commander';
import type { CommandContext } from './command-context.js';

/** Registers a noun's commands on the program. */
export type Register = (program: Command, cli: CommandContext) => void;

/**
 * Each top-level command's name and how to load the module that registers it, in the order `writ --help`
 * lists them: `writ apply` loads what apply needs, not the server's modules (program.ts registers all,
 * for the help and the tests; a test checks that the two agree).
 */
export const COMMAND_LOADERS: ReadonlyArray<readonly [string, () => Promise<Register>]> = [
  ['init', async () => (await import('./commands/init.js')).registerInit],
  ['serve', async () => (await import('./commands/serve.js')).registerServe],
  ['migrate', async () => (await import('./commands/migrate.js')).registerMigrate],
  ['apply', async () => (await import('./commands/apply.js')).registerApply],
  ['workloads', async () => (await import('./commands/workloads.js')).registerWorkloads],
  ['detections', async () => (await import('./commands/detections.js')).registerDetections],
  ['vendor-keys', async () => (await import('./commands/vendor-keys.js')).registerVendorKeys],
  ['proxy', async () => (await import('./commands/proxy.js')).registerProxy],
  ['classes', async () => (await import('./commands/classes.js')).registerClasses],
  ['keys', async () => (await import('./commands/keys.js')).registerKeys],
  ['revoke', async () => (await import('./commands/revoke.js')).registerRevoke],
  ['scan', async () => (await import('./commands/scan.js')).registerScan],
  ['audit', async () => (await import('./commands/audit.js')).registerAudit],
  ['govern', async () => (await import('./commands/govern.js')).registerGovernVerify],
  ['govern', async () => (await import('./commands/govern-check.js')).registerGovernCheck],
  ['govern', async () => (await import('./commands/govern-stale.js')).registerGovernStale],
  ['keygen', async () => (await import('./commands/keygen.js')).registerKeygen],
  ['token', async () => (await import('./commands/token.js')).registerToken],
  ['exec', async () => (await import('./commands/exec.js')).registerExec],
  ['dpop', async () => (await import('./commands/dpop.js')).registerDpop],
  ['tasks', async () => (await import('./commands/tasks.js')).registerTasks],
  ['policy', async () => (await import('./commands/policy.js')).registerPolicy],
  ['exceptions', async () => (await import('./commands/exceptions.js')).registerExceptions],
  ['breakglass', async () => (await import('./commands/breakglass.js')).registerBreakglass],
  ['console', async () => (await import('./commands/console.js')).registerConsole],
  ['config', async () => (await import('./commands/config.js')).registerConfig],
  ['api', async () => (await import('./commands/api.js')).registerApi],
];
