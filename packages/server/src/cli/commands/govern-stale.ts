import { type Command, Option } from 'commander';
import { readConfigDir, validateConfig } from '../../config/config-dir.js';
import { formatDuration } from '../../config/duration.js';
import { escapeControlCharacters as esc } from '../../control-characters.js';
import { dataPaths } from '../../data-dir.js';
import { DEFAULT_GOVERNANCE } from '../../governance/governance-file.js';
import type { Evidence, StaleReport } from '../../governance/stale.js';
import type { CommandContext } from '../command-context.js';
import { governCommand } from './govern.js';

type StaleAnswer = StaleReport & { disabled: string[] };

const when = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function evidence(label: string, e: Evidence | null): string {
  if (!e) return `${label} never`;
  const ref = [e.seq !== undefined ? `audit seq ${e.seq}` : '', e.jti ? `jti ${esc(e.jti)}` : '']
    .filter((x) => x !== '')
    .join(', ');
  return `${label} ${when(e.at)}${ref ? ` (${ref})` : ''}`;
}

/** The report as people read it: one line per stale object, its kind first, then its evidence. */
export function formatStale(r: StaleAnswer): string {
  const lines = [
    ...r.workloads.map(
      (w) =>
        `workload  ${esc(w.id)}  env=${esc(w.environment)} owner=${esc(w.owner)} state=${w.state}${r.disabled.includes(w.id) ? ' (disabled now)' : ''}  stale since ${when(w.staleSince)} (threshold ${formatDuration(w.threshold)}); ${evidence('last issued', w.lastIssued)}; ${evidence('last used', w.lastUsed)}; registered or changed ${when(w.registeredAt)}`,
    ),
    ...r.classes.map(
      (c) => `class     ${esc(c.name)}  no workload lists it; ${evidence('last issued', c.lastIssued)}`,
    ),
    ...r.issuers.map(
      (i) =>
        `issuer    ${esc(i.name)}  no token from it for ${formatDuration(i.threshold)}; ${evidence('last token', i.lastUsed)}`,
    ),
    ...r.keys.map(
      (k) =>
        `key       ${esc(k.workload)}  ${k.kid !== undefined ? `kid=${esc(k.kid)} ` : ''}thumbprint=${k.thumbprint}  never signed a client assertion; registered or changed ${when(k.registeredAt)}`,
    ),
  ];
  const total = lines.length;
  return `${lines.join('\n')}${total > 0 ? '\n' : ''}${total} stale (${r.workloads.length} workloads, ${r.classes.length} classes, ${r.issuers.length} issuers, ${r.keys.length} keys) at ${when(r.now)}${r.disabled.length > 0 ? `; disabled ${r.disabled.length}: ${r.disabled.map(esc).join(', ')}` : ''}`;
}

/** `writ govern stale`: asks the server, with the thresholds of the config directory's governance.yaml. */
export function registerGovernStale(program: Command, cli: CommandContext): void {
  governCommand(program)
    .command('stale')
    .description(
      'list workloads, classes, issuers and keys unused past the governance.yaml thresholds, with last-seen evidence (--disable runs the opt-in disable rule)',
    )
    .option(
      '--config <dir>',
      'config directory whose governance.yaml sets the thresholds (default: <data-dir>/config)',
    )
    .option(
      '--disable',
      'disable the workloads stale past stale.disable_after (audited; `writ workloads enable` reverses it)',
    )
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (o: { config?: string; disable?: boolean; format: 'table' | 'json' }) => {
      const dir = o.config ?? dataPaths(cli.globals().dataDir).config;
      const stale = (validateConfig(readConfigDir(dir).documents).governance ?? DEFAULT_GOVERNANCE).stale;
      const r = await cli.admin().post<StaleAnswer>('/govern/stale', {
        after: stale.after,
        environments: stale.environments,
        ...(stale.disableAfter !== undefined ? { disable_after: stale.disableAfter } : {}),
        disable: o.disable ?? false,
      });
      cli.out(o.format === 'json' ? r : formatStale(r));
    });
}
