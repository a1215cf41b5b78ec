import type { Command } from 'commander';
import { escapeControlCharacters as esc } from '../../control-characters.js';
import type { Finding } from '../../detection/finding.js';
import type { CommandContext } from '../command-context.js';

/**
 * `writ detections list|show|ack|resolve|false-positive|rules|pause|resume`: findings of the detection
 * rules and the switch over automatic responses, through the admin API.
 */
export function registerDetections(program: Command, cli: CommandContext): void {
  const detections = program.command('detections').description('detection findings, rules and responses');
  detections
    .command('list')
    .description('findings, newest first')
    .option('--state <state>', 'open, acknowledged, resolved or false_positive')
    .option('--workload <id>', 'only this workload’s')
    .option('--rule <id>', 'only this rule’s')
    .option('--limit <n>', 'at most this many (1-1000)', '50')
    .action(async (o: { state?: string; workload?: string; rule?: string; limit: string }) => {
      const q = new URLSearchParams({ limit: o.limit });
      if (o.state) q.set('state', o.state);
      if (o.workload) q.set('workload', o.workload);
      if (o.rule) q.set('rule', o.rule);
      const r = await cli.admin().get<{ findings: Finding[] }>(`/detections/findings?${q}`);
      cli.out(
        r.findings
          .map(
            (f) =>
              `${new Date(f.createdAt).toISOString()} ${esc(f.state).padEnd(14)} ${f.severity.padEnd(8)} ${esc(f.rule).padEnd(28)} ${esc(f.workload || `claimed:${claimedClient(f)}`)} ${f.outcome}${f.jti ? ` jti=${esc(f.jti)}` : ''}  ${f.id}`,
          )
          .join('\n') || '(none)',
      );
    });
  detections
    .command('show <id>')
    .description('one finding with its evidence')
    .action(async (id: string) =>
      cli.out(await cli.admin().get(`/detections/findings/${encodeURIComponent(id)}`)),
    );
  for (const [verb, state, what] of [
    ['ack', 'acknowledged', 'acknowledge a finding (someone is on it)'],
    ['resolve', 'resolved', 'close a finding as dealt with'],
    ['false-positive', 'false_positive', 'close a finding as a false positive'],
  ] as const) {
    detections
      .command(`${verb} <id>`)
      .description(what)
      .option('--note <text>', 'why (audited)')
      .action(async (id: string, o: { note?: string }) =>
        cli.out(
          await cli.admin().post(`/detections/findings/${encodeURIComponent(id)}`, {
            state,
            ...(o.note ? { note: o.note } : {}),
          }),
        ),
      );
  }
  detections
    .command('rules')
    .description('the rules in force, the pause switch and the riskiest workloads')
    .action(async () => cli.out(await cli.admin().get('/detections')));
  for (const verb of ['pause', 'resume'] as const) {
    detections
      .command(verb)
      .description(
        verb === 'pause'
          ? 'stop every automatic response (findings are still recorded); audited'
          : 'let automatic responses act again; audited',
      )
      .option('--reason <text>', 'why (audited)')
      .action(async (o: { reason?: string }) =>
        cli.out(await cli.admin().post(`/detections/${verb}`, o.reason ? { reason: o.reason } : {})),
      );
  }
}

/** The client id a refused request named, for findings about no authenticated workload. */
function claimedClient(f: Finding): string {
  const s = f.evidence.signals.at(-1);
  return s?.kind === 'token.refused' ? s.data.client_id : '?';
}
