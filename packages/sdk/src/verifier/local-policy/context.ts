import type { AccessTokenClaims } from '../../wire/claims.js';
import type { PolicyBundleClaims } from '../../wire/policy-bundle.js';
import {
  buildPolicyContext,
  normaliseAddress,
  type PolicyContext,
  type PolicyContextInput,
  type RequestAction,
  requestEnvironment,
} from '../../wire/policy-context.js';

/**
 * What a resource server (the PEP) can tell about a request: the context record of Writ's schema but
 * the time (the verifier's clock), the grant and the federation attributes (issuance only).
 */
export type LocalPolicyContext = Omit<
  PolicyContext,
  'now' | 'hour' | 'weekday' | 'grant_type' | 'federation'
>;

/** The action of an HTTP request by default: GET, HEAD and OPTIONS `read`, DELETE `delete`, else `write`. */
export function defaultAction(method: string): RequestAction {
  const m = method.toUpperCase();
  if (m === 'GET' || m === 'HEAD' || m === 'OPTIONS') return 'read';
  if (m === 'DELETE') return 'delete';
  return 'write';
}

/**
 * What the verifier knows of a request from the token and the connection: scopes, class, task, holder
 * and binding from the claims; the peer's address when it is one (IPv4-mapped IPv6 as IPv4).
 */
export function tokenContext(
  claims: AccessTokenClaims,
  source: string | undefined,
): Partial<LocalPolicyContext> {
  const address = source === undefined ? undefined : normaliseAddress(source);
  return {
    scopes: claims.scope.split(' ').filter((s) => s !== ''),
    token_class: claims.cls,
    task_id: claims.tid ?? '',
    client_id: claims.client_id,
    binding: claims.cnf?.jkt ? 'dpop' : claims.cnf?.['x5t#S256'] ? 'mtls' : 'bearer',
    ...(address !== undefined ? { source_ip: address } : {}),
  };
}

/**
 * The context of a decision under `bundle`, built as the server builds it (the shared builder, from the
 * bundle's defaults) with the environment as at the AuthZEN endpoint: the one given, else the
 * principal's, else the API's. Throws `PolicyContextError` as the server does.
 */
export function bundleContext(
  nowMs: number,
  bundle: Pick<PolicyBundleClaims, 'context_defaults' | 'resource'>,
  given: PolicyContextInput,
  principalEnvironment: string,
): PolicyContext {
  const environment = requestEnvironment(
    given.environment,
    principalEnvironment,
    bundle.resource.environment,
  );
  return buildPolicyContext(nowMs, { ...given, environment }, bundle.context_defaults);
}
