import { createHash } from 'node:crypto';
import type { TokenResponse } from '@writ/sdk/wire';
import { admitCaller } from '../../auth/budget.js';
import { Paths, type RequestInfo, type WritContext } from '../../context.js';
import { checkTokenEndpointDpop } from '../../dpop/check.js';
import { invalidRequest, OAuthError, unauthorizedClient } from '../../errors.js';
import { attestFederatedToken, type FederatedIdentity } from '../../federation/attest.js';
import { canonicalJson } from '../../jose/json.js';
import { type FormParams, single } from '../../request/form.js';
import type { Task } from '../../tasks/task.js';
import { openTask, taskCeiling, taskForIssuance } from '../../tasks/tasks.js';
import { parseScope, selectClass } from '../class-selection.js';
import { issueAccessToken } from '../issue.js';
import { requestedAudience, requestedTtl } from '../request-params.js';

/**
 * Issues a Writ token for a workload that proved itself with a token from a trusted outside issuer
 * (the jwt-bearer grant's `assertion`, or token exchange's `subject_token`): the same class selection,
 * rate limit, DPoP check, policy decision and `issueAccessToken` as client_credentials. A CI run gets its
 * own task (opened on first use, reused after), and no token outlives the federation token.
 */
export async function issueForFederatedToken(
  ctx: WritContext,
  params: FormParams,
  req: RequestInfo,
  token: string,
  grantType: string,
  issuedTokenType?: string,
): Promise<TokenResponse> {
  if (params.has('client_assertion') || params.has('client_secret') || req.authorization !== undefined)
    throw invalidRequest('a federation token is the proof of identity: send no client authentication', {
      reason: 'multiple_client_auth',
    });
  const identity = await attestFederatedToken(ctx, token);
  const workload = identity.workload;
  const clientId = single(params, 'client_id', 2048);
  if (clientId !== undefined && clientId !== workload.id)
    throw unauthorizedClient(`client_id is not ${workload.id}, the workload the federation token maps to`, {
      reason: 'client_id_mismatch',
    });
  await admitCaller(ctx, req, workload.id);
  const audience = requestedAudience(params);
  const { tokenClass, scopes } = selectClass(
    workload.classes,
    ctx.registry,
    audience,
    parseScope(single(params, 'scope', 4096)),
  );
  const dpop = await checkTokenEndpointDpop(ctx, req, Paths.token, tokenClass.binding === 'dpop');
  const taskId = single(params, 'task_id', 128) ?? (await runTask(ctx, identity))?.id;
  const task =
    taskId === undefined
      ? undefined
      : await taskForIssuance(ctx, taskId, workload.id, tokenClass.renewalMaxLifetime);
  return issueAccessToken(
    ctx,
    {
      grantType,
      workloadId: workload.id,
      tokenClass: tokenClass.name,
      audience,
      scopes,
      ttl: requestedTtl(params, tokenClass),
      authMethod: `federation:${identity.issuer}`,
      dpop,
      tid: task?.task.id,
      notAfter: Math.min(task?.notAfter ?? identity.exp, identity.exp),
      renewal: task?.renewal,
      purpose: task?.task.purpose,
      federation: identity,
      ...(issuedTokenType ? { issuedTokenType } : {}),
    },
    req,
  ).catch(async (err: unknown) => {
    if (err instanceof OAuthError && err.detail?.['reason'] === 'federation_token_replay')
      await auditReplay(ctx, identity, err, req);
    throw err;
  });
}

/**
 * A federation token presented by a second holder: someone copied it from the job (a log, a runner's
 * disk). Its own event, apart from the refusal, so alerting can key on it. About the workload (its
 * subject), by no one: whoever presented the copy proved nothing.
 */
async function auditReplay(
  ctx: WritContext,
  f: FederatedIdentity,
  err: OAuthError,
  req: RequestInfo,
): Promise<void> {
  await ctx.audit.append({
    type: 'federation.token_replayed',
    outcome: 'refused',
    actor: 'anonymous',
    subject: f.workload.id,
    data: {
      issuer: f.issuer,
      token_sub: f.tokenSubject,
      ...(f.jti !== undefined ? { jti: f.jti } : {}),
      fingerprint: f.fingerprint,
      holder: err.detail?.['holder'],
      ip: req.ip,
      suspicion: 'possible theft: a second holder presented a federation token bound to its first holder',
    },
  });
}

/**
 * The task of the CI run a federation token belongs to: its id is derived from the issuer, workload and
 * run labels, so every job of the run shares it, and once it is closed (closing revokes its tokens) the
 * run cannot open it again. Opened on first use with the longest lifetime the workload's classes allow.
 */
async function runTask(ctx: WritContext, f: FederatedIdentity): Promise<Task | undefined> {
  if (!f.run) return undefined;
  const digest = createHash('sha256')
    .update(canonicalJson({ issuer: f.issuer, workload: f.workload.id, labels: f.run.labels }))
    .digest('base64url');
  const id = `task_run_${digest.slice(0, 27)}`;
  const existing = await ctx.store.getTask(id);
  if (existing) return existing;
  if (taskCeiling(ctx, f.workload) === 0) return undefined;
  try {
    return await openTask(ctx, {
      id,
      workload: f.workload,
      purpose: f.run.purpose,
      labels: f.run.labels,
      openedBy: `federation:${f.issuer}`,
    });
  } catch (err) {
    // Another request of the same run opened it first.
    const raced = await ctx.store.getTask(id);
    if (raced) return raced;
    throw err;
  }
}
