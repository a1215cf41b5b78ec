import { z } from 'zod';
import { PERSON_ID, PERSON_ID_RULE } from '../people/person.js';
import { parseDuration } from './duration.js';
import { spiffeIdProblem } from './spiffe.js';

/** Schemas of the config-as-code files. Field names on disk are snake_case. */

const DURATION = 'must be a positive duration such as 30s, 15m or 1h';
export const duration = z.union([z.string(), z.number()], { error: DURATION }).transform((v, ctx) => {
  const s = parseDuration(v);
  if (s === undefined || s <= 0) {
    ctx.addIssue({ code: 'custom', message: DURATION });
    return z.NEVER;
  }
  return s;
});

const name = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,62}$/,
    'must be 1-63 lowercase letters, digits, ".", "-" or "_", starting with a letter or digit',
  );

/** A workload's environment, and the environment `networks.yaml` maps a range to. */
const environment = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be a short lowercase name such as dev, staging or prod');

const scope = z
  .string()
  .regex(
    /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/,
    'must be a scope token (RFC 6749 §3.3), at most 128 characters',
  );

const audience = z
  .string()
  .min(1)
  .max(512)
  .refine((v) => {
    try {
      return new URL(v).hash === '';
    } catch {
      return false;
    }
  }, 'must be an absolute URI without a fragment (RFC 8707 §2)');

export const classFileSchema = z
  .object({
    name,
    description: z.string().max(1000).optional(),
    max_ttl: duration,
    default_ttl: duration.optional(),
    audiences: z.array(audience).min(1).max(100),
    scopes: z.array(scope).min(1).max(200),
    default_scopes: z.array(scope).max(200).optional(),
    binding: z.enum(['dpop', 'mtls', 'bearer']).default('dpop'),
    renewal: z.object({ max_lifetime: duration }).strict().optional(),
    delegation: z
      .object({
        actors: z
          .array(
            z.string().superRefine((v, ctx) => {
              const problem = spiffeIdProblem(v);
              if (problem) ctx.addIssue({ code: 'custom', message: `SPIFFE ID ${problem}` });
            }),
          )
          .max(100),
      })
      .strict()
      .optional(),
    /** Moved to `exceptions/` (docs/governance.md): read only to say exactly what to write there. */
    legacy_client_secret: z
      .object({
        justification: z.string().min(10).max(1000),
        owner: z.string().min(1).max(200),
        expires: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD'),
      })
      .strict()
      .optional(),
  })
  .strict();

/** RFC 8705 §2.1.2: exactly one way to match a CA-issued certificate to the workload. */
const tlsClientAuth = z
  .object({
    x509_svid: z.literal(true).optional(),
    subject_dn: z.string().min(1).max(1024).optional(),
    san_dns: z.string().min(1).max(253).optional(),
    san_uri: z.string().min(1).max(2048).optional(),
    san_ip: z.string().min(1).max(64).optional(),
    san_email: z.string().min(1).max(320).optional(),
  })
  .strict()
  .refine((o) => Object.values(o).filter((v) => v !== undefined).length === 1, {
    message: 'give exactly one of x509_svid, subject_dn, san_dns, san_uri, san_ip, san_email',
  });

const attributeValue = z.union([z.string().max(512), z.number(), z.boolean()]);

export const workloadFileSchema = z
  .object({
    id: z.string().superRefine((v, ctx) => {
      const problem = spiffeIdProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: `SPIFFE ID ${problem}` });
    }),
    owner: z.string().min(1).max(200),
    environment,
    description: z.string().max(1000).optional(),
    attributes: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/), attributeValue).optional(),
    classes: z.array(name).min(1).max(50),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).max(10) }).optional(),
    client_secret_sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'must be the lowercase hex SHA-256 of the secret')
      .optional(),
    federation: z.array(name).max(20).optional(),
    tls_client_auth: tlsClientAuth.optional(),
    self_signed_certificates: z.array(z.string().min(1).max(65_536)).max(10).optional(),
    /** The APIs this workload verifies tokens for (a resource server's verifier). */
    serves: z.array(audience).min(1).max(100).optional(),
  })
  .strict();

export const operatorFileSchema = z
  .object({
    name,
    /** The person (`people/`, or provisioned over SCIM) who holds this operator key. */
    person: z.string().regex(PERSON_ID, PERSON_ID_RULE).optional(),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(10) }).optional(),
  })
  .strict();

/** Asymmetric JWS algorithms an outside issuer may use (RFC 8725 §3.1: never `none` or HMAC). */
export const FEDERATION_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

const url = z
  .string()
  .max(512)
  .refine((v) => URL.canParse(v), 'must be an absolute URL');

/** `issuers/*.yaml`: an outside OIDC issuer whose tokens prove workload identity (docs/federation.md). */
export const issuerFileSchema = z
  .object({
    name,
    description: z.string().max(1000).optional(),
    preset: z.enum(['github-actions', 'gitlab-ci', 'kubernetes', 'spire']).optional(),
    issuer: url.optional(),
    jwks_uri: url.optional(),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) }).optional(),
    audience: z
      .union([z.string().min(1).max(512), z.array(z.string().min(1).max(512)).min(1).max(10)])
      .optional(),
    algorithms: z.array(z.enum(FEDERATION_ALGORITHMS)).min(1).optional(),
    max_token_age: duration.optional(),
    clock_skew: z.union([z.string(), z.number()]).optional(),
    jwks_cooldown: duration.optional(),
    jwks_max_age: duration.optional(),
    trust_domain: z
      .string()
      .regex(/^[a-z0-9._-]{1,255}$/, 'must be a SPIFFE trust domain such as example.org')
      .optional(),
    condition: z.string().optional(),
    subject: z.string().optional(),
    attributes: z.record(z.string(), z.string()).optional(),
    task: z
      .union([
        z.literal(false),
        z
          .object({
            purpose: z.string().optional(),
            labels: z.record(z.string(), z.string()),
          })
          .strict(),
      ])
      .optional(),
  })
  .strict();

/** A calendar day (the exception ends as it ends, 23:59:59 UTC) or an RFC 3339 time with its offset. */
const expiry = z.string().transform((v, ctx) => {
  const day = /^\d{4}-\d{2}-\d{2}$/.test(v);
  const at = day
    ? Date.parse(`${v}T23:59:59.999Z`)
    : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(v)
      ? Date.parse(v)
      : Number.NaN;
  if (Number.isNaN(at)) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a date YYYY-MM-DD or an RFC 3339 time such as 2027-01-31T12:00:00Z',
    });
    return z.NEVER;
  }
  return at;
});

const spiffeId = z.string().superRefine((v, ctx) => {
  const problem = spiffeIdProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: `SPIFFE ID ${problem}` });
});

/** What an exception covers: one kind, and what of that kind (docs/governance.md). */
const exceptionCoverage = z.discriminatedUnion(
  'kind',
  [
    z
      .object({
        kind: z.literal('legacy_client_secret'),
        class: name,
        workloads: z.array(spiffeId).min(1).max(100).optional(),
      })
      .strict(),
    z.object({ kind: z.literal('bearer_class'), class: name }).strict(),
    z.object({ kind: z.literal('vendor_key'), key: name }).strict(),
    z
      .object({ kind: z.literal('long_lived_token'), workload: spiffeId, class: name, max_ttl: duration })
      .strict(),
  ],
  { error: 'kind must be legacy_client_secret, bearer_class, vendor_key or long_lived_token' },
);

/** `exceptions/*.yaml`: a credential that does not meet the rules, declared, owned and time-boxed. */
export const exceptionFileSchema = z
  .object({
    id: name,
    description: z.string().max(1000).optional(),
    covers: exceptionCoverage,
    owner: z.string().min(1).max(200),
    justification: z.string().min(10).max(1000),
    controls: z
      .object({
        source_networks: z.array(z.string().min(1).max(64)).min(1).max(100).optional(),
        rate: z
          .object({ requests: z.number().int().positive().max(1_000_000), per: duration })
          .strict()
          .optional(),
        scopes: z.array(scope).min(1).max(200).optional(),
      })
      .strict()
      .default({}),
    expires: expiry,
    review_every: duration.default(90 * 86_400),
    alert_before: duration.default(14 * 86_400),
  })
  .strict();

export type ExceptionFile = z.infer<typeof exceptionFileSchema>;
export type IssuerFile = z.infer<typeof issuerFileSchema>;
export type ClassFile = z.infer<typeof classFileSchema>;
export type WorkloadFile = z.infer<typeof workloadFileSchema>;
export type OperatorFile = z.infer<typeof operatorFileSchema>;

/**
 * `networks.yaml`: address ranges and the environment each belongs to (detection reads it: a use from
 * a network of another environment). The ranges are checked by validateConfig.
 */
export const networksFileSchema = z
  .object({
    networks: z.array(z.object({ cidr: z.string().min(1).max(64), environment }).strict()).max(10_000),
  })
  .strict();
