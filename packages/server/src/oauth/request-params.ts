import { z } from 'zod';
import { invalidRequest, invalidTarget } from '../errors.js';
import type { TokenClass } from '../registry/token-class.js';
import { type FormParams, single } from '../request/form.js';

/**
 * The one audience of the token: from `resource` (RFC 8707, an absolute URI without fragment) or
 * `audience` (RFC 8693). Several different values are refused: one token, one audience.
 */
export function requestedAudience(params: FormParams): string {
  const resources = params.get('resource') ?? [];
  if (resources.length > 10) throw invalidTarget('too many resource parameters', { reason: 'one_audience' });
  for (const r of resources)
    if (!wellFormedResource(r))
      throw invalidTarget('resource must be an absolute URI without a fragment (RFC 8707)', {
        reason: 'resource_malformed',
      });
  const audience = single(params, 'audience', 512);
  // The common request: one resource, no audience.
  if (resources.length === 1 && audience === undefined) return resources[0]!;
  const all = [...new Set([...resources, ...(audience !== undefined ? [audience] : [])])];
  if (all.length === 0)
    throw invalidTarget('a resource or audience parameter is required', { reason: 'missing_parameter' });
  if (all.length > 1)
    throw invalidTarget('exactly one audience per token: send one resource or audience', {
      reason: 'one_audience',
    });
  return all[0]!;
}

/** Resources found well formed: the few APIs workloads ask for, parsed once each (bounded). */
const WELL_FORMED = new Set<string>();

/** RFC 8707: an absolute URI without a fragment, at most 512 characters. */
function wellFormedResource(r: string): boolean {
  if (WELL_FORMED.has(r)) return true;
  let ok = false;
  try {
    ok = new URL(r).hash === '' && r.length <= 512;
  } catch {}
  if (ok) {
    if (WELL_FORMED.size >= 1024) WELL_FORMED.clear();
    WELL_FORMED.add(r);
  }
  return ok;
}

/** The `ttl` parameter: whole seconds, at most nine digits (the OpenAPI document uses it too). */
export const ttlParam = z.string().regex(/^[1-9]\d{0,8}$/);

/** TTL in seconds: the `ttl` parameter (a Writ extension) clamped to the class maximum, else the default. */
export function requestedTtl(params: FormParams, cls: TokenClass): number {
  const raw = single(params, 'ttl', 16);
  if (raw === undefined) return cls.defaultTtl;
  if (!ttlParam.safeParse(raw).success)
    throw invalidRequest('ttl must be a positive number of seconds', { reason: 'duration' });
  return Math.min(Number(raw), cls.maxTtl);
}
