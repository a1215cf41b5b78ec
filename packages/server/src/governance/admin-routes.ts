import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { WritContext } from '../context.js';
import { hasControlCharacters, PLAIN_TEXT_RULE } from '../control-characters.js';
import { invalidRequest, notFound } from '../errors.js';
import type { BreakGlassState } from './break-glass.js';
import {
  approveBreakGlass,
  BREAKGLASS_DURATION,
  breakGlassView,
  closeBreakGlass,
  requestBreakGlass,
} from './break-glass-operations.js';
import { exceptionView } from './exception.js';
import { renewException, retireException } from './exception-operations.js';

const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !hasControlCharacters(s), {
      message: `must hold ${PLAIN_TEXT_RULE}`,
      params: { reason: 'control_characters' },
    });

/** A day (its end, UTC) or an RFC 3339 time: the new end of a renewed exception. */
const until = z.string().transform((v, ctx) => {
  const at = /^\d{4}-\d{2}-\d{2}$/.test(v)
    ? Date.parse(`${v}T23:59:59.999Z`)
    : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(v)
      ? Date.parse(v)
      : Number.NaN;
  if (Number.isNaN(at)) {
    ctx.addIssue({ code: 'custom', message: 'must be a date YYYY-MM-DD or an RFC 3339 time' });
    return z.NEVER;
  }
  return at;
});

export const renewBody = z.object({ until, note: text(500) }).strict();
export const retireBody = z.object({ note: text(500) }).strict();
export const requestBody = z
  .object({
    workload: z.string().min(1).max(2048),
    class: z.string().min(1).max(63),
    reason: text(500),
    duration: z.number().int().min(BREAKGLASS_DURATION.min).max(BREAKGLASS_DURATION.max),
    emergency: z.boolean().default(false),
  })
  .strict();
export const reviewBody = z.object({ review: text(2000) }).strict();

const STATES = ['pending', 'active', 'ended'] as const satisfies readonly BreakGlassState[];

/** The query of `GET /admin/v1/breakglass` (the OpenAPI document describes it with this schema). */
export const breakGlassQuery = z.object({
  state: z.enum(STATES).describe('Only grants in this state.').optional(),
  open_review: z
    .enum(['true', 'false'])
    .describe('`true`: only grants not yet closed with a review; `false`: only those closed with one.')
    .optional(),
  workload: z.string().describe('Only this workload’s grants.').optional(),
});

/**
 * Governance routes of the admin API (docs/governance.md): the exceptions registry (list, show, renew,
 * retire) and break-glass (request, approve, close, list, show). Every change is audited with the
 * operator as actor. `open_review=true` on `GET /breakglass` lists the grants not yet closed with a
 * review note: what `writ govern verify` reports as open.
 */
export function registerGovernanceAdminRoutes(
  admin: FastifyInstance,
  ctx: WritContext,
  op: (req: FastifyRequest) => string,
  body: <T extends z.ZodType>(schema: T, req: FastifyRequest) => z.output<T>,
): void {
  admin.get('/exceptions', async () => {
    const now = ctx.clock.now();
    return { exceptions: (await ctx.store.listExceptions()).map((e) => exceptionView(e, now)) };
  });
  admin.get<{ Params: { id: string } }>('/exceptions/:id', async (req) => {
    const e = await ctx.store.getException(req.params.id.slice(0, 64));
    if (!e) throw notFound('no such exception', { reason: 'not_found' });
    return exceptionView(e, ctx.clock.now());
  });
  admin.post<{ Params: { id: string } }>('/exceptions/:id/renew', async (req) => {
    const b = body(renewBody, req);
    const e = await renewException(ctx, req.params.id.slice(0, 64), b.until, op(req), b.note);
    return exceptionView(e, ctx.clock.now());
  });
  admin.post<{ Params: { id: string } }>('/exceptions/:id/retire', async (req) => {
    const b = body(retireBody, req);
    const e = await retireException(ctx, req.params.id.slice(0, 64), op(req), b.note);
    return exceptionView(e, ctx.clock.now());
  });

  admin.get<{ Querystring: Record<string, string | undefined> }>('/breakglass', async (req) => {
    const q = req.query;
    const state = q['state'];
    if (state !== undefined && !breakGlassQuery.shape.state.safeParse(state).success)
      throw invalidRequest(`state must be one of ${STATES.join(', ')}`, { reason: 'query_parameter' });
    const open = q['open_review'];
    if (open !== undefined && !breakGlassQuery.shape.open_review.safeParse(open).success)
      throw invalidRequest('open_review must be true or false', { reason: 'query_parameter' });
    const grants = await ctx.store.listBreakGlass({
      ...(q['workload'] ? { workload: q['workload'].slice(0, 2048) } : {}),
      ...(state ? { state: state as BreakGlassState } : {}),
      ...(open !== undefined ? { openReview: open === 'true' } : {}),
      limit: 1000,
    });
    return { breakglass: grants.map(breakGlassView) };
  });
  admin.get<{ Params: { id: string } }>('/breakglass/:id', async (req) => {
    const g = await ctx.store.getBreakGlass(req.params.id.slice(0, 64));
    if (!g) throw notFound('no such break-glass request', { reason: 'not_found' });
    return breakGlassView(g);
  });
  admin.post('/breakglass', async (req, reply) => {
    const b = body(requestBody, req);
    const g = await requestBreakGlass(
      ctx,
      { workload: b.workload, cls: b.class, reason: b.reason, duration: b.duration, emergency: b.emergency },
      op(req),
    );
    return reply.code(201).send(breakGlassView(g));
  });
  admin.post<{ Params: { id: string } }>('/breakglass/:id/approve', async (req) =>
    breakGlassView(await approveBreakGlass(ctx, req.params.id.slice(0, 64), op(req))),
  );
  admin.post<{ Params: { id: string } }>('/breakglass/:id/close', async (req) => {
    const b = body(reviewBody, req);
    return breakGlassView(await closeBreakGlass(ctx, req.params.id.slice(0, 64), b.review, op(req)));
  });
}
