import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  containsSecret,
  KeyScrubber,
  redactingStream,
  SecretForms,
  secretForms,
} from '../src/vendor/redact.js';

// A workload allowed to call a vendor route wants the vendor key the proxy injects. It calls an allowed
// endpoint that quotes the request back as JSON from a PHP stack, whose json_encode writes "/" as "\/".
// Base64-shaped keys hold "/": the quoted key must be caught in that form too.

const KEY = 'vk_live/0123+abcd/efghij=';

async function through(chunks: string[], forms: Buffer[]): Promise<{ out: string; hits: number }> {
  let hits = 0;
  const parts: Buffer[] = [];
  for await (const c of Readable.from(chunks.map((s) => Buffer.from(s))).pipe(
    redactingStream(forms, (n) => {
      hits += n;
    }),
  ))
    parts.push(c as Buffer);
  return { out: Buffer.concat(parts).toString(), hits };
}

describe('vendor key redaction: JSON-escaped echoes', () => {
  const forms = secretForms(KEY, [`Bearer ${KEY}`]);
  const escaped = KEY.replaceAll('/', '\\/');

  it('overwrites the key written with "\\/" in a body, across chunk boundaries, keeping the length', async () => {
    const body = `{"headers":{"authorization":"Bearer ${escaped}"},"key":"${escaped}"}`;
    const cut = body.indexOf('0123');
    const { out, hits } = await through([body.slice(0, cut), body.slice(cut)], forms);
    assert.equal(out.length, body.length);
    assert.ok(!out.includes('0123+abcd'), out);
    assert.ok(hits >= 2);
  });

  it('drops a response header that holds the escaped form', () => {
    assert.equal(containsSecret(`Bearer ${escaped}`, forms), true);
    assert.equal(containsSecret('nothing of it', forms), false);
  });
});

describe('vendor key redaction: the scrubber the proxy relays bodies through', () => {
  const forms = new SecretForms(secretForms(KEY, [`Bearer ${KEY}`]));
  const body = Buffer.from(`{"echo":"Bearer ${KEY}","again":"${KEY}","tail":"done"}`);

  /** The body cut into `cuts` pieces at the given offsets, pushed through one scrubber. */
  const scrub = (cuts: number[], lastKnown: boolean) => {
    const scrubber = new KeyScrubber(forms);
    const parts: Buffer[] = [];
    const at = [0, ...cuts, body.length];
    for (let i = 0; i + 1 < at.length; i++) {
      const last = lastKnown && i + 2 === at.length;
      parts.push(scrubber.push(body.subarray(at[i], at[i + 1]), last));
    }
    const held = scrubber.end();
    if (held) parts.push(held);
    return { out: Buffer.concat(parts), hits: scrubber.hits };
  };

  it('never lets the key through, whatever byte it is split at, and keeps the length', () => {
    for (let cut = 1; cut < body.length; cut++) {
      for (const lastKnown of [false, true]) {
        const { out, hits } = scrub([cut], lastKnown);
        assert.equal(out.length, body.length, `cut at ${cut}`);
        assert.ok(!out.includes(KEY), `key leaked with a cut at ${cut}: ${out}`);
        assert.ok(out.toString().endsWith('"tail":"done"}'), `cut at ${cut}`);
        assert.ok(hits >= 2, `cut at ${cut}: ${hits} hits`);
      }
    }
  });

  it('never lets the key through when it arrives one byte at a time', () => {
    const cuts = Array.from({ length: body.length - 1 }, (_, i) => i + 1);
    const { out } = scrub(cuts, false);
    assert.equal(out.length, body.length);
    assert.ok(!out.includes(KEY), out.toString());
  });

  it('does not write into the buffer it was given', () => {
    const given = Buffer.from(body);
    new KeyScrubber(forms).push(given, true);
    assert.ok(given.equals(body));
  });

  it('sends a body without the key unchanged, and a last chunk whole', () => {
    const plain = Buffer.from('{"id":"ch_1","amount":1200}');
    const scrubber = new KeyScrubber(forms);
    assert.ok(scrubber.push(plain, true).equals(plain));
    assert.equal(scrubber.end(), undefined);
    assert.equal(scrubber.hits, 0);
  });

  it('finds the key in a header value, as sent and JSON-escaped, and nothing in a plain one', () => {
    assert.equal(forms.inText(`x ${KEY} y`), true);
    assert.equal(forms.inText(KEY.replaceAll('/', '\\/')), true);
    assert.equal(forms.inText(KEY.slice(0, -1)), false);
  });
});
