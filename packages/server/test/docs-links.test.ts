import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// Every relative link in README.md and docs/*.md leads somewhere: the file exists and, when the link
// names an #anchor in a Markdown file, that file has the heading (GitHub's slugs, duplicates numbered).
// Every docs page with four sections or more opens with a "Contents" list whose links resolve.

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const pages = [
  'README.md',
  ...readdirSync(join(REPO, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** The text of a Markdown file with its fenced code blocks blanked out (kept line for line). */
function prose(path: string): string {
  let fenced = false;
  return readFileSync(join(REPO, path), 'utf8')
    .split('\n')
    .map((line) => {
      if (/^\s*```/.test(line)) {
        fenced = !fenced;
        return '';
      }
      return fenced ? '' : line;
    })
    .join('\n');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

function headings(text: string): string[] {
  return [...text.matchAll(/^#{1,6} (.+?)\s*#*$/gm)].map((m) => m[1]!);
}

const anchorCache = new Map<string, Set<string>>();
function anchors(path: string): Set<string> {
  let set = anchorCache.get(path);
  if (!set) {
    set = new Set();
    const seen = new Map<string, number>();
    for (const h of headings(prose(path))) {
      const base = slug(h);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      set.add(n === 0 ? base : `${base}-${n}`);
    }
    anchorCache.set(path, set);
  }
  return set;
}

/** Links outside code spans: `[text](target)`, targets without a scheme. */
function relativeLinks(path: string): string[] {
  const text = prose(path).replace(/`[^`\n]*`/g, '');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

describe('links in README.md and docs/', () => {
  it('finds the pages and their links', () => {
    assert.ok(pages.length >= 10, pages.join(' '));
    assert.ok(relativeLinks('README.md').length >= 20);
  });

  for (const page of pages) {
    it(`${page}: every relative link resolves, #anchors included`, () => {
      const broken: string[] = [];
      for (const link of relativeLinks(page)) {
        const [file, anchor] = link.split('#') as [string, string | undefined];
        const target = file === '' ? page : relative(REPO, join(REPO, dirname(page), file));
        if (target.startsWith('..') || !existsSync(join(REPO, target))) {
          broken.push(`${link}: no file ${target}`);
          continue;
        }
        if (anchor !== undefined && target.endsWith('.md') && !anchors(target).has(anchor))
          broken.push(`${link}: ${target} has no heading with the anchor #${anchor}`);
        if (anchor !== undefined && !target.endsWith('.md') && statSync(join(REPO, target)).isDirectory())
          broken.push(`${link}: an anchor into a directory`);
      }
      assert.deepEqual(broken, [], `${page} has broken links`);
    });
  }

  for (const page of pages.filter((p) => p.startsWith('docs/'))) {
    it(`${page}: a page of four sections or more has a table of contents`, () => {
      const sections = headings(prose(page)).filter((h) => h !== 'Contents');
      const text = prose(page);
      const level2 = [...text.matchAll(/^## (.+)$/gm)].map((m) => m[1]!).filter((h) => h !== 'Contents');
      if (level2.length < 4) return;
      assert.ok(sections.length > 0);
      const contents = /\n## Contents\n([\s\S]*?)\n## /.exec(text);
      assert.ok(contents, `${page} has ${level2.length} sections and no "## Contents"`);
      const listed = new Set([...contents[1]!.matchAll(/\]\(#([^)\s]+)\)/g)].map((m) => m[1]!));
      const missing = level2.map(slug).filter((s) => !listed.has(s));
      assert.deepEqual(missing, [], `${page}: sections missing from its Contents`);
    });
  }
});

describe('slug', () => {
  it('makes the anchors GitHub makes', () => {
    assert.equal(slug('Tasks and `writ exec`'), 'tasks-and-writ-exec');
    assert.equal(slug('Store: embedded SQLite or PostgreSQL'), 'store-embedded-sqlite-or-postgresql');
    assert.equal(
      slug('Who an audit event names, and what its text can do'),
      'who-an-audit-event-names-and-what-its-text-can-do',
    );
  });
});
