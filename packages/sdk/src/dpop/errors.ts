import { WritError } from '../wire/errors.js';

/** Why a DPoP proof was refused: the RFC 9449 §4.3 check that failed (1–12), or replay. */
export type DpopCheck =
  | 'single_header'
  | 'well_formed'
  | 'required_claims'
  | 'typ'
  | 'alg'
  | 'signature'
  | 'private_key'
  | 'htm'
  | 'htu'
  | 'nonce'
  | 'iat'
  | 'ath'
  | 'jkt'
  | 'replay';

/** A refused proof: `invalid_dpop_proof`, or `use_dpop_nonce` when a (fresh) server nonce is needed. */
export class DpopError extends WritError {
  declare readonly code: 'invalid_dpop_proof' | 'use_dpop_nonce';
  /** `dpop_` and the check. */
  declare readonly reason: `dpop_${DpopCheck}`;
  readonly check: DpopCheck;
  constructor(
    check: DpopCheck,
    message: string,
    code: 'invalid_dpop_proof' | 'use_dpop_nonce' = 'invalid_dpop_proof',
  ) {
    super(code, `dpop_${check}`, message);
    this.name = 'DpopError';
    this.check = check;
  }
}
