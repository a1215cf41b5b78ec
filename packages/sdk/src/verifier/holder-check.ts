import type { VerifyAlgorithm } from '../jose/jwk.js';
import type { AccessTokenClaims } from '../wire/claims.js';
import type { DpopNonceSource } from './dpop-nonces.js';
import type { ReplayStore } from './replay-cache.js';
import { type BindingCheck, checkHolderBinding, type PresentedRequest, RequestRefusal } from './request.js';

export interface HolderCheckOptions {
  algorithms: readonly VerifyAlgorithm[];
  /** Accept DPoP proofs with `iat` this many seconds either side of now. */
  iatWindow: number;
  /** What the verifier's options call `algorithms` and `iatWindow`, for refusals. */
  settingNames?: BindingCheck['settingNames'];
  /** Where proof `jti`s are recorded: a replayed proof is refused. */
  replay: ReplayStore;
  /** Require the resource server's nonce in proofs (RFC 9449 §9). */
  nonces?: DpopNonceSource | undefined;
}

/**
 * The holder-binding check of one verifier: DPoP proofs single use through its replay store, its nonce
 * policy, and a `use_dpop_nonce` refusal that carries the nonce to retry with.
 */
export function createHolderCheck(
  o: HolderCheckOptions,
): (
  req: PresentedRequest,
  presented: { scheme: 'DPoP' | 'Bearer'; token: string },
  claims: Pick<AccessTokenClaims, 'cnf'>,
  nowSeconds: number,
  tokenSha256?: string,
) => Promise<void> {
  const { nonces, replay } = o;
  return async (req, presented, claims, nowSeconds, tokenSha256) => {
    // An unbound token presented as Bearer has no binding to check: skip building the proof check.
    if (claims.cnf === undefined && presented.scheme === 'Bearer') return;
    try {
      await checkHolderBinding(req, presented, claims, {
        algorithms: o.algorithms,
        nowSeconds,
        iatWindow: o.iatWindow,
        ...(o.settingNames ? { settingNames: o.settingNames } : {}),
        consumeJti: (key, exp) => replay.consume(key, exp, nowSeconds),
        ...(tokenSha256 !== undefined ? { accessTokenSha256: tokenSha256 } : {}),
        ...(nonces ? { nonce: (n: string | undefined) => nonces.valid(n) } : {}),
      });
    } catch (err) {
      if (nonces && err instanceof RequestRefusal && err.code === 'use_dpop_nonce')
        throw new RequestRefusal(err.code, err.reason, err.message, { dpopNonce: nonces.current() });
      throw err;
    }
  };
}
