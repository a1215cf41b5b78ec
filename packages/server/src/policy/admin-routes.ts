import { PolicyContextError, type PolicyContextInput, requestEnvironment } from '@writ/sdk/wire';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { WritContext } from '../context.js';
import { invalidRequest, notFound } from '../errors.js';
import { contextFields } from './authzen.js';
import type { PolicyLoadError, PolicySources } from './compile.js';
import { updateResource } from './operations.js';
import { resourceSchema } from './policy-dir.js';
import type { PolicyVersionSummary } from './policy-set.js';
import { buildContext, isPolicyAction, isPrintable, workloadPrincipal } from './request.js';

/** The `policies` member of `POST /admin/v1/config`: `null` means "no policies/ directory". */
export const policiesBody = z
  .object({
    files: z
      .array(z.object({ file: z.string().min(1).max(512), text: z.string().max(1_048_576) }).strict())
      .max(1000),
    resources: z.array(resourceSchema).max(100_000).default([]),
  })
  .strict()
  .nullable()
  .optional();

export const resourceBody = resourceSchema.omit({ id: true });

/** `POST /admin/v1/policy/explain`: a request typed by an operator (the console's Policy view). */
export const explainBody = z
  .object({
    workload: z.string().min(1).max(2048),
    action: z.string().min(1).max(32),
    resource: z.string().min(1).max(2048),
    context: contextFields.default({}),
  })
  .strict();

/** A policy set that does not load, as the admin API refuses it: 400 naming file, line and reason. */
export function policyRefusal(err: PolicyLoadError) {
  return invalidRequest(err.message, {
    reason: 'invalid_policy',
    file: err.file,
    ...(err.line !== undefined ? { line: err.line } : {}),
  });
}

export function toSources(p: z.output<typeof policiesBody>): PolicySources | null | undefined {
  if (p === undefined || p === null) return p;
  return { files: p.files, resources: p.resources.map((r) => ({ ...r })) };
}

/**
 * Policy routes of the admin API: the running version, the resource catalogue and its updates. `op`
 * names the authenticated operator; `body` validates a JSON body.
 */
export function registerPolicyAdminRoutes(
  admin: FastifyInstance,
  ctx: WritContext,
  op: (req: FastifyRequest) => string,
  body: <T extends z.ZodType>(schema: T, req: FastifyRequest) => z.output<T>,
): void {
  admin.get('/policy', async () => ({
    version: ctx.policy.version,
    warnings: ctx.policy.set.warnings,
    policies: ctx.policy.set.policies.map((p) => ({
      id: p.id,
      effect: p.effect,
      file: p.file,
      line: p.line,
    })),
    stats: ctx.policy.stats,
  }));
  // The applied versions the store keeps (the newest 50), newest first, and one with its sources: the
  // console's Policy view diffs two of them.
  admin.get('/policy/versions', async () => ({
    versions: (await ctx.store.listPolicyVersions()).map(versionJson),
    running: ctx.policy.version.id,
  }));
  admin.get<{ Params: { id: string } }>('/policy/versions/:id', async (req) => {
    const id = req.params.id;
    const v = VERSION_ID.test(id) ? await ctx.store.getPolicyVersion(id) : undefined;
    if (!v)
      throw notFound(
        'no such policy version is kept (see GET /admin/v1/policy/versions for those that are)',
        {
          reason: 'not_found',
        },
      );
    return { ...versionJson(v), files: v.files };
  });
  // Why the running policy set allows or denies a request an operator types: the decision, the policies
  // considered and those that determined it (with their text), the resource and the context used.
  admin.post('/policy/explain', async (req) => {
    const b = body(explainBody, req);
    if (!isPolicyAction(b.action))
      throw invalidRequest(
        'action must be a policy action: issue, exchange, renew, read, write, export or delete',
        {
          reason: 'malformed_body',
        },
      );
    const w = ctx.registry.workload(b.workload);
    if (!w) throw notFound('no such workload', { reason: 'not_found' });
    const { source_ip, environment, ...rest } = b.context;
    const given = Object.fromEntries(
      Object.entries(rest).filter(([, v]) => v !== undefined),
    ) as PolicyContextInput;
    try {
      const explained = ctx.policy.explain({
        principal: workloadPrincipal(w, ctx.registry.generation),
        action: b.action,
        resource: b.resource,
        context: buildContext(ctx.clock.now(), {
          ...given,
          // Writ's own risk for the workload unless the operator asks about another.
          risk: rest.risk ?? ctx.detection.riskOf(w.id),
          ...(source_ip !== undefined ? { source_ip } : {}),
          environment: requestEnvironment(
            environment,
            w.environment,
            ctx.policy.resource(b.resource).environment,
          ),
        }),
      });
      return { ...explained, workload_state: w.state, policy_version: ctx.policy.version.id };
    } catch (err) {
      if (err instanceof PolicyContextError)
        throw invalidRequest(`context: ${err.message}`, { reason: err.reason });
      throw err;
    }
  });
  admin.get('/resources', async () => ({ resources: ctx.policy.resources() }));
  admin.get<{ Params: { id: string } }>('/resources/:id', async (req) => ctx.policy.resource(req.params.id));
  admin.put<{ Params: { id: string } }>('/resources/:id', async (req) => {
    const id = resourceId(req.params.id);
    const b = body(resourceBody, req);
    return updateResource(ctx, id, { id, ...b }, op(req));
  });
  admin.delete<{ Params: { id: string } }>('/resources/:id', async (req) => {
    const id = resourceId(req.params.id);
    if (!ctx.policy.resources().some((r) => r.id === id && r.source === 'admin'))
      throw notFound('no attributes were set for this resource through the admin API', {
        reason: 'not_found',
      });
    return updateResource(ctx, id, undefined, op(req));
  });
}

/** `<counter>-<12 hex>`, as policy versions are named. */
const VERSION_ID = /^[0-9]{1,15}-[0-9a-f]{12}$/;

function versionJson(v: PolicyVersionSummary) {
  return {
    id: v.id,
    counter: v.counter,
    created: v.created,
    applied_by: v.actor,
    built_in: v.builtIn,
    policies: v.policies,
  };
}

function resourceId(id: string): string {
  if (id.length === 0 || id.length > 512 || !isPrintable(id))
    throw invalidRequest('the resource id must be 1-512 printable characters', { reason: 'resource_id' });
  return id;
}
