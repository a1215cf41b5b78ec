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
 * A byte stream with every occurrence of `forms` overwritten by `*` of the same length, also across
 * chunk boundaries (the last `longest - 1` bytes are held back until the next chunk or the end). The
 * length never changes, so a `content-length` stays true. `onHit` is told how many were overwritten.
 */
export function redactingStream(forms: readonly Buffer[], onHit: (n: number) => void): Transform {
  const longest = forms.reduce((m, f) => Math.max(m, f.length), 0);
  let held = Buffer.alloc(0);
  const scrub = (buf: Buffer): number => {
    let hits = 0;
    for (const f of forms) {
      let at = buf.indexOf(f);
      while (at >= 0) {
        buf.fill(0x2a, at, at + f.length);
        hits++;
        at = buf.indexOf(f, at + f.length);
      }
    }
    return hits;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const buf = held.length === 0 ? Buffer.from(chunk) : Buffer.concat([held, chunk]);
      const hits = scrub(buf);
      if (hits > 0) onHit(hits);
      const keep = Math.min(buf.length, Math.max(0, longest - 1));
      held = Buffer.from(buf.subarray(buf.length - keep));
      done(null, buf.subarray(0, buf.length - keep));
    },
    flush(done: TransformCallback) {
      const hits = scrub(held);
      if (hits > 0) onHit(hits);
      done(null, held.length > 0 ? held : null);
    },
  });
}
