import { escapeControlCharacters as esc } from '../control-characters.js';
import type { KeyManager } from '../keys/key-manager.js';
import type { GovernanceProof, ProofFinding } from './runtime-proof.js';

/** `typ` of the evidence pack: a JWS over the proof, signed by the server's token key (its published JWKS). */
export const EVIDENCE_TYP = 'writ-governance-evidence+jwt';

/** The signed evidence pack: the proof as JWS claims, with who signed it and when. */
export interface EvidencePack {
  /** Compact JWS (`typ` EVIDENCE_TYP, `kid` from `/.well-known/jwks.json`) over `{ iss, iat, ...proof }`. */
  jws: string;
  kid: string;
}

/** Signs the proof with the server key; a verifier checks it against the JWKS the server publishes. */
export function signEvidence(
  keys: Pick<KeyManager, 'signJwt'>,
  issuer: string,
  nowMs: number,
  proof: GovernanceProof,
): EvidencePack {
  return keys.signJwt(EVIDENCE_TYP, { iss: issuer, iat: Math.floor(nowMs / 1000), ...proof });
}

const iso = (ms: number) => new Date(ms).toISOString();

const RESULT_WORDS = {
  held: 'HELD: every check passed',
  violated: 'VIOLATED: see the violations below',
  unproven: 'UNPROVEN: no violation found, but the record cannot prove every check',
} as const;

/**
 * The proof as an auditor (SOC 2 CC6/CC7, ISO 27001 A.5.15–A.8.16) reads it: the period, the evidence it
 * rests on (chain head and checkpoint), each check with what it covered and its result, the classes, and
 * each finding with the events that show it. Every value from the store is escaped.
 */
export function formatProof(p: GovernanceProof, pack?: EvidencePack): string {
  const lines: string[] = [];
  lines.push(`governance verification: ${RESULT_WORDS[p.result]}`);
  lines.push(`period: ${iso(p.period.since)} to ${iso(p.period.until)}`);
  lines.push(
    `evidence: audit chain up to event ${p.checkpoint.seq} (hash ${p.checkpoint.hash.slice(0, 16)}…${p.checkpoint.signed ? ', signed checkpoint' : ', not signed: the log refused a checkpoint'}); ${p.chain.events} events and ${p.chain.checkpoints} checkpoints verified`,
  );
  lines.push(
    `period holds: ${p.counts.tokens_issued} tokens issued, ${p.counts.revocations} revocations, ${p.counts.accepted_uses} accepted uses reported`,
  );
  lines.push(
    `bounds: revocation propagation ${p.bounds.propagation_ms / 1000}s, expiry leeway ${p.bounds.expiry_leeway_ms / 1000}s`,
  );
  lines.push('', 'checks:');
  for (const c of p.checks)
    lines.push(
      `  ${c.result.toUpperCase().padEnd(9)} ${c.title} (${c.checked} checked, ${c.violations} violations${c.gaps ? `, ${c.gaps} unprovable` : ''})`,
    );
  if (p.classes.length > 0) {
    lines.push('', 'classes (tokens issued in the period):');
    for (const c of p.classes)
      lines.push(
        `  ${esc(c.name)}: ${c.issued} issued, ${c.violations} violations${c.gaps ? `, ${c.gaps} unprovable` : ''}${c.rules ? ` (max_ttl ${c.rules.max_ttl}s, binding ${esc(c.rules.binding)})` : ''}`,
      );
  }
  const shown = p.findings.length;
  const total = p.findings_total.violations + p.findings_total.gaps;
  if (total > 0) {
    lines.push(
      '',
      `findings (${p.findings_total.violations} violations, ${p.findings_total.gaps} unprovable${shown < total ? `; the first ${shown} listed` : ''}):`,
    );
    for (const f of p.findings) lines.push(...formatFinding(f));
  }
  if (pack)
    lines.push(
      '',
      `evidence pack: JWS signed by key ${esc(pack.kid)} (verify against /.well-known/jwks.json)`,
    );
  return lines.join('\n');
}

function formatFinding(f: ProofFinding): string[] {
  const out = [`  [${f.kind === 'violation' ? 'VIOLATION' : 'UNPROVEN'}] ${f.check}: ${esc(f.message)}`];
  const refs: string[] = [];
  if (f.audit_seq.length > 0) refs.push(`audit events ${f.audit_seq.join(', ')}`);
  if (f.jti !== undefined) refs.push(`jti ${esc(f.jti)}`);
  if (refs.length > 0) out.push(`      evidence: ${refs.join('; ')}`);
  for (const u of f.usage ?? [])
    out.push(
      `      use: ${esc(u.operation)} from ${esc(u.source)} reported by ${esc(u.reporter)}, ${u.count}× ${iso(u.first_seen)}..${iso(u.last_seen)}`,
    );
  return out;
}
