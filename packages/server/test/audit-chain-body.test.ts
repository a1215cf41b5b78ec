import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { AuditDraft } from '../src/audit/audit-event.js';
import { chainBody, chainHash } from '../src/audit/chain.js';
import { canonicalJson } from '../src/jose/json.js';

// PostgreSQL's batched issuance links events in the database from the two parts of each event's body
// around its sequence number: the parts must rebuild exactly the canonical JSON the chain has always
// hashed, or chains written before and after would not verify alike.
describe('audit chain body parts', () => {
  const drafts: AuditDraft[] = [
    { ts: 1, type: 'token.issued', outcome: 'success', actor: 'spiffe://a', data: {} },
    {
      ts: 1_700_000_000_123,
      type: 'token.issued',
      outcome: 'refused',
      actor: 'a😀"\\\u2028',
      subject: 'sübject',
      jti: 'j',
      data: { z: [1, 'two', null], a: { seq: 0, nested: 'ünïcødé \u0007' } },
    },
    {
      ts: 5,
      type: 't',
      outcome: 'challenged',
      actor: '',
      subject: undefined,
      jti: undefined,
      data: { seq: 9 },
    },
  ];

  it('head + seq + tail is the canonical JSON of the event with its sequence number', () => {
    for (const e of drafts)
      for (const seq of [1, 42, 9_007_199_254_740_991]) {
        const { head, tail } = chainBody(e);
        const canonical = canonicalJson({
          seq,
          ts: e.ts,
          type: e.type,
          outcome: e.outcome,
          actor: e.actor,
          subject: e.subject ?? null,
          jti: e.jti ?? null,
          data: e.data,
        });
        assert.equal(`${head}${seq}${tail}`, canonical);
        const prev = 'c'.repeat(64);
        assert.equal(
          chainHash(prev, seq, e),
          createHash('sha256').update(prev).update('\n').update(canonical).digest('hex'),
        );
      }
  });
});
