import { GrantType } from '@writ/sdk/wire';
import { certificateBinding } from '../../auth/client/tls-client-auth.js';
import { authenticateClient } from '../../auth/client.js';
import { Paths } from '../../context.js';
import { checkTokenEndpointDpop } from '../../dpop/check.js';
import { invalidGrant, OAuthError } from '../../errors.js';
import type { BreakGlass } from '../../governance/break-glass.js';
import { breakGlassFor } from '../../governance/break-glass-operations.js';
import { single } from '../../request/form.js';
import { taskForIssuance } from '../../tasks/tasks.js';
import { type Grantable, parseScope, selectClass } from '../class-selection.js';
import { issueAccessToken } from '../issue.js';
import { requestedAudience, requestedTtl } from '../request-params.js';
import type { Grant } from './grant.js';

/**
 * The class the workload's own classes give; when they refuse (audience or scope), an active
 * break-glass grant's class that allows the request, else the original refusal.
 */
async function selectOrBreakGlass(
  own: () => Grantable,
  grant: () => Promise<{ grant: BreakGlass; selected: Grantable } | undefined>,
): Promise<{ selected: Grantable; breakGlass?: BreakGlass }> {
  try {
    return { selected: own() };
  } catch (err) {
    if (!(err instanceof OAuthError)) throw err;
    const g = await grant();
    if (!g) throw err;
    return { selected: g.selected, breakGlass: g.grant };
  }
}

/** RFC 6749 §4.4: a workload authenticates and asks for a token for one audience. */
export const clientCredentials: Grant = {
  grantType: GrantType.clientCredentials,
  async handle(ctx, params, req) {
    const client = await authenticateClient(ctx, params, req, {
      endpoint: Paths.token,
      consume: 'with_issuance',
    });
    const audience = requestedAudience(params);
    const requested = parseScope(single(params, 'scope', 4096));
    const { selected, breakGlass } = await selectOrBreakGlass(
      () => selectClass(client.legacyClasses ?? client.workload.classes, ctx.registry, audience, requested),
      () =>
        client.legacyClasses
          ? Promise.resolve(undefined)
          : breakGlassFor(ctx, client.workload.id, audience, requested),
    );
    const { tokenClass, scopes } = selected;
    let taskId = single(params, 'task_id', 128);
    if (breakGlass) {
      // Tokens under a grant live in its task, so they end with it (closing it revokes them).
      if (taskId !== undefined && taskId !== breakGlass.taskId)
        throw invalidGrant(
          `tokens of class ${tokenClass.name} are issued under break-glass ${breakGlass.id}, in its task ${breakGlass.taskId}: send that task_id or none`,
          { reason: 'breakglass_task' },
        );
      taskId = breakGlass.taskId;
    }
    const task =
      taskId === undefined
        ? undefined
        : await taskForIssuance(ctx, taskId, client.workload.id, tokenClass.renewalMaxLifetime);
    const x5t = certificateBinding(tokenClass, client);
    const dpop = await checkTokenEndpointDpop(ctx, req, Paths.token, tokenClass.binding === 'dpop');
    return issueAccessToken(
      ctx,
      {
        grantType: GrantType.clientCredentials,
        workloadId: client.workload.id,
        tokenClass: tokenClass.name,
        audience,
        scopes,
        ttl: requestedTtl(params, tokenClass),
        authMethod: client.method,
        ...(client.key !== undefined ? { clientKey: client.key } : {}),
        replay: client.replay,
        legacyException: client.legacyClasses ? tokenClass.name : undefined,
        exception: client.legacyExceptions?.get(tokenClass.name),
        breakglass: breakGlass?.id,
        dpop,
        ...(x5t !== undefined ? { x5t } : {}),
        tid: task?.task.id,
        notAfter: task?.notAfter,
        renewal: task?.renewal,
        purpose: task?.task.purpose,
      },
      req,
    );
  },
};
