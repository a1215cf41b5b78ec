import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { certificateFacts, parseDistinguishedName, sameName } from '../src/mtls/x509-extensions.js';
import { hasOpenssl, makeLeaf } from './helpers/certificates.js';

describe('subject_dn matching: a value holding "+" is not a multi-valued RDN', () => {
  it('compares attribute by attribute, never joined strings', () => {
    const single = [['CN=a+O=b']];
    assert.equal(sameName(single, parseDistinguishedName('CN=a+O=b')!), false);
    assert.equal(sameName(parseDistinguishedName('CN=a+O=b')!, single), false);
    assert.ok(sameName(single, parseDistinguishedName('CN=a\\+O=b')!));
    assert.ok(sameName(parseDistinguishedName('O=b+CN=a')!, parseDistinguishedName('CN=a+O=b')!));
    assert.equal(sameName([['CN=a']], [['CN=a'], []]), false);
  });

  it('a certificate whose CN is "svc+O=Corp" does not match the rule CN=svc+O=Corp', {
    skip: hasOpenssl() ? false : 'the openssl CLI is not installed',
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'writ-names-'));
    try {
      const leaf = makeLeaf(dir, 'plus', undefined, { subject: '/CN=svc\\+O=Corp' });
      const facts = certificateFacts(leaf.x509.raw);
      assert.deepEqual(facts.subject, [['CN=svc+O=Corp']]);
      assert.equal(sameName(parseDistinguishedName('CN=svc+O=Corp')!, facts.subject), false);
      assert.ok(sameName(parseDistinguishedName('CN=svc\\+O=Corp')!, facts.subject));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
