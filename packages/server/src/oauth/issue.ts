import { DpopError } from '@writ/sdk/dpop';
import type { AccessTokenClaims, ClientAuthMethodValue, TokenResponse } from '@writ/sdk/wire';
import type { AuditEvent } from '../audit/audit-event.js';
import type { AuditEntry } from '../audit/audit-log.js';
import { assertionReplayed, consumeAssertion } from '../auth/client.js';
import type { RequestInfo, WritContext } from '../context.js';
import { type DpopBinding, dpopError } from '../dpop/check.js';
import { OAuthError } from '../errors.js';
import type { FederatedIdentity } from '../federation/attest.js';
import { bindToFirstHolder, federationAudit } from '../federation/replay.js';
import { bearerClassException } from '../governance/bearer-exception.js';
import { decideIssuance } from '../policy/issuance.js';
import { IssuanceRefusedError } from '../store/issuance-write.js';
import { signAccessToken, tokenFingerprint } from '../tokens/access-token.js';

export interface IssueRequest {
  grantType: string;
  /** The token's `sub`. */
  workloadId: string;
  /** The token's `client_id` when another workload holds it (token exchange); default `workloadId`. */
  clientId?: string;
  /** The `jti` of the token this one was exchanged from. */
  subjectJti?: string;
  /** Token exchange: the `jti`s of every token this one descends from (`ajti`), the first one first. */
  ajti?: string[];
  tokenClass: string;
  audience: string;
  scopes: string[];
  ttl: number;
  /** How the workload proved itself; `federation:<issuer>` for a token from a trusted issuer. */
  authMethod: ClientAuthMethodValue | `federation:${string}`;
  replay?: { jti: string; until: number } | undefined;
  /** `private_key_jwt`: the RFC 7638 thumbprint of the workload key that signed the assertion. */
  clientKey?: string;
  legacyException?: string | undefined;
  /** The id of the exception (docs/governance.md) that let this issuance through, audited with it. */
  exception?: string | undefined;
  /** The break-glass grant (docs/governance.md) this token is issued under, audited with it. */
  breakglass?: string | undefined;
  tid?: string | undefined;
  /** The holder's verified DPoP proof; its `jti` is consumed with the issuance. */
  dpop?: DpopBinding | undefined;
  /** RFC 8705 §3.1: `x5t#S256` of the client certificate the token is bound to. */
  x5t?: string | undefined;
  act?: AccessTokenClaims['act'];
  /** An upper bound on `exp` (seconds): a task's end, or the subject token's `exp` in an exchange. */
  notAfter?: number | undefined;
  issuedTokenType?: string;
  /** A later token in the same task: a renewal. */
  renewal?: boolean | undefined;
  /** The task's purpose, when the grant already has the task (policy context). */
  purpose?: string | undefined;
  /** The federation token that proved the identity: bound to its first holder with the issuance. */
  federation?: FederatedIdentity | undefined;
}

/**
 * The end of every grant: sign, then in one transaction consume the assertion `jti`, record the token
 * and append its audit event. No audit, no token: if the transaction fails, the signed token is dropped.
 */
export async function issueAccessToken(
  ctx: WritContext,
  r: IssueRequest,
  req: RequestInfo,
): Promise<TokenResponse> {
  const started = process.hrtime.bigint();
  const now = ctx.clock.now();
  const nowS = Math.floor(now / 1000);
  const ttl = r.notAfter === undefined ? r.ttl : Math.min(r.ttl, r.notAfter - nowS);
  if (ttl <= 0)
    throw new OAuthError('invalid_grant', 'the task or subject token has ended', {
      detail: { reason: 'ended' },
    });
  // Whatever the grant: a class that binds to a client certificate never yields an unbound token.
  if (r.x5t === undefined && ctx.registry.tokenClass(r.tokenClass)?.binding === 'mtls')
    throw new OAuthError(
      'unauthorized_client',
      `class ${r.tokenClass} binds tokens to a client certificate: authenticate with tls_client_auth or self_signed_tls_client_auth`,
      { detail: { reason: 'mtls_binding_required' } },
    );
  // A bearer class under an exception of the registry issues only while the exception holds, whatever
  // other exception (a legacy secret's) let the client authenticate: both are checked, both audited.
  const bearerException = bearerClassException(ctx.registry, r.tokenClass, now);
  const exception = r.exception ?? bearerException;
  const policy = await decideIssuance(ctx, r, req);
  const { token, claims, kid } = signAccessToken(ctx.keys, {
    issuer: ctx.settings.issuer,
    subject: r.workloadId,
    clientId: r.clientId ?? r.workloadId,
    audience: r.audience,
    scope: r.scopes.join(' '),
    tokenClass: r.tokenClass,
    ttl,
    nowMs: now,
    ...(r.tid !== undefined ? { tid: r.tid } : {}),
    ...(r.dpop ? { jkt: r.dpop.jkt } : {}),
    ...(r.x5t !== undefined ? { x5t: r.x5t } : {}),
    ...(r.act ? { act: r.act } : {}),
    ...(r.ajti ? { ajti: r.ajti } : {}),
  });
  const fingerprint = tokenFingerprint(token);
  const record = {
    jti: claims.jti,
    sub: claims.sub,
    clientId: claims.client_id,
    cls: claims.cls,
    aud: claims.aud,
    scope: claims.scope,
    kid,
    iat: claims.iat,
    exp: claims.exp,
    fingerprint,
    ...(claims.tid !== undefined ? { tid: claims.tid } : {}),
    ...(claims.ajti !== undefined ? { ajti: claims.ajti } : {}),
  };
  const audit = (federationUse?: Parameters<typeof federationAudit>[1]): AuditEntry => ({
    type: 'token.issued',
    outcome: 'success',
    actor: claims.client_id,
    subject: r.workloadId,
    jti: claims.jti,
    data: {
      grant_type: r.grantType,
      auth_method: r.authMethod,
      ...(r.clientKey !== undefined ? { client_key: r.clientKey } : {}),
      cls: claims.cls,
      aud: claims.aud,
      scope: claims.scope,
      iat: claims.iat,
      exp: claims.exp,
      kid,
      fingerprint,
      binding: r.dpop ? 'dpop' : r.x5t !== undefined ? 'mtls' : 'bearer',
      ...(r.x5t !== undefined ? { x5t: r.x5t } : {}),
      ...(r.tid !== undefined ? { tid: r.tid, renewal: r.renewal ?? false } : {}),
      ...(r.act ? { act: r.act } : {}),
      ...(r.subjectJti ? { subject_jti: r.subjectJti } : {}),
      ...(r.ajti ? { ajti: r.ajti } : {}),
      ...(r.federation && federationUse ? { federation: federationAudit(r.federation, federationUse) } : {}),
      ip: req.ip,
      policy,
      ...(r.legacyException ? { legacy_secret_exception: r.legacyException } : {}),
      ...(exception ? { exception } : {}),
      ...(bearerException && bearerException !== exception ? { bearer_exception: bearerException } : {}),
      ...(r.breakglass ? { breakglass: r.breakglass } : {}),
    },
  });
  const taskClosed = () =>
    new OAuthError('invalid_grant', 'the task is closed', { detail: { reason: 'task_closed' } });
  let event: AuditEvent;
  if (!r.federation) {
    // The common case: the replay entries, the record and the event as one write the store commits with
    // the issuances arriving together (group commit), each whole or not at all.
    const consume = [
      ...(r.replay
        ? [{ scope: `assertion:${claims.client_id}`, id: r.replay.jti, expiresAt: r.replay.until }]
        : []),
      ...(r.dpop ? [{ scope: 'dpop', id: r.dpop.replayKey, expiresAt: r.dpop.replayUntil }] : []),
    ];
    try {
      event = await ctx.audit.commitIssuance({ consume, now, token: record, audit: audit() });
    } catch (err) {
      if (!(err instanceof IssuanceRefusedError)) throw err;
      if (err.reason === 'task_closed') throw taskClosed();
      if (r.replay && err.index === 0) throw assertionReplayed();
      throw dpopError(
        ctx,
        new DpopError('replay', 'DPoP proof jti was already used: make a new proof for every request'),
      );
    }
  } else {
    const federation = r.federation;
    event = await ctx.store.transaction(async (tx) => {
      if (r.replay) await consumeAssertion(tx, claims.client_id, r.replay, now);
      if (r.dpop && !(await tx.consume('dpop', r.dpop.replayKey, r.dpop.replayUntil, now))) {
        throw dpopError(
          ctx,
          new DpopError('replay', 'DPoP proof jti was already used: make a new proof for every request'),
        );
      }
      const federationUse = await bindToFirstHolder(tx, federation, r.dpop?.jkt, now);
      await tx.recordToken(record);
      if (claims.tid !== undefined && (await tx.getTask(claims.tid))?.closedAt !== null) throw taskClosed();
      return ctx.audit.append(audit(federationUse), tx);
    });
    ctx.audit.noteCommitted(event);
  }
  ctx.metrics.issued.inc({ class: claims.cls, grant_type: r.grantType });
  ctx.logger.debug(
    { sub: claims.sub, cls: claims.cls, aud: claims.aud, jti: claims.jti, exp: claims.exp },
    'issued',
  );
  ctx.metrics.issuanceDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  return {
    access_token: token,
    token_type: r.dpop ? 'DPoP' : 'Bearer',
    expires_in: ttl,
    scope: claims.scope,
    ...(r.issuedTokenType ? { issued_token_type: r.issuedTokenType } : {}),
  };
}
