import type { AccessTokenClaims } from '../../wire/claims.js';
import type { ClientCertificateInput } from '../certificate-binding.js';
import { type PresentedRequest, presentedToken, RequestRefusal } from '../request.js';
import type { UseContext } from '../usage.js';
import type { Verifier } from '../verifier.js';
import { type Refusal, refusal } from './refusal.js';

/** Options every framework adapter takes. */
export interface WritMiddlewareOptions {
  /**
   * Required: this API's public URL as clients address it, origin and path prefix if any
   * (`https://api.example.com`, `https://example.com/api`). DPoP proofs (`htu`) are checked against it
   * plus the request path. It is never taken from the request: Host and X-Forwarded-* headers are the
   * client's word. An API reached by several names lists them all; the request's host then picks one of
   * them (the first when it names none).
   */
  baseUrl: string | readonly string[];
  /** Scopes every request must carry, all of them; 403 `insufficient_scope` otherwise. */
  scopes?: readonly string[];
  /**
   * The API's own check of a request whose token verified, beyond scopes (a route table, say): throw a
   * `RequestRefusal` to refuse. It runs inside the verifier, so the usage report carries the final
   * decision and its reason.
   */
  check?: (claims: AccessTokenClaims) => void;
  /**
   * Accept tokens sent with the Bearer scheme. Default true. With false only holder-bound tokens pass:
   * DPoP-bound, or bound to the client certificate of this connection (`binding: mtls`).
   */
  bearer?: boolean;
  /** DPoP algorithms announced in the challenge (`algs`). Default ES256 EdDSA ES384 PS256, as the verifier. */
  algs?: readonly string[];
  realm?: string;
}

/** What decide() and the refusal answer need: everything but where the API is (the URL is in the parts). */
export type DecideOptions = Omit<WritMiddlewareOptions, 'baseUrl'>;

/** What a request presents, before the framework-specific parts are read. */
export interface HttpRequestParts {
  method: string;
  url: string;
  authorization: string | undefined;
  /** Every DPoP header line as received (a joined `a, b` counts as two). */
  dpop: readonly string[];
  /** For usage reports: the peer address and User-Agent, when the framework knows them. */
  source?: string | undefined;
  userAgent?: string | undefined;
  /** The peer certificate of a mutual-TLS connection, for certificate-bound tokens (RFC 8705 §3). */
  clientCertificate?: ClientCertificateInput | undefined;
}

export type Decision =
  | { ok: true; claims: AccessTokenClaims; cached: boolean }
  | {
      ok: false;
      refusal: Refusal;
      /** What was refused and why (its `reason`), for the caller's own records; undefined without credentials. */
      error?: RequestRefusal;
    };

/**
 * Runs the verifier on one request and says what to answer: the claims, or a refusal with its status,
 * `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9449 §7.1) and body. Errors that are not refusals
 * (a verifier bug, an introspection endpoint down) are thrown for the framework to handle.
 */
export async function decide(
  verifier: Verifier,
  parts: HttpRequestParts,
  o: DecideOptions,
): Promise<Decision> {
  const authorization = parts.authorization?.trim();
  // RFC 6750 §3.1: a request without credentials gets the challenge and no error code.
  if (!authorization) return { ok: false, refusal: refusal(undefined, undefined, o) };
  let scheme: 'DPoP' | 'Bearer' | undefined;
  try {
    scheme = presentedToken(authorization).scheme;
    const dpop = dpopProofs(parts.dpop);
    // RFC 9449 §4.3 check 1, whatever the token: two proofs are never acceptable.
    if (dpop.length > 1)
      throw new RequestRefusal(
        'invalid_dpop_proof',
        'dpop_single_header',
        'exactly one DPoP header is allowed',
      );
    const check = (c: AccessTokenClaims) => {
      if (o.bearer === false && c.cnf?.jkt === undefined && c.cnf?.['x5t#S256'] === undefined)
        throw new RequestRefusal(
          'invalid_token',
          'bearer_not_allowed',
          'this API accepts DPoP-bound tokens only',
        );
      if (missingScopes(c.scope, o.scopes).length > 0)
        throw new RequestRefusal(
          'insufficient_scope',
          'insufficient_scope',
          'the token lacks a scope this request needs',
        );
      o.check?.(c);
    };
    // One object, without spreads: this runs on every request.
    const presented: PresentedRequest & UseContext = {
      authorization,
      dpop,
      method: parts.method.toUpperCase(),
      url: parts.url,
      // Inside verify(), so a usage report carries the final decision.
      check,
    };
    if (parts.clientCertificate !== undefined) presented.clientCertificate = parts.clientCertificate;
    if (parts.source !== undefined) presented.source = parts.source;
    if (parts.userAgent !== undefined) presented.userAgent = parts.userAgent;
    const { claims, cached } = await verifier.verify(presented);
    // Again here: a Verifier of another make may not run `check`, and these checks must not be skipped.
    check(claims);
    return { ok: true, claims, cached };
  } catch (err) {
    if (err instanceof RequestRefusal) return { ok: false, refusal: refusal(err, scheme, o), error: err };
    throw err;
  }
}

/**
 * The DPoP proofs of the header lines: each line split at commas, trimmed, empty ones dropped. The usual
 * request, one line holding one proof, is handed back as it is, without the three arrays of the split.
 */
function dpopProofs(lines: readonly string[]): readonly string[] {
  if (lines.length === 0) return lines;
  if (lines.length === 1) {
    const v = lines[0]!;
    if (v !== '' && !v.includes(',') && v.trim() === v) return lines;
  }
  return lines
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

function missingScopes(granted: string, required: readonly string[] | undefined): string[] {
  if (!required || required.length === 0) return [];
  const have = new Set(granted.split(' '));
  return required.filter((s) => !have.has(s));
}
