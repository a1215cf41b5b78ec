import { LineCounter, parseAllDocuments } from 'yaml';
import type { Violation } from './check.js';

/**
 * Adds the line of each violation's field to it, reading each file once: the field's own line, or the
 * line of the nearest enclosing object that is there (a missing `renewal.max_lifetime` points at
 * `renewal`, or at the document). `read` returns a file's text, or undefined when it cannot be read.
 */
export function withLines(
  violations: readonly Violation[],
  read: (file: string) => string | undefined,
): Violation[] {
  const parsed = new Map<
    string,
    { docs: ReturnType<typeof parseAllDocuments>; lines: LineCounter } | undefined
  >();
  return violations.map((v) => {
    if (!parsed.has(v.file)) {
      const text = read(v.file);
      const lines = new LineCounter();
      const docs = text === undefined ? undefined : parseAllDocuments(text, { lineCounter: lines });
      parsed.set(v.file, docs && Array.isArray(docs) ? { docs, lines } : undefined);
    }
    const p = parsed.get(v.file);
    const doc = p?.docs[v.document - 1];
    if (!p || !doc) return v;
    const path = v.field === '' ? [] : v.field.split('.').map((k) => (/^\d+$/.test(k) ? Number(k) : k));
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
      if (range) return { ...v, line: p.lines.linePos(range[0]).line };
    }
    return v;
  });
}
