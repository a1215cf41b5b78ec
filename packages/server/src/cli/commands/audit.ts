import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TokenTrace } from '@writ/sdk/wire';
import type { Command } from 'commander';
import { readAuditAnchor } from '../../audit/anchor.js';
import type { AuditCheckpoint, AuditEvent } from '../../audit/audit-event.js';
import { verifyAuditChain } from '../../audit/verify.js';
import { escapeControlCharacters as esc } from '../../control-characters.js';
import { describeStore, openStore, type StoreLocation } from '../../store/open-store.js';
import { type AdminClient, CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';
import { STORE_CONFIG_OPTION_HELP, STORE_OPTION_HELP, storeFromOptions } from '../store-option.js';

/**
 * `writ audit verify`: reads the store directly (read-only) so a tampered server cannot vouch for itself.
 * With `anchorFile` (a signed checkpoint kept outside the store: the data directory's audit-anchor.json,
 * or a copy taken elsewhere), the store must still hold the event it signs, so a cut tail is named even
 * when its checkpoints were deleted with it.
 */
export async function verifyOffline(
  location: StoreLocation,
  anchorFile?: string,
): Promise<{ ok: boolean; text: string }> {
  if (location.kind === 'sqlite' && !existsSync(location.path))
    throw new CliError(`no store at ${describeStore(location)} (pass --data-dir or --store)`);
  let anchor: AuditCheckpoint | undefined;
  if (anchorFile !== undefined) {
    try {
      anchor = readAuditAnchor(anchorFile);
    } catch (err) {
      throw new CliError(`--anchor: ${(err as Error).message}`);
    }
    if (!anchor) throw new CliError(`--anchor: no file at ${anchorFile}`);
  }
  const store = await openStore(location, { readonly: true });
  try {
    const r = await verifyAuditChain(store, anchor);
    const verdict = r.ok
      ? `audit chain OK: ${r.events} events, ${r.checkpoints} signed checkpoints${anchor ? `; holds the anchor's event ${anchor.seq}` : ''}`
      : `audit chain BROKEN at event ${r.firstBad!.seq}: ${r.firstBad!.reason} (${r.events} events verified before it)`;
    return { ok: r.ok, text: `${verdict}\nstore: ${storeName(location)}` };
  } finally {
    await store.close();
  }
}

/**
 * Which store a verdict is about, since the data directory, WRIT_STORE and settings.yaml all choose
 * one: the embedded file by its absolute path, a PostgreSQL URL with its password masked.
 */
function storeName(location: StoreLocation): string {
  return location.kind === 'sqlite'
    ? `embedded SQLite, ${resolve(location.path)}`
    : `PostgreSQL, ${describeStore(location)}`;
}

/**
 * One event on one line. Every field is escaped (`escapeControlCharacters`): whatever a caller got into
 * an event (a newline, a terminal escape, a bidirectional override) is shown, never obeyed, and cannot
 * start a line that looks like another event.
 */
export function formatEvent(e: AuditEvent): string {
  const time = new Date(e.ts).toISOString();
  const data = Object.entries(e.data)
    .filter(([k]) => !['fingerprint'].includes(k))
    .map(([k, v]) => `${esc(k)}=${esc(typeof v === 'string' ? v : JSON.stringify(v))}`)
    .join(' ');
  return `${String(e.seq).padStart(6)} ${time} ${esc(e.type).padEnd(20)} ${esc(e.outcome).padEnd(10)} ${esc(e.actor)}${e.jti ? ` jti=${esc(e.jti)}` : ''} ${data}`;
}

export interface AuditQueryOptions {
  workload?: string;
  jti?: string;
  type?: string;
  since?: string;
  until?: string;
  limit?: string;
}

function toMillis(v: string | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms))
    throw new CliError(`--${name} must be an ISO date or milliseconds since the epoch`);
  return String(ms);
}

export async function query(client: AdminClient, o: AuditQueryOptions): Promise<AuditEvent[]> {
  const q = new URLSearchParams();
  if (o.workload) q.set('workload', o.workload);
  if (o.jti) q.set('jti', o.jti);
  if (o.type) q.set('type', o.type);
  const since = toMillis(o.since, 'since');
  const until = toMillis(o.until, 'until');
  if (since) q.set('since', since);
  if (until) q.set('until', until);
  q.set('limit', o.limit ?? '100');
  return (await client.get<{ events: AuditEvent[] }>(`/audit?${q}`)).events;
}

/** `writ audit tail`: the last N events, then (with follow) new ones as they arrive. */
export async function tail(
  client: AdminClient,
  n: number,
  follow: boolean,
  print: (line: string) => void,
): Promise<void> {
  const last = (await client.get<{ events: AuditEvent[] }>(`/audit?order=desc&limit=${n}`)).events.reverse();
  for (const e of last) print(formatEvent(e));
  let after = last.at(-1)?.seq ?? 0;
  while (follow) {
    await new Promise((r) => setTimeout(r, 1000));
    const fresh = (await client.get<{ events: AuditEvent[] }>(`/audit?after=${after}&limit=1000`)).events;
    for (const e of fresh) print(formatEvent(e));
    after = fresh.at(-1)?.seq ?? after;
  }
}

/** `writ audit trace JTI`: asks the admin API for one token's trace. */
export async function trace(client: AdminClient, jti: string): Promise<TokenTrace> {
  return client.get<TokenTrace>(`/audit/trace/${encodeURIComponent(jti)}`);
}

/**
 * The trace as a person reads it: the token, then issued → used → revoked in time order. Fields are
 * escaped as in `formatEvent`: an operation, a user agent or a reason cannot add or repaint a line.
 */
export function formatTrace(t: TokenTrace): string {
  const lines: string[] = [];
  const tok = t.token;
  lines.push(`token ${esc(t.jti)}`);
  if (tok)
    lines.push(
      `  sub=${esc(tok.sub)} aud=${esc(tok.aud)} cls=${esc(tok.cls)} scope="${esc(tok.scope)}"${tok.tid ? ` tid=${esc(tok.tid)}` : ''}`,
      `  iat=${iso(tok.iat * 1000)} exp=${iso(tok.exp * 1000)}`,
    );
  lines.push(
    `  uses: ${t.totals.allow} allowed, ${t.totals.deny} denied` +
      (t.revocations.length
        ? `; revoked (${t.revocations.map((r) => `${esc(r.kind)}#${r.seq}`).join(', ')})`
        : ''),
  );
  for (const e of t.timeline) lines.push(`${iso(e.at)}  ${esc(e.what).padEnd(7)} ${esc(e.detail)}`);
  return lines.join('\n');
}

const iso = (ms: number) => new Date(ms).toISOString();

export function registerAudit(program: Command, cli: CommandContext): void {
  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('verify')
    .description('verify the hash chain and signed checkpoints, reading the store directly (read-only)')
    .option('--store <store>', STORE_OPTION_HELP)
    .option('--config <dir>', STORE_CONFIG_OPTION_HELP)
    .option(
      '--anchor <file>',
      "a signed checkpoint kept outside the store (the data directory's audit-anchor.json, or a copy): the store must still hold its event",
    )
    .action(async (o: { store?: string; config?: string; anchor?: string }) => {
      const { anchor, ...where } = o;
      const r = await verifyOffline(storeFromOptions({ dataDir: cli.globals().dataDir, ...where }), anchor);
      cli.out(r.text);
      if (!r.ok) process.exitCode = 2;
    });
  audit
    .command('tail')
    .description('the newest events, oldest first; -f keeps printing new ones')
    .option('-n <count>', 'events to show', '20')
    .option('-f, --follow', 'keep printing new events')
    .action(async (o: { n: string; follow?: boolean }) =>
      tail(cli.admin(), Math.min(Number(o.n) || 20, 1000), o.follow ?? false, cli.out),
    );
  audit
    .command('query')
    .description('events by workload, token, type and time')
    .option('--workload <id>', 'events where the workload is actor or subject')
    .option('--jti <jti>', 'events about one token')
    .option('--type <type>', 'event type, e.g. token.issued')
    .option('--since <time>', 'ISO time or epoch milliseconds')
    .option('--until <time>', 'ISO time or epoch milliseconds')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'print JSON')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const events = await query(cli.admin(), o as Record<string, string>);
      cli.out(o['json'] ? events : events.map(formatEvent).join('\n') || '(no events)');
    });
  audit
    .command('trace <jti>')
    .description('one token: issued, then used (where, how often, allowed or denied), then revoked')
    .option('--json', 'print JSON')
    .action(async (jti: string, o: { json?: boolean }) => {
      const t = await trace(cli.admin(), jti);
      cli.out(o.json ? t : formatTrace(t));
    });
}
