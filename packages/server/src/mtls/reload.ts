import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import type { Settings } from '../config/settings.js';
import type { WritContext } from '../context.js';
import { loadTlsSettings } from './trust.js';

/** Every file the TLS settings name, with the trust-domain prefix of bundle entries removed. */
function tlsFiles(tls: Settings['tls']): string[] {
  return [
    tls.certFile,
    tls.keyFile,
    ...tls.clientCaFiles,
    ...tls.spiffeBundles.map((e) => e.slice(e.indexOf('=') + 1)),
  ].filter((f) => f !== '');
}

/** A stamp of the TLS files (size and modification time): it changes when any of them is replaced. */
export function tlsFilesStamp(tls: Settings['tls']): string {
  const h = createHash('sha256');
  for (const f of tlsFiles(tls)) {
    try {
      const s = statSync(f);
      h.update(`${f}\0${s.size}\0${s.mtimeMs}\0`);
    } catch {
      h.update(`${f}\0missing\0`);
    }
  }
  return h.digest('hex');
}

/**
 * Re-reads the server certificate, client CAs and SPIFFE bundles (which SPIRE rotates) and puts them
 * in force for new connections and requests. A file that no longer loads keeps the old material in
 * force and is reported; either outcome is audited. Returns whether the new material was taken.
 */
export async function reloadTls(
  ctx: WritContext,
  server: Pick<HttpsServer, 'setSecureContext'> | undefined,
): Promise<boolean> {
  let loaded: ReturnType<typeof loadTlsSettings>;
  try {
    loaded = loadTlsSettings(ctx.settings.tls);
  } catch (err) {
    ctx.logger.error(
      { err: (err as Error).message },
      'TLS files changed but do not load; keeping the old ones',
    );
    await ctx.audit.append({
      type: 'tls.reload_failed',
      outcome: 'failure',
      actor: 'system',
      data: { reason: (err as Error).message.slice(0, 256) },
    });
    return false;
  }
  if (server && loaded.server && typeof server.setSecureContext === 'function') {
    server.setSecureContext({
      cert: loaded.server.cert,
      key: loaded.server.key,
      ...(loaded.server.ca.length > 0 ? { ca: loaded.server.ca.map((c) => c.toString()) } : {}),
    });
  }
  ctx.mtls = loaded;
  await ctx.audit.append({
    type: 'tls.reloaded',
    outcome: 'success',
    actor: 'system',
    data: {
      client_cas: loaded.trust.cas.length,
      spiffe_trust_domains: [...loaded.trust.spiffeBundles.keys()].sort(),
    },
  });
  ctx.logger.info({ trustDomains: [...loaded.trust.spiffeBundles.keys()] }, 'TLS files reloaded');
  return true;
}
