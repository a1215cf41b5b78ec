import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { BlockList } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyRequest } from 'fastify';
import type { ClientCertificateTrust } from '../src/mtls/trust.js';
import { sightCertificate } from '../src/request/client-certificate.js';
import { hasOpenssl, makeLeaf, type TestCertificate } from './helpers/certificates.js';

describe('sightCertificate: a refused forwarded header from a trusted proxy is no credential', {
  skip: hasOpenssl() ? false : 'the openssl CLI is not installed',
}, () => {
  let dir: string;
  let proxyCert: TestCertificate;
  let clientCert: TestCertificate;
  const proxies = new BlockList();
  proxies.addAddress('10.0.0.1');
  const trust: ClientCertificateTrust = {
    cas: [],
    spiffeBundles: new Map(),
    forwardedHeader: 'x-client-cert',
    proxies,
    enabled: true,
  };
  /** A request over a TLS connection whose peer (the proxy, or a client) presented `peer`. */
  const request = (remote: string, headers: string[], peer: TestCertificate) => {
    const socket = {
      encrypted: true,
      remoteAddress: remote,
      getPeerCertificate: () => ({ raw: peer.x509.raw, issuerCertificate: undefined }),
    };
    return { socket, raw: { socket, rawHeaders: headers } } as unknown as FastifyRequest;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-forwarded-'));
    proxyCert = makeLeaf(dir, 'proxy', undefined);
    clientCert = makeLeaf(dir, 'client', undefined);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('takes the forwarded certificate from a trusted proxy', () => {
    const s = sightCertificate(
      request('10.0.0.1', ['X-Client-Cert', encodeURIComponent(clientCert.pem)], proxyCert),
      trust,
    );
    assert.equal(s.certificate?.source, 'forwarded');
    assert.equal(s.certificate?.leaf.fingerprint256, clientCert.x509.fingerprint256);
  });

  it('a malformed or repeated header from the proxy never falls back to the proxy certificate', () => {
    const malformed = sightCertificate(request('10.0.0.1', ['x-client-cert', 'garbage!'], proxyCert), trust);
    assert.equal(malformed.ignoredForwarded, 'forwarded_certificate_malformed');
    assert.equal(malformed.certificate, undefined);
    const pem = encodeURIComponent(clientCert.pem);
    const repeated = sightCertificate(
      request('::ffff:10.0.0.1', ['x-client-cert', pem, 'x-client-cert', pem], proxyCert),
      trust,
    );
    assert.equal(repeated.ignoredForwarded, 'forwarded_certificate_repeated');
    assert.equal(repeated.certificate, undefined);
  });

  it("a request from a trusted proxy with no header has no certificate: the proxy's own never stands in", () => {
    const s = sightCertificate(request('10.0.0.1', ['user-agent', 'test'], proxyCert), trust);
    assert.equal(s.certificate, undefined);
    assert.equal(s.ignoredForwarded, undefined);
  });

  it('a header from an untrusted address is ignored: the connection certificate is the credential', () => {
    const s = sightCertificate(
      request('192.0.2.7', ['x-client-cert', encodeURIComponent(proxyCert.pem)], clientCert),
      trust,
    );
    assert.equal(s.ignoredForwarded, 'forwarded_certificate_untrusted_source');
    assert.equal(s.certificate?.source, 'tls');
    assert.equal(s.certificate?.leaf.fingerprint256, clientCert.x509.fingerprint256);
  });
});
