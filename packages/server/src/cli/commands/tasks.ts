import type { Command } from 'commander';
import { escapeControlCharacters } from '../../control-characters.js';
import type { CommandContext } from '../command-context.js';

/** One field of a line, escaped: a purpose or a reason cannot add a line or repaint the terminal. */
const f = (v: unknown): string => escapeControlCharacters(String(v));

/** `writ tasks list|show|close`: tasks, through the admin API; closing one revokes its tokens. */
export function registerTasks(program: Command, cli: CommandContext): void {
  const tasks = program.command('tasks').description('tasks: units of work whose tokens die with them');
  tasks
    .command('list')
    .description('tasks, newest first: state, id, workload, purpose')
    .option('--workload <id>', 'only this workload')
    .option('--state <state>', 'open or closed')
    .action(async (o: { workload?: string; state?: string }) => {
      const q = new URLSearchParams({
        ...(o.workload ? { workload: o.workload } : {}),
        ...(o.state ? { state: o.state } : {}),
      });
      const r = await cli.admin().get<{ tasks: Array<Record<string, unknown>> }>(`/tasks?${q}`);
      cli.out(
        r.tasks
          .map(
            (t) =>
              `${f(t['state']).padEnd(6)} ${f(t['id'])}  ${f(t['workload'])}  "${f(t['purpose'])}"${t['close_reason'] ? `  (${f(t['close_reason'])})` : ''}`,
          )
          .join('\n') || '(none)',
      );
    });
  tasks
    .command('show <id>')
    .description('one task and the tokens issued for it')
    .action(async (id: string) => cli.out(await cli.admin().get(`/tasks/${encodeURIComponent(id)}`)));
  tasks
    .command('close <id>')
    .option('--reason <text>', 'why (audited)')
    .description('close the task and revoke every token issued for it')
    .action(async (id: string, o: { reason?: string }) =>
      cli.out(
        await cli
          .admin()
          .post(`/tasks/${encodeURIComponent(id)}/close`, o.reason ? { reason: o.reason } : {}),
      ),
    );
}
