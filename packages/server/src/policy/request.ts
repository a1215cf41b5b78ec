import {
  buildPolicyContext,
  type PolicyContext,
  type PolicyContextInput,
  REQUEST_ACTIONS,
  type RequestAction,
} from '@writ/sdk/wire';
import { hasControlCharacters } from '../control-characters.js';
import { federationContext } from '../federation/presets.js';
import type { WorkloadRecord } from '../registry/workload.js';
import type { CedarValueJson } from './cedar.js';

/** Actions Writ decides at the token endpoint. */
export const TOKEN_ACTIONS = ['issue', 'exchange', 'renew'] as const;
export type TokenAction = (typeof TOKEN_ACTIONS)[number];
/** Every action of Writ's schema: the token endpoint's and the request-time ones (`REQUEST_ACTIONS`). */
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

export interface DecisionRequest {
  principal: PolicyPrincipal;
  action: PolicyAction;
  /** The API (audience URI); its attributes come from the engine's resource catalogue. */
  resource: string;
  context: PolicyContext;
}

export function isPolicyAction(a: string): a is PolicyAction {
  return (ACTIONS as readonly string[]).includes(a);
}

/**
 * The server's context record: the shared builder (`buildPolicyContext` in `@writ/sdk/wire`, which the
 * verifier SDK uses too) with every federation attribute Writ maps, "" when the token had none. Throws
 * `PolicyContextError` for a risk out of range or a source address that is not one.
 */
export function buildContext(nowMs: number, given: PolicyContextInput = {}): PolicyContext {
  return buildPolicyContext(nowMs, given, CONTEXT_DEFAULTS);
}

/** The defaults of every context the server builds; only read (the builder copies what it takes). */
const CONTEXT_DEFAULTS: Readonly<Record<string, unknown>> = { federation: federationContext() };

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
  return !hasControlCharacters(s);
}
