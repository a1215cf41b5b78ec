import type { AuditEvent } from '../audit/audit-event.js';
import type { AuditedIssuance } from './issuance-rules.js';

/** A break-glass finding as the proof lists it (see `ProofFinding`, check `breakglass`). */
export interface BreakGlassFinding {
  kind: 'violation' | 'gap';
  message: string;
  audit_seq: number[];
  jti?: string;
  cls?: string;
}

/** One grant as the chain tells it, from `breakglass.requested` to `breakglass.closed`. */
interface GrantRecord {
  id: string;
  cls: string;
  requested?: { seq: number; by: string; emergency: boolean };
  granted?: {
    seq: number;
    at: number;
    by: string;
    approvedBy: string | null;
    /** The persons of the two operators, when the event names them (grants since they were recorded). */
    requestedPerson: string | null;
    approvedPerson: string | null;
    emergency: boolean;
    endsAt: number;
    reviewDue: number | null;
  };
  ended?: { seq: number };
  closed?: { seq: number; at: number };
  /** Tokens issued under it that broke it: after its end, or living past it. */
  tokenBreaches: BreakGlassFinding[];
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Break-glass as the audit chain records it, checked: each grant approved by an operator other than the
 * one who asked, or taken on the emergency path; no elevated token issued after the grant's end or living
 * past it; and closed with a review note. A grant still without its review is open (a gap: the period is
 * not proven until it is closed); an emergency grant past its review deadline without one is a violation.
 */
export class BreakGlassLedger {
  readonly #grants = new Map<string, GrantRecord>();
  readonly #orphans: BreakGlassFinding[] = [];
  /** Elevated tokens weighed. */
  tokens = 0;

  #grant(id: string, cls: string): GrantRecord {
    const had = this.#grants.get(id);
    if (had) return had;
    const g: GrantRecord = { id, cls, tokenBreaches: [] };
    this.#grants.set(id, g);
    return g;
  }

  /** Takes the event if it is a break-glass event; true when it was. */
  read(e: AuditEvent): boolean {
    if (!e.type.startsWith('breakglass.')) return false;
    const d = e.data;
    const id = d['breakglass'];
    if (typeof id !== 'string') return true;
    const g = this.#grant(id, typeof d['cls'] === 'string' ? d['cls'] : '');
    const num = (v: unknown) => (typeof v === 'number' ? v : null);
    switch (e.type) {
      case 'breakglass.requested':
        g.requested = { seq: e.seq, by: e.actor, emergency: d['emergency'] === true };
        break;
      case 'breakglass.granted':
        g.granted = {
          seq: e.seq,
          at: e.ts,
          by: e.actor,
          approvedBy: typeof d['approved_by'] === 'string' ? d['approved_by'] : null,
          requestedPerson: typeof d['requested_person'] === 'string' ? d['requested_person'] : null,
          approvedPerson: typeof d['approved_person'] === 'string' ? d['approved_person'] : null,
          emergency: d['emergency'] === true,
          endsAt: num(d['ends_at']) ?? e.ts,
          reviewDue: num(d['review_due']),
        };
        break;
      case 'breakglass.ended':
        g.ended = { seq: e.seq };
        break;
      case 'breakglass.closed':
        g.closed = { seq: e.seq, at: e.ts };
        break;
    }
    return true;
  }

  /** An issuance the chain says was made under a grant (`data.breakglass`). */
  issued(t: AuditedIssuance & { breakglass: string }, at: number): void {
    this.tokens++;
    const g = this.#grants.get(t.breakglass);
    if (!g?.granted) {
      this.#orphans.push({
        kind: 'violation',
        message: `token ${t.jti} was issued under break-glass ${t.breakglass}, which the audit log never granted`,
        audit_seq: [t.seq],
        jti: t.jti,
        cls: t.cls,
      });
      return;
    }
    const { endsAt, seq } = g.granted;
    if (at > endsAt)
      g.tokenBreaches.push({
        kind: 'violation',
        message: `token ${t.jti} was issued under break-glass ${g.id} at ${iso(at)}, after the grant ended at ${iso(endsAt)}`,
        audit_seq: [t.seq, seq],
        jti: t.jti,
        cls: t.cls,
      });
    else if (t.exp * 1000 > endsAt)
      g.tokenBreaches.push({
        kind: 'violation',
        message: `token ${t.jti} issued under break-glass ${g.id} lives until ${iso(t.exp * 1000)}, past the grant's end at ${iso(endsAt)}`,
        audit_seq: [t.seq, seq],
        jti: t.jti,
        cls: t.cls,
      });
  }

  /**
   * The findings over the grants that matter to the period: granted in it, or still without a review
   * when it began. `checked` counts those grants.
   */
  findings(since: number, until: number): { checked: number; findings: BreakGlassFinding[] } {
    const out: BreakGlassFinding[] = [...this.#orphans];
    let checked = 0;
    for (const g of this.#grants.values()) {
      const granted = g.granted;
      if (!granted) continue;
      if (granted.at > until) continue;
      if (granted.at < since && g.closed !== undefined && g.closed.at < since) continue;
      checked++;
      const seqs = [granted.seq];
      if (!granted.emergency) {
        if (granted.approvedBy === null)
          out.push({
            kind: 'violation',
            message: `break-glass ${g.id} (class ${g.cls}) was granted without an approval and not on the emergency path`,
            audit_seq: seqs,
            cls: g.cls,
          });
        else if (g.requested && granted.approvedBy === g.requested.by)
          out.push({
            kind: 'violation',
            message: `break-glass ${g.id} (class ${g.cls}) was approved by ${granted.approvedBy}, who requested it (two-person rule)`,
            audit_seq: [g.requested.seq, granted.seq],
            cls: g.cls,
          });
        else if (granted.approvedPerson !== null && granted.approvedPerson === granted.requestedPerson)
          out.push({
            kind: 'violation',
            message: `break-glass ${g.id} (class ${g.cls}) was approved by ${granted.approvedBy}, an operator key of ${granted.approvedPerson}, who requested it (two-person rule)`,
            audit_seq: [...(g.requested ? [g.requested.seq] : []), granted.seq],
            cls: g.cls,
          });
      }
      if (!g.requested)
        out.push({
          kind: 'violation',
          message: `break-glass ${g.id} (class ${g.cls}) was granted with no audited request`,
          audit_seq: seqs,
          cls: g.cls,
        });
      out.push(...g.tokenBreaches);
      if (g.closed !== undefined && granted.reviewDue !== null && g.closed.at > granted.reviewDue)
        out.push({
          kind: 'violation',
          message: `break-glass ${g.id} (class ${g.cls}, emergency) was reviewed at ${iso(g.closed.at)}, after its review was due at ${iso(granted.reviewDue)}`,
          audit_seq: [granted.seq, g.closed.seq],
          cls: g.cls,
        });
      if (g.closed === undefined || g.closed.at > until) {
        const overdue = granted.reviewDue !== null && granted.reviewDue < until;
        out.push({
          kind: overdue ? 'violation' : 'gap',
          message: overdue
            ? `break-glass ${g.id} (class ${g.cls}, emergency) has no review: it was due at ${iso(granted.reviewDue!)}`
            : `break-glass ${g.id} (class ${g.cls}${granted.emergency ? ', emergency' : ''}) is open: not yet closed with a review note (writ breakglass close ${g.id})`,
          audit_seq: g.ended ? [granted.seq, g.ended.seq] : seqs,
          cls: g.cls,
        });
      }
    }
    return { checked, findings: out };
  }
}
