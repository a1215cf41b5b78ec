import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bundleContext } from '@writ/sdk/verifier';
import { type PolicyContextInput, requestEnvironment } from '@writ/sdk/wire';
import { buildBundle } from '../src/policy/bundle.js';
import { buildContext } from '../src/policy/request.js';
import { AUDIENCE, type Harness, startHarness } from './helpers/harness.js';

// The server (token endpoint, AuthZEN, `writ policy test`) and the verifier SDK deciding from a bundle
// build the policy context with one builder; this proves they build the same record for the same
// inputs, edge cases included, starting from the bundle the server really serves.

/** The record, or the refusal: which field and what it says. */
function outcome(build: () => unknown): unknown {
  try {
    return { context: build() };
  } catch (err) {
    const e = err as { name: string; field?: string; message: string };
    return { refused: [e.name, e.field, e.message] };
  }
}

const CASES: PolicyContextInput[] = [
  {},
  { risk: 0 },
  { risk: 100 },
  { risk: 37, purpose: 'nightly-export', task_id: 't-1', scopes: ['reports:read'] },
  { risk: -1 },
  { risk: 101 },
  { risk: 50.5 },
  { risk: Number.NaN },
  { risk: '10' as unknown as number },
  { source_ip: '::ffff:10.20.3.4' },
  { source_ip: '::FFFF:192.168.0.1' },
  { source_ip: '::ffff:abcd' },
  { source_ip: '2001:db8::7' },
  { source_ip: '10.20.3.4' },
  { source_ip: 'localhost' },
  { source_ip: '::ffff:10.20.3' },
  { source_ip: '' },
  { environment: '' },
  { environment: 'staging' },
  {
    binding: 'dpop',
    token_class: 'batch',
    client_id: 'spiffe://test.writ/x',
    attestation: 'private_key_jwt',
  },
];

describe('one policy context on both sides', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('the server and the verifier build the identical context for the same inputs', () => {
    const bundle = buildBundle(h.writ.ctx, h.issuer, AUDIENCE);
    const now = h.writ.ctx.clock.now();
    for (const principalEnvironment of ['', 'prod']) {
      for (const given of CASES) {
        // As the AuthZEN endpoint does: the environment given, else the principal's, else the API's.
        const environment = requestEnvironment(
          given.environment,
          principalEnvironment,
          h.writ.ctx.policy.resource(AUDIENCE).environment,
        );
        const server = outcome(() => buildContext(now, { ...given, environment }));
        const sdk = outcome(() => bundleContext(now, bundle, given, principalEnvironment));
        assert.deepEqual(sdk, server, JSON.stringify({ given, principalEnvironment }));
      }
    }
    // And the edges land where the rule says on both.
    assert.deepEqual(
      outcome(() => buildContext(now, { risk: 101 })),
      {
        refused: ['PolicyContextError', 'risk', 'risk must be an integer from 0 to 100'],
      },
    );
    const mapped = buildContext(now, { source_ip: '::ffff:10.20.3.4' });
    assert.equal(mapped.source_ip, '10.20.3.4');
  });
});
