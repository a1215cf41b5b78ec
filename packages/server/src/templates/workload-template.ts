/**
 * A workload template (config `templates/`, docs/templates.md): admits a family of workloads by pattern
 * instead of one file each. Every SPIFFE ID under one of its prefixes that its trusted issuer vouches
 * for, and whose claims make its condition true, becomes a workload on first use, with owner,
 * environment, classes and attributes derived from the claims (CEL). The template itself has an owner
 * and an environment, like a class, and governance rules check them.
 */
export interface WorkloadTemplate {
  id: string;
  description?: string;
  /** Who answers for the template and every workload it admits (a person or team of `people/`). */
  owner: string;
  environment: string;
  /**
   * What proves the identities it admits, exactly one of: the trusted issuer (`issuers/`) whose tokens
   * it takes, or the SPIFFE trust domain whose X.509 bundle (`tls.spiffe_bundles`) its SVIDs chain to.
   */
  federation?: string;
  bundle?: string;
  /** SPIFFE ID prefixes it covers, each ending in `/`: `spiffe://td/ns/payments/sa/`. */
  prefixes: string[];
  /** CEL over `claims` (and `tables`): must be true for a workload to be admitted. */
  condition: string;
  /** The classes its workloads may hold; `derive.classes` picks among them. */
  classes: string[];
  /** Lookup tables the derivations read as `tables.<name>[key]`. */
  tables: Record<string, Record<string, string>>;
  derive: {
    /** CEL: the admitted workload's owner (a non-empty string). */
    owner: string;
    /** CEL: its environment (a short lowercase name). */
    environment: string;
    /** CEL: a list of class names, each one of `classes`; absent: all of `classes`. */
    classes?: string;
    /** Attribute name → CEL. */
    attributes: Record<string, string>;
  };
}

/** What a templated workload carries: the template that admitted it and the evidence it was admitted on. */
export interface TemplateAdmission {
  /** The template's id. */
  id: string;
  /** The trusted issuer whose token proved the identity (a federation template). */
  issuer?: string;
  /** The trust domain whose bundle the X.509-SVID chained to (an mTLS template). */
  bundle?: string;
  /** The token's own `sub`; for an SVID, its subject distinguished name. */
  subject: string;
  /**
   * The verified token's claims (never the token), or what the SVID says (`certificateClaims`): what
   * the template's rules are re-evaluated over.
   */
  claims: Record<string, unknown>;
  /** SHA-256 (base64url) of the token it was first admitted with; for an SVID its `x5t#S256`. */
  fingerprint: string;
  /** Milliseconds. */
  admittedAt: number;
}

/** Whether `id` is covered by `prefix` (prefixes end in `/`, so coverage follows path segments). */
export const covers = (prefix: string, id: string): boolean => id.startsWith(prefix);

/** Two prefix sets overlap when one prefix covers another: some identity would match both. */
export function overlappingPrefix(a: readonly string[], b: readonly string[]): [string, string] | undefined {
  for (const x of a) for (const y of b) if (x.startsWith(y) || y.startsWith(x)) return [x, y];
  return undefined;
}

/** Whether an admission came by the kind of proof the template takes now (same issuer, same bundle). */
export const sameSource = (
  t: Pick<WorkloadTemplate, 'federation' | 'bundle'>,
  a: TemplateAdmission,
): boolean =>
  t.federation !== undefined ? t.federation === a.issuer : t.bundle !== undefined && t.bundle === a.bundle;
