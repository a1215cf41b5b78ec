import { REVOCATION_KINDS, type RevocationKind } from '@writ/sdk/wire';
import { type Command, Option } from 'commander';
import { CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';

/** The option of a revocation kind: `client_id` is `--client-id`, which commander reads as `clientId`. */
const flagOf = (kind: RevocationKind) => `--${kind.replace('_', '-')}`;
const keyOf = (kind: RevocationKind) => (kind === 'client_id' ? 'clientId' : kind);

/** `writ revoke --<kind> VALUE`: one revocation by predicate, through the admin API. */
export function registerRevoke(program: Command, cli: CommandContext): void {
  const revoke = program.command('revoke').description('revoke tokens by predicate (one option)');
  for (const kind of REVOCATION_KINDS)
    revoke.addOption(new Option(`${flagOf(kind)} <value>`, `tokens whose ${kind} is <value>`));
  revoke
    .option('--issued-before <time>', 'only tokens issued at or before this ISO time or epoch seconds')
    .option('--reason <text>', 'why (audited)')
    .action(async (o: Record<string, string | undefined>) => {
      const chosen = REVOCATION_KINDS.filter((k) => o[keyOf(k)] !== undefined);
      if (chosen.length !== 1)
        throw new CliError(`give exactly one of ${REVOCATION_KINDS.map(flagOf).join(', ')}`);
      const kind = chosen[0] as RevocationKind;
      const value = o[keyOf(kind)]!;
      const issuedBefore = o['issuedBefore'];
      let issued_before: number | undefined;
      if (issuedBefore !== undefined) {
        const t = /^\d+$/.test(issuedBefore)
          ? Number(issuedBefore)
          : Math.floor(Date.parse(issuedBefore) / 1000);
        if (!Number.isFinite(t)) throw new CliError('--issued-before must be an ISO time or epoch seconds');
        issued_before = t;
      }
      cli.out(
        await cli.admin().post('/revocations', {
          kind,
          value,
          ...(issued_before !== undefined ? { issued_before } : {}),
          ...(o['reason'] ? { reason: o['reason'] } : {}),
        }),
      );
    });
}
