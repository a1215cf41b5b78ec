import { z } from 'zod';
import { parseDuration } from '../config/duration.js';

/**
 * `governance.yaml`, at the top of a config directory: the rules `writ govern check` and `writ apply`
 * hold the configuration to, and when an identity counts as stale (docs/governance.md).
 */

const DURATION = 'must be a positive duration such as 15m, 8h or 90d';
const duration = z.union([z.string(), z.number()], { error: DURATION }).transform((v, ctx) => {
  const s = parseDuration(v);
  if (s === undefined || s <= 0) {
    ctx.addIssue({ code: 'custom', message: DURATION });
    return z.NEVER;
  }
  return s;
});

const environment = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be a short lowercase name such as dev, staging or prod');

/** An API sensitivity tier, as `policies/resources.yaml` rates APIs (`unrated` when an API is not). */
const tier = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/, 'must be a sensitivity tier such as internal or restricted');

/** What every rule has: its id, how it is enforced, and which objects it applies to. */
const common = {
  id: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9._-]{0,62}$/,
      'must be 1-63 lowercase letters, digits, ".", "-" or "_", starting with a letter or digit',
    ),
  description: z.string().max(1000).optional(),
  /** `error` refuses (`writ apply`, a non-zero exit of `writ govern check`); `warning` only warns. */
  severity: z.enum(['error', 'warning']).default('error'),
  /** Only objects used in these environments (a class: by a workload of that environment). */
  environments: z.array(environment).min(1).max(50).optional(),
  /** Only objects reaching an API of these tiers (a class: one of its audiences). */
  sensitivity: z.array(tier).min(1).max(20).optional(),
};

const count = (most: number) =>
  z
    .number({ error: `must be a whole number from 1 to ${most}` })
    .int(`must be a whole number from 1 to ${most}`)
    .min(1, `must be a whole number from 1 to ${most}`)
    .max(most, `must be a whole number from 1 to ${most}`);

export const CHECKS = [
  'class.max_ttl',
  'class.renewal_lifetime',
  'class.binding',
  'class.audiences',
  'class.scopes',
  'workload.owner',
  'exception.fields',
  'issuer.condition',
] as const;

export const governanceRuleSchema = z.discriminatedUnion(
  'check',
  [
    z.object({ check: z.literal('class.max_ttl'), max: duration, ...common }).strict(),
    z.object({ check: z.literal('class.renewal_lifetime'), max: duration, ...common }).strict(),
    z
      .object({
        check: z.literal('class.binding'),
        allow: z.array(z.enum(['dpop', 'mtls', 'bearer'])).min(1),
        ...common,
      })
      .strict(),
    z.object({ check: z.literal('class.audiences'), max: count(100), ...common }).strict(),
    z.object({ check: z.literal('class.scopes'), max: count(200), ...common }).strict(),
    z.object({ check: z.literal('workload.owner'), ...common }).strict(),
    z.object({ check: z.literal('exception.fields'), max_expiry: duration, ...common }).strict(),
    z.object({ check: z.literal('issuer.condition'), ...common }).strict(),
  ],
  { error: `must be one of ${CHECKS.join(', ')}` },
);

export const governanceFileSchema = z
  .object({
    rules: z.array(governanceRuleSchema).max(500).default([]),
    /** `writ govern stale`: when an identity counts as unused, and the opt-in rule that disables it. */
    stale: z
      .object({
        after: duration.default(90 * 86_400),
        /** Per environment of a workload, over `after`. */
        environments: z.record(environment, duration).optional(),
        /** Opt-in: a workload stale this much longer than its threshold is disabled (audited). */
        disable_after: duration.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type GovernanceRule = z.output<typeof governanceRuleSchema>;
export type GovernanceFile = z.output<typeof governanceFileSchema>;

/** When identities count as stale: seconds, by environment, and the opt-in disable's grace period. */
export interface StaleSettings {
  after: number;
  environments: Record<string, number>;
  disableAfter?: number;
}

/** The governance a config directory declares, validated. */
export interface Governance {
  rules: GovernanceRule[];
  stale: StaleSettings;
}

/** With no `governance.yaml`: no rules, stale after 90 days, nothing disabled. */
export const DEFAULT_GOVERNANCE: Governance = { rules: [], stale: { after: 90 * 86_400, environments: {} } };

export function governanceOf(f: GovernanceFile): Governance {
  const stale: StaleSettings = {
    after: f.stale?.after ?? DEFAULT_GOVERNANCE.stale.after,
    environments: f.stale?.environments ?? {},
  };
  if (f.stale?.disable_after !== undefined) stale.disableAfter = f.stale.disable_after;
  return { rules: f.rules, stale };
}
