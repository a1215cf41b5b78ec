import { escapeControlCharacters as esc } from '../control-characters.js';
import type { ScanFinding, ScanStats } from './scan.js';

/** How `writ scan` prints what it found: a table for people, JSON for scripts, SARIF 2.1.0 for code hosts. */
export type ScanFormat = 'table' | 'json' | 'sarif';
export const SCAN_FORMATS: readonly ScanFormat[] = ['table', 'json', 'sarif'];

const where = (f: ScanFinding) =>
  `${f.commit ? `${f.commit.slice(0, 12)}:` : ''}${f.path}:${f.line}:${f.column}`;

/** What a finding is, in a few words: the same text the table, JSON `message` and SARIF use. */
export function describe(f: ScanFinding): string {
  if (f.type === 'secret') {
    return `${f.kind} (${f.rule})${f.ours ? `: ${f.ours}` : ''}`;
  }
  switch (f.status) {
    case 'confirmed':
      return `Writ token signed by this issuer, ${f.state}${f.action === 'revoked' ? ', revoked now' : f.action === 'recorded' ? ', recorded' : ''} (jti ${f.jti ?? '?'}${f.sub ? `, ${f.sub}` : ''})`;
    case 'candidate':
      return `looks like a Writ token, not signed by this issuer's keys (${f.reason ?? 'unverified'})`;
    default:
      return `truncated Writ token, cannot be verified${f.kidOurs ? ' (its kid names one of our keys)' : ''}${f.jti ? ` (jti ${f.jti}?)` : ''}`;
  }
}

export function formatScan(
  findings: readonly ScanFinding[],
  stats: ScanStats,
  format: ScanFormat,
  tool: { version: string },
): string {
  if (format === 'json') {
    return JSON.stringify(
      { findings: findings.map((f) => ({ ...f, message: describe(f) })), stats },
      null,
      2,
    );
  }
  if (format === 'sarif') return JSON.stringify(sarif(findings, tool), null, 2);
  // Each cell escaped: a path or a preview cannot add a line or move the cursor.
  const rows = findings.map((f) =>
    [
      f.type === 'secret' ? (f.ours ? 'secret (ours)' : 'secret') : `writ ${f.status}`,
      where(f),
      f.type === 'secret' ? f.preview : (f.state ?? '-'),
      describe(f),
    ].map(esc),
  );
  const head = ['FINDING', 'WHERE', 'STATE', 'WHAT'];
  const widths = head.map((h, i) => Math.min(60, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const summary = `${findings.length} finding(s) in ${stats.inputs} input(s), ${stats.bytes} bytes; skipped ${stats.skipped.tooLarge} too large, ${stats.skipped.binary} binary, ${stats.skipped.unreadable} unreadable`;
  return [...(rows.length > 0 ? [line(head), ...rows.map(line)] : ['no findings']), '', summary].join('\n');
}

interface SarifRule {
  id: string;
  name: string;
  shortDescription: { text: string };
  defaultConfiguration: { level: 'error' | 'warning' | 'note' };
}

const ruleOf = (f: ScanFinding): string =>
  f.type === 'secret' ? `secret/${f.rule}` : `writ-token/${f.status ?? 'candidate'}`;

function levelOf(f: ScanFinding): 'error' | 'warning' | 'note' {
  if (f.type === 'secret') return f.ours ? 'error' : 'warning';
  if (f.status === 'confirmed') return f.state === 'live' || f.state === 'unknown' ? 'error' : 'warning';
  return f.status === 'truncated' ? 'note' : 'warning';
}

/** SARIF 2.1.0 (OASIS): one run, one rule per finding kind, one result per finding. */
function sarif(findings: readonly ScanFinding[], tool: { version: string }) {
  const rules: SarifRule[] = [];
  const index = new Map<string, number>();
  const ruleIndex = (f: ScanFinding) => {
    const id = ruleOf(f);
    let i = index.get(id);
    if (i === undefined) {
      i = rules.length;
      index.set(id, i);
      rules.push({
        id,
        name: id.replace(/[^A-Za-z0-9]+/g, '-'),
        shortDescription: {
          text:
            f.type === 'secret'
              ? `A secret found by ${f.rule}`
              : f.status === 'confirmed'
                ? 'A Writ access token signed by this issuer'
                : f.status === 'truncated'
                  ? 'A truncated Writ access token'
                  : 'A token shaped like a Writ access token, not signed by this issuer',
        },
        defaultConfiguration: { level: levelOf(f) },
      });
    }
    return i;
  };
  const results = findings.map((f) => ({
    ruleId: ruleOf(f),
    ruleIndex: ruleIndex(f),
    level: levelOf(f),
    message: { text: describe(f) },
    locations: [
      {
        physicalLocation: {
          artifactLocation: { uri: encodeURI(f.path.split('\\').join('/')) },
          region: { startLine: Math.max(1, f.line), startColumn: Math.max(1, f.column) },
        },
      },
    ],
    partialFingerprints: { 'writ/sha256': f.fingerprint },
    properties: {
      ...(f.commit !== undefined ? { commit: f.commit } : {}),
      ...(f.state !== undefined ? { state: f.state } : {}),
      ...(f.jti !== undefined ? { jti: f.jti } : {}),
      ...(f.ours !== undefined ? { ours: f.ours } : {}),
    },
  }));
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'writ scan',
            version: tool.version,
            rules,
          },
        },
        results,
      },
    ],
  };
}
