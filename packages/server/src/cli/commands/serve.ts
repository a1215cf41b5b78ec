import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import { readSettingsFile } from '../../config/config-dir.js';
import { resolveSettings } from '../../config/settings.js';
import { readStartupConfig } from '../../config/startup-config.js';
import { dataPaths, ownerOnlyDataDir } from '../../data-dir.js';
import { loadKek } from '../../keys/kek.js';
import { readPolicyDir } from '../../policy/policy-dir.js';
import { describeStore, isPostgresUrl, openStore, storeLocation } from '../../store/open-store.js';
import { loadVendorRoutes } from '../../vendor/route.js';
import { createWrit } from '../../writ.js';
import type { CommandContext } from '../command-context.js';
import { packageVersion } from '../package-version.js';
import { STORE_OPTION_HELP } from '../store-option.js';
import { initDataDir } from './init.js';

export interface ServeOptions {
  dataDir: string;
  config?: string;
  host?: string;
  port?: string;
  issuer?: string;
  /** `sqlite` or a PostgreSQL URL; overrides WRIT_STORE and settings.yaml. */
  store?: string;
}

/** `writ serve`: the control plane on its store. First start initialises the data directory. */
export async function serve(opts: ServeOptions): Promise<void> {
  const p = dataPaths(opts.dataDir);
  // First start: no store file in the data directory, or (PostgreSQL) no config directory in it.
  const shared = isPostgresUrl(opts.store ?? process.env['WRIT_STORE'] ?? '');
  if (!existsSync(shared ? p.config : p.database)) {
    const init = initDataDir(opts.dataDir, 'admin');
    for (const c of init.created) process.stderr.write(`writ: created ${c}\n`);
  }
  const configDir = opts.config ?? p.config;
  const hasConfig = existsSync(configDir);
  const settings = resolveSettings(hasConfig ? readSettingsFile(configDir) : undefined, process.env, {
    ...(opts.host !== undefined ? { 'listen.host': opts.host } : {}),
    ...(opts.port !== undefined ? { 'listen.port': opts.port } : {}),
    ...(opts.issuer !== undefined ? { issuer: opts.issuer } : {}),
    ...(opts.store !== undefined ? { store: opts.store } : {}),
  });
  // Before the key is read: a key left readable by others is narrowed (and logged), not refused.
  const tightened = ownerOnlyDataDir(opts.dataDir);
  const kek = loadKek(process.env, p.kek);
  const location = storeLocation(settings.store, opts.dataDir);
  // Until the logger exists, errors of idle pooled connections go to stderr.
  let storeError = (err: Error): void => {
    process.stderr.write(`writ: store connection: ${err.message}\n`);
  };
  const store = await openStore(location, {
    onError: (err) => storeError(err),
    onModeTightened: (t) => tightened.push(t),
  });
  const start = async () => {
    // Only the files that changed since the store's last applied config are parsed; validated with the
    // resolved ceiling on token lifetimes, the issuer and the document limit.
    const startup = hasConfig
      ? await readStartupConfig(configDir, settings, store, packageVersion(), systemClock.now())
      : undefined;
    // Unchanged files read again (touched, copied): their stamps now, so the next start skips them.
    if (startup && startup.stamps.length > 0) await store.stampConfigFiles(startup.stamps);
    if (startup && startup.total > 0)
      process.stderr.write(
        `writ: config ${configDir}: ${startup.files === 'unchanged' ? 'unchanged since applied' : `${startup.parsed} of ${startup.total} files read`}\n`,
      );
    // The vendor-key proxy inside the server (vendor_proxy.workload) serves the config's vendors/.
    const vendorRoutes =
      settings.vendorProxy.workload !== '' && hasConfig ? loadVendorRoutes(configDir) : undefined;
    return createWrit({
      settings,
      ...(vendorRoutes ? { vendorRoutes } : {}),
      store,
      kek,
      auditAnchor: p.auditAnchor,
      ...(startup
        ? {
            ...(startup.config ? { config: startup.config } : {}),
            configFiles: startup.files,
            policies: readPolicyDir(configDir),
          }
        : {}),
    });
  };
  const writ = await start().catch(async (err: unknown) => {
    await store.close().catch(() => undefined);
    throw err;
  });
  storeError = (err) =>
    writ.ctx.logger.warn(
      { err: err.message },
      location.kind === 'postgres'
        ? 'store connection lost; the pool reconnects'
        : 'embedded store checkpointer given up',
    );
  for (const t of tightened)
    writ.ctx.logger.warn(
      { path: t.path, from: t.from, to: t.to },
      'file mode narrowed: it let other local users read or enter the data directory',
    );
  const address = await writ.listen();
  writ.ctx.logger.info(
    {
      address,
      issuer: settings.issuer,
      store: describeStore(location),
      config: hasConfig ? configDir : null,
      kek: kek.source,
      kid: writ.ctx.keys.activeKid(),
    },
    'writ is serving',
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    writ.ctx.logger.info({ signal }, 'shutting down');
    writ.close().then(
      () => process.exit(0),
      (err: unknown) => {
        writ.ctx.logger.error({ err: (err as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export function registerServe(program: Command, cli: CommandContext): void {
  program
    .command('serve')
    .description('run the server (initialises the data directory on first start)')
    .option('--config <dir>', 'config directory applied at start (default: <data-dir>/config)')
    .option('--host <host>', 'listen address')
    .option('--port <port>', 'listen port')
    .option('--issuer <url>', 'issuer URL')
    .option('--store <store>', STORE_OPTION_HELP)
    .action((o: { config?: string; host?: string; port?: string; issuer?: string; store?: string }) =>
      serve({ dataDir: cli.globals().dataDir, ...o }),
    );
}
