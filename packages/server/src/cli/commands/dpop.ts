import { existsSync, readFileSync } from 'node:fs';
import { createDpopProof } from '@writ/sdk/dpop';
import type { Command } from 'commander';
import { CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';
import { loadOrCreateDpopKey } from './token.js';

/**
 * `writ dpop proof --method M --url U`: a DPoP proof for one request, from the key and token that
 * `writ exec` hands to its command (WRIT_DPOP_KEY_FILE, WRIT_TOKEN_FILE), for use with curl and scripts.
 */
export function dpopProof(o: {
  method: string;
  url: string;
  keyFile?: string;
  tokenFile?: string;
  nonce?: string;
}): string {
  const keyFile = o.keyFile ?? process.env['WRIT_DPOP_KEY_FILE'];
  if (!keyFile || !existsSync(keyFile))
    throw new CliError('no DPoP key: pass --key or run under `writ exec` (WRIT_DPOP_KEY_FILE)');
  const tokenFile = o.tokenFile ?? process.env['WRIT_TOKEN_FILE'];
  const token = tokenFile && existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : undefined;
  return createDpopProof(loadOrCreateDpopKey(keyFile), {
    method: o.method,
    url: o.url,
    ...(token ? { accessToken: token } : {}),
    ...(o.nonce ? { nonce: o.nonce } : {}),
  });
}

export function registerDpop(program: Command, cli: CommandContext): void {
  program
    .command('dpop')
    .description('DPoP helpers')
    .command('proof')
    .description(
      'print a DPoP proof for one request (uses WRIT_DPOP_KEY_FILE and WRIT_TOKEN_FILE under writ exec)',
    )
    .requiredOption('--method <method>', 'HTTP method')
    .requiredOption('--url <url>', 'request URL')
    .option('--key <file>', 'DPoP private JWK (default: WRIT_DPOP_KEY_FILE)')
    .option('--token-file <file>', 'access token to bind with ath (default: WRIT_TOKEN_FILE)')
    .option('--nonce <nonce>', 'server-provided DPoP nonce')
    .action((o: { method: string; url: string; key?: string; tokenFile?: string; nonce?: string }) =>
      cli.out(
        dpopProof({
          method: o.method,
          url: o.url,
          ...(o.key ? { keyFile: o.key } : {}),
          ...(o.tokenFile ? { tokenFile: o.tokenFile } : {}),
          ...(o.nonce ? { nonce: o.nonce } : {}),
        }),
      ),
    );
}
