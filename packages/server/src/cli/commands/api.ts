import type { Command } from 'commander';
import { CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';

/**
 * `writ api METHOD PATH [--data JSON]`: one call to any endpoint that takes an admin token (the admin
 * API, Shared Signals stream management, AuthZEN), for what has no command of its own. Admin tokens are
 * bound to the operator key, so a copied token cannot be pasted into curl: this signs each call's proof.
 */
export function registerApi(program: Command, cli: CommandContext): void {
  program
    .command('api <method> <path>')
    .description('call an endpoint that takes an admin token, e.g. `writ api GET /admin/v1/policy`')
    .option('--data <json>', 'JSON request body')
    .action(async (method: string, path: string, o: { data?: string }) => {
      if (!/^(GET|POST|PUT|PATCH|DELETE)$/i.test(method))
        throw new CliError('method must be GET, POST, PUT, PATCH or DELETE');
      if (!path.startsWith('/'))
        throw new CliError('path starts with / (from the server root, e.g. /ssf/stream)');
      let body: unknown;
      if (o.data !== undefined) {
        try {
          body = JSON.parse(o.data);
        } catch {
          throw new CliError('--data is not JSON');
        }
      }
      cli.out(await cli.admin().call(method, path, body));
    });
}
