import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditEntry } from '../audit/audit-log.js';
import { auditRefusal } from '../audit/refusal.js';
import type { WritContext } from '../context.js';
import { invalidRequest, notFound, OAuthError } from '../errors.js';
import { info } from '../request/info.js';
import type { Store } from '../store/store.js';
import { authenticateSsfCaller } from './auth.js';
import type { SsfStream } from './stream-record.js';
import {
  checkStreamRoom,
  eventsDelivered,
  MIN_VERIFICATION_INTERVAL,
  newStream,
  parseBody,
  pollBody,
  type SsfCaller,
  statusBody,
  streamView,
  updatedStream,
  updateTarget,
  verifyBody,
} from './streams.js';
import { createTransmitter } from './transmitter.js';
import { DeliveryMethod, SsfPaths } from './vocabulary.js';

const NO_STORE = { 'cache-control': 'no-store' };

/** A stream id, in a query or a body (the OpenAPI document uses it too). */
export const streamIdParam = z.string().min(1).max(64);

/**
 * The Shared Signals (SSF 1.0) transmitter: `/.well-known/ssf-configuration`, stream management
 * (`/ssf/stream`, `/ssf/status`, `/ssf/verify`) for operators and receiver workloads, and the RFC 8936
 * poll endpoint of each poll stream. Push delivery (RFC 8935) runs in the transmitter. Every change is
 * audited, and so is every refusal (`ssf.refused`).
 */
export function registerSsfRoutes(app: FastifyInstance, ctx: WritContext): void {
  const transmitter = createTransmitter(ctx);
  // Waiting polls answer at once when the server stops; pushes in flight finish first.
  app.addHook('preClose', async () => transmitter.close());
  const issuer = ctx.settings.issuer;
  const lastVerification = new Map<string, number>();

  app.get(SsfPaths.configuration, async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=300');
    return {
      spec_version: '1_0',
      issuer,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      delivery_methods_supported: [DeliveryMethod.push, DeliveryMethod.poll],
      configuration_endpoint: `${issuer}${SsfPaths.stream}`,
      status_endpoint: `${issuer}${SsfPaths.status}`,
      verification_endpoint: `${issuer}${SsfPaths.verify}`,
      // OAuth 2.0 access tokens from this server (client credentials), DPoP-bound per RFC 9449.
      authorization_schemes: [{ spec_urn: 'urn:ietf:rfc:6749' }, { spec_urn: 'urn:ietf:rfc:9449' }],
      // Every stream carries events about every subject; there are no add/remove subject endpoints.
      default_subjects: 'ALL',
    };
  });

  /** Authenticates, runs, and audits a refusal (as `ssf.refused`, attributed once the caller is known). */
  const guarded =
    <R extends FastifyRequest>(fn: (req: R, reply: FastifyReply, caller: SsfCaller) => Promise<unknown>) =>
    async (req: R, reply: FastifyReply) => {
      let caller: SsfCaller | undefined;
      try {
        caller = await authenticateSsfCaller(ctx, info(req));
        reply.headers(NO_STORE);
        return await fn(req, reply, caller);
      } catch (err) {
        throw await auditRefusal(ctx, 'ssf', err, info(req), {
          path: req.url.slice(0, 128),
          ...(caller ? { client_id: caller.id } : {}),
        });
      }
    };

  /** The caller's stream: an operator may name any; a receiver only its own (others do not exist for it). */
  const streamOf = async (caller: SsfCaller, id: unknown): Promise<SsfStream> => {
    if (typeof id !== 'string' || !streamIdParam.safeParse(id).success)
      throw invalidRequest('stream_id is required', { reason: 'missing_parameter' });
    const s = await ctx.store.getSsfStream(id);
    if (!s || (caller.kind === 'receiver' && s.owner !== caller.id))
      throw notFound('no such stream', { reason: 'not_found' });
    return s;
  };

  /** Writes and audits in one transaction: `write` returns the audit event describing what it did. */
  const audited = async (write: (tx: Store) => Promise<AuditEntry>) => {
    const event = await ctx.store.transaction(async (tx) => ctx.audit.append(await write(tx), tx));
    ctx.audit.noteCommitted(event);
  };

  const describe = (s: SsfStream) => ({
    stream_id: s.id,
    aud: s.aud,
    method: s.deliveryMethod,
    // The endpoint without its query: receivers sometimes put credentials there.
    endpoint: s.endpointUrl.split('?')[0],
    events_delivered: eventsDelivered(s),
  });

  type Query = { Querystring: Record<string, string | undefined> };

  app.post(
    SsfPaths.stream,
    guarded(async (req, reply, caller) => {
      // Before resolving a push endpoint's host: a caller without room learns so without a lookup.
      checkStreamRoom(ctx.settings.ssf, caller, await ctx.store.listSsfStreams());
      const draft = await newStream(ctx, caller, req.body);
      let stream!: SsfStream;
      await audited(async (tx) => {
        // Counted again in the transaction that stores it (transactions are serialized): racing creates
        // cannot pass a limit together.
        checkStreamRoom(ctx.settings.ssf, caller, await tx.listSsfStreams());
        // The log's head read in the transaction: events after it are this stream's, none before.
        stream = { ...draft, fromSeq: (await tx.eventBounds()).last };
        await tx.putSsfStream(stream);
        return { type: 'ssf.stream.created', outcome: 'success', actor: caller.id, data: describe(stream) };
      });
      return reply.code(201).send(streamView(ctx, stream));
    }),
  );

  app.get<Query>(
    SsfPaths.stream,
    guarded<FastifyRequest<Query>>(async (req, _reply, caller) => {
      if (req.query['stream_id'] !== undefined)
        return streamView(ctx, await streamOf(caller, req.query['stream_id']));
      const streams = await ctx.store.listSsfStreams(caller.kind === 'receiver' ? caller.id : undefined);
      return streams.map((s) => streamView(ctx, s));
    }),
  );

  for (const [method, replace] of [
    ['PATCH', false],
    ['PUT', true],
  ] as const) {
    app.route({
      method,
      url: SsfPaths.stream,
      handler: guarded(async (req, _reply, caller) => {
        const body = updateTarget(req.body);
        const current = await streamOf(caller, body.stream_id);
        const next = await updatedStream(ctx, current, body, replace);
        await audited(async (tx) => {
          await tx.putSsfStream(next);
          return {
            type: 'ssf.stream.updated',
            outcome: 'success',
            actor: caller.id,
            data: { ...describe(next), replace },
          };
        });
        transmitter.streamChanged(next.id);
        return streamView(ctx, next);
      }),
    });
  }

  app.delete<Query>(
    SsfPaths.stream,
    guarded<FastifyRequest<Query>>(async (req, reply, caller) => {
      const s = await streamOf(caller, req.query['stream_id']);
      await audited(async (tx) => {
        await tx.deleteSsfStream(s.id);
        return {
          type: 'ssf.stream.deleted',
          outcome: 'success',
          actor: caller.id,
          data: { stream_id: s.id },
        };
      });
      transmitter.streamChanged(s.id);
      return reply.code(204).send();
    }),
  );

  app.get<Query>(
    SsfPaths.status,
    guarded<FastifyRequest<Query>>(async (req, _reply, caller) => {
      const s = await streamOf(caller, req.query['stream_id']);
      return { stream_id: s.id, status: s.status, ...(s.statusReason ? { reason: s.statusReason } : {}) };
    }),
  );

  app.post(
    SsfPaths.status,
    guarded(async (req, _reply, caller) => {
      const b = parseBody(statusBody, req.body);
      const s = await streamOf(caller, b.stream_id);
      const next: SsfStream = {
        ...s,
        status: b.status,
        statusReason: b.reason ?? null,
        updatedAt: ctx.clock.now(),
      };
      await audited(async (tx) => {
        await tx.putSsfStream(next);
        // Disabled: nothing is held for later (SSF 1.0 §8.1.2). Paused: everything is.
        if (b.status === 'disabled') {
          const held = await tx.pendingSsfSets(s.id, ctx.settings.ssf.maxQueued);
          await tx.ackSsfSets(
            s.id,
            held.map((h) => h.jti),
          );
        }
        return {
          type: 'ssf.stream.status',
          outcome: 'success',
          actor: caller.id,
          data: { stream_id: s.id, from: s.status, to: b.status, reason: b.reason ?? null },
        };
      });
      transmitter.streamChanged(s.id);
      return {
        stream_id: s.id,
        status: next.status,
        ...(next.statusReason ? { reason: next.statusReason } : {}),
      };
    }),
  );

  app.post(
    SsfPaths.verify,
    guarded(async (req, reply, caller) => {
      const b = parseBody(verifyBody, req.body);
      const s = await streamOf(caller, b.stream_id);
      if (s.status === 'disabled')
        throw invalidRequest('the stream is disabled', { reason: 'stream_disabled' });
      const now = ctx.clock.now();
      const last = lastVerification.get(s.id);
      if (last !== undefined && now - last < MIN_VERIFICATION_INTERVAL * 1000)
        throw new OAuthError('slow_down', `at most one verification per ${MIN_VERIFICATION_INTERVAL} s`, {
          detail: { reason: 'too_soon' },
          headers: { 'retry-after': String(MIN_VERIFICATION_INTERVAL) },
        });
      lastVerification.set(s.id, now);
      await transmitter.verify(s, b.state);
      await ctx.audit.append({
        type: 'ssf.verification.requested',
        outcome: 'success',
        actor: caller.id,
        data: { stream_id: s.id },
      });
      return reply.code(204).send();
    }),
  );

  app.post<{ Params: { id: string } }>(
    `${SsfPaths.poll}/:id`,
    guarded<FastifyRequest<{ Params: { id: string } }>>(async (req, _reply, caller) => {
      const s = await streamOf(caller, req.params.id);
      if (s.deliveryMethod !== DeliveryMethod.poll)
        throw invalidRequest('this stream is delivered by push', { reason: 'delivery_method' });
      const b = parseBody(pollBody, req.body);
      const errs = Object.entries(b.setErrs ?? {});
      const acked = [...(b.ack ?? []), ...errs.map(([jti]) => jti)];
      if (acked.length > 0) await ctx.store.ackSsfSets(s.id, acked);
      if (errs.length > 0)
        await ctx.audit.append({
          type: 'ssf.set.errors',
          outcome: 'failure',
          actor: caller.id,
          data: {
            stream_id: s.id,
            errors: Object.fromEntries(errs.slice(0, 50).map(([jti, e]) => [jti, e.err])),
            count: errs.length,
          },
        });
      const max = b.maxEvents ?? 100;
      // RFC 8936 §2.4: maxEvents 0 only acknowledges. A paused stream holds its SETs.
      if (max === 0 || s.status !== 'enabled') return { sets: {}, moreAvailable: false };
      let pending = await ctx.store.pendingSsfSets(s.id, max + 1);
      if (pending.length === 0 && b.returnImmediately !== true) {
        await transmitter.waitForSets(s.id, ctx.settings.ssf.pollWait * 1000);
        pending = await ctx.store.pendingSsfSets(s.id, max + 1);
      }
      const sets = Object.fromEntries(pending.slice(0, max).map((p) => [p.jti, transmitter.sign(p)]));
      return { sets, moreAvailable: pending.length > max };
    }),
  );
}
