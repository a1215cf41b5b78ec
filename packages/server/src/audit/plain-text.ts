import { hasControlCharacters, restrictText } from '../control-characters.js';
import type { AuditDraft } from './audit-event.js';

/**
 * The longest string an audit event stores. The inputs that feed events have their own, smaller bounds
 * (a refusal keeps 256 characters of what was sent); this one holds whatever a producer forgot.
 */
export const AUDIT_TEXT_MAX = 2048;
const MAX_DEPTH = 16;

/**
 * An event as the log stores it: every string (actor, subject, jti, and each key and string value of
 * `data`, at any depth) bounded to `AUDIT_TEXT_MAX` with its control characters escaped. Inputs a caller
 * types are refused before they get here (`refuseControlCharacters`); this is the floor under all of
 * them, so no event, whoever produced it, can carry a raw newline or terminal escape. Returns `e`
 * itself when nothing needs changing (the common case, on the issuance path).
 */
export function plainEvent<T extends Omit<AuditDraft, 'ts'>>(e: T): T {
  if (
    plainText(e.actor) &&
    (e.subject === undefined || plainText(e.subject)) &&
    (e.jti === undefined || plainText(e.jti)) &&
    plainValue(e.data, 0)
  )
    return e;
  return {
    ...e,
    actor: text(e.actor),
    subject: e.subject === undefined ? undefined : text(e.subject),
    jti: e.jti === undefined ? undefined : text(e.jti),
    data: value(e.data, 0) as Record<string, unknown>,
  };
}

const text = (s: string): string => restrictText(s, AUDIT_TEXT_MAX);
const plainText = (s: string): boolean => s.length <= AUDIT_TEXT_MAX && !hasControlCharacters(s);

/** Whether `v` needs no change: checked without allocating, as nearly every event does. */
function plainValue(v: unknown, depth: number): boolean {
  if (typeof v === 'string') return plainText(v);
  if (v === null || typeof v !== 'object') return true;
  if (depth >= MAX_DEPTH) return false;
  if (Array.isArray(v)) {
    for (const item of v) if (!plainValue(item, depth + 1)) return false;
    return true;
  }
  for (const k in v) {
    if (!Object.hasOwn(v, k)) continue;
    if (!plainText(k) || !plainValue((v as Record<string, unknown>)[k], depth + 1)) return false;
  }
  return true;
}

/** `v` with its strings restricted. */
function value(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return text(v);
  if (v === null || typeof v !== 'object') return v;
  if (depth >= MAX_DEPTH) return '…';
  if (Array.isArray(v)) return v.map((item) => value(item, depth + 1));
  return Object.fromEntries(Object.entries(v).map(([k, item]) => [text(k), value(item, depth + 1)]));
}
