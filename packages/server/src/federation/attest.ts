import { createHash } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { spiffeIdProblem } from '../config/spiffe.js';
import type { WritContext } from '../context.js';
import { restrictText } from '../control-characters.js';
import { invalidGrant, unauthorizedClient } from '../errors.js';
import type { ResolvedWorkload } from '../registry/registry.js';
import { admitByTemplate, templateStillAdmits } from '../templates/admit.js';
import { asText } from './cel.js';
import { verifyFederationToken } from './verify.js';

/** What a verified federation token proves, for one issuance. */
export interface FederatedIdentity {
  /** The trusted issuer's config name. */
  issuer: string;
  workload: ResolvedWorkload;
  /** The token's own `sub` (e.g. `repo:org/repo:ref:refs/heads/main`). */
  tokenSubject: string;
  /** Mapped attributes (policy context and audit); names from FEDERATION_ATTRIBUTES. */
  attributes: Record<string, string>;
  /** The CI run this token belongs to, when the issuer maps one: its task labels and purpose. */
  run?: { labels: Record<string, string>; purpose: string } | undefined;
  /** The token's `jti`, when it has one (audit). */
  jti?: string | undefined;
  fingerprint: string;
  /** Seconds: the token's `exp`. */
  exp: number;
  /** Binds the token to its first holder: the replay-cache id, and until when (ms). */
  replay: { key: string; until: number };
}

/**
 * `attestFederatedToken`: verifies an outside token, evaluates the issuer's claim rules (condition,
 * subject, attributes, run) and resolves the workload, which must be registered, list the issuer under
 * `federation` and be active.
 */
export async function attestFederatedToken(ctx: WritContext, token: string): Promise<FederatedIdentity> {
  const records = ctx.registry.issuers();
  const v = await verifyFederationToken(token, {
    lookup: (iss) => ctx.federation.issuer(records, iss),
    nowMs: ctx.clock.now(),
    maxBytes: ctx.settings.limits.tokenBytes,
  });
  const { issuer, claims } = v;
  const name = issuer.spec.name;
  const detail = { federation_issuer: name, fingerprint: v.fingerprint, jti: shortJti(claims) };
  if (issuer.condition(claims) !== true)
    throw invalidGrant(
      `the federation token does not satisfy the condition of issuer ${name} (issuers/${name}: condition): its claims are not ones the operator admits`,
      {
        reason: 'condition_false',
        ...detail,
      },
    );
  const subject = asText(issuer.subject(claims));
  if (subject === undefined || spiffeIdProblem(subject) !== undefined)
    throw invalidGrant(
      `the subject expression of issuer ${name} (issuers/${name}: subject) yields no SPIFFE ID for this token`,
      { reason: 'subject', ...detail },
    );
  // Registered, admitted earlier, or admitted now by the template covering the id (on first use).
  const workload =
    ctx.registry.workload(subject) ??
    (await admitByTemplate(ctx, { issuer: name, id: subject, claims, fingerprint: v.fingerprint, detail }));
  // One answer whether the workload is missing or does not take this issuer: the token's holder learns
  // the id its token maps to (what to register), never which other workloads exist.
  const notAccepted = `the federation token maps to ${subject}, which is no registered workload listing issuer ${name} under federation, and no workload template of issuer ${name} covers it`;
  if (!workload)
    throw invalidGrant(notAccepted, { reason: 'unknown_workload', workload: subject, ...detail });
  const templated = templateStillAdmits(ctx, workload, claims);
  if (templated?.refusal !== undefined)
    throw invalidGrant(templated.refusal, {
      reason: 'condition_false',
      template: templated.template,
      workload: subject,
      ...detail,
    });
  if (!(workload.federation ?? []).includes(name))
    throw invalidGrant(notAccepted, { reason: 'federation_not_allowed', workload: subject, ...detail });
  if (workload.state !== 'active')
    throw unauthorizedClient(
      `the workload ${subject} is ${workload.state}: it gets nothing until an operator runs writ workloads enable`,
      {
        reason: `workload_${workload.state}`,
        ...detail,
      },
    );

  const attributes: Record<string, string> = {};
  for (const [k, rule] of issuer.attributes) {
    const value = asText(rule(claims));
    if (value !== undefined && value !== '') attributes[k] = restrictText(value, 256);
  }
  let run: FederatedIdentity['run'];
  if (issuer.task) {
    const labels: Record<string, string> = { federation: name };
    let complete = true;
    for (const [k, rule] of issuer.task.labels) {
      const value = asText(rule(claims));
      if (value === undefined || value === '' || value.length > 256) complete = false;
      else labels[k] = restrictText(value, 256);
    }
    const purpose = restrictText(asText(issuer.task.purpose(claims)) ?? '', 200) || `${name} run`;
    if (complete) run = { labels, purpose };
  }
  const exp = claims.exp as number;
  const jti = typeof claims.jti === 'string' && claims.jti.length > 0 ? claims.jti : undefined;
  const key =
    jti !== undefined
      ? `jti:${createHash('sha256').update(`${issuer.spec.issuer}\n${jti}`).digest('base64url')}`
      : `sha256:${v.fingerprint}`;
  return {
    issuer: name,
    workload,
    tokenSubject: typeof claims.sub === 'string' ? claims.sub.slice(0, 256) : '',
    attributes,
    run,
    jti: jti?.slice(0, 256),
    fingerprint: v.fingerprint,
    exp,
    // Past `iat + max_token_age` the token is refused anyway: no need to remember it longer.
    replay: {
      key,
      until: (Math.min(exp, (claims.iat as number) + issuer.spec.maxTokenAge) + issuer.spec.clockSkew) * 1000,
    },
  };
}

function shortJti(claims: JWTPayload): string | undefined {
  return typeof claims.jti === 'string' ? claims.jti.slice(0, 128) : undefined;
}
