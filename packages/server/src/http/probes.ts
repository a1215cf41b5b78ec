import type { FastifyInstance } from 'fastify';
import type { WritContext } from '../context.js';

/** How long `/readyz` waits for the store before it reports it unreachable. */
const READY_TIMEOUT_MS = 2000;

/** What operators and load balancers ask a node: is it alive, can it serve, what has it counted. */
export function registerProbeRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  // Per node: a load balancer takes a node out while its store is unreachable, or while its clock is
  // further from the database's than the bound (it issues nothing then). Answered within a bound even
  // when the store does not answer at all (a cut link), so the check itself never hangs.
  app.get('/readyz', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    let timer: NodeJS.Timeout | undefined;
    const reachable = await Promise.race([
      ctx.store.ping().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (!reachable)
      return reply
        .code(503)
        .send({ status: 'unavailable', store: 'unreachable', reason: 'store unreachable' });
    ctx.keys.activeKid();
    // The audit log lost events this node wrote: it refuses every append, so nothing can be issued.
    const audit = ctx.audit.broken();
    if (audit)
      return reply
        .code(503)
        .send({ status: 'unavailable', store: 'reachable', reason: audit, audit: 'broken' });
    const clock = ctx.clockSkew.report();
    const skewed = ctx.clockSkew.refusal();
    if (skewed)
      return reply.code(503).send({ status: 'unavailable', store: 'reachable', reason: skewed, clock });
    return { status: 'ready', store: 'reachable', clock };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}
