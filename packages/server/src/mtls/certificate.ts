import { X509Certificate } from 'node:crypto';

/** A client certificate as it reached Writ (RFC 8705): leaf first, then what the client sent along. */
export interface PresentedCertificate {
  leaf: X509Certificate;
  /** Intermediates the client (or the proxy) sent after the leaf; never trusted by themselves. */
  intermediates: X509Certificate[];
  /** The TLS handshake of this connection, or a header set by a trusted TLS-terminating proxy. */
  source: 'tls' | 'forwarded';
}

export const CLIENT_AUTH_EKU = '1.3.6.1.5.5.7.3.2';
const MAX_CHAIN = 8;

/** RFC 8705 §3.1 `x5t#S256`: the one definition, shared with the verifier SDK. */
export { certificateThumbprint } from '@writ/sdk/verifier';

/** Every certificate in a PEM text, in order (at most eight); throws when one does not parse. */
export function certificatesFromPem(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length > MAX_CHAIN) throw new Error(`more than ${MAX_CHAIN} certificates`);
  return blocks.map((b) => {
    // Proxies that put PEM in a header often turn its line breaks into spaces or tabs.
    const body = b
      .slice('-----BEGIN CERTIFICATE-----'.length, -'-----END CERTIFICATE-----'.length)
      .replace(/\s+/g, '');
    return new X509Certificate(Buffer.from(body, 'base64'));
  });
}

/** Milliseconds; `validFrom`/`validTo` are node's `Mmm dd hh:mm:ss yyyy GMT` strings. */
export function validity(cert: X509Certificate): { from: number; to: number } {
  return { from: Date.parse(cert.validFrom), to: Date.parse(cert.validTo) };
}

/** Why a certificate is not valid at `nowMs`, or undefined when it is. */
export function validityProblem(
  cert: X509Certificate,
  nowMs: number,
): 'certificate_validity_unreadable' | 'certificate_not_yet_valid' | 'certificate_expired' | undefined {
  const { from, to } = validity(cert);
  if (!Number.isFinite(from) || !Number.isFinite(to)) return 'certificate_validity_unreadable';
  if (nowMs < from) return 'certificate_not_yet_valid';
  if (nowMs > to) return 'certificate_expired';
  return undefined;
}

/**
 * Verifies that `presented` chains to one of `anchors` at `nowMs`: each link is issued by the next
 * (names and key identifiers, then the signature), every intermediate is a CA and valid, and the path
 * ends at a configured anchor. Intermediates come only from what was presented; trust only from
 * `anchors`. Returns undefined when it chains, else the reason.
 */
export function chainProblem(
  presented: PresentedCertificate,
  anchors: readonly X509Certificate[],
  nowMs: number,
): 'ca_not_valid' | 'untrusted' | 'intermediate_not_valid' | 'chain_too_long' | undefined {
  let current = presented.leaf;
  const pool = presented.intermediates.slice(0, MAX_CHAIN);
  for (let depth = 0; depth <= MAX_CHAIN; depth++) {
    const anchor = anchors.find((a) => issues(a, current));
    if (anchor) return validityProblem(anchor, nowMs) === undefined ? undefined : 'ca_not_valid';
    const next = pool.find((c) => c.ca && c !== current && issues(c, current));
    if (!next) return 'untrusted';
    if (validityProblem(next, nowMs) !== undefined) return 'intermediate_not_valid';
    current = next;
  }
  return 'chain_too_long';
}

function issues(issuer: X509Certificate, subject: X509Certificate): boolean {
  try {
    return subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
  } catch {
    return false;
  }
}
