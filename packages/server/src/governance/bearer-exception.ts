import { OAuthError } from '../errors.js';
import type { Registry } from '../registry/registry.js';
import { coveringException, exceptionEnding } from './exception.js';

/**
 * A bearer class that the exceptions registry covers (`covers.kind: bearer_class`) issues while one of
 * its exceptions holds, and is refused once every one has ended (expired or retired): returns the id
 * of the exception that lets the issuance through, for its audit event. A bearer class no exception
 * names is left to the governance rules (`writ govern check`), which say whether it needs one.
 */
export function bearerClassException(registry: Registry, cls: string, now: number): string | undefined {
  if (registry.tokenClass(cls)?.binding !== 'bearer') return undefined;
  const { holding, covering } = coveringException(
    registry.exceptions(),
    (c) => c.kind === 'bearer_class' && c.class === cls,
    now,
  );
  if (holding) return holding.id;
  const e = covering[0];
  if (!e) return undefined;
  const ended = exceptionEnding(e);
  throw new OAuthError(
    'unauthorized_client',
    ended.retired
      ? `class ${cls} issues bearer tokens under exception "${e.id}" (owner ${e.owner}), retired at ${ended.at}: no token of it is issued; bind the class (binding: dpop) or declare a new exception`
      : `class ${cls} issues bearer tokens under exception "${e.id}" (owner ${e.owner}), which expired at ${ended.at}: no token of it is issued until an operator renews it (writ exceptions renew ${e.id} --until DATE) or the class binds its tokens`,
    { detail: ended.detail },
  );
}
