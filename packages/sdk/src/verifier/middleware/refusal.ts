import { type RequestRefusal, safeDescription } from '../request-refusal.js';

/** An HTTP answer to a refused request, for any framework to send as it is. */
export interface Refusal {
  status: number;
  headers: Record<string, string | string[]>;
  body: { error?: string; error_description: string };
}

/** What of the middleware's options shapes a refusal's challenges. */
export interface ChallengeOptions {
  /** Whether Bearer tokens are accepted (default true): a `Bearer` challenge is sent beside `DPoP`. */
  bearer?: boolean;
  /** Named in the challenge of an `insufficient_scope` refusal. */
  scopes?: readonly string[];
  realm?: string;
  algs?: readonly string[];
}

export const DEFAULT_ALGS: readonly string[] = ['ES256', 'EdDSA', 'ES384', 'PS256'];

/**
 * The answer to a refusal (RFC 6750 §3, RFC 9449 §7.1): 400 `invalid_request`, 403 `insufficient_scope`,
 * 401 otherwise, with a `DPoP` challenge (with `algs`) and, when Bearer tokens are accepted, a `Bearer`
 * challenge. The error goes in the challenge of the scheme the client should use: the one it used,
 * except for proof errors and a DPoP-bound token sent as Bearer, which belong to DPoP. A verifier whose
 * revocation state is stale answers 503: no token would do, so no challenge is sent.
 * `err` undefined: the request had no credentials, so the challenges carry no error (RFC 6750 §3.1).
 */
export function refusal(
  err: RequestRefusal | undefined,
  scheme: 'DPoP' | 'Bearer' | undefined,
  o: ChallengeOptions,
): Refusal {
  const json = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  if (err?.reason === 'stale')
    return {
      status: 503,
      headers: { ...json, 'retry-after': '1' },
      body: { error: 'temporarily_unavailable', error_description: err.description },
    };
  const bearer = o.bearer !== false;
  const toDpop =
    !bearer ||
    scheme !== 'Bearer' ||
    err?.code === 'invalid_dpop_proof' ||
    err?.code === 'use_dpop_nonce' ||
    err?.reason === 'dpop_bound_as_bearer';
  const error = err
    ? [
        `error="${err.code}"`,
        `error_description="${err.description}"`,
        ...(err.code === 'insufficient_scope' && o.scopes ? [`scope="${quoted(o.scopes.join(' '))}"`] : []),
      ]
    : [];
  const realm = o.realm !== undefined ? [`realm="${quoted(o.realm)}"`] : [];
  const dpopParams = [...realm, ...(toDpop ? error : []), `algs="${(o.algs ?? DEFAULT_ALGS).join(' ')}"`];
  const challenges = [`DPoP ${dpopParams.join(', ')}`];
  if (bearer) {
    const bearerParams = [...realm, ...(toDpop ? [] : error)];
    challenges.push(bearerParams.length > 0 ? `Bearer ${bearerParams.join(', ')}` : 'Bearer');
  }
  const headers: Record<string, string | string[]> = { ...json, 'www-authenticate': challenges };
  if (err?.dpopNonce !== undefined) headers['dpop-nonce'] = err.dpopNonce;
  return {
    status: err === undefined ? 401 : statusOf(err),
    headers,
    body: err
      ? { error: err.code, error_description: err.description }
      : { error_description: 'an access token is required (Authorization: DPoP or Bearer)' },
  };
}

function statusOf(err: RequestRefusal): number {
  if (err.code === 'invalid_request') return 400;
  if (err.code === 'insufficient_scope') return 403;
  return 401;
}

const quoted = (s: string): string => safeDescription(s);
