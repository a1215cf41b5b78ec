import { createHash } from 'node:crypto';
import { canonicalJson } from '../jose/json.js';
import type { TokenClass } from '../registry/token-class.js';
import type { CredentialException } from './exception.js';

/**
 * The rules of a token class that `writ govern verify` proves issuance kept, as the audit log records
 * them: every `config.applied` event that changes a class carries the rules of every class then in force
 * (`class_rules`) and their digest, so the chain itself says which maximum held when a token was issued.
 */
export interface ClassRules {
  /** Seconds. */
  max_ttl: number;
  /** Seconds. */
  renewal_max_lifetime: number;
  binding: TokenClass['binding'];
  audiences: string[];
  scopes: string[];
}

export function classRules(c: TokenClass): ClassRules {
  return {
    max_ttl: c.maxTtl,
    renewal_max_lifetime: c.renewalMaxLifetime,
    binding: c.binding,
    audiences: [...c.audiences].sort(),
    scopes: [...c.scopes].sort(),
  };
}

/** The `config.applied` fields recording `classes` (every class in force after the apply). */
export function classRulesRecord(classes: readonly TokenClass[]): {
  class_rules: Record<string, ClassRules>;
  class_rules_sha256: string;
} {
  const rules: Record<string, ClassRules> = {};
  for (const c of [...classes].sort((a, b) => (a.name < b.name ? -1 : 1))) rules[c.name] = classRules(c);
  return { class_rules: rules, class_rules_sha256: classRulesDigest(rules) };
}

/** Hex SHA-256 of the canonical JSON of a `class_rules` record. */
export function classRulesDigest(rules: Record<string, ClassRules>): string {
  return createHash('sha256').update(canonicalJson(rules)).digest('hex');
}

/** An exception's terms as `config.applied` records them: what it covers and its declared end (ms). */
export interface ExceptionTerms {
  kind: CredentialException['covers']['kind'];
  class?: string;
  expires_at: number;
}

/**
 * The `config.applied` fields recording `exceptions` (every exception declared after the apply): the
 * declared end of each, so the chain says which exceptions held when a credential was used under one.
 * Renewals and retirements are audited on their own (`exception.renewed`, `exception.retired`).
 */
export function exceptionTermsRecord(exceptions: readonly CredentialException[]): {
  exception_terms: Record<string, ExceptionTerms>;
  exception_terms_sha256: string;
} {
  const terms: Record<string, ExceptionTerms> = {};
  for (const e of [...exceptions].sort((a, b) => (a.id < b.id ? -1 : 1)))
    terms[e.id] = {
      kind: e.covers.kind,
      ...('class' in e.covers ? { class: e.covers.class } : {}),
      expires_at: e.expiresAt,
    };
  return {
    exception_terms: terms,
    exception_terms_sha256: createHash('sha256').update(canonicalJson(terms)).digest('hex'),
  };
}
