import type { PublicJwk } from '../jose/jwk.js';
import type { TemplateAdmission } from '../templates/workload-template.js';

/** Only an `active` workload gets tokens. */
export type WorkloadState = 'active' | 'disabled' | 'quarantined';

export interface Workload {
  /** SPIFFE ID; also the OAuth `client_id`. */
  id: string;
  owner: string;
  environment: string;
  attributes: Record<string, string | number | boolean>;
  classes: string[];
  /** Registered public keys for `private_key_jwt`. */
  jwks: PublicJwk[];
  /** SHA-256 (hex) of a legacy client secret; only honoured when a class marks the exception. */
  secretSha256?: string;
  description?: string;
  /** RFC 8705 §2.1: how a CA-issued client certificate is matched to this workload. */
  tlsClientAuth?: TlsClientAuthRule;
  /** RFC 8705 §2.2: `x5t#S256` thumbprints of the self-signed certificates it registered. */
  tlsCertificates?: string[];
  /** Trusted issuers (config `issuers/`) whose tokens may prove this workload's identity. */
  federation?: string[];
  /**
   * The APIs (audiences) this workload serves as a resource server: it verifies their tokens, so it may
   * introspect them, report their use and fetch their policy bundles. Absent: it serves none.
   */
  serves?: string[];
  /** Set when a workload template admitted it on first use (not a file of `workloads/`). */
  template?: TemplateAdmission;
}

/**
 * A `tls_client_auth` registration (RFC 8705 §2.1.2): exactly one rule. `x509_svid`: a SPIFFE
 * X.509-SVID whose URI SAN is the workload's own id, chaining to its trust domain's bundle.
 */
export interface TlsClientAuthRule {
  rule: 'x509_svid' | 'subject_dn' | 'san_dns' | 'san_uri' | 'san_ip' | 'san_email';
  /** The expected value; for `x509_svid` the workload id. */
  value: string;
}

export interface WorkloadRecord extends Workload {
  state: WorkloadState;
  updatedAt: number;
}
