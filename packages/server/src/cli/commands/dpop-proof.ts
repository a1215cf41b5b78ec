import { existsSync, readFileSync } from 'node:fs';
import { createDpopProof } from '@writ/sdk/dpop';
import { CliError } from '../client.js';
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
