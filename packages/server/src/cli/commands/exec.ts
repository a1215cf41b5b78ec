import { spawn } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { detectAmbientIdentity, tlsFetch, WorkloadClient } from '@writ/sdk/client';
import type { Command } from 'commander';
import { startVendorForwarder } from '../../vendor/exec-forwarder.js';
import { CliError, readClientTls, readPrivateKeyFile } from '../client.js';
import type { CommandContext } from '../command-context.js';
import { terminalText } from '../terminal.js';

export interface ExecOptions {
  server: string;
  /** With `key`: the workload. With federation: optional, the server maps the token to the workload. */
  clientId?: string | undefined;
  /** The workload's private JWK file; without it, the ambient identity (workload federation). */
  key?: string | undefined;
  /** mTLS (RFC 8705) instead of a key: the client certificate, its key (0600) and the server's CA. */
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsCa?: string | undefined;
  /** With the certificate: also bind tokens with DPoP (for `binding: dpop` classes). */
  dpop?: boolean | undefined;
  /** A federation token file (a Kubernetes projected token, a JWT-SVID), re-read on every renewal. */
  federationTokenFile?: string | undefined;
  /** The `aud` to ask the outside issuer for; default the Writ issuer URL. */
  federationAudience?: string | undefined;
  env?: Record<string, string | undefined>;
  audience: string;
  scope?: string;
  taskPurpose?: string;
  duration?: string;
  label?: string[];
  lease: number;
  /** Vendor routes the command reaches through the vendor-key proxy at `proxyUrl` (`WRIT_VENDOR_<NAME>_URL`). */
  viaProxy?: string[] | undefined;
  proxyUrl?: string | undefined;
  log: (line: string) => void;
}

/**
 * `writ exec -- cmd args…`: opens a task, gets a DPoP-bound token for it, runs the command with the
 * token and DPoP key in its environment, renews the token before it expires, keeps the task's lease
 * alive, and closes the task when the command exits — whatever the exit code or signal — so every
 * token of the task is revoked. Exits with the command's status (128 + signal number when killed).
 *
 * Without `--key` it uses the ambient identity (GitHub Actions OIDC, a projected token file, a
 * JWT-SVID): the platform token, fetched or re-read for every call, authenticates the task calls and
 * is traded with the jwt-bearer grant for each token. The task is opened, kept alive and closed exactly
 * as with a key file (the server labels it with the issuer and the CI run). When the task cannot be
 * opened, the command does not run.
 *
 * With `--tls-cert`/`--tls-key` (instead of `--key`) it authenticates with the client certificate over
 * mutual TLS (RFC 8705); tokens of `binding: mtls` classes are bound to that certificate, and the
 * command gets the certificate paths (`WRIT_CLIENT_CERT_FILE`, `WRIT_CLIENT_KEY_FILE`,
 * `WRIT_CLIENT_CA_FILE`) to present it, e.g. `curl --cert`.
 *
 * It never prints a token. In GitHub Actions (`GITHUB_ACTIONS=true`) it announces each token it hands
 * out with `::add-mask::` first, so the runner hides it wherever the job's log would show it.
 */
export async function exec(o: ExecOptions, argv: string[]): Promise<number> {
  if (argv.length === 0) throw new CliError('give the command to run after --');
  const labels: Record<string, string> = {};
  for (const l of o.label ?? []) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new CliError(`--label must be name=value, got ${JSON.stringify(l)}`);
    labels[l.slice(0, eq)] = l.slice(eq + 1);
  }
  const duration = o.duration === undefined ? undefined : Number(o.duration);
  if (duration !== undefined && !(Number.isInteger(duration) && duration > 0))
    throw new CliError('--duration must be seconds');

  const tls = readClientTls(o);
  if (tls && o.key !== undefined) throw new CliError('give --key or --tls-cert/--tls-key, not both');
  const metaFetch = tls ? tlsFetch(tls) : { fetch, close: () => undefined };
  let issuer: string;
  try {
    const meta = await metaFetch
      .fetch(`${o.server.replace(/\/+$/, '')}/.well-known/oauth-authorization-server`)
      .catch((err: Error) => {
        throw new CliError(`cannot reach ${o.server}: ${err.message}`);
      });
    if (!meta.ok) throw new CliError(`metadata: HTTP ${meta.status}`);
    issuer = ((await meta.json()) as { issuer: string }).issuer;
  } finally {
    metaFetch.close();
  }
  const federated = o.key === undefined && tls === undefined;
  let session: WorkloadClient;
  if (tls) {
    if (!o.clientId) throw new CliError('--client-id is required with --tls-cert');
    o.log('writ exec: proving the workload with its client certificate (mTLS)');
    session = new WorkloadClient({ issuer, clientId: o.clientId, tls, dpop: o.dpop === true });
  } else if (federated) {
    const ambient = detectAmbientIdentity({
      audience: o.federationAudience ?? issuer,
      tokenFile: o.federationTokenFile,
      ...(o.env ? { env: o.env } : {}),
    });
    if (!ambient)
      throw new CliError(
        'no --key and no ambient identity (GitHub Actions OIDC, --federation-token-file, WRIT_FEDERATION_TOKEN)',
      );
    o.log(`writ exec: proving the workload with ${ambient.kind}`);
    session = new WorkloadClient({
      issuer,
      ...(o.clientId ? { clientId: o.clientId } : {}),
      federationToken: ambient.token,
    });
  } else {
    if (!o.clientId) throw new CliError('--client-id is required with --key');
    session = new WorkloadClient({ issuer, clientId: o.clientId, privateJwk: readPrivateKeyFile(o.key!) });
  }
  const dpop = session.dpopKey;
  // Fail closed: no task, no command.
  const task = await session
    .openTask(o.taskPurpose ?? `writ exec ${argv[0]}`, {
      lease: o.lease,
      labels,
      ...(duration ? { duration } : {}),
    })
    .catch((err: Error) => {
      session.close();
      throw new CliError(`cannot open a task, the command is not run: ${err.message}`);
    });
  const taskId = task.id;
  const dir = mkdtempSync(join(tmpdir(), 'writ-exec-'));
  const tokenFile = join(dir, 'token');
  const keyFile = join(dir, 'dpop.jwk');
  let closed = false;
  let vendors: Awaited<ReturnType<typeof startVendorForwarder>> | undefined;
  const close = async (reason: string) => {
    if (closed) return;
    closed = true;
    try {
      await vendors?.close();
      await session.closeTask(taskId, reason);
    } finally {
      session.close();
      rmSync(dir, { recursive: true, force: true });
    }
  };

  try {
    writeFileSync(keyFile, JSON.stringify({ ...dpop.privateKey.export({ format: 'jwk' }), alg: dpop.alg }), {
      mode: 0o600,
    });
    // In GitHub Actions the runner masks every value announced with `::add-mask::` in the job's log.
    // Announced before the command (or the token file) can see the token; writeSync, so the line is out
    // before the command's own output on the same stdout.
    const githubActions = (o.env ?? process.env)['GITHUB_ACTIONS'] === 'true';
    const write = (token: string) => {
      if (githubActions) writeSync(1, `::add-mask::${token}\n`);
      writeFileSync(`${tokenFile}.tmp`, token, { mode: 0o600 });
      renameSync(`${tokenFile}.tmp`, tokenFile);
    };
    const tokenRequest = { audience: o.audience, taskId, ...(o.scope ? { scope: o.scope } : {}) };
    let current = await session.requestToken(tokenRequest);
    write(current.access_token);
    o.log(`writ exec: task ${taskId} open; token expires in ${current.expires_in}s`);

    // --via-proxy: the command reaches each vendor at a loopback URL; the proxy holds the key.
    if (o.viaProxy && o.viaProxy.length > 0) {
      vendors = await startVendorForwarder({
        proxyUrl: o.proxyUrl ?? 'http://127.0.0.1:9400',
        names: o.viaProxy,
        client: session,
        taskId,
      }).catch((err: Error) => {
        throw new CliError(`--via-proxy: ${err.message}; the command is not run`);
      });
      o.log(`writ exec: vendors via the proxy: ${Object.keys(vendors.env).join(', ')}`);
    }
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: 'inherit',
      env: {
        ...process.env,
        ...vendors?.env,
        WRIT_ACCESS_TOKEN: current.access_token,
        WRIT_TOKEN_FILE: tokenFile,
        WRIT_DPOP_KEY_FILE: keyFile,
        WRIT_TASK_ID: taskId,
        WRIT_URL: o.server,
        WRIT_TOKEN_TYPE: current.token_type,
        ...(tls
          ? {
              WRIT_CLIENT_CERT_FILE: resolve(o.tlsCert!),
              WRIT_CLIENT_KEY_FILE: resolve(o.tlsKey!),
              ...(o.tlsCa ? { WRIT_CLIENT_CA_FILE: resolve(o.tlsCa) } : {}),
            }
          : {}),
      },
    });

    // Renew at two thirds of each token's life; keep the lease alive at a third of its length.
    let renewTimer: NodeJS.Timeout | undefined;
    const scheduleRenewal = (lifetime: number) => {
      renewTimer = setTimeout(
        async () => {
          try {
            current = await session.requestToken(tokenRequest);
            write(current.access_token);
            scheduleRenewal(current.expires_in);
          } catch (err) {
            o.log(
              `writ exec: renewal refused, the command keeps its current token: ${(err as Error).message}`,
            );
          }
        },
        Math.max(1, Math.floor((lifetime * 2) / 3)) * 1000,
      );
    };
    scheduleRenewal(current.expires_in);
    const heartbeat = setInterval(
      () => {
        session
          .heartbeat(taskId, o.lease)
          .catch((err: Error) => o.log(`writ exec: heartbeat failed: ${err.message}`));
      },
      Math.max(1, Math.floor(o.lease / 3)) * 1000,
    );
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);

    const status = await new Promise<number>((resolve) => {
      child.on('error', (err) => {
        o.log(`writ exec: cannot run ${argv[0]}: ${err.message}`);
        resolve(127);
      });
      child.on('exit', (code, signal) => {
        const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
        resolve(code ?? 128 + (signal ? (signals[signal] ?? 1) : 1));
      });
    });
    clearTimeout(renewTimer);
    clearInterval(heartbeat);
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    await close(`command exited with status ${status}`);
    o.log(`writ exec: task ${taskId} closed; its tokens are revoked`);
    return status;
  } catch (err) {
    await close('writ exec failed').catch(() => undefined);
    throw err;
  }
}

export function registerExec(program: Command, cli: CommandContext): void {
  program
    .command('exec')
    .description('run a command with a task-bound, DPoP-bound token that is revoked when the command exits')
    .option('--client-id <spiffe-id>', 'the workload (required with --key and --tls-cert)')
    .option('--key <file>', "the workload's private JWK; without it, the ambient identity (federation)")
    .option(
      '--federation-token-file <file>',
      'a federation token file, re-read on each renewal (default: GitHub Actions OIDC, then /var/run/secrets/tokens/writ-token)',
    )
    .option('--federation-audience <aud>', 'the aud to ask the outside issuer for (default: the Writ issuer)')
    .option(
      '--tls-cert <file>',
      'instead of --key: client certificate (PEM) for mTLS; the command gets WRIT_CLIENT_CERT_FILE, WRIT_CLIENT_KEY_FILE (and WRIT_CLIENT_CA_FILE)',
    )
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM; refused if group or others can read it)')
    .option('--tls-ca <file>', "the server's CA (PEM) when it is not publicly trusted")
    .option('--dpop', 'with --tls-cert: also send DPoP proofs (for binding: dpop classes)')
    .requiredOption('--audience <uri>', 'the API the command calls')
    .option('--scope <scopes>', 'space-separated scopes')
    .option('--task-purpose <text>', 'why the task runs (audited)')
    .option('--duration <seconds>', 'expected duration (capped by the class)')
    .option('--label <name=value...>', 'task labels, e.g. ci_run=1234 job=deploy')
    .option('--lease <seconds>', 'the task closes if writ exec stops renewing it this long', '30')
    .option(
      '--via-proxy <route...>',
      'reach these vendor routes through the vendor-key proxy: the command gets WRIT_VENDOR_<ROUTE>_URL, never a key',
    )
    .option(
      '--proxy-url <url>',
      'the vendor-key proxy (writ proxy)',
      process.env['WRIT_PROXY_URL'] ?? 'http://127.0.0.1:9400',
    )
    .argument('<command...>', 'the command and its arguments (after --)')
    .action(async (command: string[], o: Record<string, string | string[] | undefined>) => {
      const status = await exec(
        {
          server: cli.globals().server,
          clientId: o['clientId'] as string | undefined,
          key: o['key'] as string | undefined,
          federationTokenFile: o['federationTokenFile'] as string | undefined,
          federationAudience: o['federationAudience'] as string | undefined,
          tlsCert: o['tlsCert'] as string | undefined,
          tlsKey: o['tlsKey'] as string | undefined,
          tlsCa: o['tlsCa'] as string | undefined,
          dpop: (o['dpop'] as unknown) === true,
          audience: o['audience'] as string,
          ...(o['scope'] ? { scope: o['scope'] as string } : {}),
          ...(o['taskPurpose'] ? { taskPurpose: o['taskPurpose'] as string } : {}),
          ...(o['duration'] ? { duration: o['duration'] as string } : {}),
          ...(o['label'] ? { label: o['label'] as string[] } : {}),
          lease: Math.max(3, Number(o['lease']) || 30),
          ...(o['viaProxy'] ? { viaProxy: o['viaProxy'] as string[] } : {}),
          ...(o['proxyUrl'] ? { proxyUrl: o['proxyUrl'] as string } : {}),
          log: (line) => process.stderr.write(`${terminalText(line)}\n`),
        },
        command,
      );
      process.exitCode = status;
    });
}
