import {
  checkHolderBinding,
  presentedToken,
  RequestRefusal,
  type RevocableToken,
  TokenError,
  verifyAccessTokenJwt,
} from '@writ/sdk/verifier';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { auditRefusal } from '../audit/refusal.js';
import { seconds } from '../clock.js';
import { Paths, type WritContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { info } from '../request/info.js';
import type { StreamEvent } from './stream-event.js';

/** How recently this node must have read the event log to keep a stream open (it reads it every second). */
const LOG_CURRENT_MS = 3000;

/** The audience a verifier's token must carry to follow the event stream. */
export const eventsAudience = (issuer: string): string => `${issuer}${Paths.events}`;

/**
 * `GET /v1/events`: Server-Sent Events of the event log for verifiers (which are workloads: they present
 * a Writ token for the events audience, DPoP-bound when their class says so). Resumes after
 * `Last-Event-ID`; a verifier that is new or further behind than the log keeps gets a `snapshot` of the
 * revocations in force first. A `head` event (no id) opens every stream with the last seq at that moment.
 * Comment heartbeats let it detect a silent stream.
 */
export function registerEventRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.get(Paths.events, async (req, reply) => {
    let subscriber: Awaited<ReturnType<typeof authenticateStreamClient>>;
    try {
      subscriber = await authenticateStreamClient(ctx, req);
    } catch (err) {
      throw await auditRefusal(ctx, 'events', err, info(req), {});
    }
    const lastId = req.headers['last-event-id'];
    const resumeFrom = typeof lastId === 'string' && /^\d{1,15}$/.test(lastId) ? Number(lastId) : undefined;
    const bounds = await ctx.events.bounds();
    const needsSnapshot =
      resumeFrom === undefined || resumeFrom < bounds.first - 1 || resumeFrom > bounds.last;
    const from = needsSnapshot ? bounds.last : resumeFrom;
    // Everything that needs the store happens before the stream opens: a store that fails here is an
    // ordinary 503, not a stream left open with nothing behind it.
    const revocations = needsSnapshot ? await ctx.store.listRevocations(0, ctx.clock.now()) : [];
    await ctx.audit.append({
      type: 'events.subscribed',
      outcome: 'success',
      actor: subscriber.clientId,
      data: { from, snapshot: needsSnapshot, ip: req.ip },
    });

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    // The log's head as this stream opens: a resuming verifier is in sync once it has seen this id (the
    // catch-up comes first), and until then must not take the open stream for fresh state.
    res.write(`event: head\ndata: ${JSON.stringify({ head: bounds.last })}\n\n`);
    if (needsSnapshot) {
      res.write(
        frame({
          seq: bounds.last,
          ts: ctx.clock.now(),
          type: 'snapshot',
          data: { revocations, keys: ctx.keys.publicJwks().keys.map((k) => k.kid) },
        }),
      );
    }
    // The stream lives as long as the subscriber's token: it ends at `exp` or when the token is revoked.
    const unsubscribe = ctx.events.subscribe(from, (e) => {
      res.write(frame(e));
      if (e.type === 'revocation' && ctx.revocations.match(subscriber.token)) res.end();
    });
    const heartbeat = setInterval(() => {
      // A heartbeat says "nothing you missed". A node that cannot read the log (its store is unreachable)
      // cannot say that: it ends the stream, and the verifier reconnects (to a node that can) or goes
      // stale and fails closed, rather than hearing heartbeats while other nodes' revocations pass it by.
      if (ctx.events.sinceLastRead() > LOG_CURRENT_MS) {
        res.end();
        return;
      }
      res.write(`: heartbeat ${ctx.clock.now()}\n\n`);
    }, ctx.settings.events.heartbeat * 1000);
    const expiry = setTimeout(() => res.end(), Math.max(0, subscriber.token.exp * 1000 - ctx.clock.now()));
    const stop = () => {
      clearInterval(heartbeat);
      clearTimeout(expiry);
      unsubscribe();
    };
    res.on('close', stop);
    ctx.streams.add(res);
    res.on('close', () => ctx.streams.delete(res));
  });
}

function frame(e: StreamEvent): string {
  return `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify({ ...e.data, seq: e.seq, ts: e.ts })}\n\n`;
}

/**
 * Authenticates a verifier as the event stream does: a Writ token for the events audience, not revoked,
 * DPoP-bound when its class says so, the proof over `url` (the stream itself by default). Throws a
 * 401 `OAuthError`.
 */
export async function authenticateStreamClient(
  ctx: WritContext,
  req: FastifyRequest,
  url = `${ctx.settings.issuer}${Paths.events}`,
): Promise<{ clientId: string; token: RevocableToken & { exp: number } }> {
  const fail = (err: unknown): never => {
    if (err instanceof RequestRefusal) {
      throw new OAuthError(err.code === 'invalid_request' ? 'invalid_token' : err.code, err.message, {
        status: 401,
        headers: { 'www-authenticate': err.challenge(ctx.settings.dpop.algorithms) },
        detail: { reason: err.reason },
      });
    }
    if (err instanceof TokenError) {
      throw new OAuthError('invalid_token', err.message, {
        status: 401,
        headers: { 'www-authenticate': 'DPoP error="invalid_token"' },
        detail: { reason: err.reason },
      });
    }
    throw err;
  };
  try {
    const presented = presentedToken(req.headers.authorization);
    const now = seconds(ctx.clock.now());
    const { claims, kid } = verifyAccessTokenJwt(presented.token, {
      keys: ctx.keys.verificationKeys(),
      issuer: ctx.settings.issuer,
      audience: eventsAudience(ctx.settings.issuer),
      nowSeconds: now,
      leeway: 5,
      maxBytes: ctx.settings.limits.tokenBytes,
    });
    if (ctx.revocations.match({ ...claims, kid })) throw new TokenError('revoked', 'token has been revoked');
    await checkHolderBinding(
      {
        authorization: req.headers.authorization,
        dpop: info(req).dpop,
        method: 'GET',
        url,
      },
      presented,
      claims,
      {
        algorithms: ctx.settings.dpop.algorithms,
        nowSeconds: now,
        iatWindow: ctx.settings.dpop.iatWindow,
        consumeJti: (key, exp) => ctx.store.consume('dpop', key, exp * 1000, ctx.clock.now()),
      },
    );
    return { clientId: claims.client_id, token: { ...claims, kid } };
  } catch (err) {
    return fail(err);
  }
}
