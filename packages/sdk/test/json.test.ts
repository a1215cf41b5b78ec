import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson, parseBoundedJson } from '../src/jose/json.js';

describe('parseBoundedJson: JSON with a nesting bound', () => {
  const nested = (depth: number, open = '{"a":', close = '}') =>
    `${open.repeat(depth)}1${close.repeat(depth)}`;

  it('accepts objects and arrays nested exactly to the bound', () => {
    assert.deepEqual(parseBoundedJson(nested(3), 3), { a: { a: { a: 1 } } });
    assert.deepEqual(parseBoundedJson(nested(4, '[', ']'), 4), [[[[1]]]]);
    assert.equal(parseBoundedJson('"plain"', 0), 'plain');
  });

  it('refuses one level past the bound, in objects, arrays and mixed', () => {
    assert.throws(() => parseBoundedJson(nested(4), 3), /nested deeper than 3/);
    assert.throws(() => parseBoundedJson(nested(5, '[', ']'), 4), /nested deeper than 4/);
    assert.throws(() => parseBoundedJson('{"a":[{"b":[1]}]}', 3), /nested deeper than 3/);
    assert.throws(() => parseBoundedJson('{}', 0), /nested deeper than 0/);
  });

  it('counts structure, not brackets inside strings', () => {
    assert.deepEqual(parseBoundedJson('{"a":"{{{{[[[["}', 1), { a: '{{{{[[[[' });
  });

  it('refuses a deep value hidden after shallow siblings, and very deep input without crashing', () => {
    assert.throws(() => parseBoundedJson(`{"x":1,"y":[2],"z":${nested(8)}}`, 4), /nested deeper/);
    assert.throws(() => parseBoundedJson(nested(100_000, '[', ']'), 32), /nested deeper than 32/);
  });

  it('refuses what is not JSON', () => {
    assert.throws(() => parseBoundedJson('{"a":', 4), SyntaxError);
    assert.throws(() => parseBoundedJson('', 4), SyntaxError);
  });
});

describe('canonicalJson: the deterministic JSON audit hashes are made of', () => {
  it('sorts keys at every level and leaves out undefined values, as the audit chain has always hashed', () => {
    const value = {
      b: 1,
      a: { z: [3, { y: 'x', x: null }], u: undefined, ä: 'ü' },
      c: [undefined, 'q"uote\n', true, -0.5],
      d: undefined,
      'key "quoted"': {},
      e: [],
    };
    assert.equal(
      canonicalJson(value),
      '{"a":{"z":[3,{"x":null,"y":"x"}],"ä":"ü"},"b":1,"c":[null,"q\\"uote\\n",true,-0.5],"e":[],"key \\"quoted\\"":{}}',
    );
  });

  it('writes what is not an object as JSON.stringify does, undefined as null', () => {
    assert.equal(canonicalJson(undefined), 'null');
    assert.equal(canonicalJson(null), 'null');
    assert.equal(canonicalJson('a\u2028b'), JSON.stringify('a\u2028b'));
    assert.equal(canonicalJson(Number.NaN), 'null');
    assert.equal(canonicalJson(12), '12');
  });

  it('is the same string whatever order the keys were inserted in', () => {
    assert.equal(canonicalJson({ x: 1, y: { b: 2, a: 1 } }), canonicalJson({ y: { a: 1, b: 2 }, x: 1 }));
    assert.notEqual(canonicalJson({ x: 1 }), canonicalJson({ x: '1' }));
  });
});
