import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import { RequestRefusal } from './request-refusal.js';

/**
 * The client certificate of the request a resource server verifies (RFC 8705 §3): the peer
 * certificate of its TLS connection, as an X509Certificate, DER bytes or PEM text.
 */
export type ClientCertificateInput = X509Certificate | Uint8Array | string;

/** RFC 8705 §3.1 `x5t#S256` of a certificate: base64url SHA-256 of its DER. */
export function certificateThumbprint(cert: ClientCertificateInput): string {
  return createHash('sha256').update(derOf(cert)).digest('base64url');
}

function derOf(cert: ClientCertificateInput): Uint8Array {
  if (cert instanceof X509Certificate) return cert.raw;
  if (typeof cert === 'string') return new X509Certificate(cert).raw;
  return cert;
}

/**
 * RFC 8705 §3: a certificate-bound token is accepted only over a connection whose client presented
 * the certificate it is bound to. Refuses (`invalid_token`) when none was presented or another was.
 */
export function checkCertificateBinding(
  expected: string,
  presented: ClientCertificateInput | undefined,
): void {
  if (presented === undefined)
    throw new RequestRefusal(
      'invalid_token',
      'mtls_certificate_missing',
      'the token is bound to a client certificate; present it over mutual TLS',
    );
  let got: Buffer;
  try {
    got = Buffer.from(certificateThumbprint(presented), 'base64url');
  } catch {
    throw new RequestRefusal(
      'invalid_token',
      'mtls_certificate_unreadable',
      'the client certificate is unreadable',
    );
  }
  const want = Buffer.from(expected, 'base64url');
  if (want.length !== got.length || !timingSafeEqual(want, got))
    throw new RequestRefusal(
      'invalid_token',
      'mtls_certificate_mismatch',
      'the token is bound to another client certificate',
    );
}
