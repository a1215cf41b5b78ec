import type { Command } from 'commander';
import { escapeControlCharacters as esc } from '../../control-characters.js';
import type { CommandContext } from '../command-context.js';

/** `writ workloads list|show|disable|enable|quarantine`: the registry, through the admin API. */
export function registerWorkloads(program: Command, cli: CommandContext): void {
  const workloads = program.command('workloads').description('registered workloads');
  workloads
    .command('list')
    .description(
      'every registered workload: state, environment, id, owner, classes, and the template that admitted it',
    )
    .action(async () => {
      const r = await cli.admin().get<{
        workloads: Array<{
          id: string;
          state: string;
          environment: string;
          owner: string;
          classes: string[];
          template?: string;
        }>;
      }>('/workloads');
      cli.out(
        r.workloads
          .map(
            (w) =>
              `${esc(w.state).padEnd(11)} ${esc(w.environment).padEnd(8)} ${esc(w.id)}  owner=${esc(w.owner)} classes=${esc(w.classes.join(','))} template=${w.template === undefined ? '-' : esc(w.template)}`,
          )
          .join('\n') || '(none)',
      );
    });
  workloads
    .command('orphaned')
    .description(
      'workloads whose owner was deprovisioned (a person made inactive or deleted, a team with no active member): reassign them',
    )
    .action(async () => {
      const r = await cli.admin().get<{
        workloads: Array<{ id: string; state: string; owner: string; reason: string; since?: number }>;
        quarantine_after: number;
      }>('/workloads/orphaned');
      const since = (ms: number | undefined) => (ms === undefined ? 'unknown' : new Date(ms).toISOString());
      cli.out(
        [
          ...r.workloads.map(
            (w) =>
              `${esc(w.state).padEnd(11)} ${esc(w.id)}  owner=${esc(w.owner)} ${esc(w.reason)} since=${since(w.since)}`,
          ),
          ...(r.workloads.length === 0 ? ['(none)'] : []),
          r.quarantine_after > 0
            ? `quarantined ${r.quarantine_after}s after the owner left (governance.orphan_quarantine_after)`
            : 'not quarantined automatically (governance.orphan_quarantine_after is 0)',
        ].join('\n'),
      );
    });
  workloads
    .command('show <id>')
    .description(
      'one workload as registered, with its state and risk; a templated one with its template and the evidence it was admitted on',
    )
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
