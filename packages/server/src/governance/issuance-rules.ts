import type { AuditEvent } from '../audit/audit-event.js';
import type { ClassRules } from './class-rules.js';

/** What a `token.issued` event says about the token, as the proof reads it. */
export interface AuditedIssuance {
  /** The event's sequence number. */
  seq: number;
  jti: string;
  sub: string;
  clientId: string;
  cls: string;
  aud: unknown;
  scope: string;
  iat: number;
  exp: number;
  kid: string;
  binding: string;
  /** How the workload authenticated (`client_secret_basic`, `private_key_jwt`, `federation:<issuer>`…). */
  authMethod: string;
  /** The id of the exception that let the issuance through, when one did. */
  exception?: string;
  /** Events from before exceptions had ids: the class whose legacy-secret exception let it through. */
  legacySecretClass?: string;
  /** The bearer-class exception, when another one (a legacy secret's) is `exception`. */
  bearerException?: string;
  /** The break-glass grant the token was issued under, when it was. */
  breakglass?: string;
  tid?: string;
  ajti?: string[];
}

/** The issuance an event records, or undefined when it is not a successful `token.issued` with a jti. */
export function auditedIssuance(e: AuditEvent): AuditedIssuance | undefined {
  if (e.type !== 'token.issued' || e.outcome !== 'success' || e.jti === undefined) return undefined;
  const d = e.data;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : Number.NaN);
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  return {
    seq: e.seq,
    jti: e.jti,
    sub: e.subject ?? '',
    clientId: e.actor,
    cls: str(d['cls']),
    aud: d['aud'],
    scope: str(d['scope']),
    iat: num(d['iat']),
    exp: num(d['exp']),
    kid: str(d['kid']),
    binding: str(d['binding']),
    authMethod: str(d['auth_method']),
    ...(typeof d['exception'] === 'string' ? { exception: d['exception'] } : {}),
    ...(typeof d['bearer_exception'] === 'string' ? { bearerException: d['bearer_exception'] } : {}),
    ...(typeof d['breakglass'] === 'string' ? { breakglass: d['breakglass'] } : {}),
    ...(typeof d['legacy_secret_exception'] === 'string'
      ? { legacySecretClass: d['legacy_secret_exception'] }
      : {}),
    ...(typeof d['tid'] === 'string' ? { tid: d['tid'] } : {}),
    ...(Array.isArray(d['ajti'])
      ? { ajti: d['ajti'].filter((j): j is string => typeof j === 'string') }
      : {}),
  };
}

/** One rule of its class an issuance broke: which, and what the event says against what the class allows. */
export interface IssuanceBreach {
  rule: 'lifetime' | 'renewal' | 'audience' | 'binding' | 'scope';
  message: string;
}

/**
 * The class rules `t` broke, given the rules in force when it was issued: its lifetime (`exp - iat`) at
 * most `max_ttl`, exactly one audience and one of the class's, the binding the class requires (`dpop`
 * or `mtls`; a `bearer` class takes any), every scope one of the class's. A token of a task ends at most
 * `renewal_max_lifetime` after the task opened (`taskOpenedAt`, ms: its `task.opened` event, which is
 * written at or after the task's own opening time, so the bound is never tighter than the server's).
 */
export function issuanceBreaches(
  t: AuditedIssuance,
  rules: ClassRules,
  taskOpenedAt?: number,
): IssuanceBreach[] {
  const out: IssuanceBreach[] = [];
  if (taskOpenedAt !== undefined && t.exp * 1000 > taskOpenedAt + rules.renewal_max_lifetime * 1000)
    out.push({
      rule: 'renewal',
      message: `it ends at ${new Date(t.exp * 1000).toISOString()}, more than the class renewal_max_lifetime ${rules.renewal_max_lifetime}s after its task ${t.tid} opened at ${new Date(taskOpenedAt).toISOString()}`,
    });
  const lifetime = t.exp - t.iat;
  if (!(lifetime <= rules.max_ttl))
    out.push({
      rule: 'lifetime',
      message: `lifetime ${Number.isNaN(lifetime) ? 'unreadable' : `${lifetime}s`} exceeds the class max_ttl ${rules.max_ttl}s in force at issuance`,
    });
  if (typeof t.aud !== 'string')
    out.push({ rule: 'audience', message: 'not exactly one audience (aud is not a single string)' });
  else if (!rules.audiences.includes(t.aud))
    out.push({ rule: 'audience', message: `audience ${t.aud} is not one of the class's audiences` });
  if (rules.binding !== 'bearer' && t.binding !== rules.binding)
    out.push({
      rule: 'binding',
      message: `binding ${t.binding || 'none'}; the class requires ${rules.binding}`,
    });
  const outside = t.scope.split(' ').filter((s) => s !== '' && !rules.scopes.includes(s));
  if (outside.length > 0)
    out.push({ rule: 'scope', message: `scope ${outside.join(' ')} is not among the class's scopes` });
  return out;
}
