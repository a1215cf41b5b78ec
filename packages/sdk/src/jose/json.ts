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

/** Deterministic JSON: object keys sorted at every level. Used for hashing audit events. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value as Record<string, unknown>)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}
