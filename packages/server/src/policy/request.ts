import { isIP } from 'node:net';
import { federationContext } from '../federation/presets.js';
import type { WorkloadRecord } from '../registry/workload.js';
import type { CedarValueJson } from './cedar.js';

/** Actions Writ decides at the token endpoint. */
export const TOKEN_ACTIONS = ['issue', 'exchange', 'renew'] as const;
/** Operations resource servers ask about at request time. */
export const REQUEST_ACTIONS = ['read', 'write', 'export', 'delete'] as const;
export type TokenAction = (typeof TOKEN_ACTIONS)[number];
export type RequestAction = (typeof REQUEST_ACTIONS)[number];
export type PolicyAction = TokenAction | RequestAction;
export const ACTIONS: readonly PolicyAction[] = [...TOKEN_ACTIONS, ...REQUEST_ACTIONS];

/** The principal of a decision, with the entity data policies read. */
export interface PolicyPrincipal {
  type: 'Workload' | 'Human';
  id: string;
  attrs: Record<string, CedarValueJson>;
  tags?: Record<string, string>;
  /** Changes whenever `attrs` or `tags` change; part of the decision cache key. */
  version: string;
}

/** The context record of Writ's schema (`RequestContext`). */
export interface PolicyContext {
  now: number;
  hour: number;
  weekday: number;
  source_ip: string;
  environment: string;
  task_id: string;
  purpose: string;
  attestation: string;
  binding: string;
  risk: number;
  scopes: string[];
  token_class: string;
  grant_type: string;
  client_id: string;
  /** The trusted issuer's name, the outside token's `sub` and mapped attributes (docs/federation.md). */
  federation: Record<string, string>;
}

export interface DecisionRequest {
  principal: PolicyPrincipal;
  action: PolicyAction;
  /** The API (audience URI); its attributes come from the engine's resource catalogue. */
  resource: string;
  context: PolicyContext;
}

/** A request whose input cannot be turned into a Cedar request (bad address, unknown action...). */
export class PolicyInputError extends Error {
  readonly code = 'invalid_policy_input';
  constructor(message: string) {
    super(message);
    this.name = 'PolicyInputError';
  }
}

export function isPolicyAction(a: string): a is PolicyAction {
  return (ACTIONS as readonly string[]).includes(a);
}

/**
 * Fills a context record: time fields from `nowMs` (UTC), everything not given as "" or 0, the source
 * address normalised (IPv4-mapped IPv6 becomes IPv4).
 */
export function buildContext(nowMs: number, given: Partial<PolicyContext> = {}): PolicyContext {
  const d = new Date(nowMs);
  const ip = normaliseIp(given.source_ip ?? '0.0.0.0');
  const risk = given.risk ?? 0;
  if (!Number.isInteger(risk) || risk < 0 || risk > 100)
    throw new PolicyInputError('risk must be an integer from 0 to 100');
  return {
    now: Math.floor(nowMs / 1000),
    hour: d.getUTCHours(),
    weekday: d.getUTCDay(),
    environment: '',
    task_id: '',
    purpose: '',
    attestation: '',
    binding: '',
    scopes: [],
    token_class: '',
    grant_type: '',
    client_id: '',
    federation: federationContext(),
    ...given,
    source_ip: ip,
    risk,
  };
}

export function normaliseIp(value: string): string {
  const v = value.startsWith('::ffff:') && isIP(value.slice(7)) === 4 ? value.slice(7) : value;
  if (isIP(v) === 0) throw new PolicyInputError('source_ip must be an IPv4 or IPv6 address');
  return v;
}

/** A registered workload as a Cedar principal; its config attributes become tags. */
export function workloadPrincipal(w: WorkloadRecord, registryGeneration: number): PolicyPrincipal {
  const tags: Record<string, string> = {};
  for (const [k, v] of Object.entries(w.attributes)) tags[k] = String(v);
  return {
    type: 'Workload',
    id: w.id,
    attrs: { owner: w.owner, environment: w.environment, state: w.state, classes: w.classes },
    tags,
    version: `r${registryGeneration}`,
  };
}

/** A person as a Cedar principal: what the caller asserts about them (roles, second factor). */
export function humanPrincipal(id: string, roles: string[], mfa: boolean): PolicyPrincipal {
  const sorted = [...new Set(roles)].sort();
  return {
    type: 'Human',
    id,
    attrs: { roles: sorted, mfa },
    version: JSON.stringify([sorted, mfa]),
  };
}

/** The context as Cedar JSON (the address becomes an `ipaddr` extension value), only `fields` when given. */
export function cedarContext(
  c: PolicyContext,
  fields: readonly string[] | 'all' = 'all',
): Record<string, CedarValueJson> {
  const out: Record<string, CedarValueJson> = {};
  const keys = fields === 'all' ? (Object.keys(c) as Array<keyof PolicyContext>) : fields;
  for (const k of keys) {
    if (k === 'source_ip') out[k] = { __extn: { fn: 'ip', arg: c.source_ip } };
    else if (k in c) out[k] = c[k as keyof PolicyContext] as CedarValueJson;
  }
  return out;
}

/** No control characters (ids of principals and resources end up in audit events and cache keys). */
export function isPrintable(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}
