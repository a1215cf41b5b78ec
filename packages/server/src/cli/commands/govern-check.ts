import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { systemClock } from '../../clock.js';
import { readConfigDir, validateConfig } from '../../config/config-dir.js';
import { dataPaths } from '../../data-dir.js';
import { checkGovernance, type Violation } from '../../governance/check.js';
import { DEFAULT_GOVERNANCE, type GovernanceRule } from '../../governance/governance-file.js';
import { withLines } from '../../governance/locate.js';
import { formatReport, REPORT_FORMATS, type ReportFormat } from '../../governance/report.js';
import { readPolicyDir } from '../../policy/policy-dir.js';
import type { CommandContext } from '../command-context.js';
import { packageVersion } from '../package-version.js';
import { governCommand } from './govern.js';

/** The outcome of `writ govern check` on a config directory. */
export interface GovernanceCheck {
  rules: GovernanceRule[];
  violations: Violation[];
}

/**
 * Validates a config directory (a broken one throws its ConfigError, naming file and field) and
 * evaluates its `governance.yaml` rules at `now` (ms), with no server: what `writ govern check` prints
 * and what `writ apply` refuses on.
 */
export function governanceCheck(dir: string, now: number): GovernanceCheck {
  const raw = readConfigDir(dir);
  const bundle = validateConfig(raw.documents);
  const governance = bundle.governance ?? DEFAULT_GOVERNANCE;
  const violations = checkGovernance({
    documents: raw.documents,
    governance,
    resources: readPolicyDir(dir)?.resources ?? [],
    people: bundle,
    now,
  });
  const read = (file: string) => {
    try {
      return readFileSync(resolve(file), 'utf8');
    } catch {
      return undefined;
    }
  };
  return { rules: governance.rules, violations: withLines(violations, read) };
}

/** `writ govern check [DIR]`. */
export function registerGovernCheck(program: Command, cli: CommandContext): void {
  governCommand(program)
    .command('check [dir]')
    .description(
      'check a config directory against its governance.yaml, without a server (exit 1 on an error-severity violation)',
    )
    .addOption(new Option('--format <format>', 'output format').choices([...REPORT_FORMATS]).default('table'))
    .action((dir: string | undefined, o: { format: ReportFormat }) => {
      const r = governanceCheck(dir ?? dataPaths(cli.globals().dataDir).config, systemClock.now());
      cli.out(formatReport({ ...r, version: packageVersion() }, o.format));
      if (r.violations.some((v) => v.severity === 'error')) process.exitCode = 1;
    });
}
