import { OAuthError } from '../errors.js';
import type { Registry } from '../registry/registry.js';
import { effectiveExpiry, exceptionHolds } from './exception.js';

/**
 * A bearer class that the exceptions registry covers (`covers.kind: bearer_class`) issues while one of
 * its exceptions holds, and is refused once every one has ended (expired or retired): returns the id
 * of the exception that lets the issuance through, for its audit event. A bearer class no exception
 * names is left to the governance rules (`writ govern check`), which say whether it needs one.
 */
export function bearerClassException(registry: Registry, cls: string, now: number): string | undefined {
  if (registry.tokenClass(cls)?.binding !== 'bearer') return undefined;
  const covering = registry
    .exceptions()
    .filter((e) => e.covers.kind === 'bearer_class' && e.covers.class === cls);
  if (covering.length === 0) return undefined;
  const holding = covering.find((e) => exceptionHolds(e, now));
  if (holding) return holding.id;
  const e = covering[0]!;
  const retired = e.runtime.retired;
  throw new OAuthError(
    'unauthorized_client',
    retired
      ? `class ${cls} issues bearer tokens under exception "${e.id}" (owner ${e.owner}), retired at ${new Date(retired.at).toISOString()}: no token of it is issued; bind the class (binding: dpop) or declare a new exception`
      : `class ${cls} issues bearer tokens under exception "${e.id}" (owner ${e.owner}), which expired at ${new Date(effectiveExpiry(e)).toISOString()}: no token of it is issued until an operator renews it (writ exceptions renew ${e.id} --until DATE) or the class binds its tokens`,
    {
      detail: {
        reason: retired ? 'exception_retired' : 'exception_expired',
        exception: e.id,
        expired_at: effectiveExpiry(e),
      },
    },
  );
}
