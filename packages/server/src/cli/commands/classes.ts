import type { Command } from 'commander';
import { escapeControlCharacters as esc } from '../../control-characters.js';
import type { CommandContext } from '../command-context.js';

/** `writ classes list|show`: the token classes in force, through the admin API. */
export function registerClasses(program: Command, cli: CommandContext): void {
  const classes = program.command('classes').description('token classes');
  classes
    .command('list')
    .description('every token class: max_ttl, audiences, scopes')
    .action(async () => {
      const r = await cli.admin().get<{
        classes: Array<{ name: string; maxTtl: number; audiences: string[]; scopes: string[] }>;
      }>('/classes');
      cli.out(
        r.classes
          .map(
            (c) =>
              `${esc(c.name)}  max_ttl=${c.maxTtl}s audiences=${esc(c.audiences.join(','))} scopes=${esc(c.scopes.join(','))}`,
          )
          .join('\n') || '(none)',
      );
    });
  classes
    .command('show <name>')
    .description('one token class as configured')
    .action(async (name: string) => cli.out(await cli.admin().get(`/classes/${encodeURIComponent(name)}`)));
}
