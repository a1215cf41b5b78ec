import assert from 'node:assert/strict';
import { REFUSAL_REASONS, type RefusalReason } from '@writ/sdk/wire';

/**
 * The refusal reasons whose `error_description` must say which check failed and what would pass
 * (docs/errors.md, "What a description tells"), by the test file that proves it, one row per reason.
 */
export const SAY_WHY = {
  /** say-why.test.ts: client authentication, client assertions, DPoP. */
  assertions: [
    'no_client_auth',
    'multiple_client_auth',
    'unknown_client',
    'unknown_operator',
    'client_id_mismatch',
    'assertion_type',
    'malformed_basic',
    'bad_secret',
    'exception_expired',
    'replay',
    'workload_disabled',
    'workload_quarantined',
    'too_large',
    'malformed',
    'typ',
    'alg_not_allowed',
    'crit',
    'no_key',
    'bad_signature',
    'iss_sub',
    'aud',
    'exp',
    'exp_too_far',
    'expired',
    'nbf',
    'iat',
    'iat_future',
    'iat_old',
    'jti',
    'dpop_single_header',
    'dpop_well_formed',
    'dpop_required_claims',
    'dpop_typ',
    'dpop_alg',
    'dpop_signature',
    'dpop_private_key',
    'dpop_htm',
    'dpop_htu',
    'dpop_nonce',
    'dpop_iat',
    'dpop_ath',
    'dpop_jkt',
    'dpop_replay',
    'not_dpop_bound',
    'dpop_bound_as_bearer',
  ],
  /** say-why-federation.test.ts: tokens from trusted issuers. */
  federation: [
    'iss',
    'untrusted_issuer',
    'algorithm',
    'embedded_key',
    'unknown_key',
    'ambiguous_key',
    'signature',
    'audience',
    'not_yet_valid',
    'too_old',
    'jwks_unavailable',
    'condition_false',
    'subject',
    'unknown_workload',
    'federation_not_allowed',
    'federation_token_replay',
  ],
  /**
   * say-why-mtls.test.ts: client certificates. Not here, because no certificate the tests can make
   * reaches them over HTTP cheaply: `certificate_malformed`, `certificate_validity_unreadable` (node
   * parses what openssl writes), and the chain checks `certificate_intermediate_not_valid`,
   * `certificate_ca_not_valid`, `certificate_chain_too_long`, which share the one answer of
   * `certificate_untrusted` (tls-client-auth.ts `notThisClient`).
   */
  mtls: [
    'mtls_client_id_required',
    'mtls_not_registered',
    'mtls_binding_required',
    'certificate_eku',
    'certificate_key_usage',
    'certificate_not_registered',
    'certificate_untrusted',
    'certificate_not_yet_valid',
    'certificate_expired',
    'certificate_is_ca',
    'certificate_identity_mismatch',
    'no_trusted_ca',
    'forwarded_certificate_repeated',
    'forwarded_certificate_malformed',
    'forwarded_certificate_untrusted_source',
  ],
} as const satisfies Record<string, readonly RefusalReason[]>;

/** One refusal to provoke, and what its description must say. */
export interface SayWhyRow {
  reason: RefusalReason;
  /** What the case is, for the test name. */
  what: string;
}

/**
 * Checks that `rows` prove every reason of `group` at least once (a row may prove a reason another
 * group lists too, from another path: `expired` of a federation token, say).
 */
export function assertCovers(group: keyof typeof SAY_WHY, rows: readonly SayWhyRow[]): void {
  const listed = new Set<string>(Object.values(SAY_WHY).flat());
  const got = new Set<string>(rows.map((r) => r.reason));
  for (const r of listed) assert.ok(Object.hasOwn(REFUSAL_REASONS, r), `${r} is no refusal reason`);
  assert.deepEqual(
    SAY_WHY[group].filter((r) => !got.has(r)),
    [],
    `reasons of ${group} without a row`,
  );
  assert.deepEqual(
    [...got].filter((r) => !listed.has(r)),
    [],
    'rows for reasons no group lists',
  );
}
