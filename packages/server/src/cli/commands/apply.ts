import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import { changedFiles } from '../../config/config-files.js';
import { readConfigDir } from '../../config/config-read.js';
import type { ConfigChange } from '../../config/diff.js';
import { settingsFileDigest } from '../../config/settings.js';
import type { PolicyVersion } from '../../policy/engine.js';
import { appliedFiles, listingFile } from '../apply-listing.js';
import { type AdminClient, CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';

/**
 * `writ apply DIR`: validates locally (file and field, or policy file and line, named on error), then
 * applies on the server and prints the diff. Without `policies/` the server returns to its built-in set.
 */
export async function apply(
  client: AdminClient,
  dir: string,
  dryRun: boolean,
  now: number = systemClock.now(),
  listing?: string,
): Promise<string> {
  // The files the server applied last (from the listing kept in `listing` and the changes since, when
  // there is one): only the ones that differ are read, validated there and sent.
  const applied = await appliedFiles(client, listing);
  // Files with the stamp the server recorded are not read (see fileStamp).
  const raw = readConfigDir(dir, applied, systemClock.now());
  const files = raw.files ?? [];
  const change = applied ? changedFiles(applied, files) : undefined;
  // Every file read afresh (a first apply, or a server that keeps no record): validated here first,
  // with the governance rules. A change is validated by the server, merged with the files it holds.
  let warnings = '';
  if (!applied || raw.parsed === files.length) {
    // Loaded only here (validation, governance): a small change does without them.
    const [{ validateConfig }, { governanceCheck }, { formatReport }] = await Promise.all([
      import('../../config/config-dir.js'),
      import('./govern-check.js'),
      import('../../governance/report.js'),
    ]);
    validateConfig(raw.documents);
    // governance.yaml: an error-severity violation refuses before anything is sent; warnings are printed.
    const governance = governanceCheck(dir, now);
    const errors = governance.violations.filter((v) => v.severity === 'error');
    if (errors.length > 0)
      throw new CliError(
        `governance rules refuse this configuration (\`writ govern check\` shows the same):\n${formatReport({ rules: governance.rules, violations: errors, version: '' }, 'table')}`,
      );
    warnings = governance.violations
      .filter((v) => v.severity === 'warning')
      .map((v) => `warning: ${v.rule}: ${v.file}: ${v.field ? `${v.field}: ` : ''}${v.message}\n`)
      .join('');
  }
  // policies/ (and the policy compiler) is read only when the directory has one.
  const policies = existsSync(join(dir, 'policies')) ? await readPolicies(dir) : null;
  const res = await client.post<{
    applied: boolean;
    changes: ConfigChange[];
    diff: string;
    policy?: { version: PolicyVersion; changed: boolean; warnings: string[] };
    settings?: { changed: boolean };
  }>('/config', {
    ...(applied && change
      ? {
          files: change.put.map((f) => ({ ...f, was: applied.get(f.path)?.digest ?? null })),
          removed: change.remove.map((path) => ({ path, was: applied.get(path)?.digest ?? '' })),
          ...(raw.stamps?.length ? { stamps: raw.stamps } : {}),
        }
      : { documents: raw.documents }),
    policies,
    dry_run: dryRun,
    ...(raw.settings ? { settings_digest: settingsFileDigest(raw.settings.values) } : {}),
  });
  // Only a settings file that differs from the one the server started with waits for a restart.
  const note =
    raw.settings && res.settings?.changed !== false
      ? `\n(${basename(raw.settings.name)} differs from the settings the server started with; \`writ serve\` reads it at start: restart to apply it)`
      : '';
  const p = res.policy;
  const policyLine = !p
    ? ''
    : `\n${p.changed ? (dryRun ? 'policy set would become' : 'policy set now') : 'policy set unchanged:'} ${p.version.id} (${p.version.builtIn ? 'built-in' : `${p.version.policies} policies`})${p.warnings.map((w) => `\nwarning: ${w}`).join('')}`;
  if (res.changes.length === 0) return `${warnings}no changes${policyLine}${note}`;
  return `${warnings}${res.diff}\n${dryRun ? `${res.changes.length} change(s) not applied (dry run)` : `applied ${res.changes.length} change(s)`}${policyLine}${note}`;
}

/** `policies/`, compiled (refused here, with file and line, before anything is sent). */
async function readPolicies(dir: string) {
  const [{ readPolicyDir }, { compilePolicies }] = await Promise.all([
    import('../../policy/policy-dir.js'),
    import('../../policy/compile.js'),
  ]);
  const policies = readPolicyDir(dir) ?? null;
  if (policies) compilePolicies(policies);
  return policies;
}

export function registerApply(program: Command, cli: CommandContext): void {
  program
    .command('apply <dir>')
    .description('validate a config directory and apply it (prints the diff; audited)')
    .option('--dry-run', 'show the diff without applying')
    .action(async (dir: string, o: { dryRun?: boolean }) => {
      const admin = cli.admin();
      const listing = listingFile(cli.globals().dataDir, admin.server);
      cli.out(await apply(admin, dir, o.dryRun ?? false, systemClock.now(), listing));
    });
}
