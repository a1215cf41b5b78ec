import { POLICY_BUNDLE_KEYS_PATH, POLICY_BUNDLE_PATH } from '@writ/sdk/wire';
import { z } from 'zod';
import { configFilesQuery } from '../admin/config-files.js';
import { revocationPreviewBody } from '../admin/overview.js';
import { applyBody, auditQuery, openTaskBody, revocationBody, stateBody } from '../admin/routes.js';
import { OIDC_PATH, oidcCallbackQuery } from '../console/oidc/routes.js';
import { CONSOLE_PATH, signInBody } from '../console/routes.js';
import { Paths } from '../context.js';
import { findingStateBody, pauseBody } from '../detection/admin-routes.js';
import { FINDING_STATES } from '../detection/finding.js';
import { eventsQuery } from '../events/routes.js';
import {
  breakGlassQuery,
  requestBody as breakGlassRequestBody,
  reviewBody as breakGlassReviewBody,
  renewBody as exceptionRenewBody,
  retireBody as exceptionRetireBody,
} from '../governance/admin-routes.js';
import { staleBody } from '../governance/stale-route.js';
import { governVerifyBody } from '../governance/verify-route.js';
import { GITHUB_LEAKS_PATH, githubMatches } from '../leaks/github.js';
import { leakReportSchema } from '../leaks/leak-report.js';
import { LEAKS_PATH } from '../leaks/routes.js';
import { ttlParam } from '../oauth/request-params.js';
import { explainBody, resourceBody } from '../policy/admin-routes.js';
import { evaluationBody, evaluationsBody } from '../policy/authzen.js';
import { bundleQuery } from '../policy/bundle.js';
import { SCIM_PATH } from '../scim/routes.js';
import { streamIdParam } from '../ssf/routes.js';
import { createBody, pollBody, statusBody, updateBody, verifyBody } from '../ssf/streams.js';
import { SsfPaths } from '../ssf/vocabulary.js';
import { taskSeconds } from '../tasks/routes.js';
import { usageRecord, usageReport } from '../usage/ingest.js';
import {
  VENDOR_KEYS_PATH,
  addBody as vendorKeyAddBody,
  leaseBody as vendorKeyLeaseBody,
  rotateBody as vendorKeyRotateBody,
} from '../vendor/routes.js';

/**
 * Writ's HTTP API as an OpenAPI 3.1 document, generated from the zod schemas the routes validate JSON
 * bodies with (imported, not copied): `GET /openapi.json` serves it, `scripts/openapi.mjs` writes
 * docs/openapi.json and the endpoint table of docs/endpoints.md from it, and tests check that every
 * route the server registers is here and that the requests the tests send conform to it.
 *
 * A new route goes into `ROUTES` below, with the schema its handler validates with.
 */

/** Who may call an operation. */
type Caller =
  | 'anyone'
  | 'client' // client authentication as at the token endpoint (private_key_jwt, mTLS, platform token)
  | 'operator' // an admin token bound to the operator key (DPoP), with a proof per call
  | 'operator-assertion' // an operator's signed assertion and DPoP proof (the admin token request)
  | 'github' // GitHub's secret scanning, its report signed with GitHub's published keys
  | 'scim' // an identity provider with the SCIM bearer secret (`scim.token_sha256`)
  | 'console' // a browser with a console session cookie (docs/console.md)
  | 'browser' // anyone, as a page of the console
  | { token: string; operator?: boolean }; // a Writ token for this audience (path after the issuer)

interface Operation {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** OpenAPI path template (`{id}`), as the server registers it (`:id`). */
  path: string;
  tag: string;
  summary: string;
  /** More for the docs: what it does, what it refuses. Markdown. */
  description?: string;
  caller: Caller;
  /** The schema the handler validates the body with. */
  body?: { type: 'json' | 'form' | 'scim'; schema: z.ZodType };
  query?: z.ZodObject;
  /** Success status and what it returns (the content type, when not JSON). */
  ok: { status: number; what: string; type?: string };
}

// Form bodies (RFC 6749): each parameter at most once (a repeated one is refused, RFC 6749 §3.2), an
// empty value counts as absent, unknown parameters are ignored. The checks are `single()` and the
// grant handlers; these schemas name the parameters for clients.
const formText = (max: number, description: string) => z.string().max(max).describe(description).optional();
const clientAuthForm = {
  client_id: formText(
    2048,
    'The workload (SPIFFE ID); with mTLS or a client secret, the only identification.',
  ),
  client_assertion_type: z
    .literal('urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
    .describe('RFC 7523 client authentication.')
    .optional(),
  client_assertion: formText(
    8192,
    'A JWT signed by the workload key (`iss` = `sub` = client_id, `aud` the issuer or the endpoint URL), or a federated workload’s platform token.',
  ),
  client_secret: formText(512, 'Only for classes with a registered `legacy_client_secret` exception.'),
};
export const tokenForm = z
  .object({
    grant_type: z
      .enum([
        'client_credentials',
        'urn:ietf:params:oauth:grant-type:token-exchange',
        'urn:ietf:params:oauth:grant-type:jwt-bearer',
      ])
      .describe('RFC 6749 client_credentials, RFC 8693 token exchange or RFC 7523 jwt-bearer (federation).'),
    ...clientAuthForm,
    resource: z
      .union([z.string().max(512), z.array(z.string().max(512)).max(10)])
      .describe('The audience (RFC 8707): one absolute URI; repeated, the same one.')
      .optional(),
    audience: formText(512, 'The audience, when `resource` is not used.'),
    scope: formText(4096, 'Space-separated scopes; the class’s default scopes when absent.'),
    ttl: ttlParam
      .describe('Lifetime in seconds, clamped to the class’s `max_ttl` (Writ extension).')
      .optional(),
    task_id: formText(128, 'An open task of this workload: the token carries its `tid` (Writ extension).'),
    assertion: formText(8192, 'jwt-bearer grant: the platform token.'),
    subject_token: formText(8192, 'Token exchange: the Writ access token (or platform token) to exchange.'),
    subject_token_type: formText(256, 'Token exchange: the type of `subject_token` (RFC 8693 §3).'),
    requested_token_type: formText(256, 'Token exchange: `urn:ietf:params:oauth:token-type:access_token`.'),
  })
  .describe(
    'A token request (RFC 6749 §4.4, RFC 8693 §2.1, RFC 7523 §2.1), with a `DPoP` header for DPoP classes.',
  );
export const introspectionForm = z
  .object({
    token: z.string().max(8192).describe('The access token to describe.'),
    token_type_hint: formText(64, 'Ignored.'),
    ...clientAuthForm,
  })
  .describe('RFC 7662 introspection request.');
export const revocationForm = z
  .object({
    token: z.string().max(8192).describe('The access token to revoke.'),
    token_type_hint: formText(64, 'Ignored.'),
    ...clientAuthForm,
  })
  .describe('RFC 7009 revocation request.');
export const taskOpenForm = z
  .object({
    ...clientAuthForm,
    purpose: formText(512, 'What the task is for (audited).'),
    duration: taskSeconds.describe('Seconds until the task’s deadline.').optional(),
    lease: taskSeconds.describe('Seconds the task lives without a heartbeat.').optional(),
    labels: formText(8192, 'A JSON object of string labels, such as `{"ci_run":"1234"}`.'),
  })
  .describe('Opens a task for the authenticated workload.');
export const taskCloseForm = z
  .object({ ...clientAuthForm, reason: formText(256, 'Why (audited); `closed by owner` when absent.') })
  .describe('Closes a task of the authenticated workload.');
export const taskHeartbeatForm = z
  .object({
    ...clientAuthForm,
    lease: taskSeconds
      .describe('Seconds the lease is renewed for (30 when absent; never past the deadline).')
      .optional(),
  })
  .describe('Renews a task’s lease.');
export const adminTokenForm = z
  .object({
    grant_type: z.literal('urn:ietf:params:oauth:grant-type:jwt-bearer'),
    assertion: z
      .string()
      .max(8192)
      .describe('A 60-second assertion signed by the operator key (`iss` = `sub` = operator name).'),
  })
  .describe(
    'Trades an operator assertion and a DPoP proof by the same key (`DPoP` header) for an admin token.',
  );

// Query strings: values as they arrive, strings.
const stringQuery = (max: number, description: string) =>
  z.string().max(max).describe(description).optional();
const digits = (description: string) =>
  z
    .string()
    .regex(/^\d{1,16}$/)
    .describe(description)
    .optional();
const streamIdQuery = z.object({ stream_id: streamIdParam.describe('The stream.') });

/** The routes each app registered (`buildApp` records them), for the test that compares them with `ROUTES`. */
const registered = new WeakMap<object, { method: string; url: string }[]>();

/** Records every route `app` registers from now on (HEAD routes Fastify adds for GET ones left out). */
export function recordRoutes(app: {
  addHook(name: 'onRoute', hook: (route: { method: string | string[]; url: string }) => void): unknown;
}): void {
  const list: { method: string; url: string }[] = [];
  registered.set(app, list);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') list.push({ method, url: route.url });
  });
}

/** The routes `app` registered, as OpenAPI paths (`{id}`); empty for an app not recorded. */
export function routesOf(app: object): { method: string; path: string }[] {
  return (registered.get(app) ?? []).map((r) => ({
    method: r.method,
    path: r.url.replace(/:(\w+)/g, '{$1}'),
  }));
}

/** Where the server serves the document. */
export const OPENAPI_PATH = '/openapi.json';

/** A SCIM resource: `schemas` and the attributes `GET /scim/v2/Schemas` describes (checked by the route). */
const scimResource = z
  .looseObject({ schemas: z.array(z.string()).min(1).describe('the resource’s schema URNs') })
  .describe('a User or Group (RFC 7643 §4), attributes as GET /scim/v2/Schemas describes them');
/** RFC 7644 §3.5.2. */
const scimPatch = z.looseObject({
  schemas: z.array(z.string()).min(1).describe('["urn:ietf:params:scim:api:messages:2.0:PatchOp"]'),
  Operations: z
    .array(z.looseObject({ op: z.string(), path: z.string().optional(), value: z.unknown().optional() }))
    .min(1),
});

/** Every operation the server answers. Keep in the order of the docs' table. */
export const ROUTES: readonly Operation[] = [
  {
    method: 'GET',
    path: Paths.metadata,
    tag: 'oauth',
    summary: 'RFC 8414 metadata',
    caller: 'anyone',
    ok: { status: 200, what: 'the authorization server metadata' },
  },
  {
    method: 'GET',
    path: Paths.jwks,
    tag: 'oauth',
    summary: 'public signing keys (the next key is published before it signs)',
    caller: 'anyone',
    ok: { status: 200, what: 'a JWK set' },
  },
  {
    method: 'POST',
    path: Paths.token,
    tag: 'oauth',
    summary: 'RFC 6749 `client_credentials`, RFC 8693 token exchange and RFC 7523 jwt-bearer',
    description:
      'Client auth `private_key_jwt` (RFC 7523); audience from `resource` (RFC 8707) or `audience`; DPoP (RFC 9449); optional `ttl` in seconds and `task_id` (Writ extensions).',
    caller: 'client',
    body: { type: 'form', schema: tokenForm },
    ok: { status: 200, what: 'an access token (RFC 6749 §5.1)' },
  },
  {
    method: 'POST',
    path: Paths.introspect,
    tag: 'oauth',
    summary: 'RFC 7662 introspection, for authenticated workloads or operators',
    description:
      'A token is described only to its own client, a verifier that `serves` its audience, or an operator; anything else, and anything not active, is exactly `{"active": false}`.',
    caller: 'client',
    body: { type: 'form', schema: introspectionForm },
    ok: { status: 200, what: 'the token’s claims, or `{"active": false}`' },
  },
  {
    method: 'POST',
    path: Paths.revoke,
    tag: 'oauth',
    summary: 'RFC 7009 revocation; a client revokes its own tokens',
    caller: 'client',
    body: { type: 'form', schema: revocationForm },
    ok: { status: 200, what: 'nothing (RFC 7009 §2.2)' },
  },
  {
    method: 'POST',
    path: Paths.tasks,
    tag: 'tasks',
    summary: 'open a task, for workloads (client authentication as at the token endpoint)',
    caller: 'client',
    body: { type: 'form', schema: taskOpenForm },
    ok: { status: 201, what: 'the task' },
  },
  {
    method: 'POST',
    path: `${Paths.tasks}/{id}/close`,
    tag: 'tasks',
    summary: 'close a task: its tokens are revoked',
    caller: 'client',
    body: { type: 'form', schema: taskCloseForm },
    ok: { status: 200, what: '`{id, closed, already_closed}`' },
  },
  {
    method: 'POST',
    path: `${Paths.tasks}/{id}/heartbeat`,
    tag: 'tasks',
    summary: 'renew a task’s lease',
    caller: 'client',
    body: { type: 'form', schema: taskHeartbeatForm },
    ok: { status: 200, what: '`{id, lease_until}`' },
  },
  {
    method: 'GET',
    path: Paths.events,
    tag: 'verifiers',
    summary: 'Server-Sent Events for verifiers',
    description:
      'Revocation predicates with each value as its SHA-256 digest, key rotations and policy bundle versions, asked for with `?revocations=sha256` (refused without it: a verifier that matches clear values would enforce nothing), resumable by `Last-Event-ID`, with a snapshot (`&snapshot=paged`: in pages) for a verifier that is new or too far behind; no reasons, labels or workload ids (see [security.md](security.md#what-a-verifier-is-sent-on-the-event-stream)).',
    caller: { token: Paths.events },
    query: eventsQuery,
    ok: { status: 200, what: 'an event stream', type: 'text/event-stream' },
  },
  {
    method: 'POST',
    path: '/v1/usage',
    tag: 'verifiers',
    summary: 'usage reports from verifiers',
    description:
      'Each record is checked on its own; see [usage reports](audit.md#usage-reports-and-writ-audit-trace).',
    caller: { token: '/v1/usage' },
    // The server takes `records` as a list of anything and checks each with `usageRecord`.
    body: { type: 'json', schema: usageReport.extend({ records: z.array(usageRecord).min(1) }) },
    ok: { status: 202, what: '`{accepted, aggregates, refused}`' },
  },
  {
    method: 'POST',
    path: LEAKS_PATH,
    tag: 'leaks',
    summary: 'leak reports from scanner workloads',
    description:
      'Each Writ token in it is classified and a live one revoked; see [leaks.md](leaks.md#post-v1leaks-scanner-workloads).',
    caller: { token: LEAKS_PATH },
    body: { type: 'json', schema: leakReportSchema({ dryRun: false }) },
    ok: { status: 200, what: '`{results}`, one per token in order' },
  },
  {
    method: 'POST',
    path: GITHUB_LEAKS_PATH,
    tag: 'leaks',
    summary: 'GitHub secret scanning partner reports',
    description:
      "Signed with GitHub's published ECDSA keys (`leaks.github_keys_url`; headers `Github-Public-Key-Identifier` and `Github-Public-Key-Signature`); answered with true/false-positive labels; see [leaks.md](leaks.md#post-v1leaksgithub-githubs-secret-scanning-partner-program).",
    caller: 'github',
    body: { type: 'json', schema: githubMatches },
    ok: { status: 200, what: 'a label per match' },
  },
  {
    method: 'POST',
    path: `${VENDOR_KEYS_PATH}/lease`,
    tag: 'vendor-keys',
    summary: 'a vendor-key proxy leases a key, encrypted to the ephemeral key it sends',
    description: 'Only a proxy the key lists may lease it.',
    caller: { token: VENDOR_KEYS_PATH },
    body: { type: 'json', schema: vendorKeyLeaseBody },
    ok: { status: 200, what: 'the key, encrypted to `jwk`' },
  },
  {
    method: 'GET',
    path: POLICY_BUNDLE_PATH,
    tag: 'verifiers',
    summary: 'the signed policy bundle of an API the caller’s workload `serves`',
    description:
      '`typ: writ-policy-bundle+jwt`, valid 5 minutes, for a verifier deciding request-time policy locally; see [policy.md](policy.md#in-the-resource-server-the-policy-bundle).',
    caller: { token: Paths.events },
    query: bundleQuery,
    ok: { status: 200, what: 'a compact JWS', type: 'application/jwt' },
  },
  {
    method: 'GET',
    path: POLICY_BUNDLE_KEYS_PATH,
    tag: 'verifiers',
    summary: 'the keys that sign policy bundles, apart from the token keys',
    description: 'No access-token verifier can take a bundle for a token.',
    caller: 'anyone',
    ok: { status: 200, what: 'a JWK set', type: 'application/jwk-set+json' },
  },
  {
    method: 'GET',
    path: '/.well-known/authzen-configuration',
    tag: 'authzen',
    summary: 'AuthZEN PDP metadata',
    caller: 'anyone',
    ok: { status: 200, what: 'the PDP metadata' },
  },
  {
    method: 'POST',
    path: `${Paths.access}/evaluation`,
    tag: 'authzen',
    summary: 'AuthZEN Authorization API 1.0: one policy decision',
    description: 'See [policy.md](policy.md#authzen-request-time).',
    caller: { token: Paths.access, operator: true },
    body: { type: 'json', schema: evaluationBody },
    ok: { status: 200, what: '`{decision, context}`' },
  },
  {
    method: 'POST',
    path: `${Paths.access}/evaluations`,
    tag: 'authzen',
    summary: 'AuthZEN Authorization API 1.0: a batch of decisions',
    caller: { token: Paths.access, operator: true },
    body: { type: 'json', schema: evaluationsBody },
    ok: { status: 200, what: '`{evaluations}`, or one decision without `evaluations`' },
  },
  {
    method: 'GET',
    path: SsfPaths.configuration,
    tag: 'ssf',
    summary: 'Shared Signals transmitter metadata (SSF 1.0)',
    description: 'See [ssf.md](ssf.md).',
    caller: 'anyone',
    ok: { status: 200, what: 'the transmitter configuration' },
  },
  ...(['POST', 'GET', 'PATCH', 'PUT', 'DELETE'] as const).map(
    (method): Operation => ({
      method,
      path: SsfPaths.stream,
      tag: 'ssf',
      summary: {
        POST: 'create a stream',
        GET: 'read a stream (`stream_id`), or list the caller’s',
        PATCH: 'update a stream',
        PUT: 'replace a stream',
        DELETE: 'delete a stream',
      }[method],
      caller: { token: '/ssf', operator: true },
      ...(method === 'POST' ? { body: { type: 'json' as const, schema: createBody } } : {}),
      ...(method === 'PATCH' || method === 'PUT'
        ? { body: { type: 'json' as const, schema: updateBody } }
        : {}),
      ...(method === 'GET' ? { query: streamIdQuery.partial() } : {}),
      ...(method === 'DELETE' ? { query: streamIdQuery } : {}),
      ok:
        method === 'POST'
          ? { status: 201, what: 'the stream' }
          : method === 'DELETE'
            ? { status: 204, what: 'nothing' }
            : { status: 200, what: method === 'GET' ? 'the stream, or a list of streams' : 'the stream' },
    }),
  ),
  {
    method: 'GET',
    path: SsfPaths.status,
    tag: 'ssf',
    summary: 'a stream’s status',
    caller: { token: '/ssf', operator: true },
    query: streamIdQuery,
    ok: { status: 200, what: '`{stream_id, status, reason?}`' },
  },
  {
    method: 'POST',
    path: SsfPaths.status,
    tag: 'ssf',
    summary: 'enable, pause or disable a stream',
    caller: { token: '/ssf', operator: true },
    body: { type: 'json', schema: statusBody },
    ok: { status: 200, what: '`{stream_id, status, reason?}`' },
  },
  {
    method: 'POST',
    path: SsfPaths.verify,
    tag: 'ssf',
    summary: 'ask for a verification SET (at most one per 5 s per stream)',
    caller: { token: '/ssf', operator: true },
    body: { type: 'json', schema: verifyBody },
    ok: { status: 204, what: 'nothing' },
  },
  {
    method: 'POST',
    path: `${SsfPaths.poll}/{id}`,
    tag: 'ssf',
    summary: 'RFC 8936 poll delivery of a poll stream',
    caller: { token: '/ssf', operator: true },
    body: { type: 'json', schema: pollBody },
    ok: { status: 200, what: '`{sets, moreAvailable}`' },
  },
  {
    method: 'POST',
    path: Paths.adminToken,
    tag: 'admin',
    summary:
      'operator assertion and a DPoP proof by the same key → short-lived admin token bound to that key',
    description: 'See [admin.md](admin.md).',
    caller: 'operator-assertion',
    body: { type: 'form', schema: adminTokenForm },
    ok: { status: 200, what: 'an admin token (`token_type: DPoP`)' },
  },
  ...admin('GET', '/workloads', 'the registered workloads (a templated one names its template)'),
  ...admin('GET', '/workloads/orphaned', 'workloads whose owner was deprovisioned, for reassignment'),
  ...admin(
    'GET',
    '/workloads/{id}',
    'one workload, with its risk (a templated one with its template and the evidence it was admitted on)',
  ),
  ...(['disable', 'enable', 'quarantine'] as const).flatMap((verb) =>
    admin('POST', `/workloads/{id}/${verb}`, `${verb} a workload`, { type: 'json', schema: stateBody }),
  ),
  ...admin('GET', '/tasks', 'tasks, newest first', undefined, {
    query: z.object({
      workload: stringQuery(2048, 'Only this workload’s tasks.'),
      state: z.enum(['open', 'closed']).describe('Only open or closed tasks.').optional(),
      limit: digits('At most this many (100 by default, at most 1000).'),
    }),
  }),
  ...admin('GET', '/tasks/{id}', 'one task, with its tokens'),
  ...admin(
    'POST',
    '/tasks',
    'open a task for a workload',
    { type: 'json', schema: openTaskBody },
    { status: 201 },
  ),
  ...admin('POST', '/tasks/{id}/close', 'close a task: its tokens are revoked', {
    type: 'json',
    schema: stateBody,
  }),
  ...admin('GET', '/classes', 'the token classes'),
  ...admin('GET', '/classes/{name}', 'one token class, with its workloads'),
  ...admin(
    'GET',
    '/config/files',
    'the files of the config directory applied last, by path, digest and stamp (what `writ apply` compares a directory with), and the version of that record; with `since`, only what changed after that version',
    undefined,
    { query: configFilesQuery },
  ),
  ...admin(
    'POST',
    '/config',
    'apply a config directory (workloads, classes, operators, issuers, rules, policies), whole or as the files changed since the last apply',
    {
      type: 'json',
      schema: applyBody,
    },
  ),
  ...admin(
    'POST',
    '/revocations',
    'revoke by predicate',
    { type: 'json', schema: revocationBody },
    { status: 201 },
  ),
  ...admin('GET', '/revocations', 'the revocations in force'),
  ...admin(
    'POST',
    '/revocations/preview',
    'how many live tokens a revocation predicate would hit, without revoking ([console.md](console.md#views))',
    { type: 'json', schema: revocationPreviewBody },
  ),
  ...admin(
    'GET',
    '/overview',
    'the console overview: tokens issued and refused per minute, live tokens, refusals by reason, revocations, open findings, streams, store health ([console.md](console.md#views))',
  ),
  {
    method: 'GET',
    path: `${Paths.admin}/events/live`,
    tag: 'admin',
    summary: 'live counters for the console overview',
    description:
      'Server-sent events: `hello`, then `counts` (`issued`, `refused`, `revoked` since the last frame, read from the audit log once a second) and `end` with a reason; one stream per console session (a second replaces the first), ended when the session ends; counts only ([console.md](console.md#live-counters)).',
    caller: 'operator',
    ok: { status: 200, what: 'an event stream', type: 'text/event-stream' },
  },
  ...admin('GET', '/keys', 'the signing keys'),
  ...admin('POST', '/keys/rotate', 'rotate the signing key'),
  ...admin(
    'GET',
    '/exceptions',
    'the exceptions registry ([governance.md](governance.md#managing-exceptions))',
  ),
  ...admin('GET', '/exceptions/{id}', 'one exception'),
  ...admin('POST', '/exceptions/{id}/renew', 'renew an exception until a new date', {
    type: 'json',
    schema: exceptionRenewBody,
  }),
  ...admin('POST', '/exceptions/{id}/retire', 'retire an exception', {
    type: 'json',
    schema: exceptionRetireBody,
  }),
  ...admin(
    'GET',
    '/breakglass',
    'break-glass grants ([governance.md](governance.md#break-glass))',
    undefined,
    {
      query: breakGlassQuery,
    },
  ),
  ...admin('GET', '/breakglass/{id}', 'one break-glass grant'),
  ...admin(
    'POST',
    '/breakglass',
    'request break-glass access',
    { type: 'json', schema: breakGlassRequestBody },
    { status: 201 },
  ),
  ...admin('POST', '/breakglass/{id}/approve', 'approve a break-glass request (another operator)'),
  ...admin('POST', '/breakglass/{id}/close', 'close a break-glass grant with a review', {
    type: 'json',
    schema: breakGlassReviewBody,
  }),
  ...admin('GET', '/vendor-keys', 'vendor keys (versions and fingerprints, never the key)'),
  ...admin('GET', '/vendor-keys/{name}', 'one vendor key'),
  ...admin(
    'POST',
    '/vendor-keys',
    'add a vendor key',
    { type: 'json', schema: vendorKeyAddBody },
    { status: 201 },
  ),
  ...admin('POST', '/vendor-keys/{name}/rotate', 'rotate a vendor key', {
    type: 'json',
    schema: vendorKeyRotateBody,
  }),
  ...admin('POST', '/vendor-keys/{name}/retire', 'retire a vendor key'),
  ...admin(
    'POST',
    '/leaks',
    'report tokens found in files, logs or history (`writ scan --revoke`); [leaks.md](leaks.md)',
    {
      type: 'json',
      schema: leakReportSchema({ dryRun: true }),
    },
  ),
  ...admin(
    'POST',
    '/govern/verify',
    'a signed proof that class rules, revocations and expiries held over a period ([governance.md](governance.md#proving-it-held))',
    { type: 'json', schema: governVerifyBody },
  ),
  ...admin(
    'POST',
    '/govern/stale',
    'stale workloads, unused classes, silent issuers and never-used keys with last-seen evidence; `disable: true` runs the opt-in disable rule ([governance.md](governance.md#stale-identities-writ-govern-stale))',
    { type: 'json', schema: staleBody },
  ),
  ...admin('GET', '/audit', 'audit events', undefined, {
    query: auditQuery,
  }),
  ...admin('POST', '/audit/verify', 'check the audit chain'),
  ...admin('GET', '/audit/trace/{jti}', 'one token’s issuance, uses and revocation (`writ audit trace`)'),
  ...admin('GET', '/policy', 'the running policy version and its policies'),
  ...admin(
    'GET',
    '/policy/versions',
    'the applied policy versions kept (the newest 50), newest first: id, when, who applied it, how many policies ([policy.md](policy.md#versions))',
  ),
  ...admin('GET', '/policy/versions/{id}', 'one kept policy version with the text of its source files'),
  ...admin(
    'POST',
    '/policy/explain',
    'why the running policies allow or deny a request: the decision, the policies considered and those that determined it ([console.md](console.md#views))',
    { type: 'json', schema: explainBody },
  ),
  ...admin('GET', '/resources', 'the resource catalogue'),
  ...admin('GET', '/resources/{id}', 'one resource’s attributes'),
  ...admin('PUT', '/resources/{id}', 'set a resource’s attributes', { type: 'json', schema: resourceBody }),
  ...admin('DELETE', '/resources/{id}', 'remove the attributes set through the admin API'),
  ...admin('GET', '/detections', 'detection rules in force, the pause switch, risk by workload'),
  ...admin('GET', '/detections/findings', 'findings, newest first', undefined, {
    query: z.object({
      state: z.enum(FINDING_STATES).describe('Only findings in this state.').optional(),
      workload: stringQuery(2048, 'Only this workload’s findings.'),
      rule: stringQuery(64, 'Only this rule’s findings.'),
      before: digits('Page: findings before this time (ms), with `before_id`.'),
      before_id: stringQuery(64, 'Page: the id of the last finding of the previous page.'),
      limit: digits('At most this many (1 to 1000, 100 by default).'),
    }),
  }),
  ...admin('GET', '/detections/findings/{id}', 'one finding with its evidence'),
  ...admin('POST', '/detections/findings/{id}', 'acknowledge, resolve or mark a finding a false positive', {
    type: 'json',
    schema: findingStateBody,
  }),
  ...admin('POST', '/detections/pause', 'pause automatic responses', { type: 'json', schema: pauseBody }),
  ...admin('POST', '/detections/resume', 'resume automatic responses', { type: 'json', schema: pauseBody }),
  ...scimOperations(),
  ...consoleOperations(),
  {
    method: 'GET',
    path: '/healthz',
    tag: 'operations',
    summary: 'liveness',
    caller: 'anyone',
    ok: { status: 200, what: '`{"status": "ok"}`' },
  },
  {
    method: 'GET',
    path: '/readyz',
    tag: 'operations',
    summary: 'readiness',
    description:
      'Store reachable and accepting writes, signing key loaded, the audit log still holds the newest event this node wrote, on PostgreSQL the node’s clock within `cluster.max_clock_skew` of the database’s.',
    caller: 'anyone',
    ok: { status: 200, what: 'what was checked' },
  },
  {
    method: 'GET',
    path: '/metrics',
    tag: 'operations',
    summary: 'Prometheus metrics',
    description:
      '`writ_tokens_issued_total`, `writ_refusals_total{endpoint,error,reason}`, `writ_challenges_total{endpoint,challenge}` (DPoP nonces asked for: not refusals), `writ_http_request_duration_seconds`, `writ_issuance_duration_seconds`, `writ_revocations_total`, `writ_task_sweep_lag_seconds`, `writ_policy_decisions_total{endpoint,action,decision}`, `writ_clock_skew_seconds` (PostgreSQL: this node’s clock minus the database’s).',
    caller: 'anyone',
    ok: { status: 200, what: 'the metrics', type: 'text/plain' },
  },
  {
    method: 'GET',
    path: OPENAPI_PATH,
    tag: 'operations',
    summary: 'this API description (OpenAPI 3.1)',
    caller: 'anyone',
    ok: { status: 200, what: 'the OpenAPI document' },
  },
];

const BODY_TYPES = {
  json: 'application/json',
  form: 'application/x-www-form-urlencoded',
  scim: 'application/scim+json',
} as const;

/** The console (docs/console.md): its pages, and sign-in and session endpoints for the browser. */
function consoleOperations(): Operation[] {
  const page = (path: string, summary: string, type = 'text/html'): Operation => ({
    method: 'GET',
    path: `${CONSOLE_PATH}${path}`,
    tag: 'console',
    summary,
    description:
      'Served with a strict Content-Security-Policy (no inline script or style); 404 `console_not_built` when the @writ/console package is not built.',
    caller: 'browser',
    ok: { status: 200, what: summary, type },
  });
  return [
    { ...page('', 'redirects to /console/'), ok: { status: 302, what: 'a redirect to /console/' } },
    page('/', 'the console'),
    page('/assets/{file}', 'a file of the built console', 'application/octet-stream'),
    page('/{view}', 'a view of the console (the same page; it routes itself), e.g. /console/signin'),
    {
      method: 'POST',
      path: `${CONSOLE_PATH}/api/signin`,
      tag: 'console',
      summary: 'sign in with the one-time link `writ console` printed; sets the session cookie',
      description:
        'The link is a JWT (`typ` `writ-console-link+jwt`, `aud` `<issuer>/console`, at most 60 s) signed by a key of the operator its `sub` names; a second use is refused (401 `invalid_grant`, reason `link_used`).',
      caller: 'browser',
      body: { type: 'json', schema: signInBody },
      ok: { status: 200, what: 'the session, as `GET /console/api/session`' },
    },
    {
      method: 'GET',
      path: `${OIDC_PATH}/start`,
      tag: 'console',
      summary: 'start an OpenID Connect sign-in: a redirect to the identity provider (code flow, PKCE S256)',
      description:
        'Sets the sealed flow cookie `writ_oidc` (state, PKCE verifier, nonce; SameSite=Lax, Path=/console/oidc, 10 minutes). 404 `not_found`, reason `oidc_off`, when `console.oidc.issuer` is not set; 503 when the identity provider cannot be read.',
      caller: 'browser',
      ok: { status: 302, what: "a redirect to the identity provider's authorization endpoint" },
    },
    {
      method: 'GET',
      path: `${OIDC_PATH}/callback`,
      tag: 'console',
      summary: 'finish an OpenID Connect sign-in: sets the session cookie and redirects to /console/',
      description:
        "The identity provider's redirect back. Checks the flow cookie and `state` (spent once in the store: a callback is taken once on every node), exchanges the code with the PKCE verifier, checks the ID token (signature by the provider's JWKS, `iss`, `aud`, `nonce`, `exp`), and maps its `sub` or verified e-mail to an active person an operator names. Refusals: `oidc_state`, `oidc_callback` (400), `oidc_token` (401), `oidc_no_person`, `oidc_no_operator` (403).",
      caller: 'browser',
      query: oidcCallbackQuery,
      ok: { status: 302, what: 'a redirect to /console/' },
    },
    {
      method: 'GET',
      path: `${CONSOLE_PATH}/api/session`,
      tag: 'console',
      summary: 'who is signed in: `{operator, person, via, csrf, idle_expires_at, expires_at}`',
      caller: 'console',
      ok: { status: 200, what: 'the session' },
    },
    {
      method: 'POST',
      path: `${CONSOLE_PATH}/api/signout`,
      tag: 'console',
      summary: 'end the session (needs `X-Writ-CSRF`)',
      caller: 'console',
      ok: { status: 204, what: 'nothing; the cookie is cleared' },
    },
  ];
}

/** SCIM 2.0 (RFC 7644): bodies are `application/scim+json`, read against the schemas it publishes. */
function scimOperations(): Operation[] {
  const op = (method: Operation['method'], path: string, summary: string, status = 200): Operation => ({
    method,
    path: `${SCIM_PATH}${path}`,
    tag: 'scim',
    summary,
    ...(method === 'POST' || method === 'PUT'
      ? { body: { type: 'scim' as const, schema: scimResource } }
      : method === 'PATCH'
        ? { body: { type: 'scim' as const, schema: scimPatch } }
        : {}),
    description:
      'SCIM 2.0 (RFC 7643/7644) for identity providers; `application/scim+json`; refusals are SCIM error bodies with `scimType` (see governance.md, "SCIM").',
    caller: 'scim',
    ok: { status, what: summary },
  });
  return [
    op('GET', '/ServiceProviderConfig', 'the SCIM features Writ supports'),
    op('GET', '/ResourceTypes', 'the resource types: User, Group'),
    op('GET', '/ResourceTypes/{id}', 'one resource type'),
    op('GET', '/Schemas', 'the schemas of the attributes kept'),
    op('GET', '/Schemas/{id}', 'one schema'),
    ...(['Users', 'Groups'] as const).flatMap((r) => [
      op('POST', `/${r}`, `provision one of the ${r}`, 201),
      op('GET', `/${r}`, `list ${r} (filter: <attribute> eq "<value>")`),
      op('GET', `/${r}/{id}`, `one of the ${r}`),
      op('PUT', `/${r}/{id}`, `replace one of the ${r}`),
      op('PATCH', `/${r}/{id}`, `change one of the ${r} (PatchOp; active: false deprovisions a User)`),
      op('DELETE', `/${r}/{id}`, `deprovision and remove one of the ${r}`, 204),
    ]),
  ];
}

function admin(
  method: Operation['method'],
  path: string,
  summary: string,
  body?: Operation['body'],
  extra: { status?: number; query?: z.ZodObject } = {},
): Operation[] {
  return [
    {
      method,
      path: `${Paths.admin}${path}`,
      tag: 'admin',
      summary,
      caller: 'operator',
      ...(body ? { body } : {}),
      ...(extra.query ? { query: extra.query } : {}),
      ok: { status: extra.status ?? 200, what: summary },
    },
  ];
}

type Json = Record<string, unknown>;

/** A zod schema as the JSON Schema (2020-12) an OpenAPI 3.1 document holds: what a client may send. */
export function jsonSchema(schema: z.ZodType): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
  }) as Json;
  return rest;
}

const ERROR = {
  description: 'A refusal: an RFC 6749 error body; `WWW-Authenticate` on 401 (see errors.md).',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
};

function security(caller: Caller): Json[] | undefined {
  if (
    caller === 'anyone' ||
    caller === 'browser' ||
    caller === 'client' ||
    caller === 'operator-assertion' ||
    caller === 'github'
  )
    return [];
  if (caller === 'operator') return [{ adminToken: [] }, { consoleSession: [] }];
  if (caller === 'console') return [{ consoleSession: [] }];
  if (caller === 'scim') return [{ scimSecret: [] }];
  return [{ writToken: [] }, { writBearerToken: [] }, ...(caller.operator ? [{ adminToken: [] }] : [])];
}

export function callerText(caller: Caller): string {
  if (caller === 'anyone') return 'anyone';
  if (caller === 'client') return 'a workload (client authentication)';
  if (caller === 'operator') return 'an operator (admin token, or a console session)';
  if (caller === 'browser') return 'anyone (a browser)';
  if (caller === 'console') return 'a console session (cookie)';
  if (caller === 'operator-assertion') return 'an operator (operator key)';
  if (caller === 'github') return 'GitHub secret scanning (signed report)';
  if (caller === 'scim') return 'an identity provider (the SCIM bearer secret)';
  return `a Writ token for \`<issuer>${caller.token}\`${caller.operator ? ', or an admin token' : ''}`;
}

function operationId(op: Operation): string {
  const words = `${op.method.toLowerCase()} ${op.path}`
    .replace(/[{}]/g, '')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean);
  return words.map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join('');
}

/** The OpenAPI 3.1 document. `issuer`: the server's base URL (the docs' copy names none). */
export function openApiDocument(issuer?: string): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const op of ROUTES) {
    const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1]!,
      in: 'path',
      required: true,
      schema: { type: 'string', minLength: 1 },
    }));
    const query = op.query ? queryParameters(op.query) : [];
    const operation: Json = {
      operationId: operationId(op),
      tags: [op.tag],
      summary: op.summary,
      description: [op.description, `Caller: ${callerText(op.caller)}.`].filter(Boolean).join('\n\n'),
      ...(params.length + query.length > 0 ? { parameters: [...params, ...query] } : {}),
      ...(op.body
        ? {
            requestBody: {
              // A JSON body whose every member is optional may be left out (the route reads it as `{}`).
              required: op.body.type === 'form' || !op.body.schema.safeParse({}).success,
              content: {
                [BODY_TYPES[op.body.type]]: {
                  schema: jsonSchema(op.body.schema),
                },
              },
            },
          }
        : {}),
      security: security(op.caller),
      responses: {
        [String(op.ok.status)]: {
          description: op.ok.what,
          ...(op.ok.status === 204 || op.ok.what === 'nothing (RFC 7009 §2.2)'
            ? {}
            : { content: { [op.ok.type ?? 'application/json']: { schema: {} } } }),
        },
        default: ERROR,
      },
    };
    const methods = paths[op.path] ?? {};
    methods[op.method.toLowerCase()] = operation;
    paths[op.path] = methods;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Writ',
      version: '0.1.0',
      summary: 'Short-lived, holder-bound credentials for non-human identities.',
      description:
        'Generated from the schemas the server validates requests with (packages/server/src/http/openapi.ts). Every refusal is an RFC 6749 error body; docs/errors.md lists the reasons.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    ...(issuer ? { servers: [{ url: issuer }] } : {}),
    tags: [
      { name: 'oauth', description: 'OAuth 2.0 authorization server' },
      { name: 'tasks', description: 'Tasks, for workloads' },
      { name: 'verifiers', description: 'For resource servers’ verifiers' },
      { name: 'leaks', description: 'Leaked token reports' },
      { name: 'vendor-keys', description: 'Vendor keys leased to proxies' },
      { name: 'authzen', description: 'AuthZEN policy decisions' },
      { name: 'ssf', description: 'Shared Signals transmitter' },
      { name: 'admin', description: 'Admin API' },
      { name: 'console', description: 'The web console: pages, sign-in, session' },
      { name: 'operations', description: 'Probes, metrics, this document' },
    ],
    paths,
    components: {
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: { type: 'string', description: 'The RFC 6749 (or RFC 6750, RFC 9449) error code.' },
            error_description: { type: 'string', description: 'Which check failed and what would pass.' },
          },
        },
      },
      securitySchemes: {
        writToken: {
          type: 'http',
          scheme: 'DPoP',
          description: 'A DPoP-bound Writ token (RFC 9449) with a fresh `DPoP` proof over the request.',
        },
        writBearerToken: {
          type: 'http',
          scheme: 'bearer',
          description:
            'A Writ token of a `binding: bearer` class, or certificate-bound (with its client certificate).',
        },
        adminToken: {
          type: 'http',
          scheme: 'DPoP',
          description: 'An admin token from `POST /admin/v1/token`, with a proof by the operator key.',
        },
        consoleSession: {
          type: 'apiKey',
          in: 'cookie',
          name: 'writ_console',
          description:
            'A console session (docs/console.md); requests other than GET and HEAD also carry its CSRF token in `X-Writ-CSRF`.',
        },
        scimSecret: {
          type: 'http',
          scheme: 'bearer',
          description: 'The SCIM bearer secret whose SHA-256 the operator configured (`scim.token_sha256`).',
        },
      },
    },
  };
}

function queryParameters(schema: z.ZodObject): Json[] {
  const s = jsonSchema(schema) as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(s.properties ?? {}).map(([name, p]) => {
    const { description, ...rest } = p;
    return {
      name,
      in: 'query',
      required: (s.required ?? []).includes(name),
      ...(description ? { description } : {}),
      schema: rest,
    };
  });
}

/** docs/openapi.json as `scripts/openapi.mjs` writes it. */
export function openApiJson(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}

/** The endpoint table of docs/endpoints.md, generated from the document's operations. */
export function endpointTableMarkdown(): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n+/g, ' ');
  const rows = ROUTES.map(
    (op) =>
      `| \`${op.method} ${op.path}\` | ${cell(callerText(op.caller))} | ${cell(op.summary)}${op.description ? `. ${cell(op.description)}` : ''} |`,
  );
  return ['| endpoint | caller | what |', '|---|---|---|', ...rows].join('\n');
}
