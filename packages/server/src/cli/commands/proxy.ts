import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { WorkloadClient } from '@writ/sdk/client';
import { createVerifier, UsageReporter, type Verifier } from '@writ/sdk/verifier';
import type { Command } from 'commander';
import { Counter, Registry } from 'prom-client';
import { PROXY_METADATA_PATH } from '../../vendor/exec-forwarder.js';
import { RouteLatencyHistogram } from '../../vendor/latency-histogram.js';
import { LeasedVendorKeys } from '../../vendor/leased-keys.js';
import { createVendorProxy } from '../../vendor/proxy.js';
import { loadVendorRoutes } from '../../vendor/route.js';
import { CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';

interface ProxyOptions {
  config?: string;
  clientId?: string;
  key?: string;
  host: string;
  port: string;
  publicUrl?: string;
  tlsCert?: string;
  tlsKey?: string;
  policy?: boolean;
}

/**
 * `writ proxy`: the vendor-key proxy as its own process (a sidecar next to the workload, or a shared
 * gateway). It is a workload of its own: it follows the revocation stream for each route's audience,
 * reports every use, and leases the vendor keys its routes name; workloads reach the vendor at
 * `<public-url>/vendors/NAME/...` with their Writ token and never hold the key.
 */
export function registerProxy(program: Command, cli: CommandContext): void {
  program
    .command('proxy')
    .description(
      'run the vendor-key proxy: workloads call vendors with a Writ token, the proxy injects the key',
    )
    .option('--config <dir>', 'the config directory holding vendors/*.yaml (default: <data-dir>/config)')
    .option('--client-id <spiffe-id>', "the proxy's own workload id (it must be a proxy of each vendor key)")
    .option('--key <file>', "the proxy workload's private JWK")
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', '9400')
    .option(
      '--public-url <url>',
      'the URL workloads use to reach this proxy (DPoP proofs are checked against it)',
    )
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option('--policy', "also decide each request with the server's signed Cedar policy bundle")
    .action(async (o: ProxyOptions) => {
      if (!o.clientId || !o.key)
        throw new CliError('--client-id and --key (the proxy workload) are required');
      if ((o.tlsCert === undefined) !== (o.tlsKey === undefined))
        throw new CliError('--tls-cert and --tls-key go together');
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65_535)
        throw new CliError('--port must be 0 to 65535');
      const routes = loadVendorRoutes(o.config ?? join(cli.globals().dataDir, 'config'));
      if (routes.length === 0)
        throw new CliError('no vendor routes: add vendors/NAME.yaml to the config directory');
      const issuer = cli.globals().server.replace(/\/$/, '');
      let privateJwk: unknown;
      try {
        privateJwk = JSON.parse(readFileSync(o.key, 'utf8'));
      } catch (err) {
        throw new CliError(`cannot read --key ${o.key}: ${(err as Error).message}`);
      }
      const client = new WorkloadClient({ issuer, clientId: o.clientId, privateJwk: privateJwk as never });
      const usage = new UsageReporter({ issuer, client });
      const verifiers = new Map<string, Verifier>(
        routes.map((r) => [
          r.name,
          createVerifier({
            issuer,
            audience: r.audience,
            client,
            usage,
            ...(o.policy ? { policy: {} } : {}),
          }),
        ]),
      );
      const registry = new Registry();
      // Counted in a plain map per request and handed to prom-client when scraped: its label hashing
      // per request cost more than the count. Bounded: routes, status codes and reasons are few.
      const requestCounts = new Map<string, { labels: Record<string, string>; n: number }>();
      new Counter({
        name: 'writ_proxy_requests_total',
        help: 'Requests to the vendor-key proxy by route, status and reason (refused or failed).',
        labelNames: ['route', 'status', 'reason'],
        registers: [registry],
        collect() {
          this.reset();
          for (const c of requestCounts.values()) this.inc(c.labels, c.n);
        },
      });
      // Counted in plain arrays and written out when scraped (prom-client hashes labels per observation).
      const upstream = new RouteLatencyHistogram(
        'writ_proxy_upstream_seconds',
        'Time to the vendor response head.',
        [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        routes.map((r) => r.name),
      );
      const redactions = new Counter({
        name: 'writ_proxy_key_redactions_total',
        help: 'Occurrences of a vendor key overwritten in what a vendor sent back.',
        labelNames: ['route'],
        registers: [registry],
      });
      const listenPort = port;
      let publicUrl = o.publicUrl;
      const proxy = (pub: string) =>
        createVendorProxy({
          routes,
          verifiers,
          keys: new LeasedVendorKeys({ issuer, client }),
          publicUrl: pub,
          onRequest: (r) => {
            const id = `${r.route ?? ''}\n${r.status}\n${r.reason ?? ''}`;
            const counted = requestCounts.get(id);
            if (counted) counted.n++;
            else
              requestCounts.set(id, {
                labels: { route: r.route ?? '', status: String(r.status), reason: r.reason ?? '' },
                n: 1,
              });
            if (r.upstreamMs !== undefined && r.route !== undefined)
              upstream.observe(r.route, r.upstreamMs / 1000);
            if (r.redacted > 0) redactions.inc({ route: r.route ?? '' }, r.redacted);
          },
        });
      let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
      const serve = (req: IncomingMessage, res: ServerResponse) => {
        if (req.url === '/healthz') {
          const down = [...verifiers]
            .filter(([, v]) => !v.status().synced || v.status().stale)
            .map(([n]) => n);
          res.writeHead(down.length === 0 ? 200 : 503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: down.length === 0, ...(down.length ? { not_ready: down } : {}) }));
          return;
        }
        if (req.url === PROXY_METADATA_PATH) {
          res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
          res.end(
            JSON.stringify({
              routes: routes.map((r) => ({ name: r.name, audience: r.audience, scopes: r.scopes })),
            }),
          );
          return;
        }
        if (req.url === '/metrics') {
          registry.metrics().then((text) => {
            res.writeHead(200, { 'content-type': registry.contentType });
            res.end(`${text}\n${upstream.exposition()}`);
          });
          return;
        }
        handler!(req, res);
      };
      const server = o.tlsCert
        ? createHttpsServer({ cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey!) }, serve)
        : createHttpServer(serve);
      await Promise.all([...verifiers.values()].map((v) => v.ready()));
      await new Promise<void>((r) => server.listen(listenPort, o.host, r));
      const bound = (server.address() as { port: number }).port;
      publicUrl ??= `${o.tlsCert ? 'https' : 'http'}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${bound}`;
      handler = proxy(publicUrl);
      process.stderr.write(
        `writ proxy: ${routes.map((r) => `${publicUrl}/vendors/${r.name}/ -> ${r.upstream.origin}`).join(', ')}\n`,
      );
      await new Promise<void>((resolve) => {
        for (const signal of ['SIGINT', 'SIGTERM'] as const)
          process.once(signal, () => {
            server.close();
            for (const v of verifiers.values()) v.close();
            usage.close().finally(resolve);
          });
      });
    });
}
