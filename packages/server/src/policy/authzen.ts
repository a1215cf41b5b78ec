import { isRequestAction, PolicyContextError, requestEnvironment } from '@writ/sdk/wire';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { auditRefusal } from '../audit/refusal.js';
import { authenticateOperatorOrBearer } from '../auth/admin.js';
import { Paths, type WritContext } from '../context.js';
import { invalidRequest } from '../errors.js';
import { info } from '../request/info.js';
import type { Decision } from './engine.js';
import {
  buildContext,
  type DecisionRequest,
  humanPrincipal,
  isPolicyAction,
  isPrintable,
  workloadPrincipal,
} from './request.js';

/**
 * The OpenID AuthZEN Authorization API 1.0 over Writ's policy engine, for resource servers that do not
 * embed the verifier SDK: `POST /access/v1/evaluation` and `POST /access/v1/evaluations`, and the PDP
 * metadata at `/.well-known/authzen-configuration`.
 *
 * Subjects: `{type: "workload", id: <SPIFFE ID>}` (entity data from the registry, never from the
 * caller) or `{type: "user" | "human", id, properties: {roles, mfa}}` (what the caller asserts about
 * the person). Resources: `{type: "api", id: <audience URI>}` (attributes from the resource catalogue).
 * Actions: `{name: "read" | "write" | "export" | "delete"}` (workloads may also ask about issue,
 * exchange, renew). Context: the fields of Writ's context record; time is the server's.
 */
export const accessAudience = (issuer: string): string => `${issuer}${Paths.access}`;

const id = z.string().min(1).max(2048).refine(isPrintable, 'must not contain control characters');
const properties = z.record(z.string(), z.unknown()).optional();
const entity = z.object({ type: z.string().min(1).max(64), id, properties }).passthrough();
const action = z.object({ name: z.string().min(1).max(64), properties }).passthrough();
const context = z.record(z.string(), z.unknown());

export const evaluationBody = z
  .object({ subject: entity, action, resource: entity, context: context.optional() })
  .passthrough();

const MAX_BATCH = 100;
export const evaluationsBody = z
  .object({
    subject: entity.optional(),
    action: action.optional(),
    resource: entity.optional(),
    context: context.optional(),
    evaluations: z
      .array(
        z
          .object({
            subject: entity.optional(),
            action: action.optional(),
            resource: entity.optional(),
            context: context.optional(),
          })
          .passthrough(),
      )
      .max(MAX_BATCH)
      .optional(),
    options: z
      .object({
        evaluations_semantic: z
          .enum(['execute_all', 'deny_on_first_deny', 'permit_on_first_permit'])
          .default('execute_all'),
      })
      .passthrough()
      .optional(),
  })
  .passthrough();

/** What the PEP may tell about the request; everything else of the context record is Writ's. */
/** The context fields a caller may give a decision (AuthZEN, the admin API's explain). */
export const contextFields = z
  .object({
    source_ip: z.string().max(64).optional(),
    environment: z.string().max(64).optional(),
    task_id: z.string().max(128).optional(),
    purpose: z.string().max(200).optional(),
    attestation: z.string().max(64).optional(),
    binding: z.enum(['dpop', 'bearer', 'mtls']).optional(),
    risk: z.number().int().min(0).max(100).optional(),
    scopes: z.array(z.string().max(128)).max(200).optional(),
    token_class: z.string().max(64).optional(),
    client_id: z.string().max(2048).optional(),
  })
  .passthrough();

const humanProperties = z
  .object({
    roles: z.array(z.string().max(64)).max(50).default([]),
    mfa: z.boolean().default(false),
  })
  .passthrough();

interface EvaluationInput {
  subject: z.output<typeof entity>;
  action: z.output<typeof action>;
  resource: z.output<typeof entity>;
  context?: Record<string, unknown> | undefined;
}

export interface EvaluationResult {
  decision: boolean;
  context?: Record<string, unknown>;
}

/**
 * Decides one AuthZEN request. Input Writ cannot decide about (unknown subject or resource type, an
 * unregistered workload) is a `false` decision with the reason in `context.reason_admin`.
 */
export function evaluate(ctx: WritContext, input: EvaluationInput): EvaluationResult {
  const deny = (why: string): EvaluationResult => ({
    decision: false,
    context: { reason_admin: { en: why }, policy_version: ctx.policy.version.id },
  });
  const name = input.action.name;
  if (!isPolicyAction(name)) return deny(`unknown action "${name.slice(0, 64)}"`);
  if (input.resource.type !== 'api') return deny('resource.type must be "api" (an audience URI)');
  const subjectType = input.subject.type;
  let principal: DecisionRequest['principal'];
  let environment = '';
  if (subjectType === 'workload') {
    const w = ctx.registry.workload(input.subject.id);
    if (!w) return deny('unknown workload');
    if (w.state !== 'active') return deny(`the workload is ${w.state}`);
    principal = workloadPrincipal(w, ctx.registry.generation);
    environment = w.environment;
  } else if (subjectType === 'user' || subjectType === 'human') {
    if (!isRequestAction(name))
      return deny('people are decided only for request actions (read, write, export, delete)');
    const p = humanProperties.safeParse(input.subject.properties ?? {});
    if (!p.success)
      throw invalidRequest(`subject.properties: ${p.error.issues[0]!.message}`, { reason: 'malformed_body' });
    principal = humanPrincipal(input.subject.id, p.data.roles, p.data.mfa);
  } else {
    return deny('subject.type must be "workload", "user" or "human"');
  }
  const c = contextFields.safeParse(input.context ?? {});
  if (!c.success) {
    const i = c.error.issues[0]!;
    throw invalidRequest(`context.${i.path.join('.')}: ${i.message}`, { reason: 'malformed_body' });
  }
  const { source_ip, environment: env, ...rest } = c.data;
  let d: Decision;
  try {
    d = ctx.policy.decide({
      principal,
      action: name,
      resource: input.resource.id,
      context: buildContext(ctx.clock.now(), {
        ...pick(rest),
        // A workload's risk is Writ's (detection); a caller may only say it is higher.
        ...(subjectType === 'workload'
          ? { risk: Math.max(ctx.detection.riskOf(input.subject.id), (rest as { risk?: number }).risk ?? 0) }
          : {}),
        ...(source_ip !== undefined ? { source_ip } : {}),
        environment: requestEnvironment(env, environment, ctx.policy.resource(input.resource.id).environment),
      }),
    });
  } catch (err) {
    if (err instanceof PolicyContextError)
      throw invalidRequest(`context: ${err.message}`, { reason: err.reason });
    throw err;
  }
  ctx.metrics.policyDecisions.inc({ endpoint: 'authzen', action: name, decision: d.decision });
  return {
    decision: d.decision === 'allow',
    context: {
      policy_version: d.policyVersion,
      policies: d.reasons,
      ...(d.errors.length > 0 ? { reason_admin: { en: `policy errors: ${d.errors.join('; ')}` } } : {}),
    },
  };
}

function pick(c: Record<string, unknown>) {
  const out: Record<string, unknown> = {};
  for (const k of [
    'task_id',
    'purpose',
    'attestation',
    'binding',
    'risk',
    'scopes',
    'token_class',
    'client_id',
  ])
    if (c[k] !== undefined) out[k] = c[k];
  return out;
}

export function registerAuthzenRoutes(app: FastifyInstance, ctx: WritContext): void {
  const iss = ctx.settings.issuer;
  app.get('/.well-known/authzen-configuration', async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=300');
    return {
      policy_decision_point: iss,
      access_evaluation_endpoint: `${iss}${Paths.access}/evaluation`,
      access_evaluations_endpoint: `${iss}${Paths.access}/evaluations`,
      writ_policy_version: ctx.policy.version.id,
      writ_policy_built_in: ctx.policy.version.builtIn,
    };
  });

  const handle = async (
    req: FastifyRequest,
    reply: FastifyReply,
    path: string,
    fn: (body: unknown) => unknown,
  ): Promise<unknown> => {
    let caller: string | undefined;
    try {
      // The caller of the PDP: an operator with an admin token, or a workload (a resource server)
      // presenting a Writ token for `<issuer>/access/v1`, DPoP-bound when its class says so.
      caller = (await authenticateOperatorOrBearer(ctx, info(req), accessAudience(ctx.settings.issuer))).id;
      const requestId = req.headers['x-request-id'];
      if (typeof requestId === 'string' && requestId.length <= 128 && isPrintable(requestId))
        reply.header('x-request-id', requestId);
      reply.header('cache-control', 'no-store');
      return fn(req.body);
    } catch (err) {
      throw await auditRefusal(ctx, 'access', err, info(req), { client_id: caller, path });
    }
  };

  app.post(`${Paths.access}/evaluation`, async (req, reply) =>
    handle(req, reply, `${Paths.access}/evaluation`, (raw) => evaluate(ctx, parse(evaluationBody, raw))),
  );

  app.post(`${Paths.access}/evaluations`, async (req, reply) =>
    handle(req, reply, `${Paths.access}/evaluations`, (raw) => {
      const b = parse(evaluationsBody, raw);
      const list = b.evaluations ?? [];
      if (list.length === 0) {
        // AuthZEN §7.1: without evaluations the request is a single evaluation.
        return evaluate(ctx, complete(b, {}, -1));
      }
      const semantic = b.options?.evaluations_semantic ?? 'execute_all';
      const evaluations: EvaluationResult[] = [];
      for (const [i, item] of list.entries()) {
        const r = evaluate(ctx, complete(b, item, i));
        evaluations.push(r);
        if (semantic === 'deny_on_first_deny' && !r.decision) break;
        if (semantic === 'permit_on_first_permit' && r.decision) break;
      }
      return { evaluations };
    }),
  );
}

/** An item of a batch, its missing members taken from the top level (AuthZEN §7.1). */
function complete(
  top: z.output<typeof evaluationsBody>,
  item: { [K in keyof EvaluationInput]?: EvaluationInput[K] | undefined },
  index: number,
): EvaluationInput {
  const subject = item.subject ?? top.subject;
  const action = item.action ?? top.action;
  const resource = item.resource ?? top.resource;
  const where = index < 0 ? '' : `evaluations.${index}: `;
  if (!subject) throw invalidRequest(`${where}subject is required`, { reason: 'missing_parameter' });
  if (!action) throw invalidRequest(`${where}action is required`, { reason: 'missing_parameter' });
  if (!resource) throw invalidRequest(`${where}resource is required`, { reason: 'missing_parameter' });
  const context = item.context ?? top.context;
  return { subject, action, resource, ...(context ? { context } : {}) };
}

function parse<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  const r = schema.safeParse(raw ?? {});
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw invalidRequest(`${i.path.join('.') || 'body'}: ${i.message}`, { reason: 'malformed_body' });
  }
  return r.data;
}
