import type { Command } from 'commander';
import { escapeControlCharacters } from '../../control-characters.js';
import type { CommandContext } from '../command-context.js';

/** One field of a line, escaped: an owner or a note cannot add a line or repaint the terminal. */
const f = (v: unknown): string => escapeControlCharacters(String(v));
const path = (id: string, verb = '') => `/exceptions/${encodeURIComponent(id)}${verb}`;

/** `writ exceptions list|show|renew|retire`: the exceptions registry, through the admin API. */
export function registerExceptions(program: Command, cli: CommandContext): void {
  const exceptions = program
    .command('exceptions')
    .description('the exceptions registry: credentials that do not meet the rules, owned and time-boxed');
  exceptions
    .command('list')
    .description('every exception: status, id, kind, owner, end')
    .action(async () => {
      const r = await cli.admin().get<{ exceptions: Array<Record<string, unknown>> }>('/exceptions');
      cli.out(
        r.exceptions
          .map(
            (e) =>
              `${f(e['status']).padEnd(8)} ${f(e['id'])}  ${f((e['covers'] as { kind?: unknown })?.kind)}  owner ${f(e['owner'])}  ends ${f(e['expires'])}`,
          )
          .join('\n') || '(none)',
      );
    });
  exceptions
    .command('show <id>')
    .description('one exception: what it covers, owner, justification, controls, end, renewals')
    .action(async (id: string) => cli.out(await cli.admin().get(path(id))));
  exceptions
    .command('renew <id>')
    .requiredOption('--until <date>', 'the new end: YYYY-MM-DD or an RFC 3339 time (at most a year ahead)')
    .requiredOption('--note <text>', 'why it still stands (audited)')
    .description('extend an exception (audited with you as actor)')
    .action(async (id: string, o: { until: string; note: string }) =>
      cli.out(await cli.admin().post(path(id, '/renew'), { until: o.until, note: o.note })),
    );
  exceptions
    .command('retire <id>')
    .requiredOption('--note <text>', 'why it ends (audited)')
    .description('end an exception now: what it covered is refused from now on')
    .action(async (id: string, o: { note: string }) =>
      cli.out(await cli.admin().post(path(id, '/retire'), { note: o.note })),
    );
}
