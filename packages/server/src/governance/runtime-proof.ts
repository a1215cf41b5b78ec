import type { Revocation, RevocationKind } from '@writ/sdk/wire';
import type { AuditEvent } from '../audit/audit-event.js';
import type { AuditHead } from '../audit/chain.js';
import { type Bad, checkSignedPoints, walkChain } from '../audit/verify.js';
import { revokedBy } from '../revocation/revocation-set.js';
import type { Store } from '../store/store.js';
import { type UsageAggregate, usageKey } from '../usage/usage-aggregate.js';
import { BreakGlassLedger } from './break-glass-proof.js';
import type { ClassRules, ExceptionTerms } from './class-rules.js';
import { type AuditedIssuance, auditedIssuance, issuanceBreaches } from './issuance-rules.js';

/**
 * `writ govern verify`: a proof, from the audit chain and the verifiers' usage reports, that the rules
 * held at runtime over a period. The chain is verified first (every event, every signed checkpoint, up to
 * a fixed head); the other checks read only events whose own hash recomputes.
 */

/** The checks, in the order the report lists them. */
export const PROOF_CHECKS = {
  audit_chain: 'the audit chain is intact: every event linked and unedited, every checkpoint signed',
  issuance:
    'every token issued kept the rules its class had at issuance: lifetime, audience, binding, scopes',
  token_records: 'every stored token record matches its audited issuance',
  exceptions: 'every use of an exception was audited with its id, and none came after the exception ended',
  breakglass:
    'every break-glass was approved by a second operator (or took the emergency path), its tokens ended with it, and it was closed with a review',
  usage_provenance: 'every accepted use reported is of a token whose issuance is audited',
  revocation: 'no revoked token was accepted after the propagation bound',
  expiry: 'no token was accepted after it expired',
} as const;
export type ProofCheck = keyof typeof PROOF_CHECKS;

/** A use as the report names it: the usage aggregate's key, when it was last seen and how often. */
export interface UsageEvidence {
  jti: string;
  operation: string;
  source: string;
  decision: string;
  reason: string;
  reporter: string;
  count: number;
  first_seen: number;
  last_seen: number;
}

/** One finding: the check, what happened, and the events that show it. */
export interface ProofFinding {
  check: ProofCheck;
  /** A violation (the rule was broken), or a gap (the record cannot prove either way). */
  kind: 'violation' | 'gap';
  message: string;
  /** The audit events that show it (sequence numbers). */
  audit_seq: number[];
  jti?: string;
  cls?: string;
  usage?: UsageEvidence[];
}

export interface CheckResult {
  id: ProofCheck;
  title: string;
  /** How many things the check looked at (events, tokens, records, uses). */
  checked: number;
  violations: number;
  gaps: number;
  result: ProofResult;
}

export type ProofResult = 'held' | 'violated' | 'unproven';

export interface ClassSummary {
  name: string;
  issued: number;
  violations: number;
  gaps: number;
  /** The rules in force at the end of the period, as the chain recorded them (absent if it did not). */
  rules?: ClassRules;
}

export interface GovernanceProof {
  /** Milliseconds since the epoch. */
  period: { since: number; until: number };
  /** The head of the chain the proof covers (a signed checkpoint when the log could sign one). */
  checkpoint: { seq: number; hash: string; signed: boolean };
  bounds: { propagation_ms: number; expiry_leeway_ms: number };
  chain: { events: number; checkpoints: number; breaks: number };
  /** What the period holds: tokens issued, revocations made, accepted uses reported (and their kinds). */
  counts: { tokens_issued: number; revocations: number; accepted_uses: number; use_kinds: number };
  classes: ClassSummary[];
  checks: CheckResult[];
  /** At most `maxFindings`, violations first; `findings_total` counts them all. */
  findings: ProofFinding[];
  findings_total: { violations: number; gaps: number };
  result: ProofResult;
}

export interface ProofOptions {
  /** Milliseconds. */
  since: number;
  until: number;
  /** The chain head to verify up to (fixed before the walk). */
  head: AuditHead | undefined;
  /** Whether `head` is a checkpoint the server just signed. */
  signed: boolean;
  /**
   * Why the audit log already refuses appends, if it does (`AuditLog.broken`): the store lost events this
   * node wrote or verified, which a walk of what is left cannot see when the tail was cut with its
   * checkpoints.
   */
  knownBreak?: string | undefined;
  /** Milliseconds after a revocation within which verifiers may still accept the token. */
  propagationMs: number;
  /** Milliseconds of clock leeway verifiers allow on `exp`. */
  expiryLeewayMs: number;
  /** Seconds: the longest a token can live (`tokens.max_lifetime`): how far back revocations matter. */
  maxLifetime: number;
  /** Most findings listed (each kind counted in full). */
  maxFindings?: number;
  /** Most allowed usage aggregates read (bounds memory); beyond, the proof refuses with a clear error. */
  maxUses?: number;
  /** Hears progress: the phase and how many items it has read. */
  onProgress?: (p: { phase: 'usage' | 'chain' | 'checks'; done: number }) => void;
}

/** Thrown when the period holds more than the proof reads in one run. */
export class ProofTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProofTooLargeError';
  }
}

const USAGE_PAGE = 2000;
const TOKEN_BATCH = 500;

type ProofStore = Pick<
  Store,
  'scanAudit' | 'auditHead' | 'listCheckpoints' | 'listKeys' | 'scanUsage' | 'getTokens'
>;

/** Runs every check over the period and returns the report (unsigned; see `evidence.ts`). */
export async function proveGovernance(store: ProofStore, o: ProofOptions): Promise<GovernanceProof> {
  const maxFindings = o.maxFindings ?? 1000;
  const findings: ProofFinding[] = [];
  const totals = { violations: 0, gaps: 0 };
  const perCheck = new Map<ProofCheck, { checked: number; violations: number; gaps: number }>(
    (Object.keys(PROOF_CHECKS) as ProofCheck[]).map((id) => [id, { checked: 0, violations: 0, gaps: 0 }]),
  );
  const classes = new Map<string, ClassSummary>();
  const classOf = (name: string) => {
    const c = classes.get(name) ?? { name, issued: 0, violations: 0, gaps: 0 };
    classes.set(name, c);
    return c;
  };
  const find = (f: ProofFinding) => {
    const counts = perCheck.get(f.check)!;
    if (f.kind === 'violation') {
      counts.violations++;
      totals.violations++;
    } else {
      counts.gaps++;
      totals.gaps++;
    }
    if (f.cls !== undefined) {
      const c = classOf(f.cls);
      if (f.kind === 'violation') c.violations++;
      else c.gaps++;
    }
    if (findings.length < maxFindings) findings.push(f);
  };
  const checked = (id: ProofCheck, n = 1) => {
    perCheck.get(id)!.checked += n;
  };

  // 1. The accepted uses in the period: which tokens the chain must say were issued, and when.
  const maxUses = o.maxUses ?? 1_000_000;
  const uses = new Map<string, UsageAggregate[]>();
  let usesRead = 0;
  let acceptedUses = 0;
  for (let after: ReturnType<typeof usageKey> | undefined; ; ) {
    const page = await store.scanUsage({
      lastSeenFrom: o.since,
      decision: 'allow',
      limit: USAGE_PAGE,
      ...(after ? { after } : {}),
    });
    for (const u of page) {
      if (u.firstSeen > o.until) continue;
      listAt(uses, u.jti).push(u);
      acceptedUses += u.count;
      if (++usesRead > maxUses)
        throw new ProofTooLargeError(
          `more than ${maxUses} kinds of accepted use in the period: verify a shorter period (--since)`,
        );
    }
    o.onProgress?.({ phase: 'usage', done: usesRead });
    if (page.length < USAGE_PAGE) break;
    after = usageKey(page.at(-1)!);
  }

  // 2. The chain, from the genesis to the head: every break named; the events that verify are read.
  const rulesInForce = new Map<string, ClassRules>();
  /** Classes a `config.applied` changed without recording their rules (events older than the record). */
  const unrecorded = new Set<string>();
  let rulesRecorded = false;
  const exceptions = new ExceptionHistory();
  /** When each open task's `task.opened` was written (ms): where its renewal lifetime starts. */
  const tasksOpened = new Map<string, number>();
  const breakGlass = new BreakGlassLedger();
  const issuedTokens = new Map<string, AuditedIssuance>();
  const revocations: Array<{ revocation: Revocation; auditSeq: number }> = [];
  const hashes = new Map<number, string>();
  const checkpoints = (await store.listCheckpoints()).filter((c) => c.seq <= (o.head?.seq ?? 0));
  const wanted = new Set(checkpoints.map((c) => c.seq));
  const breaks: Bad[] = [];
  let events = 0;
  let pendingRows: AuditedIssuance[] = [];
  /** Compares the stored records of the tokens issued on the page just walked with their events. */
  const compareRows = async () => {
    const page = pendingRows;
    pendingRows = [];
    for (let i = 0; i < page.length; i += TOKEN_BATCH) {
      const batch = page.slice(i, i + TOKEN_BATCH);
      const rows = new Map((await store.getTokens(batch.map((t) => t.jti))).map((r) => [r.jti, r]));
      for (const t of batch) {
        const row = rows.get(t.jti);
        // Records are pruned a day after their token expires: nothing left to compare.
        if (!row) continue;
        checked('token_records');
        const differs = (
          [
            ['sub', row.sub, t.sub],
            ['client_id', row.clientId, t.clientId],
            ['cls', row.cls, t.cls],
            ['aud', row.aud, t.aud],
            ['scope', row.scope, t.scope],
            ['iat', row.iat, t.iat],
            ['exp', row.exp, t.exp],
          ] as const
        ).filter(([, stored, audited]) => stored !== audited);
        if (differs.length > 0)
          find({
            check: 'token_records',
            kind: 'violation',
            message: `the stored record of token ${t.jti} differs from its audited issuance (event ${t.seq}): ${differs
              .map(
                ([f, stored, audited]) =>
                  `${f} ${JSON.stringify(stored)} stored, ${JSON.stringify(audited)} audited`,
              )
              .join('; ')}`,
            audit_seq: [t.seq],
            jti: t.jti,
            cls: t.cls,
          });
      }
    }
  };
  const revocationHorizon = o.since - o.maxLifetime * 1000;
  let revocationsInPeriod = 0;
  let issuedInPeriod = 0;
  const onEvent = (e: AuditEvent) => {
    events++;
    if (wanted.has(e.seq)) hashes.set(e.seq, e.hash);
    if (exceptions.read(e) || breakGlass.read(e)) return;
    if (e.type === 'task.opened' || e.type === 'task.closed') {
      const tid = e.data['tid'];
      if (typeof tid !== 'string') return;
      // Open tasks only: a closed task issues nothing more, so the map holds what is open at a time.
      if (e.type === 'task.opened') tasksOpened.set(tid, e.ts);
      else tasksOpened.delete(tid);
      return;
    }
    if (e.type === 'config.applied') {
      const rules = e.data['class_rules'];
      if (rules !== null && typeof rules === 'object' && !Array.isArray(rules)) {
        rulesRecorded = true;
        rulesInForce.clear();
        unrecorded.clear();
        for (const [name, r] of Object.entries(rules as Record<string, ClassRules>))
          rulesInForce.set(name, r);
      } else {
        const changes = Array.isArray(e.data['changes']) ? (e.data['changes'] as unknown[]) : [];
        for (const c of changes) {
          const change = c as { kind?: unknown; name?: unknown };
          if (change.kind === 'class' && typeof change.name === 'string') {
            rulesInForce.delete(change.name);
            unrecorded.add(change.name);
          }
        }
      }
      return;
    }
    if (e.type === 'revocation.created' && e.outcome === 'success') {
      if (e.ts < revocationHorizon) return;
      if (e.ts >= o.since && e.ts <= o.until) revocationsInPeriod++;
      const d = e.data;
      const kind = d['kind'] as RevocationKind;
      if (typeof d['value'] !== 'string' || typeof d['seq'] !== 'number') return;
      revocations.push({
        auditSeq: e.seq,
        revocation: {
          seq: d['seq'],
          kind,
          value: d['value'],
          issued_before: typeof d['issued_before'] === 'number' ? d['issued_before'] : null,
          created_at: e.ts,
          reason: typeof d['reason'] === 'string' ? d['reason'] : '',
          expires_at: Number.POSITIVE_INFINITY,
        },
      });
      return;
    }
    const t = auditedIssuance(e);
    if (!t) return;
    if (uses.has(t.jti)) issuedTokens.set(t.jti, t);
    if (t.breakglass !== undefined) breakGlass.issued({ ...t, breakglass: t.breakglass }, e.ts);
    if (e.ts < o.since || e.ts > o.until) return;
    checked('issuance');
    issuedInPeriod++;
    classOf(t.cls).issued++;
    const rules = rulesInForce.get(t.cls);
    if (!rules) {
      const known = rulesRecorded && !unrecorded.has(t.cls);
      find({
        check: 'issuance',
        kind: known ? 'violation' : 'gap',
        message: known
          ? `token ${t.jti} was issued in class ${t.cls}, which the configuration in force at issuance does not define`
          : `the rules of class ${t.cls} at the issuance of token ${t.jti} are not in the audit log (applied before Writ recorded class rules): apply the configuration again to record them`,
        audit_seq: [t.seq],
        jti: t.jti,
        cls: t.cls,
      });
    } else
      for (const b of issuanceBreaches(t, rules, t.tid === undefined ? undefined : tasksOpened.get(t.tid)))
        find({
          check: 'issuance',
          kind: 'violation',
          message: `token ${t.jti} (class ${t.cls}): ${b.message}`,
          audit_seq: [t.seq],
          jti: t.jti,
          cls: t.cls,
        });
    pendingRows.push(t);
    checkException(t, e.ts);
    if (t.bearerException !== undefined) checkHeld(t, t.bearerException, e.ts);
  };
  const checkException = (t: AuditedIssuance, at: number) => {
    const secret = t.authMethod.startsWith('client_secret');
    if (t.exception === undefined) {
      if (!secret) return;
      checked('exceptions');
      find({
        check: 'exceptions',
        kind: t.legacySecretClass !== undefined ? 'gap' : 'violation',
        message:
          t.legacySecretClass !== undefined
            ? `token ${t.jti} was issued on a client secret under the legacy exception of class ${t.legacySecretClass}, recorded before exceptions had ids: which exception and its end are not in the audit log`
            : `token ${t.jti} was issued on a client secret (${t.authMethod}) but no exception is audited with it`,
        audit_seq: [t.seq],
        jti: t.jti,
        cls: t.cls,
      });
      return;
    }
    checkHeld(t, t.exception, at);
  };
  /** Exception `id`, audited with issuance `t` at `at`: declared then, and not yet ended. */
  const checkHeld = (t: AuditedIssuance, id: string, at: number) => {
    checked('exceptions');
    const held = exceptions.at(id);
    if (held === 'unrecorded' || held === undefined) {
      const known = held === undefined && exceptions.recorded;
      find({
        check: 'exceptions',
        kind: known ? 'violation' : 'gap',
        message: known
          ? `token ${t.jti} was issued under exception ${id}, which the configuration in force at issuance does not declare`
          : `the terms of exception ${id} at the issuance of token ${t.jti} are not in the audit log (declared before Writ recorded them): apply the configuration again to record them`,
        audit_seq: [t.seq],
        jti: t.jti,
        cls: t.cls,
      });
      return;
    }
    if (at >= held.end)
      find({
        check: 'exceptions',
        kind: 'violation',
        message: `token ${t.jti} was issued under exception ${id} at ${iso(at)}, after the exception ${held.retired ? 'was retired' : 'expired'} at ${iso(held.end)}`,
        audit_seq: [t.seq, held.seq],
        jti: t.jti,
        cls: t.cls,
      });
  };
  const walked = await walkChain(store, undefined, onEvent, {
    until: o.head?.seq ?? 0,
    onBad: (bad) => {
      breaks.push(bad);
      return 'continue';
    },
    onPage: async () => {
      await compareRows();
      o.onProgress?.({ phase: 'chain', done: events });
    },
  });
  checked('audit_chain', events);
  const reached = walked.head?.seq ?? 0;
  if (o.head && reached < o.head.seq)
    breaks.push({
      seq: reached + 1,
      reason: `log truncated: the head ${o.head.seq} was read before the walk, the store now ends at event ${reached}`,
    });
  else if (o.head && walked.head?.hash !== o.head.hash && breaks.length === 0)
    breaks.push({ seq: o.head.seq, reason: 'the head event changed during the proof' });
  if (o.knownBreak !== undefined) {
    const cut = /events (\d+)\.\.(\d+) deleted/.exec(o.knownBreak);
    breaks.push(
      cut
        ? {
            seq: Number(cut[1]),
            reason: `event ${cut[1]}${cut[1] === cut[2] ? '' : `..${cut[2]}`} missing at the end of the log (${o.knownBreak})`,
          }
        : { seq: reached + 1, reason: o.knownBreak },
    );
  }
  const signedBad = breaks.length === 0 ? await checkSignedPoints(store, checkpoints, hashes) : undefined;
  if (signedBad) breaks.push(signedBad);
  for (const b of breaks)
    find({
      check: 'audit_chain',
      kind: 'violation',
      message: `audit chain broken at event ${b.seq}: ${b.reason}`,
      audit_seq: missingRange(b),
    });

  const granted = breakGlass.findings(o.since, o.until);
  checked('breakglass', granted.checked);
  for (const f of granted.findings) find({ check: 'breakglass', ...f });

  // 3. Each accepted use: its token audited, not after its expiry, not after a revocation's bound.
  const byValue = new Map<string, Array<{ revocation: Revocation; auditSeq: number }>>();
  for (const r of revocations) {
    const key = `${r.revocation.kind}\u0000${r.revocation.value}`;
    listAt(byValue, key).push(r);
  }
  checked('revocation', 0);
  let done = 0;
  for (const [jti, list] of uses) {
    const t = issuedTokens.get(jti);
    checked('usage_provenance', list.length);
    if (!t) {
      find({
        check: 'usage_provenance',
        kind: 'violation',
        message: `token ${jti} was accepted ${count(list)} but the audit log records no issuance of it`,
        audit_seq: [],
        jti,
        usage: list.map(usageEvidence),
      });
      continue;
    }
    checked('expiry', list.length);
    const late = list.filter((u) => u.lastSeen > t.exp * 1000 + o.expiryLeewayMs);
    if (late.length > 0)
      find({
        check: 'expiry',
        kind: 'violation',
        message: `token ${jti} (class ${t.cls}) expired at ${iso(t.exp * 1000)} but was accepted after it, last at ${iso(Math.max(...late.map((u) => u.lastSeen)))} (${expiryWord(o.expiryLeewayMs)})`,
        audit_seq: [t.seq],
        jti,
        cls: t.cls,
        usage: late.map(usageEvidence),
      });
    const token = {
      jti: t.jti,
      sub: t.sub,
      client_id: t.clientId,
      cls: t.cls,
      iat: t.iat,
      kid: t.kid,
      ...(t.tid !== undefined ? { tid: t.tid } : {}),
      ...(t.ajti !== undefined ? { ajti: t.ajti } : {}),
    };
    const candidates = candidateValues(token).flatMap(
      ([kind, value]) => byValue.get(`${kind}\u0000${value}`) ?? [],
    );
    const covering = candidates
      .filter((r) => revokedBy(r.revocation, token))
      .sort((a, b) => a.revocation.created_at - b.revocation.created_at);
    checked('revocation', covering.length > 0 ? list.length : 0);
    const first = covering[0];
    if (first) {
      const deadline = first.revocation.created_at + o.propagationMs;
      const after = list.filter((u) => u.lastSeen > deadline);
      if (after.length > 0)
        find({
          check: 'revocation',
          kind: 'violation',
          message: `token ${jti} (class ${t.cls}) was revoked at ${iso(first.revocation.created_at)} (revocation ${first.revocation.seq}, ${first.revocation.kind}) but accepted after the ${o.propagationMs / 1000}s propagation bound, last at ${iso(Math.max(...after.map((u) => u.lastSeen)))}`,
          audit_seq: [t.seq, first.auditSeq],
          jti,
          cls: t.cls,
          usage: after.map(usageEvidence),
        });
    }
    if (++done % 10_000 === 0) o.onProgress?.({ phase: 'checks', done });
  }

  const checks: CheckResult[] = (Object.keys(PROOF_CHECKS) as ProofCheck[]).map((id) => {
    const c = perCheck.get(id)!;
    return { id, title: PROOF_CHECKS[id], ...c, result: verdict(c.violations, c.gaps) };
  });
  // Violations before gaps in the listing, each in the order found.
  findings.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'violation' ? -1 : 1));
  const head = o.head ?? { seq: 0, hash: '0'.repeat(64) };
  return {
    period: { since: o.since, until: o.until },
    checkpoint: { seq: head.seq, hash: head.hash, signed: o.signed },
    bounds: { propagation_ms: o.propagationMs, expiry_leeway_ms: o.expiryLeewayMs },
    chain: { events, checkpoints: checkpoints.length, breaks: breaks.length },
    counts: {
      tokens_issued: issuedInPeriod,
      revocations: revocationsInPeriod,
      accepted_uses: acceptedUses,
      use_kinds: usesRead,
    },
    classes: [...classes.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((c) => {
        const rules = rulesInForce.get(c.name);
        return rules ? { ...c, rules } : c;
      }),
    checks,
    findings,
    findings_total: totals,
    result: verdict(totals.violations, totals.gaps),
  };
}

/** An exception as the chain last said: its declared end, a renewal, a retirement, and the events that said so. */
interface ExceptionState {
  declared: number;
  declaredSeq: number;
  renewal?: { declared: number; end: number; seq: number };
  retired?: { at: number; seq: number };
}

/**
 * The exceptions in force as the chain goes: declared ends from `config.applied` (`exception_terms`),
 * renewals (`exception.renewed`, `expires_at`) and retirements (`exception.retired`). A renewal holds
 * while the declaration keeps the end it extended, as the registry decides (`effectiveExpiry`).
 */
class ExceptionHistory {
  #byId = new Map<string, ExceptionState>();
  /** Exceptions an apply changed without recording their terms (events older than the record). */
  #unrecorded = new Set<string>();
  recorded = false;

  /** Takes the event if it is about exceptions; true when it was. */
  read(e: AuditEvent): boolean {
    const d = e.data;
    if (e.type === 'config.applied') {
      const terms = d['exception_terms'];
      if (terms !== null && typeof terms === 'object' && !Array.isArray(terms)) {
        this.recorded = true;
        const next = new Map<string, ExceptionState>();
        for (const [id, t] of Object.entries(terms as Record<string, ExceptionTerms>)) {
          const prev = this.#byId.get(id);
          next.set(id, {
            ...prev,
            ...(prev?.declared !== t.expires_at ? { declaredSeq: e.seq } : { declaredSeq: prev.declaredSeq }),
            declared: t.expires_at,
          });
          this.#unrecorded.delete(id);
        }
        this.#byId = next;
      } else
        for (const c of Array.isArray(d['changes'])
          ? (d['changes'] as Array<{ kind?: unknown; name?: unknown }>)
          : [])
          if (c.kind === 'exception' && typeof c.name === 'string') {
            this.#byId.delete(c.name);
            this.#unrecorded.add(c.name);
          }
      // Class rules in the same event are read by the caller.
      return false;
    }
    if (e.type !== 'exception.renewed' && e.type !== 'exception.retired') return false;
    const id = d['exception'];
    const st = typeof id === 'string' ? this.#byId.get(id) : undefined;
    if (!st) return true;
    if (e.type === 'exception.retired') st.retired = { at: e.ts, seq: e.seq };
    else if (typeof d['expires_at'] === 'number')
      st.renewal = { declared: st.declared, end: d['expires_at'], seq: e.seq };
    return true;
  }

  /** The exception's end (ms) and the event that set it; `unrecorded` when the chain cannot say; undefined when not declared. */
  at(id: string): { end: number; seq: number; retired: boolean } | 'unrecorded' | undefined {
    if (this.#unrecorded.has(id)) return 'unrecorded';
    const st = this.#byId.get(id);
    if (!st) return this.recorded ? undefined : 'unrecorded';
    const renewed = st.renewal !== undefined && st.renewal.declared === st.declared;
    const end = renewed ? st.renewal!.end : st.declared;
    const seq = renewed ? st.renewal!.seq : st.declaredSeq;
    if (st.retired && st.retired.at < end) return { end: st.retired.at, seq: st.retired.seq, retired: true };
    return { end, seq, retired: false };
  }
}

/** The list kept at `key`, made empty on first use. */
function listAt<K, V>(m: Map<K, V[]>, key: K): V[] {
  const had = m.get(key);
  if (had) return had;
  const list: V[] = [];
  m.set(key, list);
  return list;
}

const verdict = (violations: number, gaps: number): ProofResult =>
  violations > 0 ? 'violated' : gaps > 0 ? 'unproven' : 'held';

/** The (kind, value) pairs a revocation of this token could name. */
function candidateValues(t: {
  jti: string;
  ajti?: readonly string[];
  sub: string;
  client_id: string;
  cls: string;
  kid: string;
  tid?: string;
}): Array<[RevocationKind, string]> {
  return [
    ['jti', t.jti],
    ...(t.ajti ?? []).map((j): [RevocationKind, string] => ['jti', j]),
    ['sub', t.sub],
    ['client_id', t.client_id],
    ['cls', t.cls],
    ['kid', t.kid],
    ...(t.tid !== undefined ? [['tid', t.tid] as [RevocationKind, string]] : []),
  ];
}

/** The events a break names: the missing range where events were deleted, else the bad event. */
function missingRange(b: Bad): number[] {
  const m = /^event (\d+)(?:\.\.(\d+))? missing (?:before event (\d+)$|at the end)/.exec(b.reason);
  if (!m) return [b.seq];
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  const out: number[] = [];
  for (let s = from; s <= to && out.length < 100; s++) out.push(s);
  return m[3] === undefined ? out : [...out, Number(m[3])];
}

function usageEvidence(u: UsageAggregate): UsageEvidence {
  return {
    jti: u.jti,
    operation: u.operation,
    source: u.source,
    decision: u.decision,
    reason: u.reason,
    reporter: u.reporter,
    count: u.count,
    first_seen: u.firstSeen,
    last_seen: u.lastSeen,
  };
}

const count = (list: readonly UsageAggregate[]) => {
  const n = list.reduce((s, u) => s + u.count, 0);
  return n === 1 ? 'once' : `${n} times`;
};

const iso = (ms: number) => new Date(ms).toISOString();

const expiryWord = (leewayMs: number) => `beyond the verifiers' ${leewayMs / 1000}s leeway`;
