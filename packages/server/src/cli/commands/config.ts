import type { Command } from 'commander';
import { settingsReferenceMarkdown } from '../../config/settings.js';
import type { CommandContext } from '../command-context.js';

/** `writ config reference`: the settings reference docs/configuration.md's table is generated from. */
export function registerConfig(program: Command, cli: CommandContext): void {
  program
    .command('config')
    .description('configuration helpers')
    .command('reference')
    .description('print every server setting with its default and environment variable')
    .action(() => cli.out(settingsReferenceMarkdown()));
}
