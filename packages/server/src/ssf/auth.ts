import type { FastifyRequest } from 'fastify';
import { authenticateAdmin } from '../admin/admin-auth.js';
import { adminAudience, type WritContext } from '../context.js';
import { authenticateResourceCaller } from '../oauth/resource-token.js';
import type { SsfCaller } from './streams.js';
import { ssfAudience } from './vocabulary.js';

/**
 * Stream management and polling take an admin token (an operator manages every stream) or a receiver
 * workload's Writ token for `<issuer>/ssf`, DPoP-bound when its class says so (a receiver sees and
 * changes only the streams it created). The token's `aud` picks the check; both verify it fully.
 */
export async function authenticateSsfCaller(ctx: WritContext, req: FastifyRequest): Promise<SsfCaller> {
  const token = /^(?:Bearer|DPoP) +(\S+)$/i.exec(req.headers.authorization?.trim() ?? '')?.[1];
  if (token !== undefined && claimedAudience(token) === adminAudience(ctx.settings.issuer)) {
    const { operator } = await authenticateAdmin(ctx, req.headers.authorization);
    return { kind: 'operator', id: operator };
  }
  const caller = await authenticateResourceCaller(ctx, req, ssfAudience(ctx.settings.issuer));
  return { kind: 'receiver', id: caller.clientId };
}

/** The `aud` a token claims, unverified: only to choose which verification applies. */
function claimedAudience(token: string): unknown {
  const payload = token.split('.')[1];
  if (payload === undefined || payload.length > 16_384) return undefined;
  try {
    return (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { aud?: unknown }).aud;
  } catch {
    return undefined;
  }
}
