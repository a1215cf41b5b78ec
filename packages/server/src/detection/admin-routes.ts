import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { WritContext } from '../context.js';
import { hasControlCharacters, PLAIN_TEXT_RULE } from '../control-characters.js';
import { invalidRequest, notFound } from '../errors.js';
import { FINDING_STATES, type FindingCursor, type FindingState } from './finding.js';

const note = z
  .string()
  .max(500)
  .refine((s) => !hasControlCharacters(s), {
    message: `must hold ${PLAIN_TEXT_RULE}`,
    params: { reason: 'control_characters' },
  });

export const findingStateBody = z
  .object({
    state: z.enum(FINDING_STATES.filter((s) => s !== 'open') as [FindingState, ...FindingState[]]),
    note: note.default(''),
  })
  .strict();

export const pauseBody = z.object({ reason: note.default('by operator') }).strict();

/**
 * Detection routes of the admin API: findings (list, show, change state), the rules in force, risk by
 * workload, and the switch that pauses automatic responses. `op` names the authenticated operator;
 * `body` validates a JSON body.
 */
export function registerDetectionAdminRoutes(
  admin: FastifyInstance,
  ctx: WritContext,
  op: (req: FastifyRequest) => string,
  body: <T extends z.ZodType>(schema: T, req: FastifyRequest) => z.output<T>,
): void {
  admin.get<{ Querystring: Query }>('/detections/findings', async (req) => {
    const q = givenOnce(req.query, ['state', 'workload', 'rule', 'before', 'before_id', 'limit']);
    const state = q['state'];
    if (state !== undefined && !(FINDING_STATES as readonly string[]).includes(state))
      throw invalidRequest(`state must be one of ${FINDING_STATES.join(', ')}`, {
        reason: 'query_parameter',
      });
    const before = findingsCursor(q['before'], q['before_id']);
    const limit = q['limit'] === undefined ? 100 : Number(q['limit']);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw invalidRequest('limit must be an integer from 1 to 1000', { reason: 'query_parameter' });
    const findings = await ctx.store.listFindings({
      ...(state ? { state: state as FindingState } : {}),
      ...(q['workload'] ? { workload: q['workload'].slice(0, 2048) } : {}),
      ...(q['rule'] ? { rule: q['rule'].slice(0, 64) } : {}),
      ...(before !== undefined ? { before } : {}),
      limit,
    });
    return { findings };
  });
  admin.get<{ Params: { id: string } }>('/detections/findings/:id', async (req) => {
    const f = await ctx.store.getFinding(findingId(req.params.id));
    if (!f) throw notFound('no such finding', { reason: 'not_found' });
    return f;
  });
  admin.post<{ Params: { id: string } }>('/detections/findings/:id', async (req) => {
    const id = findingId(req.params.id);
    const b = body(findingStateBody, req);
    const now = ctx.clock.now();
    const event = await ctx.store.transaction(async (tx) => {
      const f = await tx.getFinding(id);
      if (!f) throw notFound('no such finding', { reason: 'not_found' });
      await tx.setFindingState(id, b.state, op(req), now, b.note);
      return ctx.audit.append(
        {
          type: 'detection.finding_updated',
          outcome: 'success',
          actor: op(req),
          ...(f.workload !== '' ? { subject: f.workload } : {}),
          data: { finding: id, rule: f.rule, from: f.state, to: b.state, note: b.note },
        },
        tx,
      );
    });
    ctx.audit.noteCommitted(event);
    return ctx.store.getFinding(id);
  });
  admin.get('/detections', async () => {
    const now = ctx.clock.now();
    return {
      enabled: ctx.detection.enabled,
      control: ctx.detection.control() ?? { paused: false },
      rules: ctx.detection.rules().map((r) => ({
        id: r.id,
        signal: r.signal,
        condition: r.condition,
        severity: r.severity,
        response: r.response,
        mode: r.mode,
        cooldown_seconds: r.cooldownMs / 1000,
        enabled: r.enabled,
        source: r.source,
        learning_gated: r.readsBaseline,
      })),
      networks: ctx.detection.networks.environments,
      risk: ctx.detection.risk.list(now),
      stats: { ...ctx.detection.engine.stats, dropped: ctx.detection.dropped },
    };
  });
  admin.post('/detections/pause', async (req) => {
    const { reason } = body(pauseBody, req);
    return ctx.detection.setPaused(true, op(req), reason);
  });
  admin.post('/detections/resume', async (req) => {
    const { reason } = body(pauseBody, req);
    return ctx.detection.setPaused(false, op(req), reason);
  });
}

/** A query string as parsed: a parameter given more than once is an array of its values. */
type Query = Record<string, string | string[] | undefined>;

/** The parameters `names` of `q`, each given at most once; one given twice is refused. */
function givenOnce<N extends string>(q: Query, names: readonly N[]): { [K in N]?: string } {
  const once: { [K in N]?: string } = {};
  for (const name of names) {
    const v = q[name];
    if (Array.isArray(v)) throw invalidRequest(`${name} must be given once`, { reason: 'query_parameter' });
    if (v !== undefined) once[name] = v;
  }
  return once;
}

/** A finding's id as Writ makes them (`randomUUID`). */
const FINDING_ID = /^[0-9a-f-]{36}$/;

function findingId(id: string): string {
  if (!FINDING_ID.test(id)) throw notFound('no such finding', { reason: 'not_found' });
  return id;
}

/**
 * Where a page of findings starts: after the finding `before` (its `createdAt`) and `before_id` (its
 * id) name, the last of the previous page; `before` alone lists the findings created before that
 * millisecond.
 */
function findingsCursor(before: string | undefined, beforeId: string | undefined): FindingCursor | undefined {
  const refuse = (what: string) => invalidRequest(what, { reason: 'query_parameter' });
  if (before === undefined) {
    if (beforeId !== undefined) throw refuse('before_id needs before, the createdAt of that finding');
    return undefined;
  }
  if (!/^\d{1,16}$/.test(before) || !Number.isSafeInteger(Number(before)))
    throw refuse('before must be a time in milliseconds since the epoch');
  if (beforeId !== undefined && !FINDING_ID.test(beforeId))
    throw refuse('before_id must be the id of a finding');
  return { createdAt: Number(before), id: beforeId ?? '' };
}
