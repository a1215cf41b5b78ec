import type { FastifyInstance, FastifyRequest } from 'fastify';
import { auditRefusal } from '../audit/refusal.js';
import { authenticateBearer } from '../auth/bearer.js';
import { authenticateOperatorCaller } from '../auth/operator-caller.js';
import { Paths, type WritContext } from '../context.js';
import { invalidRequest } from '../errors.js';
import { info } from '../request/info.js';
import { deniedReason, ingestUsageReport, type TakenUse } from './ingest.js';
import { traceToken } from './trace.js';

export const USAGE_PATH = '/v1/usage';

/** The audience a verifier's token must carry to report usage. */
export const usageAudience = (issuer: string): string => `${issuer}${USAGE_PATH}`;

/**
 * `POST /v1/usage`: verifiers (workloads with a Writ token for the usage audience, DPoP-bound when
 * their class says so) report batches of uses; they are aggregated per token in the store.
 * `GET /admin/v1/audit/trace/:jti`: one token's issuance, uses and revocations (`writ audit trace`).
 */
export function registerUsageRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.post(
    USAGE_PATH,
    { bodyLimit: ctx.settings.usage.bodyBytes, config: { bodyLimitSetting: 'usage.body_bytes' } },
    async (req, reply) => {
      let reporter: string | undefined;
      try {
        reporter = (await authenticateBearer(ctx, info(req), usageAudience(ctx.settings.issuer))).clientId;
        if (!req.headers['content-type']?.toLowerCase().startsWith('application/json'))
          throw invalidRequest('the report must be application/json', { reason: 'media_type' });
        const { receipt, taken } = await ingestUsageReport(ctx, reporter, req.body, req.ip);
        detectOnTakenUsage(ctx, reporter, taken);
        reply.header('cache-control', 'no-store');
        return reply.code(202).send(receipt);
      } catch (err) {
        throw await auditRefusal(ctx, 'usage', err, info(req), { client_id: reporter });
      }
    },
  );

  app.get<{ Params: { jti: string } }>(
    `${Paths.admin}/audit/trace/:jti`,
    async (req: FastifyRequest<{ Params: { jti: string } }>) => {
      let operator: string | undefined;
      try {
        // The admin API's one way in: an admin token, or the console's session cookie.
        operator = (await authenticateOperatorCaller(ctx, info(req))).operator;
        const jti = req.params.jti;
        if (jti.length === 0 || jti.length > 256)
          throw invalidRequest('jti must be 1 to 256 characters', { reason: 'jti' });
        return await traceToken(ctx, jti);
      } catch (err) {
        throw await auditRefusal(ctx, 'admin', err, info(req), {
          path: req.url.slice(0, 128),
          ...(operator ? { client_id: operator } : {}),
        });
      }
    },
  );

  // Aggregates of tokens nobody has used for the retention period go; reports that old are refused.
  const prune = setInterval(() => {
    ctx.store
      .pruneUsage(ctx.clock.now() - ctx.settings.usage.retention * 1000)
      .catch((err: unknown) => ctx.logger.error({ err: (err as Error).message }, 'usage prune failed'));
  }, 3_600_000);
  prune.unref();
  app.addHook('onClose', async () => clearInterval(prune));
}

/**
 * Where detection hears of reported uses: each record taken (stored, and audited in `usage.reported`)
 * with Writ's record of its token (undefined for a `stale` signal, which is about `reporter` itself).
 * Never throws nor waits on detection: the report is stored and audited already, its answer is 202.
 * With detection off, nothing is built for it.
 */
export function detectOnTakenUsage(ctx: WritContext, reporter: string, taken: readonly TakenUse[]): void {
  if (!ctx.detection.enabled) return;
  try {
    ctx.detection.observeUses(
      reporter,
      taken.map(({ record: r, token }) => ({
        use: {
          operation: r.operation,
          source: r.source,
          userAgent: r.user_agent ?? '',
          decision: r.decision,
          reason: deniedReason(r),
          signal: r.signal ?? '',
          time: r.time,
        },
        token,
      })),
    );
  } catch (err) {
    ctx.logger.error({ err: (err as Error).message }, 'detection could not read a usage report');
  }
}
