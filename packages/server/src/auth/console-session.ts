import { createHash, timingSafeEqual } from 'node:crypto';
import type { ConsoleSession } from '../console/console-session.js';
import { sessionIdHash } from '../console/sessions.js';
import type { RequestInfo, WritContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { operatorPersonProblem, operatorSubject } from './admin.js';

/** Methods that change nothing: the only ones a console session may send without its CSRF token. */
const SAFE_METHODS = new Set(['GET', 'HEAD']);

const noSession = (reason: 'console_session' | 'console_idle' | 'console_expired', description: string) =>
  new OAuthError('invalid_token', description, { status: 401, detail: { reason } });

/**
 * Authenticates a console session cookie (docs/console.md): a live session in the store, within its idle
 * and absolute timeouts, whose operator is still registered, still names the same person and may act
 * (`operatorPersonProblem`). A state-changing request must also carry the session's CSRF token in
 * `X-Writ-CSRF` and, when the browser sent an `Origin`, come from this server's own origin: SameSite=Strict
 * already keeps the cookie off cross-site requests, and this holds when a browser or a proxy does not.
 * A session past a timeout is deleted. Success moves the idle timeout on and sets `req.caller`.
 */
export async function authenticateConsoleSession(
  ctx: WritContext,
  req: RequestInfo,
): Promise<{ operator: string; session: ConsoleSession }> {
  const id = req.consoleCookie;
  if (id === undefined) throw noSession('console_session', 'no console session: sign in again');
  const idHash = sessionIdHash(id);
  const session = await ctx.store.getConsoleSession(idHash);
  if (!session)
    throw noSession('console_session', 'the console session has ended or never existed: sign in again');
  const now = ctx.clock.now();
  if (now >= session.expiresAt) {
    await ctx.store.deleteConsoleSession(idHash);
    throw noSession('console_expired', 'the console session reached console.absolute_timeout: sign in again');
  }
  if (now - session.lastSeenAt > ctx.settings.console.idleTimeout * 1000) {
    await ctx.store.deleteConsoleSession(idHash);
    throw noSession(
      'console_idle',
      'the console session was idle longer than console.idle_timeout: sign in again',
    );
  }
  const operator = ctx.registry.operator(session.operator);
  if (!operator || (operator.person ?? null) !== session.person)
    throw noSession(
      'console_session',
      'the operator of this console session is no longer registered as it was at sign-in: sign in again',
    );
  const subject = operatorSubject(operator.name);
  req.caller = subject;
  const inactive = operatorPersonProblem(ctx, operator);
  if (inactive !== undefined)
    throw new OAuthError('access_denied', inactive, { detail: { reason: 'operator_person_inactive' } });
  if (!SAFE_METHODS.has(req.method.toUpperCase())) checkCsrf(ctx, req, session);
  await ctx.store.touchConsoleSession(idHash, now);
  return { operator: subject, session };
}

function checkCsrf(ctx: WritContext, req: RequestInfo, session: ConsoleSession): void {
  const own = new URL(ctx.settings.issuer).origin;
  if (req.origin !== undefined && req.origin !== own)
    throw csrfRefusal(`the request comes from ${req.origin.slice(0, 128)}, not from ${own}`);
  if (req.csrf === undefined || !sameSecret(req.csrf, session.csrf))
    throw csrfRefusal('it must carry the X-Writ-CSRF header with the csrf value of GET /console/api/session');
}

const csrfRefusal = (why: string) =>
  new OAuthError('access_denied', `console request refused (CSRF check): ${why}`, {
    detail: { reason: 'csrf' },
  });

/** Constant-time comparison of two strings of any length (their SHA-256 digests are compared). */
function sameSecret(a: string, b: string): boolean {
  const d = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(d(a), d(b));
}
