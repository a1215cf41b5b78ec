import { authenticateOperatorOrBearer } from '../auth/admin.js';
import type { RequestInfo, WritContext } from '../context.js';
import type { SsfCaller } from './streams.js';
import { ssfAudience } from './vocabulary.js';

/**
 * Stream management and polling take an admin token (an operator manages every stream) or a receiver
 * workload's Writ token for `<issuer>/ssf`, DPoP-bound when its class says so (a receiver sees and
 * changes only the streams it created).
 */
export async function authenticateSsfCaller(ctx: WritContext, req: RequestInfo): Promise<SsfCaller> {
  const caller = await authenticateOperatorOrBearer(ctx, req, ssfAudience(ctx.settings.issuer));
  return caller.kind === 'operator' ? caller : { kind: 'receiver', id: caller.id };
}
