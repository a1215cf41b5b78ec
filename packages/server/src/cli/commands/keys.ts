import type { Command } from 'commander';
import type { CommandContext } from '../command-context.js';

/** `writ keys list|rotate`: the server's signing keys, through the admin API. */
export function registerKeys(program: Command, cli: CommandContext): void {
  const keys = program.command('keys').description('signing keys');
  keys
    .command('list')
    .description('the signing keys and their states (next, active, retired)')
    .action(async () => cli.out(await cli.admin().get('/keys')));
  keys
    .command('rotate')
    .description(
      'activate the published next key, retire the current one (kept published until its tokens expire)',
    )
    .action(async () => cli.out(await cli.admin().post('/keys/rotate')));
}
