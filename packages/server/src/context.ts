import type { Logger } from 'pino';
import type { AuditLog } from './audit/audit-log.js';
import type { RefusalTally } from './audit/refusal-tally.js';
import type { Clock } from './clock.js';
import type { ClockSkew } from './cluster/clock-skew.js';
import type { Settings } from './config/settings.js';
import type { ConsoleRelyingParty } from './console/oidc/relying-party.js';
import type { Detector } from './detection/detector.js';
import type { DpopNonces } from './dpop/nonces.js';
import type { EventLog } from './events/event-log.js';
import type { EventStreams } from './events/stream.js';
import type { FederationTrust } from './federation/trust.js';
import type { KeyEncryptionKey } from './keys/kek.js';
import type { KeyManager } from './keys/key-manager.js';
import type { Metrics } from './metrics.js';
import type { PresentedCertificate } from './mtls/certificate.js';
import type { ClientCertificateTrust, ServerTls } from './mtls/trust.js';
import type { HostResolver } from './net/resolver.js';
import type { PolicyEngine } from './policy/engine.js';
import type { MemoryRateLimiter, RateLimiter } from './rate-limit/rate-limit.js';
import type { Registry } from './registry/registry.js';
import type { ForwardedCertificateRefusal } from './request/client-certificate.js';
import type { RevocationSet } from './revocation/revocation-set.js';
import type { Store } from './store/store.js';

/** Everything a request handler may use; built once by the composition root (`createWrit`). */
export interface WritContext {
  settings: Settings;
  store: Store;
  clock: Clock;
  /** This node's clock against the database's; past the bound the node issues nothing. */
  clockSkew: ClockSkew;
  keys: KeyManager;
  registry: Registry;
  revocations: RevocationSet;
  audit: AuditLog;
  metrics: Metrics;
  /** One request budget per authenticated client, across every endpoint (`auth/budget.ts`). */
  rateLimiter: RateLimiter;
  /** Budgets of refused unauthenticated requests per source address, on this node. */
  sourceLimiter: MemoryRateLimiter;
  /** Counts floods of refusals so each kind is audited once per window (`audit/refusal.ts`). */
  refusalTally: RefusalTally;
  dpopNonces: DpopNonces;
  /**
   * Seals secrets Writ keeps for others (a Shared Signals receiver's push credential) at rest, under a
   * key derived from the KEK: it cannot open signing keys.
   */
  secrets: Pick<KeyEncryptionKey, 'seal' | 'open'>;
  events: EventLog;
  /** Cedar decisions at issuance and for the AuthZEN endpoint. */
  policy: PolicyEngine;
  /** Trusted outside issuers (workload federation): compiled claim rules and JWKS caches. */
  federation: FederationTrust;
  /** mTLS (RFC 8705): what client certificates are trusted, and the server's own TLS material. */
  mtls: { trust: ClientCertificateTrust; server: ServerTls | undefined };
  /**
   * Detection and response: signals in, rules, findings, risk (the policy context's `risk`) and the
   * automatic responses. Set by the composition root once the rest of the context exists.
   */
  detection: Detector;
  /** Open event streams, capped per workload and per token, ended at shutdown. */
  streams: EventStreams;
  /**
   * Resolves the hosts Writ connects to on others' behalf (Shared Signals push receivers): the system
   * resolver, or a test's own.
   */
  resolveHost: HostResolver;
  logger: Logger;
  /** OpenID Connect sign-in to the console, when `console.oidc.issuer` is set. */
  consoleOidc?: ConsoleRelyingParty | undefined;
}

/** What the HTTP layer knows about the caller. */
export interface RequestInfo {
  ip: string;
  method: string;
  /** The request path without its query: what a DPoP proof's `htu` names, after the issuer. */
  path: string;
  userAgent: string | undefined;
  authorization: string | undefined;
  /** Every value of the `DPoP` header, in order. */
  dpop: string[];
  /** The client certificate of the mTLS connection, or the one a trusted proxy forwarded (RFC 8705). */
  clientCertificate?: PresentedCertificate | undefined;
  /** A forwarded-certificate header that was not believed, and why (audited when it was all there was). */
  ignoredForwardedCertificate?: ForwardedCertificateRefusal | undefined;
  /**
   * The caller `auth/` authenticated (workload SPIFFE ID or `operator:<name>`), set once it has; a
   * refusal without it is unauthenticated, limited and audited per source address.
   */
  caller?: string | undefined;
  /** The console session id of the `writ_console` cookie (docs/console.md), when it carries one. */
  consoleCookie?: string | undefined;
  /** The `X-Writ-CSRF` header: the console session's token, on state-changing requests. */
  csrf?: string | undefined;
  /** The `Origin` header, when the browser sent one. */
  origin?: string | undefined;
}

/** Endpoint paths, relative to the issuer. */
export const Paths = {
  metadata: '/.well-known/oauth-authorization-server',
  jwks: '/.well-known/jwks.json',
  token: '/oauth2/token',
  introspect: '/oauth2/introspect',
  revoke: '/oauth2/revoke',
  tasks: '/v1/tasks',
  events: '/v1/events',
  adminToken: '/admin/v1/token',
  admin: '/admin/v1',
  access: '/access/v1',
} as const;

/** The audience of admin tokens. */
export const adminAudience = (issuer: string): string => `${issuer}/admin`;

/** The audience a verifier's token must carry to follow the event stream and fetch policy bundles. */
export const eventsAudience = (issuer: string): string => `${issuer}${Paths.events}`;
