import type { Command } from 'commander';
import { describeStore, migrateStore, type StoreLocation } from '../../store/open-store.js';
import type { CommandContext } from '../command-context.js';
import { STORE_CONFIG_OPTION_HELP, STORE_OPTION_HELP, storeFromOptions } from '../store-option.js';

/** `writ migrate`: brings the store's schema up to this build; safe to run from several nodes at once. */
export async function migrate(location: StoreLocation): Promise<string> {
  const applied = await migrateStore(location, (t) =>
    process.stderr.write(`writ: narrowed ${t.path} from mode ${t.from} to ${t.to}\n`),
  );
  const where = describeStore(location);
  return applied.length
    ? [`applied to ${where}:`, ...applied.map((line) => `  ${line}`)].join('\n')
    : `${where}: schema is up to date, nothing to apply`;
}

export function registerMigrate(program: Command, cli: CommandContext): void {
  program
    .command('migrate')
    .description(
      'apply pending schema migrations to the store and print them (serve also does this at start)',
    )
    .option('--store <store>', STORE_OPTION_HELP)
    .option('--config <dir>', STORE_CONFIG_OPTION_HELP)
    .action(async (o: { store?: string; config?: string }) =>
      cli.out(await migrate(storeFromOptions({ dataDir: cli.globals().dataDir, ...o }))),
    );
}
