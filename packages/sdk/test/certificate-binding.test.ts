import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { certificateThumbprint, checkCertificateBinding } from '../src/verifier/certificate-binding.js';
import { RequestRefusal } from '../src/verifier/request.js';

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('checkCertificateBinding: refuses whatever is not the bound certificate', {
  skip: hasOpenssl ? false : 'the openssl CLI is not installed',
}, () => {
  let dir: string;
  let pem: string;
  let other: string;
  const make = (name: string): string => {
    const out = join(dir, `${name}.pem`);
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout'].concat([
        join(dir, `${name}.key`),
        '-out',
        out,
        '-days',
        '1',
        '-subj',
        `/CN=${name}`,
      ]),
      { stdio: 'ignore' },
    );
    return readFileSync(out, 'utf8');
  };
  const refusal = (expected: string, presented: Parameters<typeof checkCertificateBinding>[1]) => {
    try {
      checkCertificateBinding(expected, presented);
    } catch (err) {
      assert.ok(err instanceof RequestRefusal, String(err));
      assert.equal(err.code, 'invalid_token');
      return err.reason;
    }
    return 'accepted';
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-sdk-cert-'));
    pem = make('bound');
    other = make('other');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts the bound certificate as PEM, DER and X509Certificate', () => {
    const x = new X509Certificate(pem);
    const want = createHash('sha256').update(x.raw).digest('base64url');
    assert.equal(certificateThumbprint(pem), want);
    for (const p of [pem, x.raw, x]) assert.equal(refusal(want, p), 'accepted');
  });

  it('refuses no certificate, an unreadable one, another one, and a malformed expected thumbprint', () => {
    const want = certificateThumbprint(pem);
    assert.equal(refusal(want, undefined), 'mtls_certificate_missing');
    assert.equal(refusal(want, 'not a certificate'), 'mtls_certificate_unreadable');
    assert.equal(refusal(want, other), 'mtls_certificate_mismatch');
    // Lengths differ: refused, never a timingSafeEqual RangeError, never accepted.
    assert.equal(refusal(want.slice(0, 20), pem), 'mtls_certificate_mismatch');
    assert.equal(refusal('', pem), 'mtls_certificate_mismatch');
  });
});
