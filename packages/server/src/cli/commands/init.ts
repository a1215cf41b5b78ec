import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { dataPaths } from '../../data-dir.js';
import { jwkThumbprint } from '../../jose/jwk.js';
import { loadKek } from '../../keys/kek.js';
import type { CommandContext } from '../command-context.js';

export interface InitResult {
  created: string[];
  operatorKey: string;
  config: string;
}

const SETTINGS_TEMPLATE = `# Writ server settings. Every setting, its default and its environment variable:
#   writ config reference
# listen:
#   host: 127.0.0.1
#   port: 8080
# issuer: https://writ.example.internal
# tokens:
#   max_lifetime: 1h
`;

const EXAMPLE_CLASS = `# A token class is the unit of governance: how long tokens live, for which audiences and scopes.
name: reports-read
description: Read-only access to the reports API, for dashboards and batch exports.
max_ttl: 15m
default_ttl: 5m
binding: dpop          # tokens are bound to the holder's DPoP key (RFC 9449); bearer only as an exception
audiences:
  - https://reports.example.internal
scopes:
  - reports:read
  - reports:export
default_scopes:
  - reports:read
`;

/**
 * Creates a data directory: the key-encryption key (0600), an operator key pair (private half 0600,
 * public half registered in the config), and a starter config directory. Never overwrites anything.
 */
export function initDataDir(dataDir: string, operator: string): InitResult {
  const p = dataPaths(dataDir);
  const created: string[] = [];
  if (!existsSync(p.root)) {
    mkdirSync(p.root, { recursive: true, mode: 0o700 });
    created.push(p.root);
  }
  if (!existsSync(p.kek) && !process.env['WRIT_KEK']) {
    loadKek({}, p.kek);
    created.push(p.kek);
  }
  for (const sub of ['classes', 'workloads', 'operators'])
    mkdirSync(join(p.config, sub), { recursive: true });
  const settingsFile = join(p.config, 'settings.yaml');
  if (!existsSync(settingsFile)) {
    writeFileSync(settingsFile, SETTINGS_TEMPLATE);
    writeFileSync(join(p.config, 'classes', 'reports-read.yaml'), EXAMPLE_CLASS);
    created.push(p.config);
  }
  if (!existsSync(p.operatorKey)) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = publicKey.export({ format: 'jwk' }) as Record<string, string>;
    const kid = jwkThumbprint(pub);
    const priv = { ...(privateKey.export({ format: 'jwk' }) as Record<string, string>), kid, alg: 'ES256' };
    writeFileSync(p.operatorKey, `${JSON.stringify({ operator, key: priv }, null, 2)}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
    chmodSync(p.operatorKey, 0o600);
    const operatorFile = join(p.config, 'operators', `${operator}.yaml`);
    writeFileSync(
      operatorFile,
      `# Operator "${operator}": the CLI signs short-lived assertions with the private half (${p.operatorKey}).\n` +
        `name: ${operator}\njwks:\n  keys:\n    - ${JSON.stringify({ ...pub, kid, alg: 'ES256', use: 'sig' })}\n`,
    );
    created.push(p.operatorKey, operatorFile);
  }
  return { created, operatorKey: p.operatorKey, config: p.config };
}

export function registerInit(program: Command, cli: CommandContext): void {
  program
    .command('init')
    .description('create a data directory: key-encryption key, operator key pair, starter config')
    .option('--operator <name>', 'operator name', 'admin')
    .action((o: { operator: string }) => {
      const r = initDataDir(cli.globals().dataDir, o.operator);
      cli.out(r.created.length ? r.created.map((c) => `created ${c}`).join('\n') : 'already initialised');
      cli.out(`config directory: ${r.config}\noperator key:     ${r.operatorKey}`);
    });
}
