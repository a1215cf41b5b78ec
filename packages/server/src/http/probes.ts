import type { FastifyInstance } from 'fastify';
import type { WritContext } from '../context.js';
import { WriteReadiness } from './write-readiness.js';

/** How long `/readyz` waits for the store before it reports it unreachable. */
const READY_TIMEOUT_MS = 2000;

/** What operators and load balancers ask a node: is it alive, can it serve, what has it counted. */
export function registerProbeRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  const writes = new WriteReadiness(ctx.store, ctx.clock);
  // Per node: a load balancer takes a node out while its store is unreachable, or while its clock is
  // further from the database's than the bound (it issues nothing then). Answered within a bound even
  // when the store does not answer at all (a cut link), so the check itself never hangs.
  app.get('/readyz', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    const reachable = await withinBound(
      ctx.store.ping().then(
        () => true,
        () => false,
      ),
    );
    if (!reachable)
      return reply
        .code(503)
        .send({ status: 'unavailable', store: 'unreachable', reason: 'store unreachable' });
    // Reads answering is not enough: a store that refuses writes (full disk, read-only file system,
    // a write lock held elsewhere) issues nothing, and the node must leave the balancer until it takes
    // writes again.
    if (!(await withinBound(writes.accepts())))
      return reply.code(503).send({
        status: 'unavailable',
        store: 'refusing_writes',
        reason: 'the store answers reads but does not accept writes',
      });
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

/** `probe`, or false when it has not answered within READY_TIMEOUT_MS (a silent store). */
async function withinBound(probe: Promise<boolean>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    probe,
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}
