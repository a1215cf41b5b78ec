import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { auditRefusal } from '../audit/refusal.js';
import { operatorPersonProblem, operatorSubject } from '../auth/admin.js';
import { authenticateConsoleSession } from '../auth/console-session.js';
import type { WritContext } from '../context.js';
import { invalidRequest, notFound, OAuthError } from '../errors.js';
import { info } from '../request/info.js';
import { registerConsoleOidcRoutes } from './oidc/routes.js';
import {
  clearedSessionCookie,
  consoleActor,
  openConsoleSession,
  sessionCookie,
  sessionView,
} from './sessions.js';
import { verifySignInLink } from './sign-in-link.js';
import { consoleDistDir, readConsoleFile } from './static-files.js';

/** Where the console lives on the server. */
export const CONSOLE_PATH = '/console';

/**
 * What every console response carries (docs/console.md, "Content-Security-Policy"): scripts and styles
 * from this origin only (no inline script or style), no framing, no referrer.
 */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

export const signInBody = z
  .object({ link: z.string().min(1).max(8192).describe('The JWT of the sign-in link (its `#` fragment).') })
  .strict();

/**
 * The console: its static files under `/console/` and the sign-in and session endpoints under
 * `/console/api/`. The views call the admin API with the session cookie (`auth/operator-caller.ts`).
 */
export function registerConsoleRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.addHook('onSend', async (req, reply) => {
    if (req.url === CONSOLE_PATH || req.url.startsWith(`${CONSOLE_PATH}/`)) reply.headers(SECURITY_HEADERS);
  });

  const refused = async (req: FastifyRequest, err: unknown) =>
    auditRefusal(ctx, 'console', err, info(req), { path: req.url.slice(0, 128) });

  const page = async (_req: FastifyRequest, reply: FastifyReply) => {
    const dist = consoleDistDir();
    const file = dist && (await readConsoleFile(dist, { index: true }));
    if (!file) throw notBuilt();
    return reply.headers(NO_STORE).type(file.type).send(file.body);
  };

  app.get(CONSOLE_PATH, async (_req, reply) => reply.redirect(`${CONSOLE_PATH}/`, 302));
  app.get(`${CONSOLE_PATH}/`, async (req, reply) => {
    try {
      return await page(req, reply);
    } catch (err) {
      throw await refused(req, err);
    }
  });
  app.get<{ Params: { file: string } }>(`${CONSOLE_PATH}/assets/:file`, async (req, reply) => {
    try {
      const dist = consoleDistDir();
      if (!dist) throw notBuilt();
      const file = await readConsoleFile(dist, { asset: req.params.file });
      if (!file) throw notFound('no such console file', { reason: 'not_found' });
      return reply.header('cache-control', 'no-cache').type(file.type).send(file.body);
    } catch (err) {
      throw await refused(req, err);
    }
  });
  // The console's own views (`/console/signin`, `/console/workloads`) are one page that routes itself.
  app.get<{ Params: { view: string } }>(`${CONSOLE_PATH}/:view`, async (req, reply) => {
    try {
      const view = req.params.view;
      if (view === 'api' || view === 'oidc' || !/^[A-Za-z0-9_-]{1,64}$/.test(view))
        throw notFound('no such endpoint', { reason: 'unknown_endpoint' });
      return await page(req, reply);
    } catch (err) {
      throw await refused(req, err);
    }
  });

  registerConsoleOidcRoutes(app, ctx, refused);

  app.post(`${CONSOLE_PATH}/api/signin`, async (req, reply) => {
    const r = info(req);
    try {
      const parsed = signInBody.safeParse(req.body ?? {});
      if (!parsed.success)
        throw invalidRequest('the body must be {"link": "<the JWT of the sign-in link>"}', {
          reason: 'malformed_body',
        });
      const link = verifySignInLink(ctx, parsed.data.link);
      const inactive = operatorPersonProblem(ctx, link.operator);
      r.caller = operatorSubject(link.operator.name);
      if (inactive !== undefined)
        throw new OAuthError('access_denied', inactive, { detail: { reason: 'operator_person_inactive' } });
      const now = ctx.clock.now();
      const opened = await ctx.store.transaction(async (tx) => {
        if (!(await tx.consume('console-link', link.jti, link.usedUntil, now)))
          throw new OAuthError(
            'invalid_grant',
            'sign-in link was used already: links are single use; run `writ console` for a new one',
            { status: 401, detail: { reason: 'link_used', jti: link.jti } },
          );
        return openConsoleSession(
          ctx,
          { operator: link.operator.name, person: link.operator.person, via: 'link' },
          { jti: link.jti, ip: r.ip, user_agent: r.userAgent },
          tx,
        );
      });
      return reply
        .headers({ ...NO_STORE, 'set-cookie': sessionCookie(ctx, opened.id) })
        .send(sessionView(ctx, opened.session));
    } catch (err) {
      throw await refused(req, err);
    }
  });

  app.get(`${CONSOLE_PATH}/api/session`, async (req, reply) => {
    try {
      const { session } = await authenticateConsoleSession(ctx, info(req));
      return reply.headers(NO_STORE).send(sessionView(ctx, { ...session, lastSeenAt: ctx.clock.now() }));
    } catch (err) {
      const e = (await refused(req, err)) as OAuthError;
      if (e instanceof OAuthError && e.status === 401) e.headers['set-cookie'] = clearedSessionCookie(ctx);
      throw e;
    }
  });

  app.post(`${CONSOLE_PATH}/api/signout`, async (req, reply) => {
    try {
      const { session } = await authenticateConsoleSession(ctx, info(req));
      await ctx.store.deleteConsoleSession(session.idHash);
      await ctx.audit.append({
        type: 'console.signed_out',
        outcome: 'success',
        actor: consoleActor(session),
        data: { operator: operatorSubject(session.operator), ip: req.ip },
      });
      return reply
        .headers({ ...NO_STORE, 'set-cookie': clearedSessionCookie(ctx) })
        .code(204)
        .send();
    } catch (err) {
      throw await refused(req, err);
    }
  });
}

const notBuilt = () =>
  notFound(
    'the console is not built into this installation: build the @writ/console package and restart writ serve',
    { reason: 'console_not_built' },
  );
