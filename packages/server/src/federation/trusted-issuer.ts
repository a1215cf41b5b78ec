/**
 * An outside OIDC issuer (GitHub Actions, GitLab CI, Kubernetes, SPIRE…) whose signed tokens prove what
 * a workload is (config `issuers/`, presets already expanded). Claim rules are CEL expressions.
 */
export interface TrustedIssuer {
  name: string;
  description?: string;
  preset?: string;
  /** The exact `iss` its tokens carry. */
  issuer: string;
  /** Where its signing keys are published; absent when `jwks` holds them (air-gapped). */
  jwksUri?: string;
  /** Static public keys (from `jwks_file`). */
  jwks?: Record<string, unknown>[];
  /** `aud` must include one of these. */
  audiences: string[];
  algorithms: string[];
  /** Seconds: a token whose `iat` is older is refused. */
  maxTokenAge: number;
  /** Seconds of leeway on `exp`, `nbf` and `iat`. */
  clockSkew: number;
  /** Seconds between two fetches of the JWKS caused by an unknown `kid`. */
  jwksCooldown: number;
  /** Seconds a fetched JWKS is used before it is fetched again. */
  jwksMaxAge: number;
  /** CEL over `claims`: must be true. */
  condition: string;
  /** CEL over `claims`: the workload's SPIFFE ID. */
  subject: string;
  /** Name → CEL over `claims`: attributes for policy and audit. */
  attributes: Record<string, string>;
  /** When set, each CI run (these labels, all non-empty) gets its own task. */
  task?: { purpose: string; labels: Record<string, string> };
}
