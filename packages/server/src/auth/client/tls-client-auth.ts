import { timingSafeEqual, type X509Certificate } from 'node:crypto';
import type { RefusalReason } from '@writ/sdk/wire';
import { ClientAuthMethod, type ClientAuthMethodValue } from '@writ/sdk/wire';
import type { RequestInfo, WritContext } from '../../context.js';
import { invalidClient, type OAuthError } from '../../errors.js';
import {
  CLIENT_AUTH_EKU,
  certificateThumbprint,
  chainProblem,
  type PresentedCertificate,
  validityProblem,
} from '../../mtls/certificate.js';
import type { ClientCertificateTrust } from '../../mtls/trust.js';
import {
  type CertificateFacts,
  canonicalIp,
  certificateFacts,
  parseDistinguishedName,
  sameName,
} from '../../mtls/x509-extensions.js';
import type { TokenClass } from '../../registry/token-class.js';
import type { TlsClientAuthRule, WorkloadRecord } from '../../registry/workload.js';
import type { ForwardedCertificateRefusal } from '../../request/client-certificate.js';

/** What authentication by certificate needs from the request and the server. */
export interface CertificateAuthInput {
  /** The certificate of the connection, or one a trusted proxy forwarded. */
  presented: PresentedCertificate | undefined;
  /** A forwarded certificate was sent but not believed (`forwarded_certificate_untrusted_source`, …). */
  ignoredForwarded: ForwardedCertificateRefusal | undefined;
  trust: ClientCertificateTrust;
}

export interface CertificateAuthentication {
  method: ClientAuthMethodValue;
  /** RFC 8705 §3.1 `x5t#S256` of the certificate: what certificate-bound tokens carry. */
  thumbprint: string;
  source: PresentedCertificate['source'];
}

const refuse = (reason: RefusalReason, extra: Record<string, unknown> = {}): OAuthError =>
  invalidClient('client certificate authentication failed', { reason, ...extra });

/**
 * RFC 8705 §2: authenticates `workload` by the certificate it presented. A certificate it registered
 * itself (`self_signed_tls_client_auth`, §2.2) is matched by SHA-256 thumbprint; otherwise the
 * certificate must chain to the configured CAs, or to the SPIFFE bundle of the workload's own trust
 * domain, and match its registered rule (`tls_client_auth`, §2.1). Either way it must be valid at
 * `nowMs`, fit for client authentication (extended key usage), and for signatures (key usage).
 */
export function authenticateCertificate(
  workload: WorkloadRecord,
  presented: PresentedCertificate,
  trust: ClientCertificateTrust,
  nowMs: number,
): CertificateAuthentication {
  const leaf = presented.leaf;
  const thumbprint = certificateThumbprint(leaf);
  const audit = { certificate: thumbprint, certificate_source: presented.source };
  if (!workload.tlsClientAuth && !workload.tlsCertificates) throw refuse('mtls_not_registered', audit);
  const invalid = validityProblem(leaf, nowMs);
  if (invalid) throw refuse(invalid, audit);
  let facts: CertificateFacts;
  try {
    facts = certificateFacts(leaf.raw);
  } catch {
    throw refuse('certificate_malformed', audit);
  }
  const eku = extendedKeyUsage(leaf);
  if (eku !== undefined && !eku.includes(CLIENT_AUTH_EKU)) throw refuse('certificate_eku', audit);
  if (facts.keyUsage && !facts.keyUsage.digitalSignature) throw refuse('certificate_key_usage', audit);

  if (workload.tlsCertificates && registered(thumbprint, workload.tlsCertificates))
    return { method: ClientAuthMethod.selfSignedTlsClientAuth, thumbprint, source: presented.source };
  const rule = workload.tlsClientAuth;
  if (!rule) throw refuse('certificate_not_registered', audit);

  const anchors =
    rule.rule === 'x509_svid' ? (trust.spiffeBundles.get(trustDomain(workload.id)) ?? []) : trust.cas;
  if (anchors.length === 0) throw refuse('no_trusted_ca', audit);
  const chain = chainProblem(presented, anchors, nowMs);
  if (chain) throw refuse(chain === 'untrusted' ? 'certificate_untrusted' : `certificate_${chain}`, audit);
  // A CA-issued client certificate must say it is one: an end entity, for client authentication.
  if (leaf.ca) throw refuse('certificate_is_ca', audit);
  if (eku === undefined) throw refuse('certificate_eku', audit);
  // X.509-SVID §4.3: a leaf SVID has digitalSignature and must not sign certificates or CRLs.
  if (rule.rule === 'x509_svid' && (!facts.keyUsage?.digitalSignature || facts.keyUsage.keyCertSign))
    throw refuse('certificate_key_usage', audit);
  const mismatch = identityProblem(rule, facts);
  if (mismatch) throw refuse('certificate_identity_mismatch', { ...audit, ...mismatch });
  return { method: ClientAuthMethod.tlsClientAuth, thumbprint, source: presented.source };
}

/**
 * Extended key usage OIDs, or undefined when the extension is absent. Node 20 calls them `keyUsage`;
 * later versions add `extKeyUsage` for the same list.
 */
function extendedKeyUsage(cert: X509Certificate): string[] | undefined {
  const k = (cert as X509Certificate & { extKeyUsage?: string[] }).extKeyUsage ?? cert.keyUsage;
  return Array.isArray(k) ? k : undefined;
}

/** Compares with every registered thumbprint, in constant time over equal-length digests. */
function registered(thumbprint: string, list: readonly string[]): boolean {
  const got = Buffer.from(thumbprint, 'base64url');
  let found = false;
  for (const t of list) {
    const want = Buffer.from(t, 'base64url');
    if (want.length === got.length && timingSafeEqual(want, got)) found = true;
  }
  return found;
}

const trustDomain = (spiffeId: string): string => spiffeId.slice('spiffe://'.length).split('/')[0]!;

/** Why the certificate names someone else, as audit detail (no secrets: names only). */
function identityProblem(
  rule: TlsClientAuthRule,
  facts: CertificateFacts,
): Record<string, unknown> | undefined {
  const { san } = facts;
  switch (rule.rule) {
    case 'x509_svid':
      // SPIFFE X.509-SVID §2: exactly one URI SAN, the SPIFFE ID.
      if (san.uri.length === 1 && san.uri[0] === rule.value) return undefined;
      return { presented_uri_san: san.uri.slice(0, 4) };
    case 'subject_dn': {
      const want = parseDistinguishedName(rule.value);
      return want && sameName(want, facts.subject)
        ? undefined
        : {
            presented_subject: facts.subject
              .map((r) => r.join('+'))
              .reverse()
              .join(','),
          };
    }
    case 'san_dns':
      return san.dns.some((d) => d.toLowerCase() === rule.value)
        ? undefined
        : { presented_dns_san: san.dns.slice(0, 4) };
    case 'san_uri':
      return san.uri.includes(rule.value) ? undefined : { presented_uri_san: san.uri.slice(0, 4) };
    case 'san_ip':
      return san.ip.some((ip) => canonicalIp(ip) === rule.value)
        ? undefined
        : { presented_ip_san: san.ip.slice(0, 4) };
    case 'san_email':
      return san.email.includes(rule.value) ? undefined : { presented_email_san: san.email.slice(0, 4) };
  }
}

/** The certificate part of a request for `authenticateClient`; undefined when mTLS is not configured. */
export function certificateInput(
  ctx: Pick<WritContext, 'mtls'>,
  req: Pick<RequestInfo, 'clientCertificate' | 'ignoredForwardedCertificate'>,
): CertificateAuthInput | undefined {
  if (!ctx.mtls.trust.enabled) return undefined;
  return {
    presented: req.clientCertificate,
    ignoredForwarded: req.ignoredForwardedCertificate,
    trust: ctx.mtls.trust,
  };
}

/**
 * RFC 8705 §3: the `x5t#S256` a token of `cls` is bound to: the certificate the client authenticated
 * with, for a `binding: mtls` class; undefined otherwise. A `binding: mtls` class with no certificate
 * is refused by `issueAccessToken`, the one check every grant passes through.
 */
export function certificateBinding(
  cls: Pick<TokenClass, 'binding'>,
  client: { certificate?: { thumbprint: string } | undefined },
): string | undefined {
  return cls.binding === 'mtls' ? client.certificate?.thumbprint : undefined;
}
