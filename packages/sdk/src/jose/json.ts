/** Parses JSON and refuses values nested deeper than `maxDepth` (bounded input, RFC 8725 §3.11 spirit). */
export function parseBoundedJson(text: string, maxDepth: number): unknown {
  // V8's JSON parser is iterative, so deep input cannot exhaust the stack; the walk below stops at the
  // first container past the bound, and costs little for the flat objects tokens and requests carry.
  const value: unknown = JSON.parse(text);
  if (!withinDepth(value, maxDepth)) throw new SyntaxError(`JSON nested deeper than ${maxDepth}`);
  return value;
}

function withinDepth(value: unknown, left: number): boolean {
  if (typeof value !== 'object' || value === null) return true;
  if (left === 0) return false;
  if (Array.isArray(value)) {
    for (const v of value) if (!withinDepth(v, left - 1)) return false;
    return true;
  }
  for (const k in value) if (!withinDepth((value as Record<string, unknown>)[k], left - 1)) return false;
  return true;
}

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Deterministic JSON: object keys sorted at every level, keys whose value is undefined left out (as
 * `JSON.stringify` leaves them out), any other value as `JSON.stringify` writes it and undefined in an
 * array as `null` (a hole of a sparse array as nothing, as before). Used for hashing audit events, so its output must never change: one
 * string is built in one pass, without the intermediate arrays of a map-and-join.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++)
      out += `${i > 0 ? ',' : ''}${i in value ? canonicalJson(value[i]) : ''}`;
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = record[k];
    if (v === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(k)}:${canonicalJson(v)}`;
    first = false;
  }
  return `${out}}`;
}
