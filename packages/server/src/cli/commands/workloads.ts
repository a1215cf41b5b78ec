import type { Command } from 'commander';
import { escapeControlCharacters as esc } from '../../control-characters.js';
import type { CommandContext } from '../command-context.js';

/** `writ workloads list|show|disable|enable|quarantine`: the registry, through the admin API. */
export function registerWorkloads(program: Command, cli: CommandContext): void {
  const workloads = program.command('workloads').description('registered workloads');
  workloads
    .command('list')
    .description('every registered workload: state, environment, id, owner, classes')
    .action(async () => {
      const r = await cli.admin().get<{
        workloads: Array<{
          id: string;
          state: string;
          environment: string;
          owner: string;
          classes: string[];
        }>;
      }>('/workloads');
      cli.out(
        r.workloads
          .map(
            (w) =>
              `${esc(w.state).padEnd(11)} ${esc(w.environment).padEnd(8)} ${esc(w.id)}  owner=${esc(w.owner)} classes=${esc(w.classes.join(','))}`,
          )
          .join('\n') || '(none)',
      );
    });
  workloads
    .command('show <id>')
    .description('one workload as registered, with its state and risk')
    .action(async (id: string) => cli.out(await cli.admin().get(`/workloads/${encodeURIComponent(id)}`)));
  for (const verb of ['disable', 'enable', 'quarantine']) {
    workloads
      .command(`${verb} <id>`)
      .option('--reason <text>', 'why (audited)')
      .description(
        verb === 'enable'
          ? 'allow the workload to get tokens again'
          : `${verb} the workload and revoke every token it holds`,
      )
      .action(async (id: string, o: { reason?: string }) =>
        cli.out(
          await cli
            .admin()
            .post(`/workloads/${encodeURIComponent(id)}/${verb}`, o.reason ? { reason: o.reason } : {}),
        ),
      );
  }
}
