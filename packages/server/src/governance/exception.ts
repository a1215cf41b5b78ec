/**
 * The exceptions registry (docs/governance.md): every credential that does not meet the rules is a
 * declared, owned, time-boxed exception (`config/exceptions/*.yaml`). The declaration is config; what
 * operators do to it at runtime (renew, retire) and the expiry alert already sent are the runtime state
 * the store keeps beside it.
 */

/** What an exception lets through. */
export type ExceptionCoverage =
  /** Workloads of `class` (only those listed in `workloads`, when given) may authenticate with a client secret. */
  | { kind: 'legacy_client_secret'; class: string; workloads?: string[] }
  /** `class` issues bearer tokens (no holder binding) where the rules ask for a binding. */
  | { kind: 'bearer_class'; class: string }
  /** A vendor's static key, held by the vendor-key proxy (its own issue); declared and alerted on here. */
  | { kind: 'vendor_key'; key: string }
  /** A device that cannot refresh holds tokens of `class` living up to `maxTtl` seconds. */
  | { kind: 'long_lived_token'; workload: string; class: string; maxTtl: number };

export type ExceptionKind = ExceptionCoverage['kind'];

/** Compensating controls: what limits the harm while the exception stands. */
export interface CompensatingControls {
  /** CIDR ranges the credential may be used from. */
  sourceNetworks?: string[];
  /** At most `requests` uses per `per` seconds. */
  rate?: { requests: number; per: number };
  /** The scopes the credential may carry, at most. */
  scopes?: string[];
}

/** An exception as declared in `config/exceptions/*.yaml`. */
export interface CredentialException {
  id: string;
  description?: string;
  covers: ExceptionCoverage;
  /** A person or team who answers for it (governance rules check it is a known one). */
  owner: string;
  justification: string;
  controls: CompensatingControls;
  /** Milliseconds since the epoch: the declared end. */
  expiresAt: number;
  /** Seconds between reviews. */
  reviewEvery: number;
  /** Seconds before the end at which the owner is alerted. */
  alertBefore: number;
}

/** What operators did to an exception at runtime, and what the server already said about it. */
export interface ExceptionRuntime {
  /**
   * The last `writ exceptions renew`: the new end, and the declared end it extended. A renewal holds
   * while the declaration keeps that end; a config that changes `expires` supersedes it.
   */
  renewal?: { expiresAt: number; declaredExpiresAt: number; by: string; at: number; note: string };
  /** `writ exceptions retire`: the exception ended for good. */
  retired?: { by: string; at: number; note: string };
  /** The expiry alert sent, for which end: one alert per end. */
  alerted?: { expiresAt: number; at: number };
}

/** An exception with its runtime state, as the store returns it. */
export interface ExceptionRecord extends CredentialException {
  runtime: ExceptionRuntime;
}

export type ExceptionStatus = 'active' | 'expiring' | 'expired' | 'retired';

/** When the exception ends: the renewal's end while the declaration is the one renewed, else the declared one. */
export function effectiveExpiry(e: ExceptionRecord): number {
  const r = e.runtime.renewal;
  return r !== undefined && r.declaredExpiresAt === e.expiresAt ? r.expiresAt : e.expiresAt;
}

/** The exception's status at `now` (ms): `expiring` from `alertBefore` ahead of its end. */
export function exceptionStatus(e: ExceptionRecord, now: number): ExceptionStatus {
  if (e.runtime.retired) return 'retired';
  const end = effectiveExpiry(e);
  if (now >= end) return 'expired';
  return now >= end - e.alertBefore * 1000 ? 'expiring' : 'active';
}

/**
 * How an exception that no longer holds ended, for every refusal it causes: retired or expired, when (ISO
 * time), and what the refusal's audit event records. Each caller says in its own words what was refused.
 */
export function exceptionEnding(e: ExceptionRecord): {
  retired: boolean;
  at: string;
  detail: { reason: 'exception_retired' | 'exception_expired'; exception: string; expired_at?: number };
} {
  const retired = e.runtime.retired;
  if (retired)
    return {
      retired: true,
      at: new Date(retired.at).toISOString(),
      detail: { reason: 'exception_retired', exception: e.id },
    };
  const end = effectiveExpiry(e);
  return {
    retired: false,
    at: new Date(end).toISOString(),
    detail: { reason: 'exception_expired', exception: e.id, expired_at: end },
  };
}

/** Of the registry's exceptions, those `covers` picks: the first that holds at `now`, else all of them (none holds). */
export function coveringException(
  all: readonly ExceptionRecord[],
  covers: (c: ExceptionCoverage) => boolean,
  now: number,
): { holding: ExceptionRecord | undefined; covering: ExceptionRecord[] } {
  const covering = all.filter((e) => covers(e.covers));
  return { holding: covering.find((e) => exceptionHolds(e, now)), covering };
}

/** Whether the exception lets a credential through at `now`. */
export function exceptionHolds(e: ExceptionRecord, now: number): boolean {
  const s = exceptionStatus(e, now);
  return s === 'active' || s === 'expiring';
}

/** The legacy-secret exceptions that cover workload `workload` in class `cls`. */
export function coversLegacySecret(e: CredentialException, cls: string, workload: string): boolean {
  return (
    e.covers.kind === 'legacy_client_secret' &&
    e.covers.class === cls &&
    (e.covers.workloads === undefined || e.covers.workloads.includes(workload))
  );
}

/** The exception as operators see it (admin API, CLI): times as ISO strings too, the status at `now`. */
export function exceptionView(e: ExceptionRecord, now: number): Record<string, unknown> {
  const end = effectiveExpiry(e);
  return {
    id: e.id,
    ...(e.description !== undefined ? { description: e.description } : {}),
    covers: e.covers,
    owner: e.owner,
    justification: e.justification,
    controls: e.controls,
    status: exceptionStatus(e, now),
    expires_at: end,
    expires: new Date(end).toISOString(),
    declared_expires: new Date(e.expiresAt).toISOString(),
    review_every: e.reviewEvery,
    alert_before: e.alertBefore,
    ...(e.runtime.renewal && e.runtime.renewal.declaredExpiresAt === e.expiresAt
      ? { renewed: e.runtime.renewal }
      : {}),
    ...(e.runtime.retired ? { retired: e.runtime.retired } : {}),
  };
}
