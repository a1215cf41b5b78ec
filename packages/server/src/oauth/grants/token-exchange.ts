import { type AccessTokenClaims, GrantType, TokenType, WritError } from '@writ/sdk/wire';
import { certificateBinding } from '../../auth/client/tls-client-auth.js';
import { authenticateClient } from '../../auth/client.js';
import { Paths } from '../../context.js';
import { checkTokenEndpointDpop } from '../../dpop/check.js';
import {
  invalidGrant,
  invalidRequest,
  invalidScope,
  invalidTarget,
  unauthorizedClient,
} from '../../errors.js';
import { type FormParams, single } from '../../request/form.js';
import { verifyIssuedToken } from '../../tokens/access-token.js';
import { parseScope } from '../class-selection.js';
import { issueAccessToken } from '../issue.js';
import { requestedTtl } from '../request-params.js';
import { issueForFederatedToken } from './federated.js';
import type { Grant } from './grant.js';

/**
 * RFC 8693 token exchange: the holder of a Writ access token trades it for a narrower one — scope a
 * subset, an audience the subject's class allows, `exp` no later, the same `tid`, bound to the new
 * holder. When another workload acts (the authenticated client differs from the subject), the subject's
 * class must list it in `delegation.actors`, and the new token records the chain in `act`.
 *
 * With `subject_token_type` `…:jwt` or `…:id_token`, the subject token is a federation token from a
 * trusted outside issuer instead: it proves the workload's identity as in the jwt-bearer grant.
 */
export const tokenExchange: Grant = {
  grantType: GrantType.tokenExchange,
  async handle(ctx, params, req) {
    const federationType = single(params, 'subject_token_type', 256);
    if (federationType === TokenType.jwt || federationType === TokenType.idToken) {
      const token = single(params, 'subject_token', ctx.settings.limits.tokenBytes);
      if (token === undefined)
        throw invalidRequest('subject_token is required', { reason: 'missing_parameter' });
      const requested = single(params, 'requested_token_type', 256);
      if (requested !== undefined && requested !== TokenType.accessToken)
        throw invalidRequest('only access tokens can be requested', { reason: 'requested_token_type' });
      if (params.has('actor_token'))
        throw invalidRequest('actor_token is not supported with a federation token', {
          reason: 'actor_token',
        });
      return issueForFederatedToken(ctx, params, req, token, GrantType.tokenExchange, TokenType.accessToken);
    }
    const client = await authenticateClient(ctx, params, req, {
      endpoint: Paths.token,
      consume: 'with_issuance',
    });
    const subjectToken = single(params, 'subject_token', ctx.settings.limits.tokenBytes);
    if (subjectToken === undefined)
      throw invalidRequest('subject_token is required', { reason: 'missing_parameter' });
    const subjectType = single(params, 'subject_token_type', 256);
    if (subjectType !== TokenType.accessToken) {
      throw invalidRequest(
        'subject_token_type must be …:access_token (a Writ token), or …:jwt or …:id_token (a federation token)',
        { reason: 'subject_token_type' },
      );
    }
    const requestedType = single(params, 'requested_token_type', 256);
    if (requestedType !== undefined && requestedType !== TokenType.accessToken) {
      throw invalidRequest('only access tokens can be requested', { reason: 'requested_token_type' });
    }
    if (params.has('actor_token'))
      throw invalidRequest('actor_token is not supported: the authenticated client is the actor', {
        reason: 'actor_token',
      });

    let subject: AccessTokenClaims;
    let kid: string;
    try {
      ({ claims: subject, kid } = verifyIssuedToken(ctx, subjectToken));
    } catch (err) {
      throw invalidGrant('subject_token is not an active token issued here', {
        reason: err instanceof WritError ? err.reason : 'invalid',
      });
    }
    if (subject.cls === 'admin')
      throw invalidGrant('admin tokens cannot be exchanged', { reason: 'admin_token' });
    if (ctx.revocations.match({ ...subject, kid }))
      throw invalidGrant('subject_token has been revoked', { reason: 'revoked' });
    const subjectWorkload = ctx.registry.workload(subject.sub);
    if (subjectWorkload?.state !== 'active')
      throw invalidGrant('the subject workload is not active', { reason: 'subject_inactive' });
    const cls = ctx.registry.tokenClass(subject.cls);
    if (!cls) throw invalidGrant('the subject token class no longer exists', { reason: 'unknown_class' });

    // Every exchange is one step further from the token first issued; the chain stays short and bounded.
    const ajti = [...(subject.ajti ?? []), subject.jti];
    const maxDepth = ctx.settings.tokens.exchangeMaxDepth;
    if (ajti.length > maxDepth)
      throw invalidGrant(
        `the subject token is already ${ajti.length - 1} exchange(s) from the token first issued, and ` +
          `tokens.exchange_max_depth is ${maxDepth}: exchange a token nearer the first one`,
        { reason: 'exchange_too_deep' },
      );
    const actor = client.workload.id;
    const act = actingChain(subject, actor);
    if (act !== undefined && !cls.delegationActors.includes(actor)) {
      throw unauthorizedClient('this client may not act for the subject (class delegation.actors)', {
        reason: 'delegation_not_allowed',
        actor,
      });
    }
    const audience = exchangeAudience(params, subject.aud);
    if (!cls.audiences.includes(audience))
      throw invalidTarget('the audience is not allowed for the subject token class', {
        reason: 'audience_not_allowed',
      });
    const granted = subject.scope.split(' ');
    const scopes = parseScope(single(params, 'scope', 4096)) ?? granted;
    if (!scopes.every((s) => granted.includes(s)))
      throw invalidScope('an exchanged token cannot widen the scope of the subject token', {
        reason: 'scope_widened',
      });

    // RFC 8705 §3: the new token is bound to the certificate its holder, the actor, authenticated with.
    const x5t = certificateBinding(cls, client);
    const dpop = await checkTokenEndpointDpop(ctx, req, Paths.token, cls.binding === 'dpop');
    return issueAccessToken(
      ctx,
      {
        grantType: GrantType.tokenExchange,
        workloadId: subject.sub,
        clientId: actor,
        tokenClass: cls.name,
        audience,
        scopes,
        ttl: requestedTtl(params, cls),
        authMethod: client.method,
        ...(client.key !== undefined ? { clientKey: client.key } : {}),
        replay: client.replay,
        dpop,
        ...(x5t !== undefined ? { x5t } : {}),
        tid: subject.tid,
        notAfter: subject.exp,
        act,
        subjectJti: subject.jti,
        ajti,
        issuedTokenType: TokenType.accessToken,
      },
      req,
    );
  },
};

/**
 * The `act` claim of the new token: none when the subject's own workload narrows its token (or the
 * current actor narrows its delegated token); otherwise the actor wraps the existing chain. A workload
 * already in the chain (the subject, or an earlier actor) cannot act again: A → B → A is a loop.
 */
function actingChain(subject: AccessTokenClaims, actor: string): AccessTokenClaims['act'] {
  const currentHolder = subject.act?.sub ?? subject.sub;
  if (actor === currentHolder) return subject.act;
  const chain = delegationChain(subject);
  if (chain.includes(actor))
    throw invalidGrant(
      `delegation loop: ${[...chain, actor].join(' → ')}; ${actor} is already in the subject token's ` +
        'chain (its subject or an earlier actor) and cannot act again',
      { reason: 'delegation_loop', actor },
    );
  return subject.act ? { sub: actor, act: subject.act } : { sub: actor };
}

/** The workloads of a token's chain in the order they came: its subject, then each actor. */
function delegationChain(t: AccessTokenClaims): string[] {
  const actors: string[] = [];
  for (let a = t.act; a !== undefined; a = a.act) actors.unshift(a.sub);
  return [t.sub, ...actors];
}

function exchangeAudience(params: FormParams, fallback: string): string {
  const values = [...new Set([...(params.get('resource') ?? []), ...(params.get('audience') ?? [])])];
  if (values.length > 1) throw invalidTarget('exactly one audience per token', { reason: 'one_audience' });
  return values[0] ?? fallback;
}
