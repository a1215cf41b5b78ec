import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { importPublicJwk, type VerificationKey } from '@writ/sdk/jose';
import { type Command, Option } from 'commander';
import {
  type HeldSecretSource,
  HeldSecrets,
  legacyClientSecrets,
  vendorKeys,
} from '../../scan/held-secrets.js';
import { formatScan, SCAN_FORMATS, type ScanFormat } from '../../scan/report.js';
import { type LeakReporter, type ScanFinding, scan } from '../../scan/scan.js';
import {
  fileInputs,
  gitHistoryInputs,
  type ScanInput,
  type SkipCounter,
  streamInputs,
} from '../../scan/sources.js';
import { CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';
import { packageVersion } from '../package-version.js';
import { terminalText } from '../terminal.js';

/** Which findings make `writ scan` exit 1 (for CI). */
export type FailOn = 'any' | 'ours' | 'live' | 'none';

const MIB = 1024 * 1024;
/** Most bytes of a JWKS document fetched from the server. */
const MAX_JWKS_BYTES = MIB;

/**
 * `writ scan [PATHS...] [--git DIR]`: finds Writ access tokens and other secrets in files, directories,
 * standard input (`-`) and every blob of a git history; proves each Writ token ours or not by its
 * signature; asks the server (admin API) whether ours are live, expired or revoked, and with `--revoke`
 * reports them so the live ones are revoked and each is recorded as a `leak` finding.
 */
export function registerScan(program: Command, cli: CommandContext): void {
  program
    .command('scan')
    .description('find leaked Writ tokens and other secrets in files, stdin (-) and git history; revoke ours')
    .argument('[paths...]', 'files and directories to scan; - for standard input')
    .option('--git <dir>', 'also scan every blob of every commit of this git repository')
    .option('--jwks <file>', "the server's JWKS (public keys) from a file, instead of fetching it")
    .option('--offline', 'ask the server nothing (needs --jwks): states come from exp alone, nothing revoked')
    .option('--revoke', 'report confirmed tokens to the server: live ones are revoked, each is recorded')
    .addOption(new Option('--format <format>', 'output format').choices(SCAN_FORMATS).default('table'))
    .option('--output <file>', 'write the report to this file instead of standard output')
    .option('--max-file-size <bytes>', 'skip files and blobs larger than this', String(10 * MIB))
    .option('--no-secrets', 'Writ tokens only, without the secret rule set')
    .addOption(
      new Option('--fail-on <which>', 'exit 1 when a finding of this kind is found')
        .choices(['any', 'ours', 'live', 'none'])
        .default('any'),
    )
    .option('--no-progress', 'no progress lines on standard error')
    .action(async (paths: string[], o: Record<string, unknown>) => {
      try {
        const failed = await runScan(cli, paths, o);
        process.exitCode = failed ? 1 : 0;
      } catch (err) {
        // 2, not 1: a CI job must tell "the scan could not run" from "the scan found something".
        process.stderr.write(`writ scan: ${terminalText((err as Error).message)}\n`);
        process.exitCode = 2;
      }
    });
}

async function runScan(cli: CommandContext, paths: string[], o: Record<string, unknown>): Promise<boolean> {
  const maxBytes = Number(o['maxFileSize']);
  if (!Number.isInteger(maxBytes) || maxBytes <= 0)
    throw new CliError('--max-file-size must be a positive integer');
  const offline = o['offline'] === true;
  const revoke = o['revoke'] === true;
  const git = o['git'] as string | undefined;
  if (paths.length === 0 && git === undefined)
    throw new CliError('give paths to scan, - for standard input, or --git DIR');
  if (offline && o['jwks'] === undefined)
    throw new CliError('--offline needs --jwks FILE: the keys that tell our tokens');
  if (offline && revoke) throw new CliError('--revoke needs the server: drop --offline');

  const server = cli.globals().server.replace(/\/+$/, '');
  const keys = o['jwks'] !== undefined ? keysFromFile(o['jwks'] as string) : await fetchKeys(server);
  const admin = offline ? undefined : cli.admin();
  const sources: HeldSecretSource[] = admin ? [legacyClientSecrets(admin), vendorKeys(admin)] : [];
  const held = await HeldSecrets.load(sources).catch((err: Error) => {
    throw new CliError(
      `cannot read the secrets Writ holds through the admin API (${err.message}); scan with --offline --jwks FILE to skip the server`,
    );
  });
  const leaks: LeakReporter | undefined = admin && {
    batch: 100,
    async report(tokens, dryRun) {
      const r = await admin.post<{
        results: Array<{ state: string; action: 'revoked' | 'recorded' | 'none' }>;
      }>('/leaks', {
        tokens: tokens.map((t) => ({ token: t.token, where: { ...t.where, type: 'writ_access_token' } })),
        dry_run: dryRun,
      });
      return r.results;
    },
  };

  const skipped: SkipCounter = { tooLarge: 0, binary: 0, unreadable: 0 };
  const files = paths.filter((p) => p !== '-');
  async function* inputs(): AsyncGenerator<ScanInput> {
    if (paths.includes('-')) yield* streamInputs(process.stdin, Math.min(maxBytes, 8 * MIB), skipped);
    if (files.length > 0) yield* fileInputs(files, maxBytes, skipped);
    if (git !== undefined) yield* gitHistoryInputs(git, maxBytes, skipped);
  }
  const progress = o['progress'] !== false;
  const started = Date.now();
  let lastPrint = started;
  const { findings, stats } = await scan(
    inputs(),
    {
      keys,
      held,
      leaks,
      revoke,
      secrets: o['secrets'] !== false,
      nowMs: Date.now(),
      onProgress: progress
        ? (s) => {
            const now = Date.now();
            if (now - lastPrint < 2000) return;
            lastPrint = now;
            const mb = s.bytes / MIB;
            process.stderr.write(
              `writ scan: ${s.inputs} inputs, ${mb.toFixed(1)} MB (${(mb / ((now - started) / 1000)).toFixed(1)} MB/s), ${s.findings} findings\n`,
            );
          }
        : undefined,
    },
    skipped,
  );
  const report = formatScan(findings, stats, o['format'] as ScanFormat, { version: packageVersion() });
  if (o['output'] !== undefined) writeFileSync(o['output'] as string, `${report}\n`, { mode: 0o600 });
  else cli.out(report);
  return findings.some((f) => fails(f, o['failOn'] as FailOn));
}

/** Whether a finding fails the scan under `--fail-on`. */
export function fails(f: ScanFinding, on: FailOn): boolean {
  switch (on) {
    case 'none':
      return false;
    case 'live':
      return f.status === 'confirmed' && (f.state === 'live' || f.state === 'unknown');
    case 'ours':
      return f.status === 'confirmed' || f.ours !== undefined;
    default:
      return true;
  }
}

function importKeys(jwks: unknown, from: string): VerificationKey[] {
  const list = (jwks as { keys?: unknown })?.keys;
  if (!Array.isArray(list)) throw new CliError(`${from} is not a JWKS (no "keys" array)`);
  const keys: VerificationKey[] = [];
  for (const k of list.slice(0, 100)) {
    try {
      keys.push(importPublicJwk(k));
    } catch {
      // A key the verifier cannot use confirms nothing; the others still do.
    }
  }
  if (keys.length === 0) throw new CliError(`${from} holds no usable public key`);
  return keys;
}

function keysFromFile(file: string): VerificationKey[] {
  let text: string;
  try {
    if (statSync(file).size > MAX_JWKS_BYTES)
      throw new CliError(`${file}: larger than ${MAX_JWKS_BYTES} bytes`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return importKeys(JSON.parse(text), file);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`${file}: not JSON`);
  }
}

/** The server's published keys: only from the configured server (`--server`), never a URL a token names. */
async function fetchKeys(server: string): Promise<VerificationKey[]> {
  const url = `${server}/.well-known/jwks.json`;
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000), redirect: 'error' }).catch(
    (err: Error) => {
      throw new CliError(`cannot fetch ${url}: ${err.message} (give --jwks FILE to scan offline)`);
    },
  );
  if (!res.ok) throw new CliError(`${url}: HTTP ${res.status}`);
  // Read no more than the bound, whatever the server sends or says it sends.
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += (chunk as Uint8Array).length;
    if (size > MAX_JWKS_BYTES) throw new CliError(`${url}: larger than ${MAX_JWKS_BYTES} bytes`);
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  const body = Buffer.concat(chunks).toString('utf8');
  let jwks: unknown;
  try {
    jwks = JSON.parse(body);
  } catch {
    throw new CliError(`${url}: not JSON`);
  }
  return importKeys(jwks, url);
}
