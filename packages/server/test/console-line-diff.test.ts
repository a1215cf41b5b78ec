import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { transformSync } from 'esbuild';

// The console's line diff (packages/console/src/line-diff.ts), run in Node: the console package is
// bundled for the browser and has no test build of its own, so the source is transpiled here as is.

type DiffLine = { kind: 'same' | 'added' | 'removed'; text: string };
interface LineDiffModule {
  lineDiff(a: string, b: string): DiffLine[];
  filesDiff(
    a: Array<{ file: string; text: string }>,
    b: Array<{ file: string; text: string }>,
  ): Array<{ file: string; status: string; lines: DiffLine[] }>;
  DIFF_MAX_CELLS: number;
}

const source = readFileSync(new URL('../../../console/src/line-diff.ts', import.meta.url), 'utf8');
const { code } = transformSync(source, { loader: 'ts', format: 'esm' });
const m = (await import(
  `data:text/javascript;base64,${Buffer.from(code).toString('base64')}`
)) as LineDiffModule;

/** The diff as `git diff` would print it, one line each: ' ' kept, '+' added, '-' removed. */
const show = (d: DiffLine[]) => d.map((l) => `${{ same: ' ', added: '+', removed: '-' }[l.kind]}${l.text}`);

/** Applying the diff's kept and removed lines gives the old text, kept and added the new one. */
function sides(d: DiffLine[]) {
  return {
    old: d.filter((l) => l.kind !== 'added').map((l) => l.text),
    new: d.filter((l) => l.kind !== 'removed').map((l) => l.text),
  };
}

describe('console line diff', () => {
  it('marks an inserted and a removed line, keeping the rest', () => {
    const a = 'permit a;\nforbid b;\npermit c;\n';
    const b = 'permit a;\npermit c;\npermit d;\n';
    assert.deepEqual(show(m.lineDiff(a, b)), [' permit a;', '-forbid b;', ' permit c;', '+permit d;']);
  });

  it('finds the longest common subsequence, not just a common head and tail', () => {
    const d = m.lineDiff('a\nb\nc\nd\ne\n', 'x\nb\ny\nd\nz\n');
    assert.equal(d.filter((l) => l.kind === 'same').length, 2);
    assert.deepEqual(
      d.filter((l) => l.kind === 'same').map((l) => l.text),
      ['b', 'd'],
    );
    assert.deepEqual(sides(d), { old: ['a', 'b', 'c', 'd', 'e'], new: ['x', 'b', 'y', 'd', 'z'] });
  });

  it('diffs equal texts to kept lines only, and empty texts to nothing', () => {
    assert.deepEqual(show(m.lineDiff('a\nb', 'a\nb\n')), [' a', ' b']);
    assert.deepEqual(m.lineDiff('', ''), []);
    assert.deepEqual(show(m.lineDiff('', 'a\n')), ['+a']);
    assert.deepEqual(show(m.lineDiff('a\r\nb\r\n', '')), ['-a', '-b']);
  });

  it('reproduces both sides for random edits', () => {
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed;
    };
    for (let round = 0; round < 200; round++) {
      const a = Array.from({ length: next() % 12 }, () => `l${next() % 5}`);
      const b = Array.from({ length: next() % 12 }, () => `l${next() % 5}`);
      const d = m.lineDiff(a.join('\n'), b.join('\n'));
      assert.deepEqual(sides(d), { old: a, new: b });
    }
  });

  it('gives up on the table past its bound and still shows a correct diff', () => {
    const n = Math.ceil(Math.sqrt(m.DIFF_MAX_CELLS)) + 1;
    const a = Array.from({ length: n }, (_, i) => `a${i}`);
    const b = Array.from({ length: n }, (_, i) => `b${i}`);
    const d = m.lineDiff(a.join('\n'), b.join('\n'));
    assert.deepEqual(sides(d), { old: a, new: b });
  });

  it('pairs files by name: added, removed, changed and unchanged', () => {
    const f = m.filesDiff(
      [
        { file: 'a.cedar', text: 'x\n' },
        { file: 'b.cedar', text: 'y\n' },
        { file: 'c.cedar', text: 'z\n' },
      ],
      [
        { file: 'a.cedar', text: 'x\n' },
        { file: 'c.cedar', text: 'z2\n' },
        { file: 'd.cedar', text: 'w\n' },
      ],
    );
    assert.deepEqual(
      f.map((x) => [x.file, x.status, show(x.lines)]),
      [
        ['a.cedar', 'same', [' x']],
        ['b.cedar', 'removed', ['-y']],
        ['c.cedar', 'changed', ['-z', '+z2']],
        ['d.cedar', 'added', ['+w']],
      ],
    );
  });
});
