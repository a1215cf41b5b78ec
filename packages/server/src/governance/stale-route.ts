import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { WritContext } from '../context.js';
import { disableStaleWorkloads, findStale } from './stale.js';

const DAY = 86_400;
const seconds = z
  .number()
  .int()
  .positive()
  .max(10 * 365 * DAY);

/**
 * What `writ govern stale` sends: the `stale:` block of the config directory's `governance.yaml`, in
 * seconds, and whether to run the opt-in disable rule now.
 */
export const staleBody = z
  .object({
    after: seconds,
    environments: z
      .record(z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/), seconds)
      .refine((r) => Object.keys(r).length <= 100, 'at most 100 environments')
      .default({}),
    disable_after: seconds.optional(),
    /** Run the disable rule: needs `disable_after` (the rule is opt-in). */
    disable: z.boolean().default(false),
  })
  .strict()
  .refine((b) => !b.disable || b.disable_after !== undefined, {
    message: 'disable needs disable_after: set stale.disable_after in governance.yaml to opt in',
    path: ['disable'],
  });

/**
 * `POST /admin/v1/govern/stale`: the stale workloads, unused classes, silent issuers and never-used keys,
 * each with its last-seen evidence; with `disable: true`, the opt-in rule disables the workloads stale
 * past the grace period (each audited as `workload.disabled`) and the answer lists them.
 */
export function registerStaleRoute(
  admin: FastifyInstance,
  ctx: WritContext,
  op: (req: FastifyRequest) => string,
  body: <T extends z.ZodType>(schema: T, req: FastifyRequest) => z.output<T>,
): void {
  admin.post('/govern/stale', async (req) => {
    const b = body(staleBody, req);
    const report = await findStale(ctx, {
      after: b.after,
      environments: b.environments,
      ...(b.disable_after !== undefined ? { disableAfter: b.disable_after } : {}),
    });
    const disabled = b.disable ? await disableStaleWorkloads(ctx, report, op(req)) : [];
    return { ...report, disabled };
  });
}
