import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { containsSecret, redactingStream, secretForms } from '../src/vendor/redact.js';

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
