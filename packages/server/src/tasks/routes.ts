import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { auditRefusal } from '../audit/refusal.js';
import { authenticateClient, consumeAssertion } from '../auth/client.js';
import { Paths, type WritContext } from '../context.js';
import { notFound, OAuthError } from '../errors.js';
import type { FederatedIdentity } from '../federation/attest.js';
import { federationIdentity } from '../federation/replay.js';
import { formBody, single } from '../request/form.js';
import { info } from '../request/info.js';
import type { Task } from './task.js';
import { closeTask, openTask, parseLabels } from './tasks.js';

/** A duration or lease in the task forms: whole seconds, 1 to 9,999,999 (the OpenAPI document uses it too). */
export const taskSeconds = z.string().regex(/^[1-9]\d{0,6}$/);

const seconds = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  if (!taskSeconds.safeParse(v).success)
    throw new OAuthError('invalid_request', `${name} must be a positive number of seconds`, {
      detail: { reason: 'duration' },
    });
  return Number(v);
};

/**
 * Task endpoints for workloads (client authentication as at the token endpoint, mTLS included; assertion `aud` = the
 * issuer, the token endpoint or this endpoint's URL): open, close, and renew the lease that proves the owner is alive. A
 * federated workload authenticates with its platform token as the `client_assertion` (RFC 7523 §2.2
 * form, checked by `attestFederatedToken`); it may then only touch tasks opened the same way for the
 * same issuer (and, for a CI run, the same run).
 */
export function registerTaskRoutes(app: FastifyInstance, ctx: WritContext): void {
  /** Every call draws on the client's budget but closing: a client over its limit can still end its work (and its tokens). */
  const authenticate = async (
    req: Parameters<typeof formBody>[0],
    path: string,
    budget?: false,
    consume: 'now' | 'with_issuance' = 'now',
  ) => {
    const params = formBody(req);
    const client = await authenticateClient(ctx, params, info(req), {
      endpoint: path,
      federation: true,
      consume,
      ...(budget === false ? { budget } : {}),
    });
    return { client, params, federation: client.federation };
  };
  /** The task, when this caller may act on it: its workload's, and for a federated caller, its issuer's. */
  const ownTask = async (id: string, workloadId: string, federation: FederatedIdentity | undefined) => {
    const task = await ctx.store.getTask(id);
    if (!task || task.workload !== workloadId) throw notFound('no such task', { reason: 'not_found' });
    if (federation && !federatedTaskMatches(task.labels, federation))
      throw notFound('no such task', { reason: 'not_found' });
    return task;
  };
  const guard = async <T>(req: Parameters<typeof formBody>[0], fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw await auditRefusal(ctx, 'task', err, info(req), {
        client_id: formBody(req).get('client_id')?.[0],
      });
    }
  };

  app.post(Paths.tasks, async (req, reply) =>
    guard(req, async () => {
      // The assertion's `jti` is spent in the transaction that opens the task (one commit, not two); a
      // refusal after this spends it on its own, so a refused assertion is as spent as with `now`.
      const { client, params, federation } = await authenticate(req, Paths.tasks, undefined, 'with_issuance');
      const replay = client.replay;
      try {
        return await openOwnTask(client, params, federation, replay, reply);
      } catch (err) {
        if (replay && !isReplayRefusal(err))
          await consumeAssertion(ctx.store, client.workload.id, replay, ctx.clock.now()).catch(() => false);
        throw err;
      }
    }),
  );
  const openOwnTask = async (
    client: Awaited<ReturnType<typeof authenticateClient>>,
    params: ReturnType<typeof formBody>,
    federation: FederatedIdentity | undefined,
    replay: { jti: string; until: number } | undefined,
    reply: FastifyReply,
  ) => {
    const labels = parseLabels(single(params, 'labels', 8192));
    const task = await openTask(ctx, {
      replay: replay && { clientId: client.workload.id, ...replay },
      workload: client.workload,
      purpose: single(params, 'purpose', 512) ?? '',
      duration: seconds(single(params, 'duration', 16), 'duration'),
      lease: seconds(single(params, 'lease', 16), 'lease'),
      // The labels the platform token proves (issuer, CI run) win over any the caller sent.
      labels: federation ? { ...labels, ...federatedLabels(federation) } : labels,
      openedBy: client.workload.id,
      ...(federation
        ? {
            auditData: {
              auth_method: `federation:${federation.issuer}`,
              federation: federationIdentity(federation),
            },
          }
        : {}),
    });
    return reply.code(201).send(taskView(task));
  };

  app.post<{ Params: { id: string } }>(`${Paths.tasks}/:id/close`, async (req) =>
    guard(req, async () => {
      const { client, federation } = await authenticate(req, `${Paths.tasks}/${req.params.id}/close`, false);
      const task = await ownTask(req.params.id, client.workload.id, federation);
      const closed = await closeTask(
        ctx,
        task.id,
        single(formBody(req), 'reason', 256) ?? 'closed by owner',
        client.workload.id,
      );
      return { id: task.id, closed: true, already_closed: !closed };
    }),
  );

  app.post<{ Params: { id: string } }>(`${Paths.tasks}/:id/heartbeat`, async (req) =>
    guard(req, async () => {
      const { client, params, federation } = await authenticate(
        req,
        `${Paths.tasks}/${req.params.id}/heartbeat`,
      );
      const task = await ownTask(req.params.id, client.workload.id, federation);
      const lease = seconds(single(params, 'lease', 16), 'lease') ?? 30;
      const until = Math.min(ctx.clock.now() + lease * 1000, task.deadline);
      if (!(await ctx.store.renewTaskLease(task.id, until)))
        throw new OAuthError('invalid_grant', 'the task is closed', { detail: { reason: 'task_closed' } });
      return { id: task.id, lease_until: until };
    }),
  );
}

/** What a federated task open is labelled with: `federation=<issuer>` plus the CI run's labels. */
function federatedLabels(f: FederatedIdentity): Record<string, string> {
  return f.run ? { ...f.run.labels } : { federation: f.issuer };
}

/** A federated caller may act only on tasks its issuer (and its CI run, when it has one) opened. */
function federatedTaskMatches(labels: Record<string, string>, f: FederatedIdentity): boolean {
  return Object.entries(federatedLabels(f)).every(([k, v]) => labels[k] === v);
}

export function taskView(t: Task): Record<string, unknown> {
  return {
    id: t.id,
    workload: t.workload,
    purpose: t.purpose,
    labels: t.labels,
    opened_by: t.openedBy,
    opened_at: t.openedAt,
    deadline: t.deadline,
    lease_until: t.leaseUntil,
    state: t.closedAt === null ? 'open' : 'closed',
    closed_at: t.closedAt,
    close_reason: t.closeReason,
  };
}

/** The refusal of an assertion whose `jti` was spent already (nothing more to spend). */
function isReplayRefusal(err: unknown): boolean {
  return err instanceof OAuthError && err.code === 'invalid_client' && err.reason === 'replay';
}
