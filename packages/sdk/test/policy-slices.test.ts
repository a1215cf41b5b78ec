import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadCedar } from '../src/verifier/local-cedar.js';
import { evaluate, type LocalPrincipal } from '../src/verifier/local-policy/decide.js';
import { loadBundle, PolicySlices } from '../src/verifier/local-policy/slices.js';
import { PolicyBundleError } from '../src/verifier/policy-bundle.js';
import { type BundlePolicy, buildPolicyContext } from '../src/wire/index.js';
import { bundleClaims } from './helpers/bundles.js';

// Slicing a bundle per principal and action, and deciding with Cedar (the real engine, as the
// verifier loads it).

const cedar = await loadCedar();
const NOW = Date.UTC(2026, 0, 1, 10);

const policies: BundlePolicy[] = [
  {
    id: 'reader-reads',
    effect: 'permit',
    text: 'permit (principal == Workload::"spiffe://t/reader", action == Action::"read", resource) when { context.risk < 50 };',
    principal: { op: 'eq', entity: { type: 'Workload', id: 'spiffe://t/reader' } },
    actions: ['read'],
  },
  {
    id: 'office-network',
    effect: 'permit',
    text: 'permit (principal, action in [Action::"read", Action::"write"], resource) when { context.source_ip.isInRange(ip("10.0.0.0/8")) };',
    principal: { op: 'all' },
    actions: ['read', 'write'],
  },
  {
    id: 'no-people-export',
    effect: 'forbid',
    text: 'forbid (principal is Human, action == Action::"export", resource);',
    principal: { op: 'is', type: 'Human' },
    actions: ['export'],
  },
  {
    id: 'tagged-only',
    effect: 'forbid',
    text: 'forbid (principal == Workload::"spiffe://t/untagged", action == Action::"write", resource) when { principal.getTag("team") == "x" };',
    principal: { op: 'eq', entity: { type: 'Workload', id: 'spiffe://t/untagged' } },
    actions: ['write'],
  },
];

let n = 0;
const load = () => loadBundle(cedar, bundleClaims({ policies }), `slices-test${++n}`);
const workload = (id: string, tags: Record<string, string> = {}): LocalPrincipal => ({
  uid: { type: 'Workload', id },
  attrs: { owner: 'o', environment: 'prod', state: 'active', classes: [] },
  tags,
});

describe('PolicySlices', () => {
  it('hands Cedar only the policies whose scope can match, sharing sets between principals', () => {
    const b = load();
    const reader = b.slices.slice({ type: 'Workload', id: 'spiffe://t/reader' }, 'read');
    const other = b.slices.slice({ type: 'Workload', id: 'spiffe://t/other' }, 'read');
    const third = b.slices.slice({ type: 'Workload', id: 'spiffe://t/third' }, 'read');
    assert.ok(reader && other);
    assert.notEqual(reader, other, 'the reader has a policy the others do not');
    assert.equal(other, third, 'the same slice is one set');
    assert.equal(b.slices.slice({ type: 'Workload', id: 'spiffe://t/reader' }, 'export'), undefined);
    assert.equal(b.slices.sets, 2);
  });

  it('starts over past its bound rather than grow without end', () => {
    const slices = new PolicySlices(cedar, policies, `slices-test${++n}`, 2);
    slices.slice({ type: 'Workload', id: 'spiffe://t/reader' }, 'read');
    slices.slice({ type: 'Workload', id: 'spiffe://t/a' }, 'read');
    assert.equal(slices.sets, 2);
    slices.slice({ type: 'Workload', id: 'spiffe://t/b' }, 'write');
    assert.equal(slices.sets, 1);
  });

  it('refuses a bundle whose policies Cedar cannot parse', () => {
    const broken = [{ ...policies[0]!, text: 'permit (principal, action, resource' }];
    assert.throws(
      () => loadBundle(cedar, bundleClaims({ policies: broken }), `slices-test${++n}`),
      (e: unknown) => e instanceof PolicyBundleError && e.reason === 'policies',
    );
  });
});

describe('evaluate', () => {
  const b = load();
  const ctx = (given: Parameters<typeof buildPolicyContext>[1]) => buildPolicyContext(NOW, given);

  it('allows what a permit covers and names it', () => {
    const d = evaluate(cedar, b, workload('spiffe://t/reader'), 'read', ctx({ risk: 10 }));
    assert.equal(d.decision, 'allow');
    assert.deepEqual(d.reasons, ['reader-reads']);
    assert.equal(d.version, 1);
  });

  it('reads the context: a risk over the bound denies, an IPv4-mapped source is in its IPv4 range', () => {
    assert.equal(
      evaluate(cedar, b, workload('spiffe://t/reader'), 'read', ctx({ risk: 60 })).decision,
      'deny',
    );
    const mapped = evaluate(
      cedar,
      b,
      workload('spiffe://t/other'),
      'write',
      ctx({ source_ip: '::ffff:10.2.3.4' }),
    );
    assert.equal(mapped.decision, 'allow');
    assert.deepEqual(mapped.reasons, ['office-network']);
  });

  it('denies when no policy can apply, without asking Cedar', () => {
    const d = evaluate(cedar, b, workload('spiffe://t/other'), 'export', ctx({}));
    assert.deepEqual({ decision: d.decision, reasons: d.reasons }, { decision: 'deny', reasons: [] });
  });

  it('denies when a forbid fails to evaluate, even with a permit satisfied', () => {
    // The forbid reads a tag the principal does not have: Cedar skips it with an error.
    const d = evaluate(cedar, b, workload('spiffe://t/untagged'), 'write', ctx({ source_ip: '10.0.0.1' }));
    assert.equal(d.decision, 'deny');
    assert.deepEqual(d.reasons, ['tagged-only']);
    assert.equal(d.errors.length, 1);
  });
});
