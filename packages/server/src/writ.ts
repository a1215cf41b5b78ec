import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { applyConfig } from './admin/operations.js';
import { createAuditLog } from './audit/audit-log.js';
import { type Clock, systemClock } from './clock.js';
import type { ConfigBundle } from './config/config-dir.js';
import type { Settings } from './config/settings.js';
import type { WritContext } from './context.js';
import { DpopNonces } from './dpop/nonces.js';
import { createEventLog } from './events/event-log.js';
import { buildApp } from './http/app.js';
import { createMetrics } from './http/metrics.js';
import { type KeyEncryptionKey, kekFromBytes } from './keys/kek.js';
import { createKeyManager } from './keys/key-manager.js';
import { RateLimiter } from './oauth/rate-limit.js';
import type { PolicySources } from './policy/compile.js';
import { openPolicyEngine, recordStartupPolicy } from './policy/operations.js';
import { Registry } from './registry/registry.js';
import { RevocationSet } from './revocation/revocation-set.js';
import { syncRevocations } from './revocation/revoke.js';
import type { Store } from './store/store.js';
import { sweepTasks } from './tasks/tasks.js';

export interface WritOptions {
  settings: Settings;
  store: Store;
  kek: KeyEncryptionKey;
  clock?: Clock;
  logger?: Logger;
  /** Config applied at start (audited as a diff, actor `startup`). */
  config?: ConfigBundle;
  /** The config directory's `policies/` loaded at start; without it, the built-in set (docs/policy.md). */
  policies?: PolicySources | undefined;
}

export interface Writ {
  ctx: WritContext;
  app: FastifyInstance;
  /** Listens on `settings.listen`; returns the bound address. */
  listen(): Promise<string>;
  /** Stops accepting requests, finishes in-flight ones, writes a last checkpoint, closes the store. */
  close(): Promise<void>;
}

/** The composition root: wires real parts together. Tests call it with their own store and clock. */
export async function createWrit(options: WritOptions): Promise<Writ> {
  const { settings, store } = options;
  const clock = options.clock ?? systemClock;
  const logger =
    options.logger ??
    pino({
      level: settings.log.level,
      redact: {
        paths: [
          'authorization',
          '*.authorization',
          'token',
          '*.token',
          'assertion',
          '*.assertion',
          'client_secret',
        ],
        censor: '[redacted]',
      },
    });
  const keys = await createKeyManager({
    store,
    kek: options.kek,
    clock,
    algorithm: settings.signing.algorithm,
    maxTokenLifetime: settings.tokens.maxLifetime,
  });
  const audit = createAuditLog({
    store,
    clock,
    keys,
    every: settings.audit.checkpointEvery,
    intervalSeconds: settings.audit.checkpointInterval,
    onError: (err) => logger.error({ err: (err as Error).message }, 'audit checkpoint failed'),
  });
  const registry = new Registry(store);
  await registry.reload();
  const policy = await openPolicyEngine(store, options.policies);
  const ctx: WritContext = {
    settings,
    store,
    clock,
    keys,
    registry,
    revocations: new RevocationSet(),
    audit,
    metrics: createMetrics(),
    rateLimiter: new RateLimiter(settings.limits.clientRate, settings.limits.clientBurst, clock),
    dpopNonces: new DpopNonces(options.kek.derive('dpop-nonce'), settings.dpop.nonceLifetime, clock),
    secrets: kekFromBytes(options.kek.derive('secrets'), 'derived'),
    events: createEventLog(store, clock, {
      onError: (err) => logger.error({ err: (err as Error).message }, 'event log read failed'),
    }),
    streams: new Set(),
    logger,
    policy: policy.engine,
  };
  await syncRevocations(ctx);
  await recordStartupPolicy(ctx, policy.last);
  if (options.config) {
    const changes = await applyConfig(ctx, options.config, 'startup', false);
    if (changes.length > 0) logger.info({ changes: changes.length }, 'configuration applied at start');
  }
  const app = buildApp(ctx);
  const timers = [
    setInterval(
      () =>
        audit
          .checkpoint()
          .catch((e: unknown) => logger.error({ err: (e as Error).message }, 'checkpoint failed')),
      settings.audit.checkpointInterval * 1000,
    ),
    setInterval(() => {
      store.prune(clock.now()).catch(() => undefined);
      store.trimEvents(clock.now() - settings.events.retention * 1000).catch(() => undefined);
    }, 60_000),
    setInterval(
      () =>
        sweepTasks(ctx).catch((e: unknown) =>
          logger.error({ err: (e as Error).message }, 'task sweep failed'),
        ),
      settings.tasks.sweepInterval * 1000,
    ),
  ];
  for (const t of timers) t.unref();

  let closed = false;
  return {
    ctx,
    app,
    async listen() {
      return app.listen({ host: settings.listen.host, port: settings.listen.port });
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearInterval(t);
      ctx.events.close();
      for (const res of ctx.streams) res.end();
      await app.close();
      await audit
        .checkpoint()
        .catch((e: unknown) => logger.error({ err: (e as Error).message }, 'final checkpoint failed'));
      await store.close();
    },
  };
}
