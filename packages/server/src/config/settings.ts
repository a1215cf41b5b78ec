import { createHash } from 'node:crypto';
import { ConfigError } from '../errors.js';
import { VERIFY_ALGORITHMS, type VerifyAlgorithm } from '../jose/jwk.js';
import { parseRange } from '../net/ip-address.js';
import { formatDuration, parseDuration } from './duration.js';

/**
 * Every server setting, its default, its environment variable and what it does. This table is the
 * configuration reference: `writ config reference` prints it and the copy in docs/configuration.md is checked against it.
 */
type Kind =
  | 'string'
  | 'url'
  | 'integer'
  | 'duration'
  | 'enum'
  | 'list'
  | 'strings'
  | 'origins'
  | 'addresses'
  | 'boolean'
  | 'store';
interface Setting {
  kind: Kind;
  default: string | number | boolean | readonly string[];
  env?: string;
  values?: readonly string[];
  min?: number;
  max?: number;
  /** How the reference shows the default, when the value itself says nothing (an empty path). */
  shown?: string;
  doc: string;
}

export const SETTINGS_REFERENCE = {
  issuer: {
    kind: 'url',
    default: '',
    env: 'WRIT_ISSUER',
    doc: 'Issuer identifier (`iss`) and base URL of every endpoint. Empty: `http://<listen.host>:<listen.port>` (`https://` with `tls.cert_file`).',
  },
  'listen.host': {
    kind: 'string',
    default: '127.0.0.1',
    env: 'WRIT_HOST',
    doc: 'Address the HTTP server binds to.',
  },
  'listen.port': {
    kind: 'integer',
    default: 8080,
    env: 'WRIT_PORT',
    min: 0,
    max: 65535,
    doc: 'TCP port (0 picks a free one).',
  },
  store: {
    kind: 'store',
    default: 'sqlite',
    env: 'WRIT_STORE',
    doc: 'Where Writ keeps its state. `sqlite`: the embedded file `<data-dir>/writ.db`, for one node. A `postgres://` or `postgresql://` URL: a PostgreSQL database several nodes share (tables in its `public` schema, migrated at start or by `writ migrate`). Logged with the password masked.',
  },
  'cluster.max_clock_skew': {
    kind: 'duration',
    default: 2,
    min: 1,
    max: 60,
    doc: "PostgreSQL store: the most this node's clock may differ from the database server's, measured every 15s. Past it `/readyz` answers 503 and token requests are refused with 503, until the clock is back. Shared times are compared with the database's clock as well as the node's. The embedded store has one process and one clock: nothing to measure.",
  },
  'signing.algorithm': {
    kind: 'enum',
    default: 'ES256',
    values: ['ES256', 'EdDSA'],
    env: 'WRIT_SIGNING_ALG',
    doc: 'Algorithm of newly generated signing keys. Existing keys keep theirs until rotated out.',
  },
  'tokens.max_lifetime': {
    kind: 'duration',
    default: 3600,
    min: 60,
    max: 86_400,
    doc: 'Ceiling on every class `max_ttl`. Retired signing keys stay published this long after rotation.',
  },
  'tokens.exchange_max_depth': {
    kind: 'integer',
    default: 4,
    min: 1,
    max: 5,
    doc: 'Token exchange: how many exchanges (1–5) a token may be from the token first issued, its `ajti` length. An exchange past it is `invalid_grant`; exchange a token nearer the first one.',
  },
  'client_assertion.max_lifetime': {
    kind: 'duration',
    default: 300,
    min: 30,
    max: 600,
    doc: 'A `private_key_jwt` assertion may expire at most this far in the future, and its `iat` may be at most this old.',
  },
  'client_assertion.clock_skew': {
    kind: 'duration',
    default: 30,
    max: 120,
    doc: 'Leeway applied to `exp`, `nbf` and `iat` of client assertions.',
  },
  'client_assertion.algorithms': {
    kind: 'list',
    default: ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'],
    values: VERIFY_ALGORITHMS,
    doc: 'Allow-list of client assertion algorithms. `none` and HMAC algorithms can never be enabled.',
  },
  'dpop.require_nonce': {
    kind: 'boolean',
    default: true,
    doc: 'Require a server-issued nonce in DPoP proofs at the token endpoint (RFC 9449 §8): pre-made proofs are useless.',
  },
  'dpop.nonce_lifetime': {
    kind: 'duration',
    default: 300,
    min: 10,
    max: 3600,
    doc: 'A DPoP nonce is valid for this period and the next; a new one is sent in every `DPoP-Nonce` header.',
  },
  'dpop.iat_window': {
    kind: 'duration',
    default: 60,
    min: 5,
    max: 600,
    doc: 'A DPoP proof is accepted when its `iat` is within this many seconds of the server clock; its `jti` is remembered as long.',
  },
  'dpop.algorithms': {
    kind: 'list',
    default: ['ES256', 'EdDSA', 'ES384', 'PS256'],
    values: VERIFY_ALGORITHMS,
    doc: 'Allow-list of DPoP proof algorithms (asymmetric only).',
  },
  'events.heartbeat': {
    kind: 'duration',
    default: 5,
    min: 1,
    max: 60,
    doc: 'A comment line is sent on every event stream this often, so verifiers can tell a silent stream from a quiet one.',
  },
  'events.retention': {
    kind: 'duration',
    default: 86_400,
    min: 60,
    max: 2_592_000,
    doc: 'How long the event log keeps events; a verifier further behind gets a snapshot first.',
  },
  'events.max_unsent_bytes': {
    kind: 'integer',
    default: 4_194_304,
    min: 1_048_576,
    max: 268_435_456,
    doc: 'An event stream whose client has not taken this many bytes is dropped (the verifier reconnects and resumes). Bounds the memory one stream can hold.',
  },
  'events.max_streams_per_client': {
    kind: 'integer',
    default: 32,
    min: 1,
    max: 10_000,
    doc: 'Event streams one workload may hold open on one node; more are refused with 429.',
  },
  'events.max_streams_per_token': {
    kind: 'integer',
    default: 4,
    min: 1,
    max: 1000,
    doc: 'Event streams one token may hold open on one node; more are refused with 429.',
  },
  'events.snapshot_page': {
    kind: 'integer',
    default: 5000,
    min: 100,
    max: 100_000,
    doc: 'Revocations per `snapshot.page` event for verifiers that ask for paged snapshots (`?snapshot=paged`, as the SDK does).',
  },
  'tasks.sweep_interval': {
    kind: 'duration',
    default: 1,
    min: 1,
    max: 60,
    doc: 'How often the server closes tasks past their deadline or lease (and revokes their tokens). Each sweep closes every task due when it starts, earliest due first, whether by deadline or lease.',
  },
  'tasks.max_open_per_workload': {
    kind: 'integer',
    default: 1000,
    min: 1,
    max: 1_000_000,
    doc: 'Most tasks one workload may hold open at once. Opening one more is refused (429 `temporarily_unavailable`, reason `open_task_limit`, naming the limit and how many are open) and audited until one closes or ends.',
  },
  'tasks.retention': {
    kind: 'duration',
    default: 604_800,
    min: 3600,
    max: 31_536_000,
    doc: 'Closed tasks are deleted this long after they closed (their history stays in the audit log); a token request naming a deleted task is refused as an unknown task.',
  },
  'limits.body_bytes': {
    kind: 'integer',
    default: 16_384,
    min: 1024,
    max: 1_048_576,
    doc: 'Largest request body accepted (except by `POST /admin/v1/config`, see `limits.config_bytes`, and `POST /v1/usage`, see `usage.body_bytes`).',
  },
  'limits.config_bytes': {
    kind: 'integer',
    default: 4_194_304,
    min: 16_384,
    max: 67_108_864,
    doc: 'Largest config `writ apply` may send (`POST /admin/v1/config`, read only after the operator is authenticated): every document and policy of a config directory in one JSON body. The default takes thousands of workloads; a larger one is refused with 413 naming this setting.',
  },
  'limits.config_documents': {
    kind: 'integer',
    default: 250_000,
    min: 100,
    max: 10_000_000,
    doc: 'Most documents a config directory may hold (workloads, classes, operators and the rest, counted together): a safety limit well above real estates (100,000 workloads is measured in docs/benchmarks.md). More is refused at start and by `writ apply`, naming this setting.',
  },
  'limits.header_bytes': {
    kind: 'integer',
    default: 16_384,
    min: 4096,
    max: 65_536,
    doc: 'Largest total size of request headers.',
  },
  'limits.token_bytes': {
    kind: 'integer',
    default: 8192,
    min: 1024,
    max: 65_536,
    doc: 'Largest JWT accepted anywhere (assertions, tokens to introspect).',
  },
  'limits.json_depth': {
    kind: 'integer',
    default: 16,
    min: 2,
    max: 64,
    doc: 'Deepest nesting accepted in JSON bodies.',
  },
  'limits.client_rate': {
    kind: 'integer',
    default: 200,
    min: 1,
    max: 1_000_000,
    doc: 'Requests per second allowed per authenticated client, one budget across every endpoint (token requests of every grant, introspection, revocation, task opens and heartbeats, usage reports, stream opens, policy bundles, Shared Signals, AuthZEN; only closing a task is never limited); token bucket refill; past it 429 with Retry-After. On PostgreSQL one bucket per client is shared by every node, each node leasing a few requests at a time for at most a second: the cluster admits at most one second of refill more than the bucket (docs/operations.md).',
  },
  'limits.client_burst': {
    kind: 'integer',
    default: 400,
    min: 1,
    max: 1_000_000,
    doc: 'Token bucket size per client.',
  },
  'limits.source_rate': {
    kind: 'integer',
    default: 10,
    min: 1,
    max: 1_000_000,
    doc: 'Refused unauthenticated requests per second allowed per source address (an IPv6 address counts by its /64), kept per node; past the bucket every refused request from it gets 429 with Retry-After, and a legacy client secret from it is not checked at all.',
  },
  'limits.source_burst': {
    kind: 'integer',
    default: 100,
    min: 1,
    max: 1_000_000,
    doc: 'Bucket size of refused unauthenticated requests per source address.',
  },
  'audit.checkpoint_every': {
    kind: 'integer',
    default: 1000,
    min: 1,
    max: 1_000_000,
    doc: 'Sign a checkpoint of the audit chain after this many events.',
  },
  'audit.checkpoint_interval': {
    kind: 'duration',
    default: 60,
    min: 1,
    max: 86_400,
    doc: 'Sign a checkpoint at least this often while events arrive.',
  },
  'audit.refusal_window': {
    kind: 'duration',
    default: 60,
    min: 1,
    max: 3600,
    doc: 'Unauthenticated refusals, and rate-limit refusals of a client, are audited once per kind (source or client, error, reason) per window; the rest of the window as one row with count, first and last times.',
  },
  'admin.session_ttl': {
    kind: 'duration',
    default: 300,
    min: 30,
    max: 3600,
    doc: 'Lifetime of an admin token obtained with an operator key.',
  },
  'console.idle_timeout': {
    kind: 'duration',
    default: 900,
    min: 60,
    max: 86_400,
    doc: 'A console session unused this long is refused (docs/console.md); every request through it starts the wait again.',
  },
  'console.absolute_timeout': {
    kind: 'duration',
    default: 28_800,
    min: 300,
    max: 604_800,
    doc: 'A console session ends this long after sign-in, however busy it is; the person signs in again.',
  },
  'console.oidc.issuer': {
    kind: 'url',
    default: '',
    shown: '(off)',
    env: 'WRIT_CONSOLE_OIDC_ISSUER',
    doc: "OpenID Connect sign-in to the console (docs/console.md): the identity provider's issuer, whose `/.well-known/openid-configuration` is read (https; plain http only to a loopback address, for tests). Empty: OpenID Connect sign-in is off.",
  },
  'console.oidc.client_id': {
    kind: 'string',
    default: '',
    shown: '(none)',
    env: 'WRIT_CONSOLE_OIDC_CLIENT_ID',
    doc: "The console's client id at the identity provider (a confidential client using the authorization code flow with PKCE).",
  },
  'console.oidc.client_secret': {
    kind: 'string',
    default: '',
    shown: '(none)',
    env: 'WRIT_CONSOLE_OIDC_CLIENT_SECRET',
    doc: 'The client secret (sent with `client_secret_basic`). Prefer `console.oidc.client_secret_file`; exactly one of the two is needed. Never logged; the settings digest masks it.',
  },
  'console.oidc.client_secret_file': {
    kind: 'string',
    default: '',
    shown: '(none)',
    env: 'WRIT_CONSOLE_OIDC_CLIENT_SECRET_FILE',
    doc: 'A file holding the client secret (read at start; surrounding white space ignored).',
  },
  'console.oidc.redirect_uri': {
    kind: 'url',
    default: '',
    shown: '<issuer>/console/oidc/callback',
    doc: 'The redirect URI registered at the identity provider; it must end in `/console/oidc/callback`.',
  },
  'console.oidc.scopes': {
    kind: 'strings',
    default: ['openid', 'email'],
    doc: 'Scopes asked for; must include `openid`. `email` lets a person be matched by a verified e-mail address.',
  },
  'usage.body_bytes': {
    kind: 'integer',
    default: 262_144,
    min: 1024,
    max: 4_194_304,
    doc: 'Largest usage report a verifier may send to `POST /v1/usage`.',
  },
  'usage.batch_records': {
    kind: 'integer',
    default: 1000,
    min: 1,
    max: 10_000,
    doc: 'Most records in one usage report.',
  },
  'usage.retention': {
    kind: 'duration',
    default: 2_592_000,
    min: 3600,
    max: 31_536_000,
    doc: 'Usage aggregates are kept this long after a token was last reported used; older reports are refused.',
  },
  'detection.enabled': {
    kind: 'boolean',
    default: true,
    doc: 'Evaluate detection rules on usage, issuance, refusals, tasks and federation replays (`config/detections/`, docs/detection.md).',
  },
  'detection.learning_period': {
    kind: 'duration',
    default: 86_400,
    min: 0,
    max: 2_592_000,
    doc: "Rules that read a workload's baseline only observe until this long after its first signal and `detection.learning_events` signals, both.",
  },
  'detection.learning_events': {
    kind: 'integer',
    default: 1000,
    min: 0,
    max: 10_000_000,
    doc: "Uses and issuances a workload's baseline takes in before the rules that read it act (see `detection.learning_period`).",
  },
  'detection.ipv4_prefix': {
    kind: 'integer',
    default: 24,
    min: 8,
    max: 32,
    doc: 'IPv4 sources are grouped into networks of this prefix length (baselines, the two-networks rule).',
  },
  'detection.ipv6_prefix': {
    kind: 'integer',
    default: 64,
    min: 16,
    max: 128,
    doc: 'IPv6 sources are grouped into networks of this prefix length.',
  },
  'detection.replay_window': {
    kind: 'duration',
    default: 60,
    min: 1,
    max: 3600,
    doc: 'One token used from two networks within this window counts as used from both at once (`token.networks`).',
  },
  'detection.hosts_window': {
    kind: 'duration',
    default: 3600,
    min: 60,
    max: 86_400,
    doc: 'Distinct hosts presenting a workload’s tokens are counted over this window (`baseline.hosts`).',
  },
  'detection.risk_half_life': {
    kind: 'duration',
    default: 3600,
    min: 60,
    max: 2_592_000,
    doc: "A workload's risk halves this often.",
  },
  'detection.risk_low': {
    kind: 'integer',
    default: 10,
    min: 0,
    max: 100,
    doc: 'Risk points a low-severity finding adds.',
  },
  'detection.risk_medium': {
    kind: 'integer',
    default: 30,
    min: 0,
    max: 100,
    doc: 'Risk points a medium-severity finding adds.',
  },
  'detection.risk_high': {
    kind: 'integer',
    default: 50,
    min: 0,
    max: 100,
    doc: 'Risk points a high-severity finding adds.',
  },
  'detection.risk_critical': {
    kind: 'integer',
    default: 80,
    min: 0,
    max: 100,
    doc: 'Risk points a critical finding adds.',
  },
  'detection.responses_per_minute': {
    kind: 'integer',
    default: 60,
    min: 0,
    max: 100_000,
    doc: 'Automatic responses (revocations, quarantines) allowed per minute across every rule; past it responses pause for the rest of the minute and a critical alert says so.',
  },
  'detection.rule_responses_per_minute': {
    kind: 'integer',
    default: 20,
    min: 0,
    max: 100_000,
    doc: 'Automatic responses allowed per minute for one rule (within `detection.responses_per_minute`).',
  },
  'detection.webhook_url': {
    kind: 'string',
    default: '',
    shown: '(none)',
    doc: 'When set, each finding is POSTed here as a JWS signed by the server key (`application/jose`), for chat or paging relays. Its origin must be listed in `detection.webhook_origins` (checked at start), and every address its host resolves to is checked before each delivery as push endpoints’ are (`ssf.push_allow_addresses`, `ssf.push_timeout`).',
  },
  'detection.webhook_origins': {
    kind: 'origins',
    default: [],
    shown: '(none)',
    doc: 'Origins (`https://host[:port]`) `detection.webhook_url` may point to: an allow-list, empty by default.',
  },
  'leaks.response': {
    kind: 'enum',
    default: 'revoke_token',
    values: ['revoke_token', 'revoke_task', 'quarantine'],
    doc: 'What a confirmed leak of a live Writ token does besides revoking that token: nothing more (`revoke_token`), also revoke its task (`revoke_task`, tokens without a task: the token alone), or quarantine its workload (`quarantine`: refused new tokens, every token revoked). Operator tokens are only ever revoked themselves (docs/leaks.md).',
  },
  'leaks.severity': {
    kind: 'enum',
    default: 'high',
    values: ['low', 'medium', 'high', 'critical'],
    doc: "Severity of the `leak` finding a confirmed leak of a live token records: the points it adds to the workload's risk (`detection.risk_*`).",
  },
  'leaks.max_tokens': {
    kind: 'integer',
    default: 100,
    min: 1,
    max: 10_000,
    doc: 'Most tokens one leak report may hold (`POST /v1/leaks`, `POST /v1/leaks/github`, `POST /admin/v1/leaks`); a longer list is refused whole.',
  },
  'leaks.body_bytes': {
    kind: 'integer',
    default: 262_144,
    min: 1024,
    max: 4_194_304,
    doc: 'Largest leak report body accepted by the leak endpoints; a larger one is refused with 413 naming this setting.',
  },
  'leaks.github_keys_url': {
    kind: 'string',
    default: '',
    shown: '(none: the endpoint is off)',
    doc: "Where the public keys of GitHub's secret scanning partner program are fetched from (`https://api.github.com/meta/public_keys/secret_scanning`); the only URL `POST /v1/leaks/github` ever fetches. https only (plain http only to a loopback address, for tests); no redirects; 64 KiB, 5 s; refetched hourly, and on an unknown key id at most once a minute. Empty: the endpoint refuses every report.",
  },
  'leaks.replay_window': {
    kind: 'duration',
    default: 3600,
    min: 60,
    max: 604_800,
    doc: 'A partner report whose body (SHA-256) was already taken within this window is refused as a replay, and changes nothing.',
  },
  'scim.token_sha256': {
    kind: 'string',
    default: '',
    shown: '(none: SCIM is off)',
    env: 'WRIT_SCIM_TOKEN_SHA256',
    doc: 'Lowercase hex SHA-256 of the bearer secret an identity provider sends to `/scim/v2` (`writ scim secret` makes one). Only the digest is kept; a presented secret is hashed and compared in constant time. Empty: every SCIM request is refused.',
  },
  'vendor_proxy.workload': {
    kind: 'string',
    default: '',
    shown: '(none: not served)',
    doc: "Serve the vendor-key proxy inside `writ serve` (docs/vendor-proxy.md): the routes of the config directory's `vendors/*.yaml` at `<issuer>/vendors/NAME/...` on the server's own listener, checked against the server's own keys, revocations and registry, as this registered workload. It must `serve` each route's audience, and each vendor key must list it among its proxies. Empty: `writ serve` serves no vendor routes (run `writ proxy`).",
  },
  'vendor_proxy.policy': {
    kind: 'boolean',
    default: false,
    doc: 'With `vendor_proxy.workload`: also decide each proxied request with the Cedar policies in force (the `Api` is the route audience; GET, HEAD, OPTIONS are `read`, DELETE `delete`, anything else `write`), as `writ proxy --policy` does with the signed bundle.',
  },
  'governance.orphan_quarantine_after': {
    kind: 'duration',
    default: 0,
    min: 0,
    max: 31_536_000,
    shown: '0 (off)',
    doc: 'Opt-in: quarantine a workload this long after its owner was deprovisioned (a person made inactive or deleted, or a team whose last active member left). 0: orphaned workloads are only listed (`writ workloads orphaned`).',
  },
  'ssf.max_queued': {
    kind: 'integer',
    default: 10_000,
    min: 10,
    max: 1_000_000,
    doc: 'Security Event Tokens held per Shared Signals stream awaiting delivery; past it the oldest are dropped (counted and audited).',
  },
  'ssf.max_streams': {
    kind: 'integer',
    default: 100,
    min: 1,
    max: 10_000,
    doc: 'Most Shared Signals streams the transmitter keeps, operators’ and receivers’ together.',
  },
  'ssf.max_streams_per_receiver': {
    kind: 'integer',
    default: 5,
    min: 1,
    max: 10_000,
    doc: 'Most Shared Signals streams one receiver workload may hold (streams operators create are not counted).',
  },
  'ssf.operator_reserved_streams': {
    kind: 'integer',
    default: 10,
    min: 0,
    max: 10_000,
    doc: 'Of `ssf.max_streams`, how many only operators may create: receiver workloads together hold at most `ssf.max_streams` minus this, so receivers cannot lock operators out.',
  },
  'ssf.push_origins': {
    kind: 'origins',
    default: [],
    shown: '(none)',
    doc: 'Origins (`https://siem.example.com`, with the port when it is not the default) a receiver workload may name in a push stream’s `endpoint_url`. Empty: only operators create push streams. The address checks of `ssf.push_allow_addresses` apply whoever created the stream.',
  },
  'ssf.push_allow_addresses': {
    kind: 'addresses',
    default: [],
    shown: '(none)',
    doc: 'Addresses or CIDRs (`10.20.0.0/16`, `::1`) a push endpoint may resolve to although they are not public: loopback, private (RFC 1918, CGNAT, unique local), link-local, multicast, reserved. Everything else not public is refused, checked again before every push; plain http only to these.',
  },
  'ssf.push_timeout': {
    kind: 'duration',
    default: 10,
    min: 1,
    max: 120,
    doc: 'How long resolving a push receiver’s host, and then the push itself (RFC 8935: connecting, sending, reading the answer), may each take before the push counts as failed and is retried.',
  },
  'ssf.push_retry_max': {
    kind: 'duration',
    default: 300,
    min: 1,
    max: 86_400,
    doc: 'Longest wait between retries of a failed push; the wait doubles from 1s up to this.',
  },
  'ssf.poll_wait': {
    kind: 'duration',
    default: 15,
    min: 1,
    max: 120,
    doc: 'Longest a poll request (RFC 8936) without `returnImmediately` waits for a SET before answering empty.',
  },
  'tls.cert_file': {
    kind: 'string',
    default: '',
    shown: '(none)',
    env: 'WRIT_TLS_CERT_FILE',
    doc: 'PEM certificate chain of the server. With `tls.key_file` Writ serves HTTPS and requests (but does not require) client certificates for mTLS client authentication (RFC 8705); without, plain HTTP.',
  },
  'tls.key_file': {
    kind: 'string',
    default: '',
    shown: '(none)',
    env: 'WRIT_TLS_KEY_FILE',
    doc: 'PEM private key of the server certificate.',
  },
  'tls.client_ca_files': {
    kind: 'strings',
    default: [],
    shown: '(none)',
    doc: 'PEM files of the CAs trusted for `tls_client_auth` of workloads registered by subject DN or SAN. A certificate must chain to one of them; nothing else is trusted.',
  },
  'tls.spiffe_bundles': {
    kind: 'strings',
    default: [],
    shown: '(none)',
    doc: "X.509 trust bundles per SPIFFE trust domain, as `<trust-domain>=<PEM file>`. An X.509-SVID authenticates a workload registered with `tls_client_auth: {x509_svid: true}` only when it chains to the bundle of that workload's own trust domain.",
  },
  'tls.forwarded_cert_header': {
    kind: 'string',
    default: '',
    shown: '(none)',
    doc: 'Header in which a TLS-terminating proxy forwards the client certificate (URL-encoded PEM as nginx `$ssl_client_escaped_cert`, base64 DER, or Envoy `x-forwarded-client-cert` with `Cert=`). Honoured only from `tls.trusted_proxies`; from any other address it is ignored and audited.',
  },
  'tls.trusted_proxies': {
    kind: 'strings',
    default: [],
    shown: '(none)',
    doc: 'Addresses or CIDRs (`10.0.0.0/8`, `::1`) of the proxies whose forwarded-certificate header is believed.',
  },
  'log.level': {
    kind: 'enum',
    default: 'info',
    values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    env: 'WRIT_LOG_LEVEL',
    doc: 'Log level of the structured (JSON) log.',
  },
} as const satisfies Record<string, Setting>;

export interface Settings {
  /**
   * `settingsFileDigest` of the settings file these settings were read from: `writ apply` compares
   * the config directory's settings.yaml with it, and speaks of a restart only when they differ.
   */
  fileDigest: string;
  issuer: string;
  listen: { host: string; port: number };
  /** `sqlite` or a PostgreSQL URL (may hold a password: never log it, see `describeStore`). */
  store: string;
  cluster: { maxClockSkew: number };
  signing: { algorithm: 'ES256' | 'EdDSA' };
  tokens: { maxLifetime: number; exchangeMaxDepth: number };
  clientAssertion: { maxLifetime: number; clockSkew: number; algorithms: VerifyAlgorithm[] };
  tasks: { sweepInterval: number; maxOpenPerWorkload: number; retention: number };
  events: {
    heartbeat: number;
    retention: number;
    maxUnsentBytes: number;
    maxStreamsPerClient: number;
    maxStreamsPerToken: number;
    snapshotPage: number;
  };
  dpop: { requireNonce: boolean; nonceLifetime: number; iatWindow: number; algorithms: VerifyAlgorithm[] };
  limits: {
    bodyBytes: number;
    /** `POST /admin/v1/config` only: a whole config directory in one body. */
    configBytes: number;
    /** Most documents of a config directory, counted together. */
    configDocuments: number;
    headerBytes: number;
    tokenBytes: number;
    jsonDepth: number;
    clientRate: number;
    clientBurst: number;
    sourceRate: number;
    sourceBurst: number;
  };
  audit: { checkpointEvery: number; checkpointInterval: number; refusalWindow: number };
  admin: { sessionTtl: number };
  console: { idleTimeout: number; absoluteTimeout: number; oidc: ConsoleOidcSettings | undefined };
  usage: { bodyBytes: number; batchRecords: number; retention: number };
  detection: {
    enabled: boolean;
    learningPeriod: number;
    learningEvents: number;
    ipv4Prefix: number;
    ipv6Prefix: number;
    replayWindow: number;
    hostsWindow: number;
    riskHalfLife: number;
    riskPoints: { low: number; medium: number; high: number; critical: number };
    responsesPerMinute: number;
    ruleResponsesPerMinute: number;
    webhookUrl: string;
    webhookOrigins: string[];
  };
  scim: {
    /** '' when SCIM is off; else 64 lowercase hex digits. */
    tokenSha256: string;
  };
  governance: { orphanQuarantineAfter: number };
  /** The vendor-key proxy inside `writ serve`: off while `workload` is ''. */
  vendorProxy: { workload: string; policy: boolean };
  leaks: {
    response: 'revoke_token' | 'revoke_task' | 'quarantine';
    severity: 'low' | 'medium' | 'high' | 'critical';
    maxTokens: number;
    bodyBytes: number;
    /** '' when the partner endpoint is off; else checked by `checkGithubKeysUrl`. */
    githubKeysUrl: string;
    replayWindow: number;
  };
  ssf: {
    maxQueued: number;
    maxStreams: number;
    maxStreamsPerReceiver: number;
    operatorReservedStreams: number;
    /** Normalised origins (`URL.origin`). */
    pushOrigins: string[];
    /** Addresses or CIDRs, each valid (`parseRange`). */
    pushAllowAddresses: string[];
    pushTimeout: number;
    pushRetryMax: number;
    pollWait: number;
  };
  tls: {
    certFile: string;
    keyFile: string;
    clientCaFiles: string[];
    spiffeBundles: string[];
    forwardedCertHeader: string;
    trustedProxies: string[];
  };
  log: { level: string };
}

/** OpenID Connect sign-in to the console (`console.oidc.*`); undefined in `Settings` when it is off. */
export interface ConsoleOidcSettings {
  issuer: string;
  clientId: string;
  /** Exactly one of the two is set; the file is read at start. */
  clientSecret: string;
  clientSecretFile: string;
  redirectUri: string;
  scopes: string[];
}

type Path = keyof typeof SETTINGS_REFERENCE;

/**
 * Resolves settings: defaults, then `settings.yaml` values, then environment variables, then overrides
 * (CLI flags). Every value is validated; errors name the file and the field.
 */
export function resolveSettings(
  file: { name: string; values: Record<string, unknown> } | undefined,
  env: NodeJS.ProcessEnv,
  overrides: Partial<Record<Path, unknown>> = {},
): Settings {
  const flat = file ? flatten(file.values) : {};
  const known = new Set(Object.keys(SETTINGS_REFERENCE));
  for (const key of Object.keys(flat)) {
    if (!known.has(key))
      throw new ConfigError(file!.name, key, 'unknown setting (see `writ config reference`)');
  }
  /** The raw value a setting takes and where it comes from: command line, environment, then file. */
  const given = (path: Path): { raw: unknown; where: string } | undefined => {
    const s: Setting = SETTINGS_REFERENCE[path];
    if (overrides[path] !== undefined) return { raw: overrides[path], where: 'command line' };
    if (s.env && env[s.env] !== undefined && env[s.env] !== '')
      return { raw: env[s.env], where: `environment ${s.env}` };
    if (flat[path] !== undefined) return { raw: flat[path], where: file!.name };
    return undefined;
  };
  const value = (path: Path): unknown => {
    const g = given(path);
    return g ? check(path, SETTINGS_REFERENCE[path], g.raw, g.where) : SETTINGS_REFERENCE[path].default;
  };
  /** Where a setting's value came from (for errors about two settings together). */
  const where = (path: Path): string => given(path)?.where ?? 'defaults';
  const webhookUrl = value('detection.webhook_url') as string;
  const webhookOrigins = [...(value('detection.webhook_origins') as string[])];
  if (webhookUrl !== '') checkWebhookUrl(webhookUrl, webhookOrigins, where('detection.webhook_url'));
  const githubKeysUrl = value('leaks.github_keys_url') as string;
  const scimTokenSha256 = value('scim.token_sha256') as string;
  if (scimTokenSha256 !== '' && !/^[0-9a-f]{64}$/.test(scimTokenSha256))
    throw new ConfigError(
      where('scim.token_sha256'),
      'scim.token_sha256',
      'must be the lowercase hex SHA-256 of the secret (64 characters; `writ scim secret` prints one), never the secret itself',
    );
  if (githubKeysUrl !== '') checkGithubKeysUrl(githubKeysUrl, where('leaks.github_keys_url'));
  const host = value('listen.host') as string;
  const port = value('listen.port') as number;
  const tlsCert = value('tls.cert_file') as string;
  const scheme = tlsCert ? 'https' : 'http';
  const issuer = (
    (value('issuer') as string) || `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`
  ).replace(/\/+$/, '');
  return {
    fileDigest: settingsFileDigest(file?.values),
    issuer,
    listen: { host, port },
    store: value('store') as string,
    cluster: { maxClockSkew: value('cluster.max_clock_skew') as number },
    signing: { algorithm: value('signing.algorithm') as 'ES256' | 'EdDSA' },
    tokens: {
      maxLifetime: value('tokens.max_lifetime') as number,
      exchangeMaxDepth: value('tokens.exchange_max_depth') as number,
    },
    clientAssertion: {
      maxLifetime: value('client_assertion.max_lifetime') as number,
      clockSkew: value('client_assertion.clock_skew') as number,
      algorithms: [...(value('client_assertion.algorithms') as VerifyAlgorithm[])],
    },
    tasks: {
      sweepInterval: value('tasks.sweep_interval') as number,
      maxOpenPerWorkload: value('tasks.max_open_per_workload') as number,
      retention: value('tasks.retention') as number,
    },
    events: {
      heartbeat: value('events.heartbeat') as number,
      retention: value('events.retention') as number,
      maxUnsentBytes: value('events.max_unsent_bytes') as number,
      maxStreamsPerClient: value('events.max_streams_per_client') as number,
      maxStreamsPerToken: value('events.max_streams_per_token') as number,
      snapshotPage: value('events.snapshot_page') as number,
    },
    dpop: {
      requireNonce: value('dpop.require_nonce') as boolean,
      nonceLifetime: value('dpop.nonce_lifetime') as number,
      iatWindow: value('dpop.iat_window') as number,
      algorithms: [...(value('dpop.algorithms') as VerifyAlgorithm[])],
    },
    limits: {
      bodyBytes: value('limits.body_bytes') as number,
      configBytes: value('limits.config_bytes') as number,
      configDocuments: value('limits.config_documents') as number,
      headerBytes: value('limits.header_bytes') as number,
      tokenBytes: value('limits.token_bytes') as number,
      jsonDepth: value('limits.json_depth') as number,
      clientRate: value('limits.client_rate') as number,
      clientBurst: value('limits.client_burst') as number,
      sourceRate: value('limits.source_rate') as number,
      sourceBurst: value('limits.source_burst') as number,
    },
    audit: {
      checkpointEvery: value('audit.checkpoint_every') as number,
      checkpointInterval: value('audit.checkpoint_interval') as number,
      refusalWindow: value('audit.refusal_window') as number,
    },
    admin: { sessionTtl: value('admin.session_ttl') as number },
    console: {
      idleTimeout: value('console.idle_timeout') as number,
      absoluteTimeout: value('console.absolute_timeout') as number,
      oidc: consoleOidcSettings(value, where, issuer),
    },
    usage: {
      bodyBytes: value('usage.body_bytes') as number,
      batchRecords: value('usage.batch_records') as number,
      retention: value('usage.retention') as number,
    },
    detection: {
      enabled: value('detection.enabled') as boolean,
      learningPeriod: value('detection.learning_period') as number,
      learningEvents: value('detection.learning_events') as number,
      ipv4Prefix: value('detection.ipv4_prefix') as number,
      ipv6Prefix: value('detection.ipv6_prefix') as number,
      replayWindow: value('detection.replay_window') as number,
      hostsWindow: value('detection.hosts_window') as number,
      riskHalfLife: value('detection.risk_half_life') as number,
      riskPoints: {
        low: value('detection.risk_low') as number,
        medium: value('detection.risk_medium') as number,
        high: value('detection.risk_high') as number,
        critical: value('detection.risk_critical') as number,
      },
      responsesPerMinute: value('detection.responses_per_minute') as number,
      ruleResponsesPerMinute: value('detection.rule_responses_per_minute') as number,
      webhookUrl,
      webhookOrigins,
    },
    scim: { tokenSha256: scimTokenSha256 },
    governance: { orphanQuarantineAfter: value('governance.orphan_quarantine_after') as number },
    vendorProxy: {
      workload: value('vendor_proxy.workload') as string,
      policy: value('vendor_proxy.policy') as boolean,
    },
    leaks: {
      response: value('leaks.response') as Settings['leaks']['response'],
      severity: value('leaks.severity') as Settings['leaks']['severity'],
      maxTokens: value('leaks.max_tokens') as number,
      bodyBytes: value('leaks.body_bytes') as number,
      githubKeysUrl,
      replayWindow: value('leaks.replay_window') as number,
    },
    ssf: {
      maxQueued: value('ssf.max_queued') as number,
      maxStreams: value('ssf.max_streams') as number,
      maxStreamsPerReceiver: value('ssf.max_streams_per_receiver') as number,
      operatorReservedStreams: value('ssf.operator_reserved_streams') as number,
      pushOrigins: [...(value('ssf.push_origins') as string[])],
      pushAllowAddresses: [...(value('ssf.push_allow_addresses') as string[])],
      pushTimeout: value('ssf.push_timeout') as number,
      pushRetryMax: value('ssf.push_retry_max') as number,
      pollWait: value('ssf.poll_wait') as number,
    },
    tls: {
      certFile: tlsCert,
      keyFile: value('tls.key_file') as string,
      clientCaFiles: [...(value('tls.client_ca_files') as string[])],
      spiffeBundles: [...(value('tls.spiffe_bundles') as string[])],
      forwardedCertHeader: value('tls.forwarded_cert_header') as string,
      trustedProxies: [...(value('tls.trusted_proxies') as string[])],
    },
    log: { level: value('log.level') as string },
  };
}

/**
 * `detection.webhook_url` against `detection.webhook_origins`: an http(s) URL without credentials or
 * fragment, whose origin is listed. (Its addresses are judged before every delivery, as push endpoints'
 * are.) Reasons name the origin, never the URL: a chat relay's path is often its secret.
 */
function checkWebhookUrl(raw: string, origins: readonly string[], where: string): void {
  const fail = (reason: string): never => {
    throw new ConfigError(where, 'detection.webhook_url', reason);
  };
  const u = URL.canParse(raw) ? new URL(raw) : fail('must be an absolute http or https URL');
  if (u.protocol !== 'https:' && u.protocol !== 'http:') fail('must be an http or https URL');
  if (u.username || u.password || u.hash) fail('must have no credentials or fragment');
  if (!origins.includes(u.origin))
    fail(
      `its origin ${u.origin} is not listed in detection.webhook_origins${origins.length === 0 ? ' (which lists none)' : ''}: findings are sent only to an origin listed there`,
    );
}

/**
 * `console.oidc.*`: off without an issuer; with one, a client id, exactly one secret source, scopes with
 * `openid`, a redirect URI ending in the callback path. The issuer is https, or http to a loopback address
 * (the IdP is fetched from: settings name it, a request never does).
 */
function consoleOidcSettings(
  value: (path: Path) => unknown,
  where: (path: Path) => string,
  issuer: string,
): ConsoleOidcSettings | undefined {
  const oidcIssuer = value('console.oidc.issuer') as string;
  if (oidcIssuer === '') return undefined;
  const fail = (path: Path, reason: string): never => {
    throw new ConfigError(where(path), path, reason);
  };
  if (!httpsOrLoopback(oidcIssuer))
    fail(
      'console.oidc.issuer',
      'must be an https URL (plain http only to a loopback address such as 127.0.0.1, for tests)',
    );
  const clientId = value('console.oidc.client_id') as string;
  if (clientId === '') fail('console.oidc.client_id', 'is needed with console.oidc.issuer');
  const clientSecret = value('console.oidc.client_secret') as string;
  const clientSecretFile = value('console.oidc.client_secret_file') as string;
  if ((clientSecret === '') === (clientSecretFile === ''))
    fail(
      'console.oidc.client_secret',
      'exactly one of console.oidc.client_secret and console.oidc.client_secret_file is needed with console.oidc.issuer',
    );
  const redirectUri = (value('console.oidc.redirect_uri') as string) || `${issuer}/console/oidc/callback`;
  if (!new URL(redirectUri).pathname.endsWith('/console/oidc/callback'))
    fail(
      'console.oidc.redirect_uri',
      'must end in /console/oidc/callback (the route that finishes the sign-in)',
    );
  const scopes = [...(value('console.oidc.scopes') as string[])];
  if (!scopes.includes('openid')) fail('console.oidc.scopes', 'must include openid');
  return { issuer: oidcIssuer, clientId, clientSecret, clientSecretFile, redirectUri, scopes };
}

const httpsOrLoopback = (raw: string): boolean => {
  const u = new URL(raw);
  if (u.username || u.password) return false;
  return (
    u.protocol === 'https:' ||
    (u.protocol === 'http:' && /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\])$/.test(u.hostname))
  );
};

/**
 * `leaks.github_keys_url`: an https URL without credentials, query or fragment; plain http only to a
 * loopback address (a test's key server), never to a name, which could resolve anywhere.
 */
function checkGithubKeysUrl(raw: string, where: string): void {
  const fail = (reason: string): never => {
    throw new ConfigError(where, 'leaks.github_keys_url', reason);
  };
  const u = URL.canParse(raw) ? new URL(raw) : fail('must be an absolute https URL');
  if (u.username || u.password || u.hash) fail('must have no credentials or fragment');
  if (u.protocol === 'https:') return;
  const loopback = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\])$/.test(u.hostname);
  if (u.protocol !== 'http:' || !loopback)
    fail('must be an https URL (plain http only to a loopback address such as 127.0.0.1, for tests)');
}

/**
 * A digest of a settings file's values (base64url SHA-256 over the settings sorted by path), so that
 * formatting, comments and key order make no difference, and a missing file equals an empty one.
 * The store URL counts with its password masked (`maskStoreUrl`): `writ apply` sends the digest of the
 * file it has and hears whether it is the server's, so an operator who knows the rest of the server's
 * file could otherwise try passwords against the answer. A change of the password alone goes unseen.
 * `console.oidc.client_secret` is masked for the same reason.
 */
export function settingsFileDigest(values: Record<string, unknown> | undefined): string {
  const flat = flatten(values ?? {});
  if (typeof flat['store'] === 'string' && flat['store'] !== 'sqlite')
    flat['store'] = maskStoreUrl(flat['store']);
  if (flat['console.oidc.client_secret'] !== undefined) flat['console.oidc.client_secret'] = '***';
  const sorted = Object.entries(flat).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(JSON.stringify(sorted)).digest('base64url');
}

/**
 * A PostgreSQL URL with its password and any secret-looking parameter masked, for logs, messages and
 * the settings digest.
 *
 * @example maskStoreUrl('postgres://writ:s3cret@db/writ') === 'postgres://writ:***@db/writ'
 */
export function maskStoreUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'postgres://(unparseable URL)';
  }
  if (u.password) u.password = '***';
  for (const k of [...u.searchParams.keys()])
    if (/pass|secret|key|token/i.test(k)) u.searchParams.set(k, '***');
  return u.toString();
}

function flatten(values: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v))
      Object.assign(out, flatten(v as Record<string, unknown>, path));
    else out[path] = v;
  }
  return out;
}

function check(path: string, s: Setting, raw: unknown, where: string): unknown {
  const fail = (reason: string): never => {
    throw new ConfigError(where, path, reason);
  };
  switch (s.kind) {
    case 'string':
      if (typeof raw !== 'string' || raw === '') fail('must be a non-empty string');
      return raw;
    case 'url': {
      if (typeof raw !== 'string') return fail('must be a URL');
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        return fail('must be an absolute URL');
      }
      if (u.protocol !== 'https:' && u.protocol !== 'http:') fail('must be an http or https URL');
      if (u.search || u.hash) fail('must have no query or fragment (RFC 8414 §2)');
      return raw;
    }
    case 'integer': {
      const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isInteger(n)) return fail('must be an integer');
      if (s.min !== undefined && n < s.min) fail(`must be at least ${s.min}`);
      if (s.max !== undefined && n > s.max) fail(`must be at most ${s.max}`);
      return n;
    }
    case 'duration': {
      const n = parseDuration(raw);
      if (n === undefined) return fail('must be a duration such as 30s, 15m or 1h');
      if (s.min !== undefined && n < s.min) fail(`must be at least ${formatDuration(s.min)}`);
      if (s.max !== undefined && n > s.max) fail(`must be at most ${formatDuration(s.max)}`);
      return n;
    }
    case 'store': {
      // The value may carry a password: reasons never repeat it.
      if (raw === 'sqlite') return raw;
      if (typeof raw !== 'string' || !/^postgres(ql)?:\/\//i.test(raw))
        return fail('must be `sqlite` or a postgres:// (postgresql://) URL');
      try {
        new URL(raw);
      } catch {
        fail('is not a valid URL');
      }
      return raw;
    }
    case 'boolean':
      if (raw === true || raw === 'true') return true;
      if (raw === false || raw === 'false') return false;
      return fail('must be true or false');
    case 'enum':
      if (typeof raw !== 'string' || !s.values!.includes(raw)) fail(`must be one of ${s.values!.join(', ')}`);
      return raw;
    case 'list': {
      const list = typeof raw === 'string' ? raw.split(',').map((x) => x.trim()) : raw;
      if (!Array.isArray(list) || list.length === 0) return fail('must be a non-empty list');
      for (const item of list)
        if (!s.values!.includes(item)) fail(`${JSON.stringify(item)} is not one of ${s.values!.join(', ')}`);
      return list;
    }
    case 'strings':
      return stringList(raw) ?? fail('must be a list of non-empty strings');
    case 'origins': {
      const list = stringList(raw) ?? fail('must be a list of origins');
      return list.map((o) => {
        let u: URL | undefined;
        try {
          u = new URL(o);
        } catch {
          // below
        }
        if (
          !u ||
          (u.protocol !== 'https:' && u.protocol !== 'http:') ||
          u.username ||
          u.password ||
          u.pathname !== '/' ||
          u.search ||
          u.hash
        )
          return fail(`${JSON.stringify(o)} is not an origin such as https://siem.example.com`);
        return u.origin;
      });
    }
    case 'addresses': {
      const list = stringList(raw) ?? fail('must be a list of addresses or CIDRs');
      for (const a of list)
        if (!parseRange(a)) fail(`${JSON.stringify(a)} is not an address or CIDR such as 10.0.0.0/8 or ::1`);
      return list;
    }
  }
}

/** A list from YAML, or comma-separated from the environment; undefined unless every item is a non-empty string. */
function stringList(raw: unknown): string[] | undefined {
  const list: unknown = typeof raw === 'string' ? raw.split(',').map((x) => x.trim()) : raw;
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string' || x === '' || x.length > 4096))
    return undefined;
  return list as string[];
}

/** The configuration reference as a Markdown table (generated from `SETTINGS_REFERENCE`). */
export function settingsReferenceMarkdown(): string {
  const rows = Object.entries(SETTINGS_REFERENCE).map(([path, s]: [string, Setting]) => {
    const def =
      s.shown !== undefined
        ? s.shown
        : s.kind === 'duration'
          ? formatDuration(s.default as number)
          : Array.isArray(s.default)
            ? s.default.join(', ')
            : s.default === ''
              ? '(derived)'
              : String(s.default);
    const type = s.kind === 'enum' ? s.values!.join(' \\| ') : s.kind === 'store' ? 'sqlite \\| url' : s.kind;
    return `| \`${path}\` | ${type} | \`${def}\` | ${s.env ? `\`${s.env}\`` : ''} | ${s.doc} |`;
  });
  return ['| setting | type | default | env | what it does |', '|---|---|---|---|---|', ...rows].join('\n');
}
