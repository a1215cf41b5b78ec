import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { operatorSubject } from '../../auth/admin.js';
import type { WritContext } from '../../context.js';
import { invalidRequest, notFound, OAuthError } from '../../errors.js';
import { cookieValue } from '../../request/cookie.js';
import { info } from '../../request/info.js';
import { openConsoleSession, secure, sessionCookie } from '../sessions.js';
import {
  newOidcFlow,
  OIDC_FLOW_COOKIE,
  OIDC_FLOW_LIFETIME,
  openOidcFlow,
  sealOidcFlow,
} from './flow-cookie.js';
import { matchOperator } from './person-match.js';
import type { ConsoleRelyingParty } from './relying-party.js';

/** Where OpenID Connect sign-in lives; the flow cookie is sent only here. */
export const OIDC_PATH = '/console/oidc';

/** What the identity provider may send back to the callback (OpenID Connect Core §3.1.2.5–6, RFC 9207). */
export const oidcCallbackQuery = z
  .object({
    code: z.string().max(2048),
    state: z.string().max(512),
    iss: z.string().max(2048),
    error: z.string().max(256),
    error_description: z.string().max(2048),
    error_uri: z.string().max(2048),
    session_state: z.string().max(512),
    scope: z.string().max(2048),
  })
  .partial()
  .describe('the authorization response');

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/**
 * `GET /console/oidc/start` and `GET /console/oidc/callback` (docs/console.md, "OpenID Connect"). `refused`
 * audits a refusal as every console refusal is.
 */
export function registerConsoleOidcRoutes(
  app: FastifyInstance,
  ctx: WritContext,
  refused: (req: FastifyRequest, err: unknown) => Promise<unknown>,
): void {
  app.get(`${OIDC_PATH}/start`, async (req, reply) => {
    try {
      const rp = relyingParty(ctx);
      const flow = newOidcFlow(ctx.clock.now());
      const url = await rp.authorizationUrl(flow);
      return reply
        .headers({
          ...NO_STORE,
          'set-cookie': flowCookie(ctx, sealOidcFlow(rp.flowKey, flow), OIDC_FLOW_LIFETIME),
        })
        .redirect(url.href, 302);
    } catch (err) {
      throw await refused(req, err);
    }
  });

  app.get(`${OIDC_PATH}/callback`, async (req, reply) => {
    const r = info(req);
    // Whatever happens, the flow is over: its cookie goes.
    const cleared = flowCookie(ctx, '', 0);
    try {
      const rp = relyingParty(ctx);
      const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '';
      if (query.length > 8192)
        throw invalidRequest('the callback URL is too long', { reason: 'oidc_callback' });
      const callback = new URLSearchParams(query);
      const now = ctx.clock.now();
      const sealed = cookieValue(req.headers.cookie, OIDC_FLOW_COOKIE);
      const flow = sealed === undefined ? undefined : openOidcFlow(rp.flowKey, sealed);
      if (!flow)
        throw stateRefusal(
          'this browser holds no sign-in this server started (its writ_oidc cookie is missing or not ours): start again at /console/oidc/start',
        );
      if (now >= flow.expiresAt)
        throw stateRefusal(
          `the sign-in was not finished within ${OIDC_FLOW_LIFETIME / 60} minutes: start again`,
        );
      const state = callback.getAll('state');
      if (state.length !== 1 || state[0] !== flow.state)
        throw stateRefusal(
          "the callback's state is not the one of the sign-in this browser started: start again",
        );
      // Spent on every node at once (the store's replay table): a callback is taken once.
      if (!(await ctx.store.consume('console-oidc-state', flow.state, flow.expiresAt, now)))
        throw stateRefusal('this sign-in was finished already: a callback is used once; start again');
      const who = await rp.finish(callback, flow);
      let matched: ReturnType<typeof matchOperator>;
      try {
        matched = matchOperator(ctx.registry.people(), ctx.registry.operators(), who);
      } catch (err) {
        if (err instanceof OAuthError) {
          err.detail['sub'] = who.sub.slice(0, 256);
          // The provider proved who this is: a known person is the actor of the refusal.
          const person = err.detail['person'];
          if (typeof person === 'string') r.caller = `person:${person}`;
        }
        throw err;
      }
      const { person, operator } = matched;
      r.caller = operatorSubject(operator.name);
      const opened = await openConsoleSession(
        ctx,
        { operator: operator.name, person: person.id, via: 'oidc' },
        { issuer: rp.settings.issuer, sub: who.sub.slice(0, 256), ip: r.ip, user_agent: r.userAgent },
      );
      return reply
        .headers({ ...NO_STORE, 'set-cookie': [cleared, sessionCookie(ctx, opened.id)] })
        .redirect('/console/', 302);
    } catch (err) {
      const e = await refused(req, err);
      if (e instanceof OAuthError) e.headers['set-cookie'] = cleared;
      throw e;
    }
  });
}

function relyingParty(ctx: WritContext): ConsoleRelyingParty {
  if (!ctx.consoleOidc)
    throw notFound(
      'OpenID Connect sign-in is not configured on this server (console.oidc.issuer): sign in with the link `writ console` prints',
      { reason: 'oidc_off' },
    );
  return ctx.consoleOidc;
}

/**
 * The flow cookie: SameSite=Lax, because the identity provider's redirect back is a cross-site
 * navigation that a Strict cookie would miss; a GET that changes nothing but this one flow.
 */
function flowCookie(ctx: WritContext, value: string, maxAge: number): string {
  return [
    `${OIDC_FLOW_COOKIE}=${value}`,
    'HttpOnly',
    'SameSite=Lax',
    `Path=${OIDC_PATH}`,
    `Max-Age=${maxAge}`,
    ...(secure(ctx) ? ['Secure'] : []),
  ].join('; ');
}

const stateRefusal = (description: string) =>
  new OAuthError('invalid_request', `OpenID Connect sign-in refused: ${description}`, {
    detail: { reason: 'oidc_state' },
  });
