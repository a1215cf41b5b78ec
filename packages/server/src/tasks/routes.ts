import type { FastifyInstance } from 'fastify';
import { Paths, type WritContext } from '../context.js';
import { notFound, OAuthError } from '../errors.js';
import { single } from '../http/form.js';
import { formBody, info } from '../http/request.js';
import { assertionRules } from '../oauth/assertion-rules.js';
import { authenticateClient } from '../oauth/client-auth/authenticate.js';
import { auditRefusal } from '../oauth/refusal.js';
import { closeTask, openTask, parseLabels } from './tasks.js';

const seconds = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^[1-9]\d{0,6}$/.test(v))
    throw new OAuthError('invalid_request', `${name} must be a positive number of seconds`);
  return Number(v);
};

/**
 * Task endpoints for workloads (client authentication as at the token endpoint, assertion `aud` = the
 * issuer or the endpoint URL): open, close, and renew the lease that proves the owner is alive.
 */
export function registerTaskRoutes(app: FastifyInstance, ctx: WritContext): void {
  const authenticate = async (req: Parameters<typeof formBody>[0], path: string) => {
    const params = formBody(req);
    const client = authenticateClient(
      params,
      req.headers.authorization,
      ctx.registry,
      assertionRules(ctx, path),
    );
    if (client.replay) {
      const fresh = await ctx.store.consume(
        `assertion:${client.workload.id}`,
        client.replay.jti,
        client.replay.until,
        ctx.clock.now(),
      );
      if (!fresh)
        throw new OAuthError('invalid_client', 'client assertion has already been used', {
          detail: { reason: 'replay' },
        });
    }
    return { client, params };
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
      const { client, params } = await authenticate(req, Paths.tasks);
      const task = await openTask(ctx, {
        workload: client.workload,
        purpose: single(params, 'purpose', 512) ?? '',
        duration: seconds(single(params, 'duration', 16), 'duration'),
        lease: seconds(single(params, 'lease', 16), 'lease'),
        labels: parseLabels(single(params, 'labels', 8192)),
        openedBy: client.workload.id,
      });
      return reply.code(201).send(taskView(task));
    }),
  );

  app.post<{ Params: { id: string } }>(`${Paths.tasks}/:id/close`, async (req) =>
    guard(req, async () => {
      const { client } = await authenticate(req, `${Paths.tasks}/${req.params.id}/close`);
      const task = await ctx.store.getTask(req.params.id);
      if (!task || task.workload !== client.workload.id) throw notFound('no such task');
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
      const { client, params } = await authenticate(req, `${Paths.tasks}/${req.params.id}/heartbeat`);
      const task = await ctx.store.getTask(req.params.id);
      if (!task || task.workload !== client.workload.id) throw notFound('no such task');
      const lease = seconds(single(params, 'lease', 16), 'lease') ?? 30;
      const until = Math.min(ctx.clock.now() + lease * 1000, task.deadline);
      if (!(await ctx.store.renewTaskLease(task.id, until)))
        throw new OAuthError('invalid_grant', 'the task is closed');
      return { id: task.id, lease_until: until };
    }),
  );
}

export function taskView(t: import('../store/store.js').Task): Record<string, unknown> {
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
