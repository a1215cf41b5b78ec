import type { Command } from 'commander';
import { parseDuration } from '../../config/duration.js';
import { escapeControlCharacters } from '../../control-characters.js';
import { CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';

const f = (v: unknown): string => escapeControlCharacters(String(v));
const path = (id: string, verb = '') => `/breakglass/${encodeURIComponent(id)}${verb}`;

/** `writ breakglass request|approve|close|list|show`: time-boxed elevation of a workload, two people. */
export function registerBreakglass(program: Command, cli: CommandContext): void {
  const bg = program
    .command('breakglass')
    .description('break-glass: a time-boxed elevation of a workload to a class it may not normally use');
  bg.command('request')
    .requiredOption('--workload <id>', 'the workload (SPIFFE ID)')
    .requiredOption('--class <name>', 'the class it may use while the grant lasts')
    .requiredOption('--reason <text>', 'why (audited)')
    .requiredOption('--duration <duration>', 'how long once granted: 60s to 24h, e.g. 30m')
    .option('--emergency', 'grant at once, without a second operator; a review is due within 24 h')
    .description('ask for an elevation; another operator approves it (or --emergency)')
    .action(
      async (o: {
        workload: string;
        class: string;
        reason: string;
        duration: string;
        emergency?: boolean;
      }) => {
        const duration = parseDuration(o.duration);
        if (duration === undefined || duration <= 0)
          throw new CliError('--duration must be a duration such as 30m, 2h or 900s');
        cli.out(
          await cli.admin().post('/breakglass', {
            workload: o.workload,
            class: o.class,
            reason: o.reason,
            duration,
            emergency: o.emergency === true,
          }),
        );
      },
    );
  bg.command('approve <id>')
    .description('approve another operator’s request (you cannot approve your own)')
    .action(async (id: string) => cli.out(await cli.admin().post(path(id, '/approve'), {})));
  bg.command('close <id>')
    .requiredOption('--review <text>', 'the review note every break-glass is closed with (audited)')
    .description('close a break-glass with its review; an active one ends now and its tokens are revoked')
    .action(async (id: string, o: { review: string }) =>
      cli.out(await cli.admin().post(path(id, '/close'), { review: o.review })),
    );
  bg.command('list')
    .option('--open', 'only those not yet closed with a review note')
    .option('--state <state>', 'pending, active or ended')
    .option('--workload <id>', 'only this workload')
    .description('break-glass requests, oldest first: state, id, workload, class, review')
    .action(async (o: { open?: boolean; state?: string; workload?: string }) => {
      const q = new URLSearchParams({
        ...(o.open ? { open_review: 'true' } : {}),
        ...(o.state ? { state: o.state } : {}),
        ...(o.workload ? { workload: o.workload } : {}),
      });
      const r = await cli.admin().get<{ breakglass: Array<Record<string, unknown>> }>(`/breakglass?${q}`);
      cli.out(
        r.breakglass
          .map(
            (g) =>
              `${f(g['state']).padEnd(7)} ${f(g['id'])}  ${f(g['workload'])}  ${f(g['cls'])}${g['emergency'] ? '  EMERGENCY' : ''}${g['open_review'] ? '  (review open)' : ''}`,
          )
          .join('\n') || '(none)',
      );
    });
  bg.command('show <id>')
    .description('one break-glass request: who asked, who approved, when it ends, its review')
    .action(async (id: string) => cli.out(await cli.admin().get(path(id))));
}
