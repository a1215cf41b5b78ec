import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WritContext } from '../context.js';
import { leakBodyLimit, parseLeakReport, requireJson } from './leak-report.js';
import { respondToLeaks } from './respond.js';

/**
 * `POST /admin/v1/leaks`: an operator (`writ scan --revoke`) reports tokens found in files, logs or
 * git history. Body `{"tokens": [{"token", "where": {"path", "line", "commit", "url", "source",
 * "type"}}], "dry_run": false}`; answer `{"results": [{"state", "action", "jti", "sub", "finding",
 * "outcome"}]}`, one per token in order. `dry_run` only classifies (live, expired, revoked,
 * unverified, foreign) and changes nothing. Refusals are the admin API's (audited as `admin.refused`).
 */
export function registerLeakAdminRoutes(
  admin: FastifyInstance,
  ctx: WritContext,
  op: (req: FastifyRequest) => string,
): void {
  admin.post('/leaks', leakBodyLimit(ctx), async (req) => {
    requireJson(req);
    const { reports, dryRun } = parseLeakReport(req.body, {
      via: 'scan',
      maxTokens: ctx.settings.leaks.maxTokens,
      dryRun: true,
    });
    const results = await respondToLeaks(ctx, reports, { reporter: op(req), via: 'scan', dryRun });
    return { results };
  });
}
