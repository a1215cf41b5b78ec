import { DpopError, verifyDpopProof } from '@writ/sdk/dpop';
import { seconds } from '../clock.js';
import type { RequestInfo, WritContext } from '../context.js';
import { OAuthError } from '../errors.js';

/** The settings DPoP refusals name. */
export const DPOP_SETTINGS = { algorithms: 'dpop.algorithms', iatWindow: 'dpop.iat_window' } as const;

/** A verified proof whose `jti` still has to be consumed (inside the issuance transaction). */
export interface DpopBinding {
  jkt: string;
  replayKey: string;
  /** Milliseconds. */
  replayUntil: number;
}

/**
 * Checks the DPoP proof of a token-endpoint request (RFC 9449 §5). Returns the binding, or undefined
 * when no proof was sent and none is required. Refusals carry a fresh `DPoP-Nonce`.
 */
export async function checkTokenEndpointDpop(
  ctx: WritContext,
  req: RequestInfo,
  path: string,
  required: boolean,
): Promise<DpopBinding | undefined> {
  if (req.dpop.length === 0) {
    if (!required) return undefined;
    throw dpopError(
      ctx,
      new DpopError(
        'single_header',
        'this token class binds tokens to a DPoP key (binding: dpop): send a DPoP proof header (RFC 9449)',
      ),
    );
  }
  const { dpop } = ctx.settings;
  let replay: { key: string; until: number } | undefined;
  try {
    const proof = await verifyDpopProof({
      headerValues: req.dpop,
      method: 'POST',
      url: `${ctx.settings.issuer}${path}`,
      algorithms: dpop.algorithms,
      nowSeconds: seconds(ctx.clock.now()),
      iatWindow: dpop.iatWindow,
      settingNames: DPOP_SETTINGS,
      ...(dpop.requireNonce ? { nonce: (n: string | undefined) => ctx.dpopNonces.valid(n) } : {}),
      consumeJti: (key, exp) => {
        replay = { key, until: exp * 1000 };
        return true;
      },
    });
    return { jkt: proof.jkt, replayKey: replay!.key, replayUntil: replay!.until };
  } catch (err) {
    if (err instanceof DpopError) throw dpopError(ctx, err);
    throw err;
  }
}

export function dpopError(ctx: WritContext, err: DpopError): OAuthError {
  return new OAuthError(err.code, err.message, {
    headers: { 'dpop-nonce': ctx.dpopNonces.current() },
    detail: { reason: `dpop_${err.check}` },
  });
}
