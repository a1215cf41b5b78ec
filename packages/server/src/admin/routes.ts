import { EventType, REVOCATION_KINDS } from '@writ/sdk/wire';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { auditRefusal } from '../audit/refusal.js';
import { verifyAuditChain } from '../audit/verify.js';
import { authenticateOperatorCaller } from '../auth/operator-caller.js';
import { DOCUMENT_KINDS, validateConfig } from '../config/config-dir.js';
import { type ConfigChange, formatDiff } from '../config/diff.js';
import { consoleActor } from '../console/sessions.js';
import { Paths, type WritContext } from '../context.js';
import { hasControlCharacters, PLAIN_TEXT_RULE } from '../control-characters.js';
import { registerDetectionAdminRoutes } from '../detection/admin-routes.js';
import { ConfigError, invalidRequest, notFound } from '../errors.js';
import { registerGovernanceAdminRoutes } from '../governance/admin-routes.js';
import { checkGovernance } from '../governance/check.js';
import { DEFAULT_GOVERNANCE } from '../governance/governance-file.js';
import { registerStaleRoute } from '../governance/stale-route.js';
import { registerGovernVerifyRoute } from '../governance/verify-route.js';
import { registerLeakAdminRoutes } from '../leaks/admin-routes.js';
import { orphanedWorkloads } from '../people/orphans.js';
import { directoryWithConfig } from '../people/stored-people.js';
import { policiesBody, policyRefusal, registerPolicyAdminRoutes, toSources } from '../policy/admin-routes.js';
import { PolicyLoadError } from '../policy/compile.js';
import { applyPolicies, compileSources } from '../policy/operations.js';
import { formBody } from '../request/form.js';
import { info } from '../request/info.js';
import { revoke } from '../revocation/revoke.js';
import { taskView } from '../tasks/routes.js';
import { closeTask, openTask } from '../tasks/tasks.js';
import { registerVendorKeyAdminRoutes } from '../vendor/routes.js';
import { handleAdminToken } from './admin-auth.js';
import {
  appliedFileListing,
  changedFileBody,
  mergeChangedFiles,
  removedFileBody,
  stampedFileBody,
} from './config-files.js';
import { registerLiveEventsRoute } from './live-events.js';
import { applyConfig, commitConfig, setWorkloadState } from './operations.js';
import { registerOverviewRoutes } from './overview.js';
import { planWorkloadFiles } from './workload-files.js';

/** The admin API under `/admin/v1`: every route requires an admin token from an operator key. */
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/**
 * A text field an operator types that is stored, audited and shown again (a reason, a predicate's
 * value): 1 to `max` characters, refused with reason `control_characters` when it holds one.
 */
const plainText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !hasControlCharacters(s), {
      message: `must hold ${PLAIN_TEXT_RULE}`,
      params: { reason: 'control_characters' },
    });

export const revocationBody = z
  .object({
    kind: z.enum(REVOCATION_KINDS),
    value: plainText(2048),
    issued_before: z.number().int().nonnegative().optional(),
    reason: plainText(500).default('revoked by operator'),
  })
  .strict();

export const applyBody = z
  .object({
    /** The whole config directory, every document: applied whole (the files record is forgotten). */
    documents: z
      .array(
        z
          .object({
            kind: z.enum(DOCUMENT_KINDS),
            file: z.string().max(512),
            index: z.number().int().min(0),
            doc: z.unknown(),
          })
          .strict(),
      )
      // The body limit bounds it first; `limits.config_documents` is checked with a clearer error.
      .max(10_000_000)
      .optional(),
    /** Or a change: the files that differ from the applied ones, and the paths that are gone. */
    files: z.array(changedFileBody).max(10_000_000).optional(),
    removed: z.array(removedFileBody).max(10_000_000).optional(),
    /** With a change: unchanged files the CLI read again, with their stamps now (recorded). */
    stamps: z.array(stampedFileBody).max(10_000_000).optional(),
    policies: policiesBody,
    dry_run: z.boolean().default(false),
    /** `settingsFileDigest` of the directory's settings file: the answer says whether it differs. */
    settings_digest: z
      .string()
      .regex(/^[A-Za-z0-9_-]{43}$/)
      .optional(),
  })
  .strict();

export const openTaskBody = z
  .object({
    workload: z.string().min(1).max(2048),
    purpose: z.string().min(1).max(200),
    duration: z.number().int().positive().max(10_000_000).optional(),
    labels: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/), z.string().max(256)).optional(),
  })
  .strict();

export const stateBody = z.object({ reason: plainText(500).default('by operator') }).strict();

/** A count or time in a query string: the admin API refuses anything else (reason `query_parameter`). */
const queryInteger = (description: string) =>
  z
    .string()
    .regex(/^\d{1,16}$/, 'must be a non-negative integer')
    .describe(description)
    .optional();

/** The query of `GET /admin/v1/audit` (the OpenAPI document describes it with this schema). */
export const auditQuery = z.object({
  limit: queryInteger('At most this many events (100 by default, at most 1000).'),
  order: z
    .string()
    .max(8)
    .describe('`desc`: newest first; ascending by sequence number otherwise.')
    .optional(),
  after: queryInteger('Only events after this sequence number.'),
  workload: z.string().describe('Only events about this workload.').optional(),
  jti: z.string().describe('Only events about this token.').optional(),
  type: z.string().describe('Only events of this type.').optional(),
  since: queryInteger('Only events at or after this time (ms since the epoch).'),
  until: queryInteger('Only events before this time (ms since the epoch).'),
});

export function registerAdminRoutes(app: FastifyInstance, ctx: WritContext): void {
  // Outside the authenticated scope below: this is where an operator gets the token it asks for.
  app.post(Paths.adminToken, async (req, reply) => {
    const res = await handleAdminToken(ctx, formBody(req), info(req));
    reply.headers(NO_STORE);
    return res;
  });
  app.register(
    async (admin) => {
      admin.decorateRequest('operator', '');
      admin.decorateRequest('consoleSession', '');
      // onRequest, before the body is read: only an authenticated operator gets a body parsed, which
      // matters most for the config body (`limits.config_bytes`, megabytes).
      admin.addHook('onRequest', async (req) => {
        try {
          const { operator, session } = await authenticateOperatorCaller(ctx, info(req));
          (req as FastifyRequest & { operator: string }).operator = operator;
          (req as FastifyRequest & { consoleSession: string }).consoleSession = session?.idHash ?? '';
          // A console action names the person who clicked (docs/console.md); the action's own event,
          // written by the route, names the operator as every admin call does.
          if (session && req.method !== 'GET' && req.method !== 'HEAD')
            await ctx.audit.append({
              type: 'console.action',
              outcome: 'success',
              actor: consoleActor(session),
              data: { operator, method: req.method, path: req.url.slice(0, 256), ip: req.ip },
            });
        } catch (err) {
          throw await auditRefusal(ctx, 'admin', err, info(req), { path: req.url.slice(0, 128) });
        }
      });
      const op = (req: FastifyRequest) => (req as FastifyRequest & { operator: string }).operator;
      const body = <T extends z.ZodType>(schema: T, req: FastifyRequest): z.output<T> => {
        const r = schema.safeParse(req.body ?? {});
        if (!r.success) {
          const i = r.error.issues[0]!;
          const controls = i.code === 'custom' && i.params?.['reason'] === 'control_characters';
          throw invalidRequest(`${i.path.join('.') || 'body'}: ${i.message}`, {
            reason: controls ? 'control_characters' : 'malformed_body',
          });
        }
        return r.data;
      };

      admin.get('/workloads', async () => ({
        workloads: ctx.registry
          .workloads()
          // A templated workload says which template admitted it; its evidence is in /workloads/:id.
          .map(({ verificationKeys: _k, template, ...w }) => ({
            ...w,
            jwks: w.jwks.length,
            ...(template ? { template: template.id } : {}),
          })),
      }));
      // Workloads whose owner was deprovisioned, for reassignment (docs/governance.md, "Orphaned workloads").
      admin.get('/workloads/orphaned', async () => ({
        workloads: orphanedWorkloads(ctx.registry),
        quarantine_after: ctx.settings.governance.orphanQuarantineAfter,
      }));
      admin.get<{ Params: { id: string } }>('/workloads/:id', async (req) => {
        const w = ctx.registry.workload(req.params.id);
        if (!w) throw notFound('no such workload', { reason: 'not_found' });
        const { verificationKeys: _k, ...rest } = w;
        return { ...rest, risk: ctx.detection.riskOf(w.id) };
      });
      for (const [verb, state] of [
        ['disable', 'disabled'],
        ['enable', 'active'],
        ['quarantine', 'quarantined'],
      ] as const) {
        admin.post<{ Params: { id: string } }>(`/workloads/:id/${verb}`, async (req) => {
          const { reason } = body(stateBody, req);
          if (!(await setWorkloadState(ctx, req.params.id, state, op(req), reason)))
            throw notFound('no such workload', { reason: 'not_found' });
          return { id: req.params.id, state };
        });
      }
      admin.get<{ Querystring: Record<string, string | undefined> }>('/tasks', async (req) => {
        const q = req.query;
        const tasks = await ctx.store.listTasks({
          ...(q['workload'] ? { workload: q['workload'].slice(0, 2048) } : {}),
          ...(q['state'] === 'open' ? { open: true } : q['state'] === 'closed' ? { open: false } : {}),
          limit: Math.min(Number(q['limit']) || 100, 1000),
        });
        return { tasks: tasks.map(taskView) };
      });
      admin.get<{ Params: { id: string } }>('/tasks/:id', async (req) => {
        const task = await ctx.store.getTask(req.params.id);
        if (!task) throw notFound('no such task', { reason: 'not_found' });
        const tokens = await ctx.store.tokensForTask(task.id, 1000);
        return {
          ...taskView(task),
          tokens: tokens.map((t) => ({
            jti: t.jti,
            aud: t.aud,
            scope: t.scope,
            iat: t.iat,
            exp: t.exp,
            revoked: ctx.revocations.match({ ...t, client_id: t.clientId }) !== undefined,
          })),
        };
      });
      admin.post('/tasks', async (req, reply) => {
        const b = body(openTaskBody, req);
        const workload = ctx.registry.workload(b.workload);
        if (!workload) throw notFound('no such workload', { reason: 'not_found' });
        const task = await openTask(ctx, {
          workload,
          purpose: b.purpose,
          duration: b.duration,
          labels: b.labels ?? {},
          openedBy: op(req),
        });
        return reply.code(201).send(taskView(task));
      });
      admin.post<{ Params: { id: string } }>('/tasks/:id/close', async (req) => {
        const { reason } = body(stateBody, req);
        const task = await ctx.store.getTask(req.params.id);
        if (!task) throw notFound('no such task', { reason: 'not_found' });
        const closed = await closeTask(ctx, task.id, reason, op(req));
        return { id: task.id, closed: true, already_closed: !closed };
      });
      admin.get('/classes', async () => ({ classes: ctx.registry.classes() }));
      admin.get<{ Params: { name: string } }>('/classes/:name', async (req) => {
        const c = ctx.registry.tokenClass(req.params.name);
        if (!c) throw notFound('no such class', { reason: 'not_found' });
        return {
          ...c,
          workloads: ctx.registry
            .workloads()
            .filter((w) => w.classes.includes(c.name))
            .map((w) => w.id),
        };
      });
      // A whole config directory in one body: its own limit, not the 16 KiB of every other request.
      const configLimit = {
        bodyLimit: ctx.settings.limits.configBytes,
        config: { bodyLimitSetting: 'limits.config_bytes' },
      };
      admin.get<{ Querystring: Record<string, string | undefined> }>('/config/files', async (req) =>
        appliedFileListing(ctx.store, req.query['since']),
      );
      /** The policy set sent, compiled: an invalid one refuses the whole apply, before anything changes. */
      const compiledSources = (policies: z.infer<typeof applyBody>['policies']) => {
        const sources = toSources(policies);
        if (sources !== undefined) {
          try {
            compileSources(sources ?? undefined);
          } catch (err) {
            if (err instanceof PolicyLoadError) throw policyRefusal(err);
            throw err;
          }
        }
        return sources;
      };
      /** A whole config (or a change merged with the files applied last), validated as a whole. */
      const wholeConfig = async (sent: z.infer<typeof applyBody>) => {
        // A change is merged with the files applied last; the whole is validated as if sent whole.
        const { documents, files } = sent.documents
          ? { documents: sent.documents, files: 'unknown' as const }
          : await mergeChangedFiles(ctx.store, sent.files ?? [], sent.removed ?? [], sent.stamps ?? []);
        let bundle: ReturnType<typeof validateConfig>;
        try {
          bundle = validateConfig(
            documents,
            ctx.settings.tokens.maxLifetime,
            ctx.settings.issuer,
            ctx.settings.limits.configDocuments,
          );
        } catch (err) {
          if (err instanceof ConfigError) throw invalidRequest(err.message, { reason: 'invalid_config' });
          throw err;
        }
        // Without an operator no admin call, this one's repair included, would be accepted after it.
        if (bundle.operators.length === 0)
          throw invalidRequest(
            'the configuration registers no operator: every admin call, a repair included, would be refused after it; keep at least one file in operators/ with a public key',
            { reason: 'no_operator' },
          );
        // Nor when every operator belongs to someone who may not act (operators are people).
        const people = await directoryWithConfig(ctx.store, bundle);
        if (bundle.operators.every((o) => o.person !== undefined && people.person(o.person)?.active !== true))
          throw invalidRequest(
            'every operator of this configuration belongs to a person who is not active (people/ or SCIM): every admin call, a repair included, would be refused after it; keep one operator whose person is active',
            { reason: 'no_active_operator' },
          );
        // An invalid policy set refuses the whole apply, before anything changes.
        const sources = compiledSources(sent.policies);
        // governance.yaml: what `writ apply` checks before sending, checked again here for any caller.
        const broken = checkGovernance({
          documents,
          governance: bundle.governance ?? DEFAULT_GOVERNANCE,
          resources: sources?.resources ?? [],
          people: bundle,
          now: ctx.clock.now(),
        }).filter((v) => v.severity === 'error');
        const first = broken[0];
        if (first)
          throw invalidRequest(
            `governance rule ${first.rule} refuses ${first.file}: ${first.field ? `${first.field}: ` : ''}${first.message}${broken.length > 1 ? ` (and ${broken.length - 1} more violation${broken.length > 2 ? 's' : ''}: \`writ govern check\` lists them)` : ''}`,
            { reason: 'governance_rule', rule: first.rule, file: first.file, field: first.field },
          );
        return { bundle, files, sources };
      };
      admin.post('/config', configLimit, async (req) => {
        const sent = body(applyBody, req);
        const { policies, dry_run, settings_digest } = sent;
        if ((sent.documents === undefined) === (sent.files === undefined && sent.removed === undefined))
          throw invalidRequest(
            'send either documents (the whole directory) or files and removed (a change), not both',
            { reason: 'invalid_config' },
          );
        // A change of workload files only is validated against the stored config, and its diff is of
        // those workloads (planWorkloadFiles); any other change, or one that does not simply pass, is
        // merged with the files applied last and validated as if sent whole.
        const plan = sent.documents
          ? undefined
          : await planWorkloadFiles(ctx, sent.files ?? [], sent.removed ?? [], sent.stamps ?? []);
        let changes: ConfigChange[];
        let sources: ReturnType<typeof toSources>;
        if (plan) {
          sources = compiledSources(policies);
          changes = dry_run
            ? plan.changes
            : await commitConfig(ctx, plan.bundle, plan.changes, op(req), plan.files);
        } else {
          const whole = await wholeConfig(sent);
          sources = whole.sources;
          changes = await applyConfig(ctx, whole.bundle, op(req), dry_run, whole.files);
        }
        const policy =
          sources === undefined ? undefined : await applyPolicies(ctx, sources, op(req), dry_run);
        return {
          applied: !dry_run && (changes.length > 0 || policy?.changed === true),
          changes,
          diff: formatDiff(changes),
          ...(policy ? { policy } : {}),
          // Settings are read at start: whether this file is the one the server runs with.
          ...(settings_digest !== undefined
            ? { settings: { changed: settings_digest !== ctx.settings.fileDigest } }
            : {}),
        };
      });
      admin.post('/revocations', async (req, reply) => {
        const b = body(revocationBody, req);
        const r = await revoke(ctx, {
          kind: b.kind,
          value: b.value,
          issuedBefore: b.issued_before ?? null,
          reason: b.reason,
          actor: op(req),
        });
        return reply.code(201).send(r);
      });
      admin.get('/revocations', async () => ({
        revocations: await ctx.store.listRevocations(0, ctx.clock.now()),
      }));
      admin.get('/keys', async () => ({ active: ctx.keys.activeKid(), keys: ctx.keys.list() }));
      admin.post('/keys/rotate', async (req) => {
        // One transaction: the rotation, the event every node reloads its keys on, and the audit event.
        const result = await ctx.keys.rotate(async (tx, rotation) => {
          await ctx.events.append(tx, EventType.keysRotated, { ...rotation });
          await ctx.audit.append(
            { type: 'keys.rotated', outcome: 'success', actor: op(req), data: { ...rotation } },
            tx,
          );
        });
        ctx.events.notify();
        return result;
      });
      admin.get<{ Querystring: Record<string, string | undefined> }>('/audit', async (req) => {
        const q = req.query;
        const num = (v: string | undefined, name: 'limit' | 'after' | 'since' | 'until') => {
          if (v === undefined) return undefined;
          if (!auditQuery.shape[name].safeParse(v).success)
            throw invalidRequest(`${name} must be a non-negative integer`, { reason: 'query_parameter' });
          return Number(v);
        };
        const events = await ctx.store.queryAudit({
          limit: Math.min(num(q['limit'], 'limit') ?? 100, 1000),
          order: q['order'] === 'desc' ? 'desc' : 'asc',
          ...(q['after'] !== undefined ? { afterSeq: num(q['after'], 'after')! } : {}),
          ...(q['workload'] ? { workload: q['workload'].slice(0, 2048) } : {}),
          ...(q['jti'] ? { jti: q['jti'].slice(0, 256) } : {}),
          ...(q['type'] ? { type: q['type'].slice(0, 128) } : {}),
          ...(q['since'] !== undefined ? { since: num(q['since'], 'since')! } : {}),
          ...(q['until'] !== undefined ? { until: num(q['until'], 'until')! } : {}),
        });
        return { events };
      });
      registerPolicyAdminRoutes(admin, ctx, op, body);
      registerLeakAdminRoutes(admin, ctx, op);
      registerDetectionAdminRoutes(admin, ctx, op, body);
      registerGovernanceAdminRoutes(admin, ctx, op, body);
      registerGovernVerifyRoute(admin, ctx, op, body);
      registerVendorKeyAdminRoutes(admin, ctx, op, body);
      registerStaleRoute(admin, ctx, op, body);
      registerOverviewRoutes(admin, ctx, body);
      registerLiveEventsRoute(admin, ctx, (req) => {
        const r = req as FastifyRequest & { operator: string; consoleSession: string };
        return { operator: r.operator, session: r.consoleSession || undefined };
      });
      admin.post('/audit/verify', async () => {
        await ctx.audit.checkpoint();
        return verifyAuditChain(ctx.store);
      });
    },
    { prefix: Paths.admin },
  );
}
