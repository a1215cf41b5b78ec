import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bundleContext, defaultAction, tokenContext } from '../src/verifier/local-policy/context.js';
import type { AccessTokenClaims } from '../src/wire/index.js';
import {
  buildPolicyContext,
  isRequestAction,
  normaliseAddress,
  PolicyContextError,
  policyRisk,
  REQUEST_ACTIONS,
  requestEnvironment,
} from '../src/wire/index.js';

// The one policy context builder the server and the verifier share (`@writ/sdk/wire`), and the
// verifier's part of it: what it knows from the token and the connection. That the server builds the
// same record for the same inputs is in packages/server/test/policy-context-parity.test.ts.

const NOW = Date.UTC(2026, 4, 6, 22, 30, 15); // a Wednesday

describe('buildPolicyContext', () => {
  it('fills every field: time from the clock (UTC), the rest "" or 0', () => {
    assert.deepEqual(buildPolicyContext(NOW), {
      now: Math.floor(NOW / 1000),
      hour: 22,
      weekday: 3,
      source_ip: '0.0.0.0',
      environment: '',
      task_id: '',
      purpose: '',
      attestation: '',
      binding: '',
      risk: 0,
      scopes: [],
      token_class: '',
      grant_type: '',
      client_id: '',
      federation: {},
    });
  });

  it('takes what is given over the defaults, and keeps fields only the defaults know', () => {
    const c = buildPolicyContext(
      NOW,
      { purpose: 'export', scopes: ['a', 'b'] },
      { purpose: 'ignored', risk: 50, future_field: 'kept', federation: { issuer: '' } },
    );
    assert.equal(c.purpose, 'export');
    assert.equal(c.risk, 0, 'risk is what is given (none: 0), never a default');
    assert.deepEqual(c.federation, { issuer: '' });
    assert.equal((c as unknown as Record<string, unknown>)['future_field'], 'kept');
  });

  it('does not share the scopes array or the federation record it was given', () => {
    const scopes = ['read'];
    const federation = { issuer: 'gh' };
    const c = buildPolicyContext(NOW, { scopes, federation });
    scopes.push('write');
    federation.issuer = 'other';
    assert.deepEqual(c.scopes, ['read']);
    assert.deepEqual(c.federation, { issuer: 'gh' });
  });

  it('accepts a risk from 0 to 100', () => {
    for (const risk of [0, 1, 99, 100]) assert.equal(buildPolicyContext(NOW, { risk }).risk, risk);
  });

  it('refuses a risk out of range or not an integer, naming the field', () => {
    for (const risk of [
      -1,
      101,
      12.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      1e21,
      '50' as unknown as number,
    ]) {
      assert.throws(
        () => buildPolicyContext(NOW, { risk }),
        (e: unknown) =>
          e instanceof PolicyContextError &&
          e.field === 'risk' &&
          e.code === 'invalid_policy_context' &&
          e.message === 'risk must be an integer from 0 to 100',
        `risk ${String(risk)}`,
      );
    }
    assert.throws(() => policyRisk(-0.5), PolicyContextError);
  });

  it('reads an IPv4-mapped IPv6 source as IPv4, in either case', () => {
    assert.equal(buildPolicyContext(NOW, { source_ip: '::ffff:10.1.2.3' }).source_ip, '10.1.2.3');
    assert.equal(buildPolicyContext(NOW, { source_ip: '::FFFF:10.1.2.3' }).source_ip, '10.1.2.3');
    assert.equal(buildPolicyContext(NOW, { source_ip: '2001:db8::1' }).source_ip, '2001:db8::1');
    // Not an IPv4-mapped address: kept as the IPv6 address it is.
    assert.equal(buildPolicyContext(NOW, { source_ip: '::ffff:abcd' }).source_ip, '::ffff:abcd');
  });

  it('refuses a source that is not an address', () => {
    for (const source_ip of ['', 'localhost', '10.0.0.256', '::ffff:10.0.0', '10.0.0.1/8', '::ffff:'])
      assert.throws(
        () => buildPolicyContext(NOW, { source_ip }),
        (e: unknown) => e instanceof PolicyContextError && e.field === 'source_ip',
        source_ip,
      );
  });
});

describe('normaliseAddress', () => {
  it('is undefined for what is not an address', () => {
    assert.equal(normaliseAddress('not-an-ip'), undefined);
    assert.equal(normaliseAddress('::ffff:999.1.1.1'), undefined);
    assert.equal(normaliseAddress('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(normaliseAddress('192.0.2.1'), '192.0.2.1');
  });
});

describe('request actions and environment', () => {
  it('are the four request-time actions of the schema', () => {
    assert.deepEqual([...REQUEST_ACTIONS], ['read', 'write', 'export', 'delete']);
    assert.equal(isRequestAction('read'), true);
    assert.equal(isRequestAction('issue'), false, 'a token action is not a request action');
  });

  it('takes the environment given, else the principal’s, else the API’s ("" is not given)', () => {
    assert.equal(requestEnvironment('staging', 'prod', 'dev'), 'staging');
    assert.equal(requestEnvironment(undefined, 'prod', 'dev'), 'prod');
    assert.equal(requestEnvironment('', 'prod', 'dev'), 'prod');
    assert.equal(requestEnvironment('', '', 'dev'), 'dev');
  });
});

describe('the verifier’s context', () => {
  const claims: AccessTokenClaims = {
    iss: 'https://writ.test',
    sub: 'spiffe://t/w',
    aud: 'https://api.test',
    client_id: 'spiffe://t/holder',
    scope: 'read  write',
    iat: 1,
    nbf: 1,
    exp: 2,
    jti: 'j',
    cls: 'batch',
    tid: 'task-1',
    cnf: { jkt: 'thumb' },
  };

  it('takes scopes, class, task, holder and binding from the token', () => {
    assert.deepEqual(tokenContext(claims, undefined), {
      scopes: ['read', 'write'],
      token_class: 'batch',
      task_id: 'task-1',
      client_id: 'spiffe://t/holder',
      binding: 'dpop',
    });
    const { cnf: _cnf, tid: _tid, ...bearer } = claims;
    assert.equal(tokenContext(bearer, undefined).binding, 'bearer');
    assert.equal(tokenContext(bearer, undefined).task_id, '');
    assert.equal(tokenContext({ ...bearer, cnf: { 'x5t#S256': 'x' } }, undefined).binding, 'mtls');
  });

  it('takes the peer address when it is one (IPv4-mapped as IPv4), and leaves it out otherwise', () => {
    assert.equal(tokenContext(claims, '::ffff:10.9.8.7').source_ip, '10.9.8.7');
    assert.equal('source_ip' in tokenContext(claims, 'unix-socket'), false);
  });

  it('maps HTTP methods to actions', () => {
    assert.deepEqual(['GET', 'head', 'OPTIONS', 'DELETE', 'POST', 'PATCH'].map(defaultAction), [
      'read',
      'read',
      'read',
      'delete',
      'write',
      'write',
    ]);
  });

  it('builds from the bundle’s defaults, the environment falling back to the principal’s then the API’s', () => {
    const bundle = {
      context_defaults: { risk: 0, federation: { issuer: '', subject: '' } },
      resource: {
        id: 'https://api.test',
        sensitivity: 'internal',
        environment: 'prod',
        owner: 'o',
        version: 1,
      },
    };
    const c = bundleContext(NOW, bundle, { purpose: 'p' }, '');
    assert.equal(c.environment, 'prod');
    assert.deepEqual(c.federation, { issuer: '', subject: '' });
    assert.equal(bundleContext(NOW, bundle, {}, 'staging').environment, 'staging');
    assert.throws(() => bundleContext(NOW, bundle, { risk: 101 }, ''), PolicyContextError);
  });
});
