import { restrictText } from '../control-characters.js';

/** The free-text fields of a usage record as a verifier reports it, and the most each one keeps. */
const BOUNDS = { jti: 256, sub: 2048, tid: 256, operation: 512, source: 128, user_agent: 512 } as const;

type Texts = { -readonly [K in keyof typeof BOUNDS]?: string | null | undefined };

/**
 * A usage record's text fields as they are stored: bounded, control characters escaped
 * (`escapeControlCharacters`). Cleaned, not refused: an operation names a path and `user_agent` copies
 * a header, both sent by whoever called the verifier's API, and refusing the record would refuse the
 * verifier's whole report, so any caller of an API could keep its own uses out of Writ's sight.
 */
export function plainUsageRecord<R extends Texts>(r: R): R {
  let out = r;
  for (const k of Object.keys(BOUNDS) as Array<keyof typeof BOUNDS>) {
    const v = r[k];
    if (typeof v !== 'string') continue;
    const plain = restrictText(v, BOUNDS[k]);
    if (plain !== v) out = { ...out, [k]: plain };
  }
  return out;
}
