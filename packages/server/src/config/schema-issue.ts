import type { z } from 'zod';

/** One schema failure as a config error says it: the field (dotted path, '' for the document) and why. */
export interface SchemaProblem {
  field: string;
  reason: string;
}

/**
 * Says what is wrong with a document a strict schema refused, naming fields the way they are written
 * on disk. A misspelled field is two failures at once, an unknown field and a missing required one;
 * they are reported together, so `max_tll: 15m` in a class reads
 * `unknown field max_tll; required field max_ttl missing` rather than `max_ttl: Invalid input`.
 * Any other failure is the schema's first issue with its own message.
 */
export function describeSchemaIssue(error: z.ZodError, doc: unknown): SchemaProblem {
  const first = error.issues[0]!;
  const at = objectPathOf(first, doc);
  if (at === undefined) return { field: first.path.map(String).join('.'), reason: first.message };
  const unknown: string[] = [];
  const missing: string[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys' && samePath(issue.path, at)) unknown.push(...issue.keys);
    else if (isMissingKey(issue, doc) && samePath(issue.path.slice(0, -1), at))
      missing.push(String(issue.path.at(-1)));
  }
  const parts: string[] = [];
  if (unknown.length > 0) parts.push(`unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`);
  if (missing.length > 0)
    parts.push(`required field${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing`);
  return { field: at.map(String).join('.'), reason: parts.join('; ') };
}

type Path = readonly PropertyKey[];

/** The object an unknown-field or missing-field issue is about, or undefined for any other issue. */
function objectPathOf(issue: z.core.$ZodIssue, doc: unknown): Path | undefined {
  if (issue.code === 'unrecognized_keys') return issue.path;
  if (isMissingKey(issue, doc)) return issue.path.slice(0, -1);
  return undefined;
}

/** An issue about a key the document's object does not have at all (not one with a wrong value). */
function isMissingKey(issue: z.core.$ZodIssue, doc: unknown): boolean {
  const key = issue.path.at(-1);
  if (typeof key !== 'string') return false;
  const parent = valueAt(doc, issue.path.slice(0, -1));
  return (
    typeof parent === 'object' && parent !== null && !Array.isArray(parent) && !Object.hasOwn(parent, key)
  );
}

function valueAt(doc: unknown, path: Path): unknown {
  let v = doc;
  for (const k of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

const samePath = (a: Path, b: Path): boolean => a.length === b.length && a.every((k, i) => k === b[i]);
