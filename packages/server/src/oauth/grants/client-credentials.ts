import { GrantType } from '@writ/sdk/wire';
import { certificateBinding } from '../../auth/client/tls-client-auth.js';
import { authenticateClient } from '../../auth/client.js';
import { Paths } from '../../context.js';
import { checkTokenEndpointDpop } from '../../dpop/check.js';
import { single } from '../../request/form.js';
import { taskForIssuance } from '../../tasks/tasks.js';
import { parseScope, selectClass } from '../class-selection.js';
import { issueAccessToken } from '../issue.js';
import { requestedAudience, requestedTtl } from '../request-params.js';
import type { Grant } from './grant.js';

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
    const { tokenClass, scopes } = selectClass(
      client.legacyClasses ?? client.workload.classes,
      ctx.registry,
      audience,
      requested,
    );
    const taskId = single(params, 'task_id', 128);
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
        replay: client.replay,
        legacyException: client.legacyClasses ? tokenClass.name : undefined,
        exception: client.legacyExceptions?.get(tokenClass.name),
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
