import {
  type BundleWorkload,
  EventType,
  POLICY_BUNDLE_KEYS_PATH,
  POLICY_BUNDLE_PATH,
  POLICY_BUNDLE_TYP,
  type PolicyBundleClaims,
  REQUEST_ACTIONS,
} from '@writ/sdk/wire';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { auditRefusal } from '../audit/refusal.js';
import { authenticateBearer } from '../auth/bearer.js';
import { seconds } from '../clock.js';
import { eventsAudience, type WritContext } from '../context.js';
import { accessDenied, invalidRequest } from '../errors.js';
import { info } from '../request/info.js';
import type { Store } from '../store/store.js';
import { writSchema } from './cedar.js';
import { buildContext, isPrintable } from './request.js';
import { actionMatches, headMatches } from './slice.js';

type BundleContext = Pick<WritContext, 'policy' | 'registry' | 'clock'>;

/**
 * Seconds a served bundle stays valid (`exp` − `iat`). A verifier fetches its bundle again before then,
 * and a signed bundle cannot be replayed to a verifier for longer.
 */
export const POLICY_BUNDLE_LIFETIME = 300;

/**
 * The bundle version now: the event-log seq of the last change in effect on this node, plus the base
 * every node reads from the store. Every node that has applied a change gives the same version for it,
 * so a verifier may fetch from any node; the base (the clock's milliseconds when the store first held a
 * policy set) keeps versions above those handed out before versions followed the log.
 */
export function bundleVersion(ctx: Pick<WritContext, 'policy' | 'clock'>): number {
  return ctx.policy.bundle.version(ctx.clock.now());
}

/**
 * Tells verifiers on the event stream that the bundle changes with the change logged at `changeSeq`:
 * a `policy.bundle` event with its version, appended in the transaction that made the change. A
 * verifier that fetches before the node it asks has applied the change gets the older version and
 * fetches again (the SDK retries until it holds the version announced).
 */
export async function announceBundle(
  ctx: Pick<WritContext, 'policy' | 'clock' | 'events'>,
  tx: Store,
  changeSeq: number,
  policyVersion = ctx.policy.version.id,
): Promise<void> {
  await ctx.events.append(tx, EventType.policyBundle, {
    version: ctx.policy.bundle.epoch(ctx.clock.now()) + changeSeq,
    policy_version: policyVersion,
  });
}

/**
 * The bundle for one API: the policies whose scope can match a request action on it (a policy whose
 * head cannot match is never satisfied, so leaving it out changes no decision), its attributes, and
 * the workloads whose classes may get tokens for it.
 */
export function buildBundle(ctx: BundleContext, issuer: string, audience: string): PolicyBundleClaims {
  const version = bundleVersion(ctx);
  const api = { type: 'Api', id: audience };
  const policies = ctx.policy.set.policies.filter(
    (p) => headMatches(p.resource, api) && REQUEST_ACTIONS.some((a) => actionMatches(p.action, a)),
  );
  const reads = new Set<string>();
  let all = false;
  for (const p of policies) {
    if (p.reads.context === 'all') all = true;
    else for (const f of p.reads.context) reads.add(f);
  }
  const classes = new Set(
    ctx.registry
      .classes()
      .filter((c) => c.audiences.includes(audience))
      .map((c) => c.name),
  );
  const workloads: BundleWorkload[] = ctx.registry
    .workloads()
    .filter((w) => w.classes.some((c) => classes.has(c)))
    .map((w) => ({
      id: w.id,
      owner: w.owner,
      environment: w.environment,
      state: w.state,
      classes: [...w.classes],
      tags: Object.fromEntries(Object.entries(w.attributes).map(([k, v]) => [k, String(v)])),
    }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  const r = ctx.policy.resource(audience);
  const { now: _n, hour: _h, weekday: _w, source_ip: _s, ...defaults } = buildContext(ctx.clock.now());
  const iat = seconds(ctx.clock.now());
  return {
    iss: issuer,
    aud: audience,
    iat,
    exp: iat + POLICY_BUNDLE_LIFETIME,
    version,
    policy_version: ctx.policy.version.id,
    built_in: ctx.policy.version.builtIn,
    schema: writSchema(),
    policies: policies.map((p) => ({
      id: p.id,
      effect: p.effect,
      text: p.text,
      principal: p.principal,
      actions: REQUEST_ACTIONS.filter((a) => actionMatches(p.action, a)),
    })),
    context_reads: all ? 'all' : [...reads].sort(),
    context_defaults: defaults,
    resource: {
      id: audience,
      sensitivity: r.sensitivity,
      environment: r.environment,
      owner: r.owner,
      version: ctx.policy.resourceVersion(audience),
    },
    workloads,
  };
}

/**
 * `GET /v1/policy/bundle?audience=<API>`: the signed bundle for one API, for verifiers deciding
 * request-time policy locally. Verifiers authenticate as they do for the event stream (a token for the
 * events audience, DPoP-bound when their class says so), and get the bundle of an API their workload
 * `serves` only (403 `access_denied` for any other, registered or not: the policies and workload
 * attributes of an API are its verifiers' business alone). The response is the compact JWS, signed with
 * the policy-bundle key (`GET /v1/policy/jwks`), never with the key that signs tokens.
 */
/** The query of `GET /v1/policy/bundle` (the OpenAPI document describes it with this schema). */
export const bundleQuery = z.object({
  audience: z
    .string()
    .min(1)
    .max(512)
    .refine(isPrintable, 'must be printable')
    .describe('The API (audience URI) the bundle is for.'),
});

export function registerPolicyBundleRoutes(app: FastifyInstance, ctx: WritContext): void {
  app.get(POLICY_BUNDLE_KEYS_PATH, async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=60');
    reply.header('content-type', 'application/jwk-set+json');
    return ctx.keys.publicJwks('policy-bundle');
  });
  app.get<{ Querystring: { audience?: unknown } }>(POLICY_BUNDLE_PATH, async (req, reply) => {
    let clientId: string;
    const audience = req.query.audience;
    try {
      ({ clientId } = await authenticateBearer(ctx, info(req), eventsAudience(ctx.settings.issuer)));
      if (typeof audience !== 'string' || !bundleQuery.shape.audience.safeParse(audience).success)
        throw invalidRequest('audience must be the API (audience URI) the bundle is for', {
          reason: 'audience',
        });
      if (!ctx.registry.serves(clientId, audience))
        throw accessDenied(
          `${clientId} does not serve this API: a bundle is served only for an API the caller's workload lists under serves`,
          { reason: 'audience_not_served' },
        );
    } catch (err) {
      throw await auditRefusal(ctx, 'policy_bundle', err, info(req), {});
    }
    const bundle = buildBundle(ctx, ctx.settings.issuer, audience);
    await ctx.audit.append({
      type: 'policy.bundle.served',
      outcome: 'success',
      actor: clientId,
      data: {
        audience,
        version: bundle.version,
        policy_version: bundle.policy_version,
        policies: bundle.policies.length,
      },
    });
    const { jws } = ctx.keys.signJwt(
      POLICY_BUNDLE_TYP,
      bundle as unknown as Record<string, unknown>,
      'policy-bundle',
    );
    reply.headers({ 'content-type': 'application/jwt', 'cache-control': 'no-store' });
    return jws;
  });
}
