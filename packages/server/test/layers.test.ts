import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// The folders of packages/server/src are layers: `http/` assembles the app on top, the domains
// (oauth, policy, tasks, …) sit under it, and what reads a request (`request/`) sits under them.
// This test reads the import statements and fails when an import runs back up and closes a loop
// between folders. Files at the top of src/ (context, errors, clock, the composition root) are the
// shared kernel and not a layer of their own, so they are left out.

const src = join(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Pairs of folders that must never import each other, directly or through other folders. */
const APART: readonly [string, string][] = [
  ['oauth', 'policy'],
  ['events', 'policy'],
  ['oauth', 'admin'],
  ['oauth', 'tasks'],
];

/** What `auth/` authenticates callers for: it sits below all of them and imports none. */
const SERVED_BY_AUTH = ['oauth', 'admin', 'tasks', 'events', 'policy', 'usage', 'ssf', 'http'];

interface Edge {
  from: string;
  to: string;
  file: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const folderOf = (file: string): string | undefined => {
  const parts = file.split('/');
  return parts.length > 1 ? parts[0] : undefined;
};

/** Every import (static, re-export or dynamic) from one folder of src/ into another. */
function folderImports(): Edge[] {
  const edges: Edge[] = [];
  for (const abs of sourceFiles(src)) {
    const file = relative(src, abs).split(sep).join('/');
    const text = readFileSync(abs, 'utf8');
    for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = posix.normalize(posix.join(posix.dirname(file), m[1]!)).replace(/\.js$/, '.ts');
      const from = folderOf(file);
      const to = folderOf(target);
      if (from && to && from !== to) edges.push({ from, to, file: `${file} -> ${target}` });
    }
  }
  return edges;
}

/** Groups of files that import each other in a loop (Tarjan's strongly connected components). */
function fileLoops(edges: Edge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) {
    const [from, to] = e.file.split(' -> ') as [string, string];
    next.set(from, [...(next.get(from) ?? []), to]);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const loops: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const loop: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      loop.push(w);
    } while (w !== v);
    if (loop.length > 1) loops.push(loop.sort());
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return loops;
}

describe('layers of packages/server/src', () => {
  const edges = folderImports();

  it('reads the imports it judges', () => {
    assert.ok(edges.some((e) => e.file === 'http/app.ts -> oauth/routes.ts'));
    assert.ok(edges.some((e) => e.file.startsWith('oauth/') && e.to === 'request'));
  });

  it('lets no folder import http/, which only assembles the app', () => {
    const up = edges.filter((e) => e.to === 'http').map((e) => e.file);
    assert.deepEqual(up, [], 'http/ is the top layer: move what these need below the domains');
  });

  for (const [a, b] of APART) {
    it(`keeps ${a}/ and ${b}/ from importing each other`, () => {
      const there = edges.filter((e) => e.from === a && e.to === b).map((e) => e.file);
      const back = edges.filter((e) => e.from === b && e.to === a).map((e) => e.file);
      if (there.length === 0 || back.length === 0) return;
      assert.fail(`${a}/ and ${b}/ import each other:\n  ${[...there, ...back].join('\n  ')}`);
    });

    // Through other folders too: the store port imports the records of every domain and every domain
    // imports the port, so folders meet in store/ without a loop; a loop of files is one.
    it(`keeps ${a}/ and ${b}/ out of one loop of files`, () => {
      const folders = (loop: string[]) => new Set(loop.map(folderOf));
      const joint = fileLoops(edges).filter((l) => folders(l).has(a) && folders(l).has(b));
      assert.deepEqual(joint, [], `files of ${a}/ and ${b}/ import each other in a loop`);
    });
  }

  it('keeps auth/ below every endpoint it authenticates callers for', () => {
    const up = edges.filter((e) => e.from === 'auth' && SERVED_BY_AUTH.includes(e.to)).map((e) => e.file);
    assert.deepEqual(up, [], 'auth/ is imported by the endpoints, never the other way');
    assert.ok(
      edges.some((e) => e.from === 'oauth' && e.to === 'auth'),
      'the endpoints use auth/',
    );
  });
});
