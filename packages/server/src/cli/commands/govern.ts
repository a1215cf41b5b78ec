import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseDuration } from '../../config/duration.js';
import { formatProof } from '../../governance/evidence.js';
import type { GovernVerifyAnswer } from '../../governance/verify-route.js';
import { type AdminClient, CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';

/** `writ govern`, made once whichever of its verbs registers first. */
export function governCommand(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === 'govern') ??
    program.command('govern').description('governance: check the rules as code, prove they held')
  );
}

/** Exit codes of `writ govern verify`: 0 held; 2 a violation; 3 nothing violated but not everything provable. */
export const VERIFY_EXIT = { held: 0, violated: 2, unproven: 3 } as const;

function seconds(v: string, option: string): number {
  const s = parseDuration(v);
  if (s === undefined) throw new CliError(`${option} must be a duration such as 90s, 15m, 12h or 30d`);
  return s;
}

/**
 * Asks the server for the proof (it holds the signing key), streaming: progress goes to stderr on a
 * terminal, the answer is returned once complete.
 */
export async function governVerify(
  client: AdminClient,
  body: { since_seconds: number; propagation_bound_seconds?: number; expiry_leeway_seconds?: number },
  progress: (line: string) => void,
): Promise<GovernVerifyAnswer> {
  let answer: GovernVerifyAnswer | undefined;
  let failure: string | undefined;
  await client.lines('/govern/verify', body, (line) => {
    if (line['progress']) {
      const p = line['progress'] as { phase: string; done: number };
      progress(`verifying: ${p.phase} ${p.done}`);
    } else if (line['result']) answer = line['result'] as GovernVerifyAnswer;
    else if (line['error']) failure = `${String(line['error'])}: ${String(line['error_description'] ?? '')}`;
  });
  if (failure !== undefined) throw new CliError(failure);
  if (!answer) throw new CliError('the server ended the answer before the proof was complete');
  return answer;
}

export function registerGovernVerify(program: Command, cli: CommandContext): void {
  governCommand(program)
    .command('verify')
    .description(
      'prove from the audit chain and usage reports that the class rules, revocations and expiries held over a period; prints a summary and a signed evidence pack',
    )
    .requiredOption('--since <duration>', 'the period: from this long ago until now (e.g. 30d)')
    .option(
      '--propagation-bound <duration>',
      'how long after a revocation verifiers may still accept a token (their staleness bound)',
      '15s',
    )
    .option('--leeway <duration>', 'clock leeway verifiers allow on exp', '5s')
    .option('--evidence <file>', 'write the signed evidence pack (a compact JWS) to this file')
    .option('--json', 'print the report and the evidence pack as JSON')
    .action(
      async (o: {
        since: string;
        propagationBound: string;
        leeway: string;
        evidence?: string;
        json?: boolean;
      }) => {
        const tty = process.stderr.isTTY === true;
        const answer = await governVerify(
          cli.admin(),
          {
            since_seconds: seconds(o.since, '--since'),
            propagation_bound_seconds: seconds(o.propagationBound, '--propagation-bound'),
            expiry_leeway_seconds: seconds(o.leeway, '--leeway'),
          },
          (line) => {
            if (tty) process.stderr.write(`\r${line}\u001b[K`);
          },
        );
        if (tty) process.stderr.write('\r\u001b[K');
        if (o.evidence !== undefined) writeFileSync(o.evidence, `${answer.evidence.jws}\n`);
        cli.out(o.json ? answer : formatProof(answer.report, answer.evidence));
        process.exitCode = VERIFY_EXIT[answer.report.result];
      },
    );
}
