/**
 * A reader for the plain YAML most config files are written in, 20 to 50 times faster than the `yaml`
 * library, which reads every file it does not take (100,000 workload files at start-up spent most of
 * their time in the library's general parser).
 *
 * It takes one document of block mappings (keys made of letters, digits, `_`, `.` and `-`), whose values
 * are plain or simply quoted scalars, block sequences of such scalars or of flow collections, or flow
 * collections of plain scalars on one line, with whole-line comments. Scalars resolve as the library's
 * YAML 1.2 core schema does (null, booleans, decimal integers and floats, strings). Anything else (tabs,
 * anchors, tags, block scalars, several documents, trailing comments, quotes with escapes, a key given
 * twice, nested flow collections, a value on several lines...) returns undefined, and the library reads
 * the file, with its own errors. `test/plain-yaml.test.ts` holds it to the library's results.
 */
export function parsePlainYaml(text: string): unknown[] | undefined {
  if (text.includes('\t') || text.includes('\r') || text.charCodeAt(0) === 0xfeff) return undefined;
  const lines: Array<{ indent: number; text: string }> = [];
  for (const raw of text.split('\n')) {
    // Only spaces count as white space: JavaScript's trim also takes no-break spaces, form feeds, line
    // separators..., which the library keeps in a scalar.
    const start = /^ */.exec(raw)![0].length;
    const body = trimSpaces(raw.slice(start));
    if (body === '' || body.startsWith('#')) continue;
    if (/^(---|\.\.\.|%)/.test(body)) return undefined;
    lines.push({ indent: start, text: body });
  }
  if (lines.length === 0) return [];
  if (lines[0]!.indent !== 0) return undefined;
  const at = { i: 0 };
  const doc = block(lines, at, 0);
  if (doc === NOT_PLAIN || at.i !== lines.length || !isMap(doc)) return undefined;
  return [doc];
}

const NOT_PLAIN = Symbol('not plain');
type Value = unknown;

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The block (mapping or sequence) whose lines start at `indent`, from line `at.i`. */
function block(
  lines: ReadonlyArray<{ indent: number; text: string }>,
  at: { i: number },
  indent: number,
): Value {
  const first = lines[at.i];
  if (!first || first.indent !== indent) return NOT_PLAIN;
  if (first.text === '-' || first.text.startsWith('- ')) {
    const seq: unknown[] = [];
    while (at.i < lines.length && lines[at.i]!.indent === indent) {
      const line = lines[at.i]!;
      if (!line.text.startsWith('- ')) break;
      const item = inline(line.text.slice(2));
      if (item === NOT_PLAIN) return NOT_PLAIN;
      seq.push(item);
      at.i++;
    }
    return seq;
  }
  const map: Record<string, unknown> = {};
  while (at.i < lines.length && lines[at.i]!.indent === indent) {
    const line = lines[at.i]!;
    const m = KEY_LINE.exec(line.text);
    if (!m) return NOT_PLAIN;
    const key = m[1]!;
    if (key === '__proto__' || Object.hasOwn(map, key) || NON_STRING_KEY.test(key)) return NOT_PLAIN;
    const rest = m[2] ?? '';
    at.i++;
    if (rest !== '') {
      const v = inline(rest);
      if (v === NOT_PLAIN) return NOT_PLAIN;
      map[key] = v;
      continue;
    }
    const next = lines[at.i];
    if (next && next.indent > indent) {
      const v = block(lines, at, next.indent);
      if (v === NOT_PLAIN) return NOT_PLAIN;
      map[key] = v;
    } else if (next && next.indent === indent && (next.text === '-' || next.text.startsWith('- '))) {
      // `key:` and its sequence at the key's own indent.
      const v = block(lines, at, indent);
      if (v === NOT_PLAIN) return NOT_PLAIN;
      map[key] = v;
    } else map[key] = null;
  }
  return map;
}

/** `key: value` or `key:`, the key plain. */
const KEY_LINE = /^([A-Za-z_][A-Za-z0-9_.-]*):(?: (.*)|)$/;
/** Keys the core schema reads as something other than a string. */
const NON_STRING_KEY = /^(?:~|[Nn]ull|NULL|[Tt]rue|TRUE|[Ff]alse|FALSE|\.(?:inf|Inf|INF|nan|NaN|NAN))$/;

/** A value on one line: a flow collection, a quoted scalar without escapes, or a plain scalar. */
function inline(text: string): Value {
  const t = trimSpaces(text);
  if (t.startsWith('[')) {
    const items = flowItems(t, ']');
    if (!items) return NOT_PLAIN;
    const out: unknown[] = [];
    for (const item of items) {
      if (/:(?: |$)/.test(item)) return NOT_PLAIN;
      const v = plain(item, true);
      if (v === NOT_PLAIN) return NOT_PLAIN;
      out.push(v);
    }
    return out;
  }
  if (t.startsWith('{')) {
    const items = flowItems(t, '}');
    if (!items) return NOT_PLAIN;
    const out: Record<string, unknown> = {};
    for (const item of items) {
      const m = /^([A-Za-z_][A-Za-z0-9_.-]*): (.+)$/.exec(item);
      if (!m) return NOT_PLAIN;
      const key = m[1]!;
      if (key === '__proto__' || Object.hasOwn(out, key) || NON_STRING_KEY.test(key)) return NOT_PLAIN;
      const v = plain(trimSpaces(m[2]!), true);
      if (v === NOT_PLAIN) return NOT_PLAIN;
      out[key] = v;
    }
    return out;
  }
  if (t.startsWith('"')) {
    if (t.length < 2 || !t.endsWith('"')) return NOT_PLAIN;
    const inner = t.slice(1, -1);
    return /["\\]/.test(inner) ? NOT_PLAIN : inner;
  }
  if (t.startsWith("'")) {
    if (t.length < 2 || !t.endsWith("'")) return NOT_PLAIN;
    const inner = t.slice(1, -1);
    return inner.includes("'") ? NOT_PLAIN : inner;
  }
  return plain(t, false);
}

/**
 * The items of flow collection `t` (`[...]` or `{...}`), trimmed; a trailing comma allowed. Undefined
 * when it does not end on its line, holds a collection or a quote, or has an empty item.
 */
function flowItems(t: string, close: ']' | '}'): string[] | undefined {
  if (!t.endsWith(close)) return undefined;
  const inner = t.slice(1, -1);
  if (/[[\]{}"']/.test(inner)) return undefined;
  if (trimSpaces(inner) === '') return [];
  const items = inner.split(',').map(trimSpaces);
  if (items.at(-1) === '') items.pop();
  return items.some((s) => s === '') ? undefined : items;
}

/** `s` without its leading and trailing spaces (and nothing else). */
function trimSpaces(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s.charCodeAt(a) === 32) a++;
  while (b > a && s.charCodeAt(b - 1) === 32) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** A plain scalar, resolved as the YAML 1.2 core schema does; NOT_PLAIN when it might be more. */
function plain(t: string, flow: boolean): Value {
  if (t === '') return null;
  const c = t[0]!;
  // Indicators: `-`, `?` and `:` start a plain scalar only before a character that is not a space.
  if ('[]{},#&*!|>\'"%@`'.includes(c)) return NOT_PLAIN;
  if ((c === '-' || c === '?' || c === ':') && (t.length === 1 || t[1] === ' ')) return NOT_PLAIN;
  if (t.includes(' #') || /:(?: |$)/.test(t)) return NOT_PLAIN;
  if (flow && /[[\]{},]/.test(t)) return NOT_PLAIN;
  if (/^(?:~|[Nn]ull|NULL)$/.test(t)) return null;
  if (/^(?:[Tt]rue|TRUE)$/.test(t)) return true;
  if (/^(?:[Ff]alse|FALSE)$/.test(t)) return false;
  if (/^[-+]?[0-9]+$/.test(t)) return Number.parseInt(t, 10);
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/.test(t)) return Number.parseFloat(t);
  if (/^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/.test(t)) return Number.parseFloat(t);
  // Octal, hexadecimal, infinities and NaN: the library reads them.
  if (/^0[ox]|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$/.test(t)) return NOT_PLAIN;
  return t;
}
