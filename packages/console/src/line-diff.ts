/**
 * A line diff of two texts by their longest common subsequence: what the Policy view shows between two
 * policy versions. Pure (no DOM), so a unit test runs it in Node.
 */

export type DiffLine = { kind: 'same' | 'added' | 'removed'; text: string };

/**
 * Above this many lines on both sides together the LCS table (old × new cells) would grow too large for a
 * page: the diff then shows every old line removed and every new line added, which is still correct.
 */
export const DIFF_MAX_CELLS = 4_000_000;

/** The lines of `a` turned into those of `b`: kept, removed and added lines in order. */
export function lineDiff(a: string, b: string): DiffLine[] {
  const x = splitLines(a);
  const y = splitLines(b);
  // Common head and tail cost nothing and keep the table small for the usual small edit.
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head++;
  let tail = 0;
  while (
    tail < x.length - head &&
    tail < y.length - head &&
    x[x.length - 1 - tail] === y[y.length - 1 - tail]
  )
    tail++;
  const out: DiffLine[] = x.slice(0, head).map((text) => ({ kind: 'same', text }));
  const xs = x.slice(head, x.length - tail);
  const ys = y.slice(head, y.length - tail);
  out.push(...middle(xs, ys));
  for (const text of x.slice(x.length - tail)) out.push({ kind: 'same', text });
  return out;
}

function middle(x: string[], y: string[]): DiffLine[] {
  const n = x.length;
  const m = y.length;
  if (n * m > DIFF_MAX_CELLS)
    return [
      ...x.map((text) => ({ kind: 'removed' as const, text })),
      ...y.map((text) => ({ kind: 'added' as const, text })),
    ];
  // lcs[i][j]: the LCS length of x[i..] and y[j..], one flat array of (n + 1) × (m + 1).
  const w = m + 1;
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i * w + j] =
        x[i] === y[j] ? lcs[(i + 1) * w + j + 1]! + 1 : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push({ kind: 'same', text: x[i]! });
      i++;
      j++;
    } else if (lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!) out.push({ kind: 'removed', text: x[i++]! });
    else out.push({ kind: 'added', text: y[j++]! });
  }
  while (i < n) out.push({ kind: 'removed', text: x[i++]! });
  while (j < m) out.push({ kind: 'added', text: y[j++]! });
  return out;
}

/** Lines without their ends; an empty text has none, a final newline ends the last line. */
function splitLines(s: string): string[] {
  if (s === '') return [];
  const lines = s.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Two versions' files, paired by name: each file's diff, and whether it was added, removed or changed. */
export interface FileDiff {
  file: string;
  status: 'added' | 'removed' | 'changed' | 'same';
  lines: DiffLine[];
}

export function filesDiff(
  a: Array<{ file: string; text: string }>,
  b: Array<{ file: string; text: string }>,
): FileDiff[] {
  const before = new Map(a.map((f) => [f.file, f.text]));
  const after = new Map(b.map((f) => [f.file, f.text]));
  const names = [...new Set([...before.keys(), ...after.keys()])].sort();
  return names.map((file) => {
    const x = before.get(file);
    const y = after.get(file);
    const status = x === undefined ? 'added' : y === undefined ? 'removed' : x === y ? 'same' : 'changed';
    return { file, status, lines: lineDiff(x ?? '', y ?? '') };
  });
}
