import { createHash, randomBytes } from 'node:crypto';
import type { WritContext } from '../context.js';
import { CONSOLE_COOKIE } from '../request/info.js';
import type { Store } from '../store/store.js';
import type { ConsoleSession } from './console-session.js';

/**
 * Console sessions (docs/console.md, "Sessions"): a random 256-bit id in an HttpOnly, SameSite=Strict
 * cookie; the store keeps its SHA-256 with the operator, the person, a CSRF token and the times, so any
 * node of a cluster serves any session and a copy of the database opens none.
 */

/** The store key of a session id. */
export const sessionIdHash = (id: string): string => createHash('sha256').update(id).digest('base64url');

/** The actor of a console action in the audit log: the person, or the operator when it names none. */
export const consoleActor = (s: Pick<ConsoleSession, 'operator' | 'person'>): string =>
  s.person !== null ? `person:${s.person}` : `operator:${s.operator}`;

/**
 * Opens a session for an operator the caller has authenticated (a link or OpenID Connect) and audits
 * `console.signed_in`, in `tx` when given (the link's single use commits with it). Returns the id the
 * cookie carries: it exists nowhere else.
 */
export async function openConsoleSession(
  ctx: Pick<WritContext, 'settings' | 'clock' | 'audit' | 'store'>,
  who: { operator: string; person: string | undefined; via: ConsoleSession['via'] },
  data: Record<string, unknown>,
  tx: Store = ctx.store,
): Promise<{ id: string; session: ConsoleSession }> {
  const id = randomBytes(32).toString('base64url');
  const now = ctx.clock.now();
  const session: ConsoleSession = {
    idHash: sessionIdHash(id),
    operator: who.operator,
    person: who.person ?? null,
    csrf: randomBytes(32).toString('base64url'),
    via: who.via,
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + ctx.settings.console.absoluteTimeout * 1000,
  };
  await tx.putConsoleSession(session);
  await ctx.audit.append(
    {
      type: 'console.signed_in',
      outcome: 'success',
      actor: consoleActor(session),
      data: { operator: `operator:${who.operator}`, via: who.via, expires_at: session.expiresAt, ...data },
    },
    tx,
  );
  return { id, session };
}

/** Whether cookies must be `Secure`: the server runs TLS, or its public issuer is https (a TLS proxy). */
export const secure = (ctx: Pick<WritContext, 'settings'>): boolean =>
  ctx.settings.issuer.startsWith('https://') || ctx.settings.tls.certFile !== '';

/** The `Set-Cookie` of a new session: it lives in the browser until the absolute timeout at most. */
export function sessionCookie(ctx: Pick<WritContext, 'settings'>, id: string): string {
  return [
    `${CONSOLE_COOKIE}=${id}`,
    'HttpOnly',
    'SameSite=Strict',
    'Path=/',
    `Max-Age=${ctx.settings.console.absoluteTimeout}`,
    ...(secure(ctx) ? ['Secure'] : []),
  ].join('; ');
}

/** The `Set-Cookie` that removes the session cookie (sign-out, or a session the server refused). */
export function clearedSessionCookie(ctx: Pick<WritContext, 'settings'>): string {
  return [
    `${CONSOLE_COOKIE}=`,
    'HttpOnly',
    'SameSite=Strict',
    'Path=/',
    'Max-Age=0',
    ...(secure(ctx) ? ['Secure'] : []),
  ].join('; ');
}

/** What `GET /console/api/session` answers: who is signed in, the CSRF token and when it ends (ms). */
export function sessionView(ctx: Pick<WritContext, 'settings'>, s: ConsoleSession) {
  return {
    operator: `operator:${s.operator}`,
    person: s.person,
    via: s.via,
    csrf: s.csrf,
    idle_expires_at: Math.min(s.lastSeenAt + ctx.settings.console.idleTimeout * 1000, s.expiresAt),
    expires_at: s.expiresAt,
  };
}
