import { Transform, type TransformCallback } from 'node:stream';

/**
 * Every form in which a vendor key could come back from the vendor: the key itself, the credential as
 * injected (a header value, Basic credentials in base64), the key URL-encoded, and each of these with
 * "/" written "\/" (JSON as PHP and others escape it). Echo services and error pages that quote the
 * request are the usual way a key escapes; each form is caught.
 */
export function secretForms(key: string, injected: readonly string[]): Buffer[] {
  const plain = [key, encodeURIComponent(key), ...injected];
  const forms = new Set<string>([...plain, ...plain.map((f) => f.replaceAll('/', '\\/'))]);
  return [...forms].filter((f) => f.length >= 8).map((f) => Buffer.from(f));
}

/** Whether `text` holds any of `forms`. */
export function containsSecret(text: string, forms: readonly Buffer[]): boolean {
  return forms.some((f) => text.includes(f.toString()));
}

/**
 * The key forms of one key set, ready for the hot path: as bytes for bodies and as strings for headers.
 * Made once per key set (a lease or a rotation), not per request.
 */
export class SecretForms {
  readonly bytes: readonly Buffer[];
  readonly strings: readonly string[];
  /** The longest form's length: a body scrubber holds back one byte less than this between chunks. */
  readonly longest: number;

  constructor(forms: readonly Buffer[]) {
    this.bytes = forms;
    this.strings = forms.map((f) => f.toString());
    this.longest = forms.reduce((m, f) => Math.max(m, f.length), 0);
  }

  /** Whether a header value holds any form. */
  inText(text: string): boolean {
    for (const f of this.strings) if (text.includes(f)) return true;
    return false;
  }
}

/**
 * Overwrites every occurrence of the key forms in a body with `*` of the same length, also across chunk
 * boundaries, without a stream of its own: `push` each chunk as it comes and send what it returns, then
 * send what `end` returns. Until the end it holds back the last `longest - 1` bytes, which could be the
 * start of a form; a chunk known to be the last (`push(chunk, true)`) is returned whole. Chunks are only
 * copied when a form is found in them (the caller's buffer is never written) or when bytes were held.
 * The length never changes, so a `content-length` stays true. `hits` counts the forms overwritten.
 */
export class KeyScrubber {
  hits = 0;
  readonly #forms: SecretForms;
  #held: Buffer | undefined;

  constructor(forms: SecretForms) {
    this.#forms = forms;
  }

  /** The bytes of `chunk` (after any held back) that are safe to send now. */
  push(chunk: Buffer, last = false): Buffer {
    let buf = this.#held === undefined ? chunk : Buffer.concat([this.#held, chunk]);
    const owned = this.#held !== undefined;
    this.#held = undefined;
    buf = this.#scrub(buf, owned);
    const keep = last ? 0 : Math.min(buf.length, Math.max(0, this.#forms.longest - 1));
    if (keep === 0) return buf;
    this.#held = Buffer.from(buf.subarray(buf.length - keep));
    return buf.subarray(0, buf.length - keep);
  }

  /** What was held back, once the body has ended (already scrubbed). */
  end(): Buffer | undefined {
    const held = this.#held;
    this.#held = undefined;
    return held;
  }

  /** `buf` with every form overwritten: a copy when `buf` is not ours and holds one. */
  #scrub(buf: Buffer, owned: boolean): Buffer {
    let out = buf;
    let mine = owned;
    for (const f of this.#forms.bytes) {
      let at = out.indexOf(f);
      while (at >= 0) {
        if (!mine) {
          out = Buffer.from(out);
          mine = true;
        }
        out.fill(0x2a, at, at + f.length);
        this.hits++;
        at = out.indexOf(f, at + f.length);
      }
    }
    return out;
  }
}

/**
 * A byte stream with every occurrence of `forms` overwritten by `*` of the same length, also across
 * chunk boundaries (see `KeyScrubber`). `onHit` is told how many were overwritten.
 */
export function redactingStream(forms: readonly Buffer[], onHit: (n: number) => void): Transform {
  const scrubber = new KeyScrubber(new SecretForms(forms));
  const told = () => {
    if (scrubber.hits > 0) onHit(scrubber.hits);
    scrubber.hits = 0;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const out = scrubber.push(chunk);
      told();
      done(null, out.length > 0 ? out : undefined);
    },
    flush(done: TransformCallback) {
      const held = scrubber.end();
      told();
      done(null, held ?? null);
    },
  });
}
