import type { FastifyInstance, FastifyRequest } from 'fastify';
import { auditRefusal } from '../audit/refusal.js';
import { authenticateBearer } from '../auth/bearer.js';
import type { WritContext } from '../context.js';
import { info } from '../request/info.js';
import { registerGithubLeakRoute } from './github.js';
import { leakBodyLimit, parseLeakReport, requireJson } from './leak-report.js';
import { respondToLeaks } from './respond.js';

export const LEAKS_PATH = '/v1/leaks';

/** The audience a scanner workload's token must carry to report leaks: its class must allow it. */
export const leaksAudience = (issuer: string): string => `${issuer}${LEAKS_PATH}`;

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/**
 * `POST /v1/leaks`: a scanner that is a workload (a log pipeline, a ticket scanner) reports tokens it
 * found, with a Writ token for the leaks audience (`leaksAudience`; a class that lists it permits
 * reporting). The caller is authenticated before the body is read, and recorded as the reporter of
 * every finding. Answered with one result per token, in order (`LeakResult`). The GitHub partner
 * endpoint (`POST /v1/leaks/github`) is registered here too.
 */
export function registerLeakRoutes(app: FastifyInstance, ctx: WritContext): void {
  registerGithubLeakRoute(app, ctx);
  app.post(
    LEAKS_PATH,
    {
      ...leakBodyLimit(ctx),
      onRequest: async (req: FastifyRequest) => {
        try {
          await authenticateBearer(ctx, info(req), leaksAudience(ctx.settings.issuer));
        } catch (err) {
          throw await auditRefusal(ctx, 'leaks', err, info(req), {});
        }
      },
    },
    async (req, reply) => {
      const reporter = info(req).caller!;
      try {
        requireJson(req);
        const { reports } = parseLeakReport(req.body, {
          via: 'report',
          maxTokens: ctx.settings.leaks.maxTokens,
          dryRun: false,
        });
        const results = await respondToLeaks(ctx, reports, { reporter, via: 'report' });
        reply.headers(NO_STORE);
        return { results };
      } catch (err) {
        throw await auditRefusal(ctx, 'leaks', err, info(req), { client_id: reporter });
      }
    },
  );
}
