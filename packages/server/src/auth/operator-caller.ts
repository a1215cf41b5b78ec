import type { ConsoleSession } from '../console/console-session.js';
import type { RequestInfo, WritContext } from '../context.js';
import { authenticateAdmin } from './admin.js';
import { authenticateConsoleSession } from './console-session.js';

/**
 * The admin API's one way in: an admin token (DPoP-bound to the operator key), or, when the request has
 * no `Authorization` header but a console session cookie, that session (with its CSRF checks). A request
 * with both is judged by its token alone, so a browser's cookie never lends a token what it lacks.
 */
export async function authenticateOperatorCaller(
  ctx: WritContext,
  req: RequestInfo,
): Promise<{ operator: string; session?: ConsoleSession }> {
  if (req.authorization === undefined && req.consoleCookie !== undefined)
    return authenticateConsoleSession(ctx, req);
  const { operator } = await authenticateAdmin(ctx, req);
  return { operator };
}
