/**
 * OAuth error codes Writ answers with (RFC 6749 §5.2, RFC 8707 §2, RFC 6750 §3.1, RFC 8693 §2.2.2,
 * RFC 9449 §12.2),
 * with the HTTP status each one is sent with.
 */
export const OAuthErrorStatus = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  invalid_target: 400,
  unsupported_token_type: 400,
  invalid_dpop_proof: 400,
  use_dpop_nonce: 400,
  access_denied: 403,
  invalid_token: 401,
  insufficient_scope: 403,
  not_found: 404,
  slow_down: 429,
  server_error: 500,
  temporarily_unavailable: 503,
} as const;

export type OAuthErrorCode = keyof typeof OAuthErrorStatus;

/** The body of every error Writ returns: RFC 6749 §5.2. */
export interface OAuthErrorBody {
  error: OAuthErrorCode;
  error_description?: string;
}

export function isOAuthErrorCode(value: unknown): value is OAuthErrorCode {
  return typeof value === 'string' && Object.hasOwn(OAuthErrorStatus, value);
}

/**
 * Why Writ refused something: the check that failed, one closed set for the server and the SDK. The
 * server's audit events carry it as `data.reason` and `writ_refusals_total` as its `reason` label; SDK
 * errors carry it as `err.reason`, usage reports as `reason`; docs/errors.md lists every one. A reason
 * names a check, never a value the caller sent, so it is safe in logs and bounded as a metric label.
 */
export const REFUSAL_REASONS = {
  // A request as HTTP and its body
  body_too_large:
    'the request body is larger than `limits.body_bytes` (`limits.config_bytes` for `writ apply`, `usage.body_bytes` for usage reports)',
  media_type: 'the request body has a content type the endpoint does not take',
  malformed_body: 'the request body cannot be read or does not have the documented shape',
  unknown_endpoint: 'no endpoint answers this method and path',
  too_many_parameters: 'the form has more parameters than allowed',
  parameter_repeated: 'a parameter that may be sent once was repeated (RFC 6749 §3.2)',
  parameter_too_long: 'a parameter is longer than allowed',
  control_characters:
    'a text field (named in the description) holds control characters, line separators or bidirectional formatting characters',
  missing_parameter: 'a required parameter or field is missing',
  query_parameter: 'a query parameter does not have the documented form',
  unsupported_grant_type: 'the grant type is not supported here',
  not_found: 'the object named (workload, task, class, stream, token, API attributes) does not exist',
  malformed_request: 'the HTTP request is malformed',
  headers_too_large: 'the request headers are larger than `limits.header_bytes`',
  malformed_http: 'the connection sent something that is not HTTP/1.1',
  no_token: 'the request carries no access token (no `Authorization: DPoP` or `Bearer`)',
  missing: 'an admin endpoint was called without an admin token',

  // Client authentication at the token, introspection, revocation and task endpoints
  no_client_auth: 'the request carries no client authentication',
  multiple_client_auth:
    'the request carries more than one client authentication (or one beside a federation token)',
  unknown_client:
    'the `client_id` is no registered workload (answered as a wrong key or secret is, so the answer does not tell)',
  unknown_operator: 'the assertion names no configured operator',
  client_id_mismatch: 'the `client_id` sent is not the workload the credential proves',
  assertion_type: '`client_assertion_type` is not `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`',
  malformed_basic: 'the `Authorization: Basic` header cannot be decoded',
  bad_secret: 'the client secret does not match',
  legacy_exception_missing:
    "a client secret was used but no exception in `exceptions/` covers a legacy client secret for the workload's classes",
  exception_expired:
    'the exception that covers the credential (named in the description) has passed its expiry; `writ exceptions renew` extends it',
  exception_retired:
    'the exception that covers the credential (named in the description) was retired by an operator',
  breakglass_self_approval:
    'an operator tried to approve their own break-glass request: another operator must (two-person rule)',
  breakglass_state:
    'the break-glass request is no longer in the state the action needs (already approved, ended or closed)',
  breakglass_not_needed:
    'the workload may already use that class: break-glass is for a class it may not normally use',
  breakglass_task:
    "a token under a break-glass grant was asked for in another task: it is issued in the grant's task only",
  replay: 'the client assertion `jti` was already used',
  workload_disabled: 'the workload is disabled',
  workload_quarantined: 'the workload is quarantined',
  not_admin: 'the token is not an admin token',
  admin_not_bound: 'the admin token is not DPoP-bound (`cnf.jkt`): admin tokens are used only with a proof',
  admin_key_unregistered:
    'the operator key the admin token is bound to is no longer registered for that operator',
  operator_person_inactive:
    'the operator belongs to a person who is not active (deprovisioned, suspended, or known to neither people/ nor SCIM)',
  scim_disabled: 'SCIM provisioning is off: no `scim.token_sha256` is configured',
  scim_credential:
    'the SCIM request carries no bearer credential, or not the one configured (`scim.token_sha256`)',
  scim_invalid_syntax:
    'the SCIM request body is not JSON, or does not follow the resource schema (an unknown attribute, a wrong `schemas`)',
  scim_invalid_filter:
    'the SCIM `filter` is not `<attribute> eq "<value>"` on an attribute that can be filtered on',
  scim_invalid_value: 'a SCIM attribute has a value out of its type or bounds, or a required one is missing',
  scim_invalid_path: 'a SCIM PATCH path is not one Writ answers, or names no attribute',
  scim_uniqueness:
    'another SCIM resource (or a person or team of people/) already has that `userName` or group name',
  scim_not_found: 'no SCIM resource has that id',
  scim_precondition: '`If-Match` names a version the SCIM resource no longer has',
  scim_too_large: 'the SCIM request body is larger than allowed',
  admin_dpop_key:
    'the DPoP proof at `POST /admin/v1/token` is not signed by the operator key that signed the assertion',

  // JWTs: client assertions, access tokens, policy bundles (`iss`, `aud`... name the claim refused)
  too_large: 'the token (or bundle) is longer than allowed',
  malformed: 'the token is not a well-formed compact JWS, or its header or claims cannot be read',
  typ: 'the `typ` header is not the one this kind of token must carry',
  alg_not_allowed: 'the signing algorithm is not accepted',
  crit: 'the header has a `crit` extension (none is supported)',
  no_key: 'no trusted key matches the `kid`',
  bad_signature: 'the signature does not verify',
  iss: '`iss` is missing or not the trusted issuer',
  iss_sub: 'the assertion `iss` and `sub` are not both the `client_id`',
  aud: '`aud` is not this audience; for a client assertion: the issuer, the token endpoint URL or the URL it is sent to',
  exp: '`exp` is missing or not a number',
  exp_too_far: 'the assertion `exp` is further ahead than its maximum lifetime',
  expired: 'the token (or policy bundle) has expired (`exp`, with the allowed leeway)',
  nbf: 'the token is not valid yet (`nbf`)',
  iat: '`iat` is missing or not a number',
  iat_future: '`iat` is in the future',
  iat_old: 'the assertion was issued longer ago than its maximum lifetime',
  jti: '`jti` is missing or longer than 256 characters',
  claim_sub: 'the access token has no string `sub`',
  claim_aud: 'the access token has no string `aud`',
  claim_client_id: 'the access token has no string `client_id`',
  claim_scope: 'the access token has no string `scope`',
  claim_jti: 'the access token has no string `jti`',
  claim_cls: 'the access token has no string `cls`',
  claim_iat: 'the access token has no numeric `iat`',
  claim_nbf: 'the access token has no numeric `nbf`',
  claim_exp: 'the access token has no numeric `exp`',
  claim_cnf: 'the access token `cnf` is not an object',
  claim_ajti: 'the access token `ajti` is not a list of token ids',
  invalid: 'the token cannot be verified',
  inactive: 'introspection says the token is not active',
  revoked: 'the token matches a revocation',
  revoked_by_jti: 'introspection: the token is revoked by its `jti`',
  revoked_by_tid: 'introspection: the token is revoked with its task (`tid`)',
  revoked_by_sub: 'introspection: the token is revoked with its workload (`sub`)',
  revoked_by_client_id: 'introspection: the token is revoked with its holder (`client_id`)',
  revoked_by_cls: 'introspection: the token is revoked with its class (`cls`)',
  revoked_by_kid: 'introspection: the token is revoked with its signing key (`kid`)',
  not_holder: 'the token to revoke was not issued to this client',
  ended: 'the task or subject token the new token would be limited by has ended',
  stale: 'the verifier has not heard the revocation stream for too long and refuses every token',

  // Holder binding: DPoP (RFC 9449 §4.3) and certificates (RFC 8705)
  dpop_single_header: 'exactly one `DPoP` header is required',
  dpop_well_formed: 'the DPoP proof is not a well-formed JWT',
  dpop_required_claims: 'the DPoP proof lacks `jwk`, `jti`, `htm`, `htu`, `iat` or `ath`',
  dpop_typ: 'the DPoP proof `typ` is not `dpop+jwt`',
  dpop_alg: 'the DPoP proof algorithm is not accepted or does not fit its key',
  dpop_signature: 'the DPoP proof signature does not verify',
  dpop_private_key: 'the DPoP proof `jwk` holds a private key or is not acceptable',
  dpop_htm: 'the DPoP proof `htm` is not the request method',
  dpop_htu: 'the DPoP proof `htu` is not the request URI',
  dpop_nonce:
    'a fresh server nonce is required in the DPoP proof: a challenge (`<endpoint>.challenged`), not a refusal',
  dpop_iat: 'the DPoP proof `iat` is outside the accepted window',
  dpop_ath: 'the DPoP proof `ath` is not the hash of the access token',
  dpop_jkt: 'the DPoP proof key is not the key the token is bound to (`cnf.jkt`)',
  dpop_replay: 'the DPoP proof `jti` was already used',
  not_dpop_bound: 'the DPoP scheme was used with a token that is not DPoP-bound',
  dpop_bound_as_bearer: 'a DPoP-bound token was sent as a Bearer token',
  bearer_not_allowed: 'this API takes DPoP-bound tokens only',
  mtls_binding_required:
    'the class binds tokens to a client certificate, but the client did not authenticate with one',
  mtls_certificate_missing: 'the token is bound to a client certificate and the request has none',
  mtls_certificate_unreadable: 'the client certificate of the request cannot be read',
  mtls_certificate_mismatch: 'the client certificate is not the one the token is bound to (`cnf.x5t#S256`)',
  mtls_client_id_required: 'certificate authentication needs the `client_id` parameter',
  mtls_not_registered: 'the workload registered no certificate authentication',
  certificate_malformed: 'the client certificate cannot be parsed',
  certificate_eku: 'the client certificate lacks the clientAuth extended key usage',
  certificate_key_usage: 'the client certificate key usage does not allow digital signatures',
  certificate_not_registered: 'the self-signed client certificate is not one the workload registered',
  certificate_untrusted: 'the client certificate does not chain to a trusted CA',
  certificate_validity_unreadable: 'the client certificate validity dates cannot be read',
  certificate_not_yet_valid: 'the client certificate is not valid yet',
  certificate_expired: 'the client certificate has expired',
  certificate_intermediate_not_valid: 'an intermediate certificate of the chain is not valid now',
  certificate_ca_not_valid: 'the CA certificate the chain ends at is not valid now',
  certificate_chain_too_long: 'the certificate chain is longer than allowed',
  certificate_is_ca: 'the client certificate is a CA certificate',
  certificate_identity_mismatch:
    'the client certificate does not name the workload as its registration rule says',
  no_trusted_ca: 'no CA is trusted for this kind of client certificate',
  forwarded_certificate_repeated: 'the forwarded-certificate header was sent more than once',
  forwarded_certificate_malformed: 'the forwarded-certificate header cannot be parsed',
  forwarded_certificate_untrusted_source:
    'a forwarded-certificate header came from an address that is no trusted proxy',

  // Token exchange (RFC 8693)
  delegation_loop: 'the actor is already in the subject token `act` chain (its subject or an earlier actor)',
  exchange_too_deep: 'the subject token is `tokens.exchange_max_depth` exchanges from the token first issued',

  // Federation: tokens from trusted OIDC issuers (docs/federation.md)
  untrusted_issuer: '`iss` is no configured issuer',
  algorithm: 'the algorithm is not one the issuer is configured with',
  embedded_key: 'the header carries its own key (`jwk`, `jku`, `x5c`, `x5u`), which is never trusted',
  unknown_key: 'no key of the issuer matches',
  ambiguous_key: 'several keys of the issuer match',
  signature: 'the signature does not verify with the issuer key',
  audience: '`aud` names none of the issuer audiences',
  not_yet_valid: 'the token is not valid yet (`nbf`)',
  too_old: '`iat` is older than the issuer `max_token_age`',
  claims: 'a claim is missing or does not have the value required',
  jwks_unavailable: 'the issuer JWKS cannot be fetched, so nothing can be checked',
  condition_false:
    'the issuer `condition`, or the `condition` of the workload template covering its id, is false for this token (or, for an mTLS template, this client certificate)',
  subject: 'the issuer `subject` expression yields no workload id',
  unknown_workload:
    'the workload named is not registered, and no workload template of the issuer (or, for an X.509-SVID, of the bundle of its trust domain) covers its id',
  template_derivation:
    'the workload template covering the id cannot derive the workload: a `derive` rule yields no owner, environment, classes or attribute',
  federation_not_allowed: 'the workload does not allow this issuer',
  federation_token_replay: 'the federation token was used before by another holder',

  // Policy
  policy_denied: 'policy does not permit the request',
  audience_not_allowed: 'no class of the workload (or of the subject token) allows this audience',
  audience_not_served:
    'the calling workload does not serve (config `serves`) the API asked about; introspection answers such a caller (neither the token client nor an operator) `{"active": false}`',
  scope_required: 'a scope is required: the class has no default scopes',
  scope_not_allowed: 'a scope asked for is not allowed for this workload and audience',
  too_many_scopes: 'more scopes were asked for than allowed',
  scope_widened: 'an exchanged token would have a scope the subject token does not have',
  one_audience: 'a token is for exactly one audience: send one `resource` or `audience`',
  resource_malformed: '`resource` is not an absolute URI without a fragment (RFC 8707)',
  duration: 'a duration (`ttl`, `lease`) is not a positive number of seconds',
  requested_token_type: 'token exchange issues access tokens only',
  subject_token_type: 'the `subject_token_type` is not one Writ exchanges',
  actor_token: '`actor_token` is not supported: the authenticated client is the actor',
  admin_token: 'admin tokens cannot be exchanged',
  subject_inactive: 'the workload of the subject token is not active',
  unknown_class: 'the token class no longer exists',
  delegation_not_allowed: 'the client may not act for the subject (class `delegation.actors`)',
  unknown_task: 'the task named does not exist',
  task_closed: 'the task is closed',
  task_ended: 'the task has ended (its deadline or lease)',
  task_lifetime: 'the task has reached the class maximum lifetime',
  labels: 'task labels are not a small object of short strings',
  purpose: 'a task purpose is required (at most 200 characters)',
  no_token_class: 'the workload has no token class',
  invalid_config: 'the configuration applied does not validate (its file and field are named)',
  config_changed:
    'a file `writ apply` sent as changed is no longer what the server held when the CLI compared them (another apply ran in between): run `writ apply` again',
  stale_version:
    'the version of applied config files named (`since`) is not one the server holds (of another store, older than the versions kept, or from before a whole apply): list without `since`',
  no_operator: 'the configuration applied registers no operator, so no admin call could follow it',
  no_active_operator:
    'every operator of the configuration applied belongs to a person who is not active, so no admin call could follow it',
  governance_rule:
    'the configuration applied breaks an error-severity rule of its governance.yaml (rule, file and field are named)',
  resource_id: 'an API id is not 1 to 512 printable characters',
  policy_stale: 'local policy refused: the revocation state is stale',
  policy_no_bundle: 'local policy refused: no policy bundle is loaded yet',
  policy_bundle_outdated: 'local policy refused: the bundle held is older than the one announced',
  policy_bundle_expired:
    'local policy refused: the bundle held has expired and no fresh one could be fetched',
  policy_unknown_action: 'local policy refused: the action is not one Writ knows',
  policy_invalid_context: 'local policy refused: the request context cannot be evaluated',
  policy_unknown_workload: 'local policy refused: the workload is not in the bundle',
  policy_workload_disabled: 'local policy refused: the workload is disabled',
  policy_workload_quarantined: 'local policy refused: the workload is quarantined',
  insufficient_scope: 'the token lacks a scope this request needs',
  invalid_policy: 'the policy set does not load (its file, line and problem are recorded)',
  policy_context:
    'the policy request context cannot be evaluated (a risk out of range, an address that is none)',
  policies: 'the policies of a bundle do not parse',
  cedar_missing: 'the optional `@cedar-policy/cedar-wasm` is not installed',
  older: 'the policy bundle is older than the one held',
  http: 'the policy bundle could not be fetched',
  closed: 'the verifier was closed',

  // Quotas and reports
  rate_limited: 'the workload has used up its request budget for now',
  open_task_limit: 'the workload holds as many open tasks as `tasks.max_open_per_workload` allows',
  source_rate_limited:
    'the source address has used up its budget of refused unauthenticated requests for now: its failed requests are 429 and a legacy secret from it is not checked until it refills',
  clock_skew:
    "this node's clock is further from the database's than `cluster.max_clock_skew`: it issues nothing",
  stream_form:
    'the event stream request does not ask for revocations as SHA-256 digests (`?revocations=sha256`): a verifier that matches clear values would enforce none; upgrade `@writ/sdk`',
  stream_limit_token:
    'this token already holds `events.max_streams_per_token` open event streams on this node',
  stream_limit_client:
    'this workload already holds `events.max_streams_per_client` open event streams on this node',
  malformed_report: 'the usage report, or one of its records, does not have the documented shape',
  too_many: 'the usage report holds more records than allowed',
  time: 'a usage record time is outside the accepted window',
  unknown_token:
    'a usage record names a `jti` Writ has no record of: never issued, or pruned a day after it expired',
  token_sha256:
    "a usage record's `token_sha256` is not the SHA-256 of the token its `jti` names (the reporter is told the same as for an unknown token)",
  malformed_stream: 'the SSF stream configuration does not have the documented shape',
  transmitter_field: 'an SSF stream field that the transmitter sets does not match',
  stream_audience: 'an SSF stream `aud` is missing or not the receiver',
  endpoint_url:
    'an SSF stream `endpoint_url` is missing, not an absolute URL, has credentials or a fragment, or is plain http to an address `ssf.push_allow_addresses` does not allow',
  endpoint_address:
    'an SSF push endpoint does not resolve, or resolves to an address that is not public (loopback, private, link-local, multicast, reserved) and that `ssf.push_allow_addresses` does not allow',
  push_origin: 'a receiver workload named a push endpoint whose origin `ssf.push_origins` does not list',
  delivery_method: 'the SSF delivery method is not supported or does not fit the request',
  stream_limit: 'the transmitter holds as many SSF streams as `ssf.max_streams` allows',
  stream_limit_receiver:
    'this receiver workload holds as many SSF streams as `ssf.max_streams_per_receiver` allows',
  stream_limit_reserved:
    'receiver workloads together hold every SSF stream not kept for operators by `ssf.operator_reserved_streams`',
  stream_disabled: 'the SSF stream is disabled',
  too_soon: 'an SSF verification comes sooner than allowed after the last one',
  // Leak reports (docs/leaks.md)
  leak_report:
    'the leak report does not have the documented shape (an array, or `tokens`, of entries each with a `token` string), or holds more tokens than `leaks.max_tokens`',
  partner_off: 'the GitHub partner endpoint is off: `leaks.github_keys_url` is not set',
  partner_signature_missing:
    'the partner report lacks `Github-Public-Key-Identifier` or `Github-Public-Key-Signature`, or one is malformed',
  partner_key_unknown:
    'the partner report names a key id that the configured key URL does not publish (fetched again at most once a minute)',
  partner_signature:
    'the partner report signature (ECDSA P-256 SHA-256, DER, base64) does not verify over the body',
  partner_keys_unavailable:
    'the partner public keys cannot be fetched from `leaks.github_keys_url`, so nothing can be checked',
  partner_replay: 'the same partner report body was already taken within `leaks.replay_window`',
  period_too_large:
    'the period given to `writ govern verify` holds more accepted uses than one proof reads: verify a shorter period',
  // Vendor keys (docs/vendor-proxy.md)
  vendor_no_route: 'the vendor-key proxy has no route of that name (vendors/NAME.yaml)',
  vendor_path:
    'the vendor route path has dot or empty segments, a backslash, an encoded /, \\, . or NUL, or bad percent-encoding',
  vendor_key_unavailable:
    'the vendor key of the route is not available to the proxy (not granted to it, no exception in force, retired)',
  vendor_route:
    'the vendor route does not allow this method and path (its `allow` list in vendors/NAME.yaml)',
  vendor_key_secret:
    'a vendor key must be 8 to 4096 visible ASCII characters (no spaces or control characters), sent in the body, never on a command line',
  vendor_key_exists: 'a vendor key of that name exists: rotate it (`writ vendor-keys rotate NAME`) instead',
  vendor_key_not_granted:
    'the calling workload is not one of the proxies the vendor key lists (`writ vendor-keys add|rotate --proxy ID`)',
  vendor_key_exception_missing:
    'no exception in exceptions/ covers the vendor key (`covers: { kind: vendor_key, key: NAME }`): a static key is leased only while one holds',
  vendor_key_lease_key:
    "a lease must carry `jwk`, the proxy's ephemeral public key (EC P-256) the key is encrypted to",
  // The console (docs/console.md)
  console_not_built:
    'the console is not built into this installation: build the @writ/console package (`npm run build` in packages/console) and restart',
  link_used: 'the one-time console sign-in link was used already: run `writ console` for a new one',
  console_session:
    'no console session cookie, or it names no live session (never opened, signed out, or ended): sign in again',
  console_idle: 'the console session was unused longer than `console.idle_timeout`: sign in again',
  console_expired: 'the console session is older than `console.absolute_timeout`: sign in again',
  csrf: 'a state-changing console request lacks the session’s `X-Writ-CSRF` token, or its `Origin` is not this server',
  oidc_off: 'OpenID Connect sign-in is not configured (`console.oidc.issuer`)',
  oidc_state:
    'the OpenID Connect callback does not match a sign-in this server started (state missing, unknown, used or expired)',
  oidc_callback: 'the identity provider answered the sign-in with an error or without a code',
  oidc_token:
    'the identity provider’s token response or ID token failed a check (signature, issuer, audience, nonce, expiry)',
  oidc_no_person:
    'the identity provider’s user matches no active person in the people registry (by `sub` or email)',
  oidc_no_operator: 'the person who signed in is not named by any operator, so they may not use the console',
  store_unavailable: 'the store cannot be reached or refused the write: nothing was done',
  audit_unavailable: 'the audit log cannot be written, so nothing is answered but this refusal',
  internal_error: 'an unexpected error (the service log has it)',
} as const;

export type RefusalReason = keyof typeof REFUSAL_REASONS;

export function isRefusalReason(value: unknown): value is RefusalReason {
  return typeof value === 'string' && Object.hasOwn(REFUSAL_REASONS, value);
}

/**
 * Codes of errors that are checks' results rather than answers on the wire: a refused JWS, JWK or
 * policy bundle. An error answered on the wire carries its OAuth error code instead.
 */
export const CHECK_ERROR_CODES = {
  invalid_jws: 'a compact JWS was refused (see `reason`)',
  invalid_policy_bundle: 'a policy bundle was refused or could not be fetched (see `reason`)',
  invalid_policy: 'a policy set does not load',
  invalid_policy_context:
    'a policy request context cannot be evaluated (a risk out of range, an address that is none)',
} as const;

export type WritErrorCode = OAuthErrorCode | keyof typeof CHECK_ERROR_CODES;

/**
 * The base of Writ's refusals, on the server and in the SDK (as `JOSEError` is for jose): `code` is
 * stable and machine-readable (the OAuth error code where the refusal is answered on the wire), and
 * `reason` says which check failed. Callers switch on these, never on the message, which is for people.
 */
export class WritError extends Error {
  readonly code: WritErrorCode;
  readonly reason: RefusalReason;
  constructor(code: WritErrorCode, reason: RefusalReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'WritError';
    this.code = code;
    this.reason = reason;
  }
}
