import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chainProblem, type PresentedCertificate } from '../src/mtls/certificate.js';
import { parseForwardedCertificate } from '../src/request/client-certificate.js';
import {
  hasOpenssl,
  makeCa,
  makeIntermediate,
  makeLeaf,
  type TestCertificate,
} from './helpers/certificates.js';

const DAY = 86_400_000;

describe('chainProblem: trust comes from the anchors only', {
  skip: hasOpenssl() ? false : 'the openssl CLI is not installed',
}, () => {
  let dir: string;
  const c: Record<string, TestCertificate> = {};
  const presented = (leaf: TestCertificate, chain: TestCertificate[] = []): PresentedCertificate => ({
    leaf: leaf.x509,
    intermediates: chain.map((x) => x.x509),
    source: 'tls',
  });

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-chain-'));
    c['root'] = makeCa(dir, 'root', '/CN=Root', 2);
    c['rogueRoot'] = makeCa(dir, 'rogue-root', '/CN=Root', 2);
    c['intermediate'] = makeIntermediate(dir, 'intermediate', c['root']);
    c['viaIntermediate'] = makeLeaf(dir, 'via-intermediate', c['intermediate']);
    c['direct'] = makeLeaf(dir, 'direct', c['root']);
    c['rogueLeaf'] = makeLeaf(dir, 'rogue-leaf', c['rogueRoot']);
    // An end entity (CA:FALSE) used as if it were an intermediate.
    c['notCa'] = makeLeaf(dir, 'not-ca', c['root']);
    c['underNotCa'] = makeLeaf(dir, 'under-not-ca', c['notCa']);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a leaf of the anchor, directly or through a presented intermediate', () => {
    const now = Date.now();
    assert.equal(chainProblem(presented(c['direct']!), [c['root']!.x509], now), undefined);
    assert.equal(
      chainProblem(presented(c['viaIntermediate']!, [c['intermediate']!]), [c['root']!.x509], now),
      undefined,
    );
  });

  it('never trusts a root the client sends along, even one with the anchor name', () => {
    const now = Date.now();
    assert.equal(
      chainProblem(presented(c['rogueLeaf']!, [c['rogueRoot']!]), [c['root']!.x509], now),
      'untrusted',
    );
  });

  it('refuses a missing intermediate and an end entity posing as one', () => {
    const now = Date.now();
    assert.equal(chainProblem(presented(c['viaIntermediate']!), [c['root']!.x509], now), 'untrusted');
    assert.equal(
      chainProblem(presented(c['underNotCa']!, [c['notCa']!]), [c['root']!.x509], now),
      'untrusted',
    );
  });

  it('refuses an expired intermediate and an expired anchor', () => {
    const later = Date.now() + 1.5 * DAY;
    assert.equal(
      chainProblem(presented(c['viaIntermediate']!, [c['intermediate']!]), [c['root']!.x509], later),
      'intermediate_not_valid',
    );
    assert.equal(
      chainProblem(presented(c['direct']!), [c['root']!.x509], Date.now() + 3 * DAY),
      'ca_not_valid',
    );
  });

  it('a forwarded header with more than eight certificates is not believed', () => {
    const pem = Array.from({ length: 9 }, () => c['direct']!.pem).join('');
    assert.equal(parseForwardedCertificate(encodeURIComponent(pem)), undefined);
    assert.ok(parseForwardedCertificate(encodeURIComponent(c['direct']!.pem)));
  });
});
