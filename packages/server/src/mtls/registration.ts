import { X509Certificate } from 'node:crypto';
import type { WorkloadFile } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { TlsClientAuthRule } from '../registry/workload.js';
import { certificatesFromPem, certificateThumbprint } from './certificate.js';
import { canonicalIp, parseDistinguishedName } from './x509-extensions.js';

/**
 * The mTLS part of a workload file (RFC 8705 §2): its `tls_client_auth` rule, and the thumbprints of
 * the self-signed certificates it registers, from `self_signed_certificates` (PEM) and from the `x5c`
 * of its JWKS keys. Errors name the file and the field.
 */
export function tlsRegistration(
  w: Pick<WorkloadFile, 'id' | 'tls_client_auth' | 'self_signed_certificates' | 'jwks'>,
  where: string,
): { tlsClientAuth?: TlsClientAuthRule; tlsCertificates?: string[] } {
  const out: { tlsClientAuth?: TlsClientAuthRule; tlsCertificates?: string[] } = {};
  const t = w.tls_client_auth;
  if (t) {
    if (t.x509_svid) out.tlsClientAuth = { rule: 'x509_svid', value: w.id };
    else if (t.subject_dn !== undefined) {
      if (!parseDistinguishedName(t.subject_dn))
        throw new ConfigError(where, 'tls_client_auth.subject_dn', 'is not an RFC 4514 distinguished name');
      out.tlsClientAuth = { rule: 'subject_dn', value: t.subject_dn };
    } else if (t.san_ip !== undefined) {
      const ip = canonicalIp(t.san_ip);
      if (!ip) throw new ConfigError(where, 'tls_client_auth.san_ip', 'is not an IP address');
      out.tlsClientAuth = { rule: 'san_ip', value: ip };
    } else if (t.san_dns !== undefined)
      out.tlsClientAuth = { rule: 'san_dns', value: t.san_dns.toLowerCase() };
    else if (t.san_uri !== undefined) out.tlsClientAuth = { rule: 'san_uri', value: t.san_uri };
    else if (t.san_email !== undefined) out.tlsClientAuth = { rule: 'san_email', value: t.san_email };
  }
  const thumbprints = new Set<string>();
  for (const [i, pem] of (w.self_signed_certificates ?? []).entries()) {
    let certs: X509Certificate[];
    try {
      certs = certificatesFromPem(pem);
    } catch (err) {
      throw new ConfigError(where, `self_signed_certificates.${i}`, (err as Error).message);
    }
    if (certs.length === 0)
      throw new ConfigError(where, `self_signed_certificates.${i}`, 'holds no PEM certificate');
    for (const c of certs) thumbprints.add(certificateThumbprint(c));
  }
  for (const [i, key] of (w.jwks?.keys ?? []).entries()) {
    const x5c = key['x5c'];
    if (x5c === undefined) continue;
    try {
      if (!Array.isArray(x5c) || typeof x5c[0] !== 'string')
        throw new Error('x5c must be a list of base64 DER');
      thumbprints.add(certificateThumbprint(new X509Certificate(Buffer.from(x5c[0], 'base64'))));
    } catch (err) {
      throw new ConfigError(where, `jwks.keys.${i}.x5c`, (err as Error).message);
    }
  }
  if (thumbprints.size > 0) out.tlsCertificates = [...thumbprints].sort();
  return out;
}
