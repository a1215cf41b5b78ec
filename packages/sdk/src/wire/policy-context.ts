import { isIP } from 'node:net';
import { WritError } from './errors.js';

/**
 * The context of a policy decision, built one way for the server (token endpoint, AuthZEN, `writ policy
 * test`) and for the verifier SDK deciding from a policy bundle, so the same inputs give the same
 * record, and so the same decision, on both sides.
 */

/** Operations resource servers ask about at request time (`Action::"request"` in Writ's schema). */
export const REQUEST_ACTIONS = ['read', 'write', 'export', 'delete'] as const;
export type RequestAction = (typeof REQUEST_ACTIONS)[number];

export function isRequestAction(a: string): a is RequestAction {
  return (REQUEST_ACTIONS as readonly string[]).includes(a);
}

/** The context record of Writ's schema (`RequestContext`): every field is always there. */
export interface PolicyContext {
  /** Seconds since the epoch. */
  now: number;
  /** UTC, 0-23. */
  hour: number;
  /** UTC, 0 = Sunday. */
  weekday: number;
  /** An IPv4 or IPv6 address; IPv4-mapped IPv6 is IPv4. Cedar reads it as `ip(...)`. */
  source_ip: string;
  environment: string;
  task_id: string;
  purpose: string;
  attestation: string;
  binding: string;
  /** An integer from 0 (no risk) to 100: see `policyRisk`. */
  risk: number;
  scopes: string[];
  token_class: string;
  grant_type: string;
  client_id: string;
  /** The trusted issuer's name, the outside token's `sub` and mapped attributes (docs/federation.md). */
  federation: Record<string, string>;
}

/** What callers give; the time fields come from the clock, and what is not given is "" or 0. */
export type PolicyContextInput = {
  [K in Exclude<keyof PolicyContext, 'now' | 'hour' | 'weekday'>]?: PolicyContext[K] | undefined;
};

/** A context that cannot be a Cedar request: a risk out of range, a source address that is none. */
export class PolicyContextError extends WritError {
  declare readonly code: 'invalid_policy_context';
  declare readonly reason: 'policy_context';
  readonly field: 'risk' | 'source_ip';
  constructor(field: 'risk' | 'source_ip', message: string) {
    super('invalid_policy_context', 'policy_context', message);
    this.name = 'PolicyContextError';
    this.field = field;
  }
}

/** The highest risk: `context.risk` is an integer from 0 to this. */
export const MAX_RISK = 100;

/**
 * The one rule for `risk`: an integer from 0 (no risk, and the value when none is given) to 100.
 * Anything else (a fraction, a negative number, more than 100, not a number) is refused rather than
 * read as some other risk: the caller that sent it has a bug, and guessing for it could allow.
 */
export function policyRisk(value: unknown = 0): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_RISK)
    throw new PolicyContextError('risk', `risk must be an integer from 0 to ${MAX_RISK}`);
  return value;
}

/**
 * An address as policies see it: an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as Node reports IPv4
 * peers on a dual-stack socket) becomes the IPv4 address, so `ip("10.0.0.0/8")` ranges match it.
 * `undefined` when the value is not an IP address.
 */
export function normaliseAddress(value: string): string | undefined {
  const mapped = /^::ffff:/i.test(value) && isIP(value.slice(7)) === 4 ? value.slice(7) : value;
  return isIP(mapped) === 0 ? undefined : mapped;
}

/**
 * The full context record: `defaults` first (a verifier passes its bundle's `context_defaults`, so a
 * field the server's schema has and this code does not is still there), then the time from `nowMs`
 * (UTC), then what is given, every other field "" or 0. Throws `PolicyContextError` for a risk out of
 * range or a source address that is not one (none given is `0.0.0.0`).
 *
 * @example buildPolicyContext(clock.now(), { source_ip: '::ffff:10.1.2.3', risk: 20 }).source_ip // '10.1.2.3'
 */
export function buildPolicyContext(
  nowMs: number,
  given: PolicyContextInput = {},
  defaults: Readonly<Record<string, unknown>> = {},
): PolicyContext {
  const source = normaliseAddress(given.source_ip ?? '0.0.0.0');
  if (source === undefined)
    throw new PolicyContextError('source_ip', 'source_ip must be an IPv4 or IPv6 address');
  const risk = policyRisk(given.risk);
  const t = new Date(nowMs);
  const context: PolicyContext = {
    now: Math.floor(nowMs / 1000),
    hour: t.getUTCHours(),
    weekday: t.getUTCDay(),
    source_ip: source,
    environment: given.environment ?? '',
    task_id: given.task_id ?? '',
    purpose: given.purpose ?? '',
    attestation: given.attestation ?? '',
    binding: given.binding ?? '',
    risk,
    scopes: [...(given.scopes ?? [])],
    token_class: given.token_class ?? '',
    grant_type: given.grant_type ?? '',
    client_id: given.client_id ?? '',
    // A copy: the record given (or the defaults') is the caller's and may be reused. A spread of an
    // ordinary object copies its shape at once; the server's federation records are built to be one.
    federation: { ...(given.federation ?? (defaults['federation'] as Record<string, string> | undefined)) },
  };
  // Fields only the defaults have are added after the literal, not spread before it: a spread followed
  // by the same keys makes V8 build a slow dictionary object, which cost ~30 µs per token at issuance.
  for (const key of Object.keys(defaults))
    if (!Object.hasOwn(context, key)) (context as unknown as Record<string, unknown>)[key] = defaults[key];
  return context;
}

/**
 * The environment of a request-time decision: the one the caller (the PEP) gave, else the principal's
 * (a workload's registry entry), else the API's. An empty one is not given: "" means unknown.
 */
export function requestEnvironment(given: string | undefined, principal: string, api: string): string {
  return given || principal || api;
}
