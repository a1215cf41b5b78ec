import type { VerificationKey } from '../jose/jwk.js';
import { JwsError, parseClaims, verifyCompactJws } from '../jose/jws.js';
import { type RefusalReason, WritError } from '../wire/errors.js';
import {
  type BundlePrincipalScope,
  POLICY_BUNDLE_TYP,
  type PolicyBundleClaims,
} from '../wire/policy-bundle.js';

/** A bundle refused or not fetched, or a decision that could not be made: `reason` says why. */
export class PolicyBundleError extends WritError {
  declare readonly code: 'invalid_policy_bundle';
  declare readonly reason: RefusalReason;
  constructor(reason: RefusalReason, message: string) {
    super('invalid_policy_bundle', reason, message);
    this.name = 'PolicyBundleError';
  }
}

export interface BundleCheck {
  /** The server's policy-bundle keys (`POLICY_BUNDLE_KEYS_PATH`), not its token keys. */
  keys: readonly VerificationKey[];
  issuer: string;
  audience: string;
  maxBytes: number;
  /** Seconds: a bundle whose `exp` has passed (beyond `leeway`) is refused. */
  nowSeconds: number;
  /** Seconds of clock difference allowed on `exp`. Default 0. */
  leeway?: number;
  /** The version held: an older bundle is refused. */
  held?: number | undefined;
}

/**
 * Verifies a policy bundle JWS: signature by one of the server's policy-bundle keys (ES256 or EdDSA;
 * `none` and HMAC cannot pass), `typ: writ-policy-bundle+jwt`, `iss`, `aud` this API, `exp` not
 * passed, the payload's shape, and a version no lower than the one held.
 */
export function verifyPolicyBundle(jws: string, c: BundleCheck): PolicyBundleClaims {
  let verified: ReturnType<typeof verifyCompactJws>;
  try {
    verified = verifyCompactJws(jws, { algorithms: ['ES256', 'EdDSA'], keys: c.keys, maxBytes: c.maxBytes });
  } catch (err) {
    if (err instanceof JwsError) throw new PolicyBundleError(err.reason, `policy bundle: ${err.message}`);
    throw err;
  }
  const typ = verified.header.typ;
  if (typeof typ !== 'string' || typ.toLowerCase() !== POLICY_BUNDLE_TYP)
    throw new PolicyBundleError('typ', 'policy bundle: not a policy bundle (typ)');
  let b: Record<string, unknown>;
  try {
    b = parseClaims(verified.payload, 10);
  } catch {
    throw new PolicyBundleError('malformed', 'policy bundle: payload is not a JSON object');
  }
  if (b['iss'] !== c.issuer) throw new PolicyBundleError('iss', 'policy bundle: issuer is not trusted');
  if (b['aud'] !== c.audience) throw new PolicyBundleError('aud', 'policy bundle: for another API');
  const exp = b['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp))
    throw new PolicyBundleError('exp', 'policy bundle: exp is missing');
  if (exp <= c.nowSeconds - (c.leeway ?? 0)) throw new PolicyBundleError('expired', 'policy bundle: expired');
  const version = b['version'];
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1)
    throw new PolicyBundleError('malformed', 'policy bundle: version is malformed');
  if (c.held !== undefined && version < c.held)
    throw new PolicyBundleError('older', 'policy bundle: older than the one held');
  const shapeOk =
    typeof b['iat'] === 'number' &&
    typeof b['policy_version'] === 'string' &&
    typeof b['built_in'] === 'boolean' &&
    typeof b['schema'] === 'string' &&
    Array.isArray(b['policies']) &&
    (b['policies'] as unknown[]).every(
      (p) =>
        isRecord(p) &&
        typeof p['id'] === 'string' &&
        (p['effect'] === 'permit' || p['effect'] === 'forbid') &&
        typeof p['text'] === 'string' &&
        isScope(p['principal']) &&
        Array.isArray(p['actions']) &&
        (p['actions'] as unknown[]).every((a) => typeof a === 'string'),
    ) &&
    (b['context_reads'] === 'all' ||
      (Array.isArray(b['context_reads']) &&
        (b['context_reads'] as unknown[]).every((f) => typeof f === 'string'))) &&
    isRecord(b['context_defaults']) &&
    isRecord(b['resource']) &&
    b['resource']['id'] === c.audience &&
    ['sensitivity', 'environment', 'owner'].every(
      (k) => typeof (b['resource'] as Record<string, unknown>)[k] === 'string',
    ) &&
    Array.isArray(b['workloads']) &&
    (b['workloads'] as unknown[]).every(
      (w) =>
        isRecord(w) &&
        ['id', 'owner', 'environment', 'state'].every((k) => typeof w[k] === 'string') &&
        Array.isArray(w['classes']) &&
        (w['classes'] as unknown[]).every((x) => typeof x === 'string') &&
        isRecord(w['tags']) &&
        Object.values(w['tags']).every((x) => typeof x === 'string'),
    );
  if (!shapeOk) throw new PolicyBundleError('malformed', 'policy bundle: payload is malformed');
  return b as unknown as PolicyBundleClaims;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isEntityRef(v: unknown): boolean {
  return isRecord(v) && typeof v['type'] === 'string' && typeof v['id'] === 'string';
}

function isScope(v: unknown): v is BundlePrincipalScope {
  if (!isRecord(v)) return false;
  switch (v['op']) {
    case 'all':
      return true;
    case 'eq':
      return isEntityRef(v['entity']);
    case 'in':
      return Array.isArray(v['entities']) && (v['entities'] as unknown[]).every(isEntityRef);
    case 'is':
      return typeof v['type'] === 'string' && (v['entity'] === undefined || isEntityRef(v['entity']));
    default:
      return false;
  }
}

/** Whether a principal scope can hold for `uid` (Writ's principals have no parents, so `in` is `==`). */
export function scopeMatches(c: BundlePrincipalScope, uid: { type: string; id: string }): boolean {
  switch (c.op) {
    case 'all':
      return true;
    case 'eq':
      return c.entity.type === uid.type && c.entity.id === uid.id;
    case 'in':
      return c.entities.some((e) => e.type === uid.type && e.id === uid.id);
    case 'is':
      return c.type === uid.type && (!c.entity || (c.entity.type === uid.type && c.entity.id === uid.id));
  }
}
