import type { TokenTrace } from '../../usage/trace.js';
import type { AdminClient } from '../client.js';

/** `writ audit trace JTI`: asks the admin API for one token's trace. */
export async function trace(client: AdminClient, jti: string): Promise<TokenTrace> {
  return client.get<TokenTrace>(`/audit/trace/${encodeURIComponent(jti)}`);
}

/** The trace as a person reads it: the token, then issued → used → revoked in time order. */
export function formatTrace(t: TokenTrace): string {
  const lines: string[] = [];
  const tok = t.token;
  lines.push(`token ${t.jti}`);
  if (tok)
    lines.push(
      `  sub=${tok.sub} aud=${tok.aud} cls=${tok.cls} scope="${tok.scope}"${tok.tid ? ` tid=${tok.tid}` : ''}`,
      `  iat=${iso(tok.iat * 1000)} exp=${iso(tok.exp * 1000)}`,
    );
  lines.push(
    `  uses: ${t.totals.allow} allowed, ${t.totals.deny} denied` +
      (t.revocations.length
        ? `; revoked (${t.revocations.map((r) => `${r.kind}#${r.seq}`).join(', ')})`
        : ''),
  );
  for (const e of t.timeline) lines.push(`${iso(e.at)}  ${e.what.padEnd(7)} ${e.detail}`);
  return lines.join('\n');
}

const iso = (ms: number) => new Date(ms).toISOString();
