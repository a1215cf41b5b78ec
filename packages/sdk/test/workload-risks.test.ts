import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { revocationDigest, WorkloadRisks } from '../src/verifier/index.js';
import type { VerifierRisk } from '../src/wire/index.js';

// A verifier holds each workload's risk as the server announced it on the event stream, by the digest
// of the workload's id (it is sent no ids in clear), and decays it as the server does: local policy
// reads it as `context.risk` for that workload's tokens.

const T0 = Date.UTC(2026, 0, 5, 12);
const W = 'spiffe://test.writ/reports/exporter';
const OTHER = 'spiffe://test.writ/billing/job';

const risk = (over: Partial<VerifierRisk> = {}): VerifierRisk => ({
  sub_sha256: revocationDigest(W),
  risk: 80,
  risk_at: T0,
  half_life: 60,
  ...over,
});

describe('workload risks', () => {
  it('finds a workload by the digest of its id, and no other', () => {
    const r = new WorkloadRisks();
    assert.equal(r.of(W, T0), 0);
    r.apply(risk());
    assert.equal(r.of(W, T0), 80);
    assert.equal(r.of(OTHER, T0), 0);
    assert.equal(r.size, 1);
  });

  it('halves every half-life, as on the server, and never goes below zero', () => {
    const r = new WorkloadRisks();
    r.apply(risk());
    assert.equal(r.of(W, T0 + 60_000), 40);
    assert.equal(r.of(W, T0 + 120_000), 20);
    assert.equal(r.of(W, T0 + 3_600_000), 0);
    // A clock a little behind the server's reads the risk as announced, not more.
    assert.equal(r.of(W, T0 - 5000), 80);
  });

  it('keeps the latest announcement of a workload: an older one arriving late changes nothing', () => {
    const r = new WorkloadRisks();
    r.apply(risk({ risk: 30, risk_at: T0 + 1000 }));
    r.apply(risk({ risk: 90, risk_at: T0 }));
    assert.equal(r.of(W, T0 + 1000), 30);
    r.apply(risk({ risk: 10, risk_at: T0 + 2000 }));
    assert.equal(r.of(W, T0 + 2000), 10, 'a later one, lower, replaces it (an operator reset, or decay)');
  });

  it('a snapshot replaces everything held', () => {
    const r = new WorkloadRisks();
    r.apply(risk());
    r.reset([risk({ sub_sha256: revocationDigest(OTHER), risk: 50 })]);
    assert.equal(r.of(W, T0), 0);
    assert.equal(r.of(OTHER, T0), 50);
    r.reset([]);
    assert.equal(r.size, 0);
  });

  it('refuses what it cannot read, and keeps what it held', () => {
    const bad: Array<[string, Partial<VerifierRisk> | null]> = [
      ['a workload id in clear', { sub_sha256: W }],
      ['a risk above 100', { risk: 101 }],
      ['a fractional risk', { risk: 7.5 }],
      ['a negative risk', { risk: -1 }],
      ['a risk that is text', { risk: '80' as unknown as number }],
      ['no time', { risk_at: Number.NaN }],
      ['no half-life', { half_life: 0 }],
      ['an infinite half-life', { half_life: Number.POSITIVE_INFINITY }],
    ];
    for (const [what, over] of bad) {
      const r = new WorkloadRisks();
      r.apply(risk({ risk: 20 }));
      assert.throws(() => r.apply(risk(over ?? {})), TypeError, what);
      assert.throws(
        () => r.reset([risk({ sub_sha256: revocationDigest(OTHER) }), risk(over ?? {})]),
        TypeError,
      );
      assert.equal(r.of(W, T0), 20, `${what}: what was held stays`);
      assert.equal(r.of(OTHER, T0), 0, `${what}: a snapshot with it is not taken in part`);
    }
    assert.throws(() => new WorkloadRisks().apply(null as unknown as VerifierRisk), TypeError);
  });
});
