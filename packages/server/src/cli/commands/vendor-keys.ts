import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseDuration } from '../../config/duration.js';
import { escapeControlCharacters as esc } from '../../control-characters.js';
import type { VendorKeyView } from '../../vendor/vendor-keys.js';
import { CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';

/** The key from a file or from standard input, never from the command line (shell history, `ps`). */
function readSecret(o: { fromFile?: string; fromStdin?: boolean }): string {
  if ((o.fromFile === undefined) === (o.fromStdin !== true))
    throw new CliError('give the key with exactly one of --from-file FILE or --from-stdin');
  let text: string;
  try {
    text = o.fromFile !== undefined ? readFileSync(o.fromFile, 'utf8') : readFileSync(0, 'utf8');
  } catch (err) {
    throw new CliError(
      `cannot read the key: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  // One trailing newline (as `echo` and editors leave) is not part of the key.
  return text.replace(/\r?\n$/, '');
}

const line = (k: VendorKeyView) =>
  `${esc(k.name).padEnd(24)} v${String(k.version).padEnd(4)} ${k.fingerprint}  proxies: ${k.proxies.map(esc).join(', ') || '(none)'}${
    k.overlapping.length > 0
      ? `  overlapping: ${k.overlapping.map((o) => `v${o.version} until ${new Date(o.until).toISOString()}`).join(', ')}`
      : ''
  }`;

/**
 * `writ vendor-keys add|rotate|list|show|retire`: static vendor API keys that Writ keeps sealed and
 * only its vendor-key proxies lease; no answer ever holds a key.
 */
export function registerVendorKeys(program: Command, cli: CommandContext): void {
  const keys = program
    .command('vendor-keys')
    .description(
      'static vendor API keys, sealed, injected by the vendor-key proxy (never handed to workloads)',
    );
  keys
    .command('add <name>')
    .description('store a vendor key (read from a file or stdin, never the command line)')
    .option('--from-file <file>', 'read the key from this file')
    .option('--from-stdin', 'read the key from standard input')
    .option('--proxy <id...>', 'workload ids of the proxies that may lease it')
    .action(async (name: string, o: { fromFile?: string; fromStdin?: boolean; proxy?: string[] }) => {
      const secret = readSecret(o);
      const k = await cli
        .admin()
        .post<VendorKeyView>('/vendor-keys', { name, secret, proxies: o.proxy ?? [] });
      cli.out(line(k));
    });
  keys
    .command('rotate <name>')
    .description('make a new key the one sent; the old one is still recognised during the overlap')
    .option('--from-file <file>', 'read the new key from this file')
    .option('--from-stdin', 'read the new key from standard input')
    .option('--overlap <duration>', 'how long the vendor accepts both keys (at least 30s)', '1h')
    .option('--proxy <id...>', 'replace the proxies that may lease it')
    .action(
      async (
        name: string,
        o: { fromFile?: string; fromStdin?: boolean; overlap: string; proxy?: string[] },
      ) => {
        const overlap = parseDuration(o.overlap);
        if (overlap === undefined) throw new CliError('--overlap must be a duration such as 30s, 15m or 1h');
        const secret = readSecret(o);
        const k = await cli.admin().post<VendorKeyView>(`/vendor-keys/${encodeURIComponent(name)}/rotate`, {
          secret,
          overlap,
          ...(o.proxy ? { proxies: o.proxy } : {}),
        });
        cli.out(line(k));
      },
    );
  keys
    .command('list')
    .description('vendor keys: name, version, fingerprint, proxies (never the key)')
    .action(async () => {
      const r = await cli.admin().get<{ vendor_keys: VendorKeyView[] }>('/vendor-keys');
      cli.out(r.vendor_keys.map(line).join('\n') || '(none)');
    });
  keys
    .command('show <name>')
    .description('one vendor key’s versions and proxies (never the key)')
    .action(async (name: string) =>
      cli.out(await cli.admin().get(`/vendor-keys/${encodeURIComponent(name)}`)),
    );
  keys
    .command('retire <name>')
    .description('delete every version: proxies refuse the route once their lease runs out')
    .action(async (name: string) =>
      cli.out(await cli.admin().post(`/vendor-keys/${encodeURIComponent(name)}/retire`, {})),
    );
}
