// Free text Writ stores or shows (audit events, usage records, terminal lines) never carries a raw
// control character. One copy for the server and the SDK's usage reporter, which escape text alike.

/**
 * Characters that change how text is displayed rather than being displayed, inclusive ranges. Free
 * text an audit event, a usage record or a terminal line holds never carries one raw: a caller could
 * forge lines of `writ audit tail`, hide text, or repaint an operator's terminal.
 */
const CONTROL_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x0000, 0x001f], // C0 controls: newline, carriage return, tab, ESC…
  [0x007f, 0x009f], // DEL and the C1 controls (a terminal may take U+009B as CSI)
  [0x061c, 0x061c], // Arabic letter mark
  [0x200e, 0x200f], // left-to-right and right-to-left marks
  [0x2028, 0x202e], // line and paragraph separators; bidirectional embeddings and overrides
  [0x2066, 0x2069], // bidirectional isolates
  [0xd800, 0xdfff], // surrogates: with the `u` flag only a half standing alone matches
];
const u = (c: number) => `\\u${c.toString(16).padStart(4, '0')}`;
const CONTROL = new RegExp(`[${CONTROL_RANGES.map(([a, b]) => `${u(a)}-${u(b)}`).join('')}]`, 'u');
const CONTROL_ALL = new RegExp(CONTROL.source, 'gu');

/** What a refusal says passes, in the words of every refusal of a text field. */
export const PLAIN_TEXT_RULE =
  'no control characters (C0, DEL, C1), line separators or bidirectional formatting characters';

/** Printable ASCII only: most text, answered by a cheaper test (every audit append asks, on the issuance path). */
const PRINTABLE_ASCII = /^[ -~]*$/;

/** Whether `s` holds any character of `CONTROL_RANGES`. */
export function hasControlCharacters(s: string): boolean {
  return !PRINTABLE_ASCII.test(s) && CONTROL.test(s);
}

/**
 * `s` with every control character written as a JSON escape (`\n`, `\t`, `\r`, `\u001b`…), so it is
 * shown, never obeyed. The one escaping function of Writ: audit storage, usage records and every CLI
 * renderer use it. The escapes are valid inside a JSON string, so JSON output may go through it too.
 *
 * @example escapeControlCharacters('a\nb\u001b[2J') === 'a\\nb\\u001b[2J'
 */
export function escapeControlCharacters(s: string): string {
  if (!hasControlCharacters(s)) return s;
  return s.replace(CONTROL_ALL, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/**
 * `s` as stored when it came from something Writ does not refuse (a header a verifier relays, a claim
 * of a platform token, a refusal's own record of what was sent): control characters escaped, then cut
 * to `max` characters (the last one `…`) without splitting a surrogate pair.
 */
export function restrictText(s: string, max: number): string {
  const escaped = escapeControlCharacters(s);
  if (escaped.length <= max) return escaped;
  let end = max - 1;
  const last = escaped.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${escaped.slice(0, end)}…`;
}
