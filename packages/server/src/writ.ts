import type { Server as HttpsServer } from 'node:https';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { applyConfig, setWorkloadState } from './admin/operations.js';
import { quarantineOrphans } from './admin/orphan-quarantine.js';
import { readAuditAnchor, writeAuditAnchor } from './audit/anchor.js';
import { createAuditLog } from './audit/audit-log.js';
import { AuditChainBrokenError } from './audit/chain.js';
import { writeRefusalSummaries } from './audit/refusal.js';
import { RefusalTally } from './audit/refusal-tally.js';
import { checkHeldPoint, verifyChainFrom } from './audit/verify.js';
import { type Clock, systemClock } from './clock.js';
import { ClockSkew, SKEW_CHECK_MS } from './cluster/clock-skew.js';
import { followEventLog } from './cluster/node-follower.js';
import type { ConfigBundle } from './config/config-dir.js';
import type { ConfigFilesChange } from './config/config-files.js';
import type { Settings } from './config/settings.js';
import { ConsoleRelyingParty } from './console/oidc/relying-party.js';
import { adminAudience, type WritContext } from './context.js';
import { createDetector, reloadDetectionConfig } from './detection/create-detector.js';
import type { Detector } from './detection/detector.js';
import { FindingWebhook } from './detection/webhook.js';
import { DpopNonces } from './dpop/nonces.js';
import { createEventLog } from './events/event-log.js';
import { EventStreams } from './events/stream.js';
import { FederationTrust } from './federation/trust.js';
import { startGovernanceSweeper } from './governance/sweeper.js';
import { buildApp } from './http/app.js';
import { type KeyEncryptionKey, kekFromBytes } from './keys/kek.js';
import { createKeyManager } from './keys/key-manager.js';
import { createMetrics } from './metrics.js';
import { reloadTls, tlsFilesStamp } from './mtls/reload.js';
import { loadTlsSettings } from './mtls/trust.js';
import { type HostResolver, systemResolver } from './net/resolver.js';
import type { PolicySources } from './policy/compile.js';
import { PolicyEngine } from './policy/engine.js';
import { startPolicy } from './policy/operations.js';
import { MemoryRateLimiter, StoreRateLimiter } from './rate-limit/rate-limit.js';
import { Registry } from './registry/registry.js';
import { RevocationSet } from './revocation/revocation-set.js';
import { revoke, syncRevocations } from './revocation/revoke.js';
import type { Store } from './store/store.js';
import { startTaskSweeper } from './tasks/sweeper.js';
import { pruneClosedTasks } from './tasks/tasks.js';
import { createServerVendorProxy, type ServerVendorProxy } from './vendor/in-server.js';
import type { VendorRoute } from './vendor/route.js';

/** How often the TLS files are checked for a change (a stat each, no read unless one changed). */
const TLS_WATCH_MS = 30_000;

export interface WritOptions {
  settings: Settings;
  store: Store;
  kek: KeyEncryptionKey;
  clock?: Clock;
  logger?: Logger;
  /** Config applied at start (audited as a diff, actor `startup`). */
  config?: ConfigBundle;
  /**
   * The files of the config directory that differ from the applied ones, recorded with `config`; or
   * `unchanged`: the directory is the one applied last, so there is nothing to validate or apply.
   */
  configFiles?: ConfigFilesChange | 'unchanged';
  /**
   * The config directory's `policies/` (undefined: it has none, the built-in set). With `config` or
   * `policies` given, the directory's set is applied at start when it changed since a directory was last
   * applied; without either, the store's set is used (docs/policy.md, "In a cluster").
   */
  policies?: PolicySources | undefined;
  /**
   * The audit anchor file (in the data directory): each signed checkpoint is also written here, and at
   * start the store must still hold the event it names. Undefined: the store's checkpoints only.
   */
  auditAnchor?: string | undefined;
  /** Resolves push receivers' hosts; default the system resolver. */
  resolveHost?: HostResolver;
  /**
   * The config directory's vendor routes (`vendors/*.yaml`): served at `<issuer>/vendors/NAME/` when
   * `vendor_proxy.workload` is set (docs/vendor-proxy.md), ignored otherwise.
   */
  vendorRoutes?: readonly VendorRoute[];
}

export interface Writ {
  ctx: WritContext;
  app: FastifyInstance;
  /** Listens on `settings.listen`; returns the bound address. */
  listen(): Promise<string>;
  /** Stops accepting requests, finishes in-flight ones, writes a last checkpoint, closes the store. */
  close(): Promise<void>;
}

/**
 * The audit chain from the last checkpoint (the store's, or the anchor file's when older) to the head:
 * both must still be in the store, and every event after them must link. Throws (the server does not
 * start) when they are not: a cut tail would otherwise be continued with its sequence numbers reused.
 * Returns the head verified, which the log then holds.
 */
async function verifyAuditAtStart(store: Store, anchorFile: string | undefined) {
  const anchor = anchorFile ? readAuditAnchor(anchorFile) : undefined;
  const stored = (await store.listCheckpoints()).at(-1);
  const points = [
    ...(anchor ? [{ point: anchor, what: 'the anchor file' }] : []),
    ...(stored ? [{ point: stored, what: 'the last checkpoint' }] : []),
  ].sort((a, b) => a.point.seq - b.point.seq);
  for (const { point, what } of points.slice(1)) {
    const bad = await checkHeldPoint(store, point, what);
    if (bad) throw startRefusal(bad.reason);
  }
  const walked = await verifyChainFrom(store, points[0]?.point, points[0]?.what ?? 'the genesis');
  if (walked.bad) throw startRefusal(`event ${walked.bad.seq}: ${walked.bad.reason}`);
  return walked.head;
}

const startRefusal = (reason: string) =>
  new AuditChainBrokenError(
    `audit log check at start failed: ${reason}. Not starting: appending now would reuse the missing sequence numbers (docs/security.md, "Audit log tamper evidence")`,
  );

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
  // The log's head before any state is loaded: the node follows the log from here, so a change another
  // node makes while this one starts is applied after the load rather than missed.
  const head = (await store.eventBounds()).last;
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
    onBroken: (reason) =>
      logger.error({ reason }, 'audit log refuses appends: nothing is issued until it is restored'),
    ...(options.auditAnchor ? { anchor: (c) => writeAuditAnchor(options.auditAnchor!, c) } : {}),
    // The detector is built with the rest of the context, below; events committed before it exists
    // (the config applied at start) are no signals.
    onCommitted: (e) => detector?.observeAudited(e),
  });
  let detector: Detector | undefined;
  // Before anything is appended (the config applied below is audited), or the cut would be continued.
  audit.hold(await verifyAuditAtStart(store, options.auditAnchor));
  const registry = new Registry(store);
  await registry.reload();
  const metrics = createMetrics();
  const clockSkew = new ClockSkew({
    cluster: store.cluster,
    clock,
    maxSkew: settings.cluster.maxClockSkew,
    onMeasure: (ms) => metrics.clockSkew.set(ms / 1000),
  });
  let refusing = false;
  const measureSkew = () =>
    clockSkew
      .measure()
      .then(() => {
        const refusal = clockSkew.refusal();
        if (refusal && !refusing)
          logger.error({ clock: clockSkew.report() }, `not issuing tokens: ${refusal}`);
        if (!refusal && refusing)
          logger.info({ clock: clockSkew.report() }, 'clock within bound; issuing again');
        refusing = refusal !== undefined;
      })
      .catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'could not measure the clock skew'));
  // Before anything is served: a node whose clock is off must not issue its first token.
  await measureSkew();
  const ctx: WritContext = {
    settings,
    store,
    clock,
    clockSkew,
    keys,
    registry,
    revocations: new RevocationSet(),
    audit,
    metrics,
    // Several nodes share one budget per client through the store; one node keeps it in memory.
    rateLimiter: store.cluster
      ? new StoreRateLimiter(store, settings.limits.clientRate, settings.limits.clientBurst, clock)
      : new MemoryRateLimiter(settings.limits.clientRate, settings.limits.clientBurst, clock),
    sourceLimiter: new MemoryRateLimiter(settings.limits.sourceRate, settings.limits.sourceBurst, clock),
    refusalTally: new RefusalTally(settings.audit.refusalWindow * 1000),
    dpopNonces: new DpopNonces(options.kek.derive('dpop-nonce'), settings.dpop.nonceLifetime, clock),
    secrets: kekFromBytes(options.kek.derive('secrets'), 'derived'),
    events: createEventLog(store, clock, {
      onError: (err) => logger.error({ err: (err as Error).message }, 'event log read failed'),
    }),
    mtls: loadTlsSettings(settings.tls),
    federation: new FederationTrust({ clock }),
    streams: new EventStreams({
      maxUnsentBytes: settings.events.maxUnsentBytes,
      maxPerClient: settings.events.maxStreamsPerClient,
      maxPerToken: settings.events.maxStreamsPerToken,
    }),
    resolveHost: options.resolveHost ?? systemResolver,
    logger,
    consoleOidc: settings.console.oidc
      ? new ConsoleRelyingParty(settings.console.oidc, options.kek.derive('console-oidc-flow'), clock)
      : undefined,
    // The built-in set until the stored one is loaded, below, before anything is served.
    policy: new PolicyEngine(),
    detection: undefined as unknown as Detector,
  };
  ctx.detection = createDetector({
    ...ctx,
    adminAudience: adminAudience(settings.issuer),
    webhook:
      settings.detection.webhookUrl !== ''
        ? new FindingWebhook(ctx, settings.detection.webhookUrl)
        : undefined,
    actions: {
      revoke: async (kind, value, reason, actor) => {
        await revoke(ctx, { kind, value, issuedBefore: null, reason, actor });
      },
      quarantine: (workload, reason, actor) => setWorkloadState(ctx, workload, 'quarantined', actor, reason),
    },
  });
  // The rules and networks the config last applied, before anything is served.
  await reloadDetectionConfig(ctx);
  await syncRevocations(ctx);
  await startPolicy(
    ctx,
    options.policies,
    options.config !== undefined || options.policies !== undefined || options.configFiles === 'unchanged',
    head,
  );
  const follower = followEventLog(ctx, head);
  await ctx.detection.start(head);
  detector = ctx.detection;
  // Other nodes' events: PostgreSQL notifications wake the log reader at once; the event log's periodic
  // read covers a notification that was lost. The embedded store has no other writer to hear.
  const stopWatching = store.cluster?.watchEvents(
    () => ctx.events.notify(),
    (err) => logger.warn({ err: err.message }, 'event notifications interrupted; reconnecting'),
  );
  if (options.config) {
    const files = options.configFiles === 'unchanged' ? undefined : options.configFiles;
    const changes = await applyConfig(ctx, options.config, 'startup', false, files);
    if (changes.length > 0) logger.info({ changes: changes.length }, 'configuration applied at start');
  }
  // Nodes starting together: another may have applied the config (or rotated keys) after this one
  // loaded its state. Serve once the log up to now is applied.
  ctx.events.notify();
  if (!(await follower.reach((await store.eventBounds()).last, 10_000)))
    logger.warn('starting before the event log was applied; the node catches up as it serves');
  let vendorProxy: ServerVendorProxy | undefined;
  try {
    if (settings.vendorProxy.workload !== '')
      vendorProxy = createServerVendorProxy(ctx, options.vendorRoutes ?? []);
  } catch (err) {
    // Not starting: what was started for the node stops, so the caller can close the store.
    follower.close();
    await ctx.detection.stop();
    await stopWatching?.();
    ctx.events.close();
    throw err;
  }
  const app = buildApp(ctx, vendorProxy ? (req, res) => vendorProxy.handles(req, res) : undefined);
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
      pruneClosedTasks(ctx).catch(() => undefined);
      quarantineOrphans(ctx).catch((e: unknown) =>
        logger.error({ err: (e as Error).message }, 'could not quarantine orphaned workloads'),
      );
    }, 60_000),
    setInterval(
      () =>
        writeRefusalSummaries(ctx).catch((e: unknown) =>
          logger.error({ err: (e as Error).message }, 'could not audit refusal summaries'),
        ),
      Math.min(settings.audit.refusalWindow * 1000, 10_000),
    ),
    startTaskSweeper(ctx),
    startGovernanceSweeper(ctx),
    setInterval(measureSkew, SKEW_CHECK_MS),
  ];
  // Certificates get renewed and SPIRE rotates trust bundles: TLS files are re-read when they change.
  let tlsStamp = tlsFilesStamp(settings.tls);
  timers.push(
    setInterval(() => {
      const next = tlsFilesStamp(settings.tls);
      if (next === tlsStamp) return;
      tlsStamp = next;
      reloadTls(ctx, ctx.mtls.server ? (app.server as unknown as HttpsServer) : undefined).catch(
        (e: unknown) => logger.error({ err: (e as Error).message }, 'TLS reload failed'),
      );
    }, TLS_WATCH_MS),
  );
  for (const t of timers) t.unref();

  let closed = false;
  return {
    ctx,
    app,
    async listen() {
      const address = await app.listen({ host: settings.listen.host, port: settings.listen.port });
      // Fastify names the scheme from its own options; the TLS server is Writ's (see buildApp).
      return ctx.mtls.server ? address.replace(/^http:/, 'https:') : address;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearInterval(t);
      follower.close();
      await ctx.detection.stop();
      await stopWatching?.();
      ctx.events.close();
      ctx.streams.endAll();
      await app.close();
      await vendorProxy
        ?.close()
        .catch((e: unknown) => logger.error({ err: (e as Error).message }, 'vendor proxy close failed'));
      await writeRefusalSummaries(ctx, true).catch((e: unknown) =>
        logger.error({ err: (e as Error).message }, 'could not audit refusal summaries'),
      );
      await audit
        .checkpoint()
        .catch((e: unknown) => logger.error({ err: (e as Error).message }, 'final checkpoint failed'));
      await store.close();
    },
  };
}
