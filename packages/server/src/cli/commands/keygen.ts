import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Command, Option } from 'commander';
import { jwkThumbprint } from '../../jose/jwk.js';
import type { CommandContext } from '../command-context.js';

/**
 * `writ keygen`: a key pair for a workload's `private_key_jwt`. The private JWK goes to a new 0600
 * file; a folder it names that does not exist yet is created 0700 (`--out .writ/exporter.jwk`).
 */
export function keygen(out: string, alg: 'ES256' | 'EdDSA'): Record<string, string> {
  const { privateKey, publicKey } =
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const pub = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  const kid = jwkThumbprint(pub);
  const priv = { ...(privateKey.export({ format: 'jwk' }) as Record<string, string>), kid, alg };
  mkdirSync(dirname(out), { recursive: true, mode: 0o700 });
  writeFileSync(out, `${JSON.stringify(priv, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return { ...pub, kid, alg, use: 'sig' };
}

export function registerKeygen(program: Command, cli: CommandContext): void {
  program
    .command('keygen')
    .description('create a key pair for a workload (private JWK written 0600; public JWK printed)')
    .requiredOption('--out <file>', 'where to write the private key')
    .addOption(new Option('--alg <alg>', 'algorithm').choices(['ES256', 'EdDSA']).default('ES256'))
    .action((o: { out: string; alg: 'ES256' | 'EdDSA' }) => cli.out(keygen(o.out, o.alg)));
}
