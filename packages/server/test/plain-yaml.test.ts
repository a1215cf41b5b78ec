import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { parsePlainYaml } from '../src/config/plain-yaml.js';

// The plain-YAML reader must give what the `yaml` library gives for every text it takes, and leave to
// the library every text it cannot read exactly (undefined).

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));

/** What config-read.ts got from the library for a YAML file: each document's value, nulls dropped. */
function library(text: string): unknown[] | Error {
  const out: unknown[] = [];
  for (const d of parseAllDocuments(text) as ReturnType<typeof parseAllDocuments> & unknown[]) {
    if (d.errors.length > 0) return new Error(d.errors[0]!.message);
    const v = d.toJS({ maxAliasCount: 50 });
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

function same(text: string): 'plain' | 'library' {
  const plain = parsePlainYaml(text);
  if (plain === undefined) return 'library';
  const lib = library(text);
  assert.ok(
    !(lib instanceof Error),
    `the library refuses what the plain reader took: ${JSON.stringify(text)}`,
  );
  assert.deepEqual(plain, lib, JSON.stringify(text));
  return 'plain';
}

const KEY =
  '{ kty: EC, crv: P-256, kid: -Ab_9x, x: f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU, y: x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0 }';

const TAKEN = [
  `id: spiffe://bench.writ/ns/team-1/sa/w-1\nowner: team-1\nenvironment: prod\nclasses: [bench]\nattributes:\n  tier: 2\njwks:\n  keys:\n    - ${KEY}\n`,
  'name: bench\nmax_ttl: 300s\naudiences: [https://api.example]\nscopes: [read, write]\nbinding: bearer\n',
  '# a comment\nname: x\n\n  # indented comment\nlist:\n- a\n- b\nother: 1.5\n',
  'a: ~\nb: null\nc: Null\nd: true\ne: FALSE\nf: -12\ng: +7\nh: 1e3\ni: .5\nj: 2.\nk: 007\nl: 2026-01-01\nm:\n',
  'a: "quoted: yes"\nb: \'single # not a comment\'\nc: ""\nd: a#b\ne: x, y\nf: read:*\n',
  'nested:\n  deeper:\n    deepest: [1, two, 3.0]\n  back: {}\nempty: []\n',
  'a: [x, y,]\nb: { k: v, }\nc: -x\nd: ?y\ne: :z\n',
  '# only a comment\n',
  '',
];

const LEFT = [
  'a: b # trailing comment\n',
  'a: &x 1\nb: *x\n',
  'a: !!str 1\n',
  'a: |\n  text\n',
  'a: >\n  text\n',
  '---\na: 1\n---\nb: 2\n',
  'a: 1\na: 2\n',
  'a: "esc\\n"\n',
  "a: 'it''s'\n",
  'a: [x, [y]]\n',
  'a: { k: { n: 1 } }\n',
  'a: [x,\n  y]\n',
  'a: multi\n  line\n',
  'a:\n\tb: 1\n',
  'a: 1\r\n',
  '- top\n- level\n',
  'a: 0x1F\nb: 0o17\n',
  'a: .inf\n',
  '? complex\n: key\n',
  '"quoted key": 1\n',
  '__proto__: 1\n',
  'true: 1\n',
  'a:\n  - b: 1\n',
  'a: b: c\n',
  'a: [x,,y]\n',
  'a:\n    b: 1\n  c: 2\n',
  '%YAML 1.2\n---\na: 1\n',
  'a: - b\n',
  '<<: { a: 1 }\n',
];

describe('the plain-YAML reader', () => {
  it('reads the common config files as the yaml library does', () => {
    for (const text of TAKEN) assert.equal(same(text), 'plain', JSON.stringify(text));
  });

  it('leaves to the library what it cannot read exactly', () => {
    for (const text of LEFT) assert.equal(parsePlainYaml(text), undefined, JSON.stringify(text));
  });

  it('agrees with the library on every YAML file of the repository that it takes', () => {
    const files = execFileSync('git', ['ls-files', '*.yaml', '*.yml'], { cwd: REPO, encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
    assert.ok(files.length > 20, `only ${files.length} files`);
    let taken = 0;
    for (const f of files) if (same(readFileSync(join(REPO, f), 'utf8')) === 'plain') taken++;
    assert.ok(taken >= 20, `took ${taken} of ${files.length}`);
  });

  it('trims only spaces: no-break spaces, form feeds and line separators stay in the scalar', () => {
    for (const text of ['a: x\u00a0\n', 'a: x\f\n', 'a: [x\u3000, y]\n', 'a: x\u2028\n', '\u00a0a: 1\n'])
      same(text);
    assert.deepEqual(parsePlainYaml('a: x\u00a0\nb: [\u3000y]\n'), [{ a: 'x\u00a0', b: ['\u3000y'] }]);
  });

  it('agrees with the library on many generated documents', () => {
    const scalars = [
      'x',
      '-x',
      'x-y',
      'a b',
      '1',
      '-1',
      '+1',
      '1.5',
      '.5',
      '5.',
      '1e5',
      '1E-2',
      'null',
      'Null',
      '~',
      'true',
      'True',
      'false',
      'FALSE',
      'yes',
      'no',
      'on',
      '0',
      '00',
      '012',
      '1_000',
      '300s',
      'a#b',
      'a:b',
      'http://x/y',
      'P-256',
      '_u',
      'A.B',
      '-',
      'a,b',
      '"q"',
      "'q'",
      '""',
      "''",
      '[a]',
      '{k: v}',
      '[]',
      '{}',
      '[a, 1, true]',
      '{a: 1, b: x}',
      '@x',
      '`x',
      '%x',
      '!x',
      '&x',
      '*x',
      '|',
      '>',
      '#x',
      ':x',
      '?x',
      'x:',
      'x: y',
      'x #y',
      '.inf',
      '.nan',
      '0x10',
      '0o7',
      '1.2.3',
      '+',
      '.',
      '-.5',
      // White space other than spaces is part of a YAML scalar, not trimmed as JavaScript's trim does.
      'x\u00a0',
      '\u00a0x',
      'x\f',
      '\vx',
      '\u3000',
      'x\u2028',
      '\ufeffx',
      '-\u00a0',
    ];
    let seed = 7;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let taken = 0;
    for (let i = 0; i < 3000; i++) {
      const lines: string[] = [];
      const keys = 1 + next(4);
      for (let k = 0; k < keys; k++) {
        const shape = next(4);
        const key = ['a', 'b_c', 'd.e', 'f-g', 'h'][next(5)]!;
        if (shape === 0) lines.push(`${key}: ${scalars[next(scalars.length)]}`);
        else if (shape === 1) lines.push(`${key}:`, `  sub: ${scalars[next(scalars.length)]}`);
        else if (shape === 2)
          lines.push(
            `${key}:`,
            `  - ${scalars[next(scalars.length)]}`,
            `  - ${scalars[next(scalars.length)]}`,
          );
        else lines.push(`${key}: [${scalars[next(scalars.length)]}, ${scalars[next(scalars.length)]}]`);
      }
      const text = `${lines.join('\n')}\n`;
      const plain = parsePlainYaml(text);
      if (plain === undefined) continue;
      taken++;
      const lib = library(text);
      assert.ok(
        !(lib instanceof Error),
        `the library refuses what the plain reader took: ${JSON.stringify(text)}`,
      );
      assert.deepEqual(plain, lib, JSON.stringify(text));
    }
    assert.ok(taken > 300, `took only ${taken}`);
  });
});
