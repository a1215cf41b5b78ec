import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DecisionCache, decisionKey } from '../src/verifier/local-policy/decision-cache.js';
import { buildPolicyContext } from '../src/wire/index.js';

const NOW = Date.UTC(2026, 0, 1, 10);
const workload = { type: 'Workload', id: 'spiffe://t/w' };

describe('DecisionCache', () => {
  it('keeps at most its size, dropping the oldest first', () => {
    const c = new DecisionCache<number>(2);
    c.set('a', 1);
    c.set('b', 2);
    c.set('c', 3);
    assert.equal(c.size, 2);
    assert.equal(c.get('a'), undefined);
    assert.equal(c.get('b'), 2);
    assert.equal(c.get('c'), 3);
    c.clear();
    assert.equal(c.get('c'), undefined);
  });

  it('keeps nothing with size 0', () => {
    const c = new DecisionCache<number>(0);
    c.set('a', 1);
    assert.equal(c.get('a'), undefined);
  });
});

describe('decisionKey', () => {
  const ctx = (given: Parameters<typeof buildPolicyContext>[1]) => buildPolicyContext(NOW, given);

  it('ignores the context fields the policies do not read', () => {
    const reads = ['risk'];
    assert.equal(
      decisionKey(1, workload, 'read', ctx({ risk: 5, purpose: 'a' }), reads),
      decisionKey(1, workload, 'read', ctx({ risk: 5, purpose: 'b' }), reads),
    );
    assert.notEqual(
      decisionKey(1, workload, 'read', ctx({ risk: 5 }), reads),
      decisionKey(1, workload, 'read', ctx({ risk: 6 }), reads),
    );
  });

  it('reads every field when a policy reads the context as a whole', () => {
    assert.notEqual(
      decisionKey(1, workload, 'read', ctx({ purpose: 'a' }), 'all'),
      decisionKey(1, workload, 'read', ctx({ purpose: 'b' }), 'all'),
    );
  });

  it('separates bundle versions, actions, principals, and a person’s roles', () => {
    const c = ctx({});
    const keys = [
      decisionKey(1, workload, 'read', c, []),
      decisionKey(2, workload, 'read', c, []),
      decisionKey(1, workload, 'write', c, []),
      decisionKey(1, { type: 'Workload', id: 'spiffe://t/other' }, 'read', c, []),
      decisionKey(1, { type: 'Human', id: 'alice', attrs: { roles: ['viewer'], mfa: false } }, 'read', c, []),
      decisionKey(1, { type: 'Human', id: 'alice', attrs: { roles: ['admin'], mfa: false } }, 'read', c, []),
      decisionKey(1, { type: 'Human', id: 'alice', attrs: { roles: ['admin'], mfa: true } }, 'read', c, []),
    ];
    assert.equal(new Set(keys).size, keys.length);
  });
});
