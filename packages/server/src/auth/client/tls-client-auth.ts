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

/**
 * The one answer to a certificate that does not authenticate this `client_id` for a reason the registry
 * decides (no such client, no certificate registered, not its CA, not its name): which it was is for
 * the audit log, so the answer cannot tell anyone which client ids exist or how they authenticate.
 */
const notThisClient = (reason: RefusalReason, extra: Record<string, unknown>): OAuthError =>
  invalidClient(
    'client certificate authentication failed: the certificate is not one registered for this client_id, does not chain to a CA trusted for it, or does not name it as its registration requires',
    { reason, ...extra },
  );

/** A refusal for what the certificate itself is, whoever it is presented for: safe to say precisely. */
const unfit = (reason: RefusalReason, description: string, extra: Record<string, unknown>): OAuthError =>
  invalidClient(`client certificate ${description}`, { reason, ...extra });

/**
 * RFC 8705 §2: authenticates `workload` (undefined: no such client) by the certificate it presented.
 * First what the certificate itself is (valid now, fit for client authentication and for signatures),
 * which is said precisely. Then what the registry decides, answered alike: a certificate it registered
 * itself (`self_signed_tls_client_auth`, §2.2) is matched by SHA-256 thumbprint; otherwise the
 * certificate must chain to the configured CAs, or to the SPIFFE bundle of the workload's own trust
 * domain, and match its registered rule (`tls_client_auth`, §2.1).
 */
export function authenticateCertificate(
  workload: WorkloadRecord | undefined,
  presented: PresentedCertificate,
  trust: ClientCertificateTrust,
  nowMs: number,
): CertificateAuthentication {
  const leaf = presented.leaf;
  const thumbprint = certificateThumbprint(leaf);
  const audit = { certificate: thumbprint, certificate_source: presented.source };
  const invalid = validityProblem(leaf, nowMs);
  if (invalid === 'certificate_validity_unreadable')
    throw unfit(invalid, 'validity dates cannot be read', audit);
  if (invalid === 'certificate_not_yet_valid')
    throw unfit(invalid, `is not valid until ${new Date(leaf.validFrom).toISOString()}`, audit);
  if (invalid === 'certificate_expired')
    throw unfit(invalid, `expired at ${new Date(leaf.validTo).toISOString()}`, audit);
  let facts: CertificateFacts;
  try {
    facts = certificateFacts(leaf.raw);
  } catch {
    throw unfit('certificate_malformed', 'cannot be parsed (DER X.509 expected)', audit);
  }
  const eku = extendedKeyUsage(leaf);
  if (eku !== undefined && !eku.includes(CLIENT_AUTH_EKU))
    throw unfit('certificate_eku', 'extended key usage does not include clientAuth', audit);
  if (facts.keyUsage && !facts.keyUsage.digitalSignature)
    throw unfit('certificate_key_usage', 'key usage does not include digitalSignature', audit);

  if (!workload) throw notThisClient('unknown_client', audit);
  if (!workload.tlsClientAuth && !workload.tlsCertificates) throw notThisClient('mtls_not_registered', audit);
  if (workload.tlsCertificates && registered(thumbprint, workload.tlsCertificates))
    return { method: ClientAuthMethod.selfSignedTlsClientAuth, thumbprint, source: presented.source };
  const rule = workload.tlsClientAuth;
  if (!rule) throw notThisClient('certificate_not_registered', audit);

  const anchors =
    rule.rule === 'x509_svid' ? (trust.spiffeBundles.get(trustDomain(workload.id)) ?? []) : trust.cas;
  if (anchors.length === 0) throw notThisClient('no_trusted_ca', audit);
  const chain = chainProblem(presented, anchors, nowMs);
  if (chain)
    throw notThisClient(chain === 'untrusted' ? 'certificate_untrusted' : `certificate_${chain}`, audit);
  // A CA-issued client certificate must say it is one: an end entity, for client authentication.
  if (leaf.ca) throw notThisClient('certificate_is_ca', audit);
  if (eku === undefined) throw notThisClient('certificate_eku', audit);
  // X.509-SVID §4.3: a leaf SVID has digitalSignature and must not sign certificates or CRLs.
  if (rule.rule === 'x509_svid' && (!facts.keyUsage?.digitalSignature || facts.keyUsage.keyCertSign))
    throw notThisClient('certificate_key_usage', audit);
  const mismatch = identityProblem(rule, facts);
  if (mismatch) throw notThisClient('certificate_identity_mismatch', { ...audit, ...mismatch });
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
