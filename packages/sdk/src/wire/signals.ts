import type { RefusalReason } from './errors.js';

/**
 * Security signals a verifier reports in a usage record's `signal` field, beside the refusal `reason`:
 * the refusals that say something about who holds a token, not only that it failed. The server's
 * detection rules match on them (`event.signal`), and the SDK sends a record carrying one at once
 * instead of waiting for its batch.
 */
export const VERIFIER_SIGNALS = {
  dpop_replay: 'a DPoP proof `jti` was presented again: someone replays a captured request',
  key_missing: 'a DPoP- or certificate-bound token was presented without its key (as a bearer token)',
  key_mismatch: 'a bound token was presented with another DPoP key or client certificate than its own',
  revoked: 'a revoked token (or one of an ended task) was presented: someone kept it',
  expired: 'an expired token was presented',
  wrong_audience: 'a Writ token for another API was presented here',
  stale: "the verifier's revocation state is stale and it refuses every token",
} as const;

export type VerifierSignal = keyof typeof VERIFIER_SIGNALS;

export function isVerifierSignal(value: unknown): value is VerifierSignal {
  return typeof value === 'string' && Object.hasOwn(VERIFIER_SIGNALS, value);
}

/**
 * The refusal reasons that carry a security signal, and which. A verifier checks a DPoP proof or a
 * client certificate only for a token bound to one (`checkHolderBinding`), so the binding reasons below
 * arise only for bound tokens: `dpop_single_header` there means the DPoP scheme came without a proof
 * (the middleware refuses two proofs before it verifies anything; a bound token that reaches `verify()`
 * with two did not come with one proof by its key either).
 */
const SIGNAL_OF_REASON: Partial<Record<RefusalReason, VerifierSignal>> = {
  dpop_replay: 'dpop_replay',
  dpop_bound_as_bearer: 'key_missing',
  dpop_single_header: 'key_missing',
  mtls_certificate_missing: 'key_missing',
  mtls_binding_required: 'key_missing',
  dpop_jkt: 'key_mismatch',
  mtls_certificate_mismatch: 'key_mismatch',
  revoked: 'revoked',
  expired: 'expired',
  aud: 'wrong_audience',
  stale: 'stale',
};

/** The signal a verifier's refusal carries, if any: `signalOfRefusal('dpop_jkt')` is `key_mismatch`. */
export function signalOfRefusal(reason: string | undefined): VerifierSignal | undefined {
  return reason === undefined ? undefined : SIGNAL_OF_REASON[reason as RefusalReason];
}
