import { existsSync } from 'node:fs';
import { verifyAuditChain } from '../../audit/verify.js';
import { describeStore, openStore, type StoreLocation } from '../../store/open-store.js';
import type { AuditEvent } from '../../store/store.js';
import { type AdminClient, CliError } from '../client.js';

/** `writ audit verify`: reads the store directly (read-only) so a tampered server cannot vouch for itself. */
export async function verifyOffline(location: StoreLocation): Promise<{ ok: boolean; text: string }> {
  if (location.kind === 'sqlite' && !existsSync(location.path))
    throw new CliError(`no store at ${describeStore(location)} (pass --data-dir or --store)`);
  const store = await openStore(location, { readonly: true });
  try {
    const r = await verifyAuditChain(store);
    return r.ok
      ? { ok: true, text: `audit chain OK: ${r.events} events, ${r.checkpoints} signed checkpoints` }
      : {
          ok: false,
          text: `audit chain BROKEN at event ${r.firstBad!.seq}: ${r.firstBad!.reason} (${r.events} events verified before it)`,
        };
  } finally {
    await store.close();
  }
}

export function formatEvent(e: AuditEvent): string {
  const time = new Date(e.ts).toISOString();
  const data = Object.entries(e.data)
    .filter(([k]) => !['fingerprint'].includes(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${String(e.seq).padStart(6)} ${time} ${e.type.padEnd(20)} ${e.outcome.padEnd(8)} ${e.actor}${e.jti ? ` jti=${e.jti}` : ''} ${data}`;
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
