import { createHash } from 'node:crypto';
import { isPlainObject, parseBoundedJson } from '../jose/json.js';
import {
  importPublicJwk,
  isVerifyAlgorithm,
  type VerificationKey,
  type VerifyAlgorithm,
} from '../jose/jwk.js';
import { decodeCompactJws, type JwsHeader, verifySignature } from '../jose/jws.js';
import { DpopError } from './errors.js';
import { normalizeHtu } from './htu.js';

export const DPOP_TYP = 'dpop+jwt';

export interface DpopVerifyOptions {
  /** Every value of the request's `DPoP` header (check 1: there must be exactly one). */
  headerValues: readonly string[];
  method: string;
  /** The URI the request was sent to, as the server knows it (its public base + path). */
  url: string;
  /** Allow-list of proof algorithms (asymmetric only). */
  algorithms: readonly VerifyAlgorithm[];
  nowSeconds: number;
  /** Accept proofs with `iat` within this many seconds of now, either way (check 11). */
  iatWindow: number;
  /** When a token is presented with the proof: `ath` must be its hash (check 12). */
  accessToken?: string;
  /**
   * `accessTokenHash(accessToken)` when the caller has it already (a verifier's token cache keys tokens
   * by it): `ath` is compared with it rather than hashing the token a second time. It must be the hash
   * of `accessToken` itself; without `accessToken` it is ignored.
   */
  accessTokenSha256?: string;
  /** `cnf.jkt` of the presented token: the proof key must have this thumbprint (check 12). */
  expectedJkt?: string;
  /** Server nonce policy (check 10): undefined = no nonce required; else a predicate over the claim. */
  nonce?: (value: string | undefined) => boolean;
  /** Records the proof `jti`; false if already seen within the window (replay). */
  consumeJti: (jti: string, expiresAtSeconds: number) => boolean | Promise<boolean>;
  maxBytes?: number;
  /**
   * The names of the settings that hold `algorithms` and `iatWindow` where the caller configures them
   * (`dpop.algorithms`, `dpopIatWindow`…): refusals name them, so a client knows what decides.
   */
  settingNames?: { algorithms?: string; iatWindow?: string };
}

export interface VerifiedDpopProof {
  /** RFC 7638 thumbprint of the proof key: what `cnf.jkt` binds to. */
  jkt: string;
  jti: string;
  iat: number;
}

/** `ath`: base64url SHA-256 of the ASCII access token (RFC 9449 §4.2). */
export const accessTokenHash = (token: string): string =>
  createHash('sha256').update(token, 'ascii').digest('base64url');

// The token endpoint verifies every proof against the same URL: remember the last one normalised.
let lastUrl: string | undefined;
let lastNormalized: string | undefined;
function normalizedRequestUrl(url: string): string | undefined {
  if (url !== lastUrl) {
    lastNormalized = normalizeHtu(url);
    lastUrl = url;
  }
  return lastNormalized;
}

/**
 * The protected header of a proof that passed every check, by its encoded text: its own checks (`typ`,
 * an allowed `alg`, no `crit`, a public `jwk` that fits `alg`) and, with it, the whole proof (signature,
 * binding, replay). A holder sends the same header on every proof, so the next proof with this exact
 * text needs no second decode, parse and key import; the checks that depend on the caller's options
 * (`algorithms`, `expectedJkt`) and everything of the payload and signature run every time. First in,
 * first out past `CHECKED_HEADERS_MAX`: bounded whoever sends proofs.
 */
interface CheckedHeader {
  encoded: string;
  header: JwsHeader;
  alg: VerifyAlgorithm;
  key: VerificationKey;
}
const checkedHeaders = new Map<string, CheckedHeader>();
const CHECKED_HEADERS_MAX = 1000;

function rememberHeader(h: CheckedHeader): void {
  if (checkedHeaders.size >= CHECKED_HEADERS_MAX) {
    const oldest = checkedHeaders.keys().next().value;
    if (oldest !== undefined) checkedHeaders.delete(oldest);
  }
  checkedHeaders.set(h.encoded, h);
}

/**
 * Verifies a DPoP proof with every check of RFC 9449 §4.3, in order, plus single use of `jti`.
 * Throws DpopError naming the failed check; `use_dpop_nonce` when the nonce is missing or stale.
 */
export async function verifyDpopProof(o: DpopVerifyOptions): Promise<VerifiedDpopProof> {
  // 1. exactly one DPoP header field
  if (o.headerValues.length !== 1)
    throw new DpopError(
      'single_header',
      `exactly one DPoP header is required; the request has ${o.headerValues.length}`,
    );
  const proof = o.headerValues[0]!;
  // 2. a single well-formed JWT
  if (proof.includes(',') || /\s/.test(proof))
    throw new DpopError('well_formed', 'DPoP header must hold a single JWT');
  const dot = proof.indexOf('.');
  const cached = dot > 0 ? checkedHeaders.get(proof.slice(0, dot)) : undefined;
  let jws: ReturnType<typeof decodeCompactJws>;
  try {
    jws = decodeCompactJws(proof, o.maxBytes ?? 4096, cached);
  } catch (err) {
    throw new DpopError('well_formed', `DPoP proof is not a compact JWS: ${(err as Error).message}`);
  }
  let claims: unknown;
  try {
    claims = parseBoundedJson(jws.payload.toString('utf8'), 4);
  } catch {
    throw new DpopError('well_formed', 'DPoP proof payload is not JSON');
  }
  if (!isPlainObject(claims)) throw new DpopError('well_formed', 'DPoP proof payload is not a JSON object');
  const { header } = jws;
  // 3. required header parameters and claims
  const jwk = header['jwk'];
  const { jti, htm, htu, iat } = claims as Record<string, unknown>;
  if (
    !isPlainObject(jwk) ||
    typeof jti !== 'string' ||
    jti.length === 0 ||
    jti.length > 256 ||
    typeof htm !== 'string' ||
    typeof htu !== 'string' ||
    typeof iat !== 'number' ||
    !Number.isFinite(iat) ||
    (o.accessToken !== undefined && typeof claims['ath'] !== 'string')
  ) {
    // The list is made only for the refusal: a proof that passes allocates none of it.
    const lacking = [
      isPlainObject(jwk) ? undefined : 'a jwk header',
      typeof jti === 'string' && jti.length > 0 && jti.length <= 256
        ? undefined
        : 'jti (1 to 256 characters)',
      typeof htm === 'string' ? undefined : 'htm',
      typeof htu === 'string' ? undefined : 'htu',
      typeof iat === 'number' && Number.isFinite(iat) ? undefined : 'a numeric iat',
      o.accessToken === undefined || typeof claims['ath'] === 'string'
        ? undefined
        : 'ath (the hash of the access token it is sent with)',
    ].filter((m) => m !== undefined);
    throw new DpopError('required_claims', `DPoP proof lacks ${lacking.join(', ')}`);
  }
  let alg: VerifyAlgorithm;
  let key: VerificationKey;
  if (cached !== undefined) {
    // 4, 5, 7: this very header passed them before; only the caller's allow-list may differ.
    alg = cached.alg;
    key = cached.key;
    if (!o.algorithms.includes(alg))
      throw new DpopError(
        'alg',
        `DPoP proof alg must be one of ${o.algorithms.join(', ')}${setting(o.settingNames?.algorithms)}`,
      );
  } else {
    // 4. typ
    if (header.typ !== DPOP_TYP) throw new DpopError('typ', `DPoP proof typ must be ${DPOP_TYP}`);
    // 5. asymmetric, allowed algorithm
    const named = header.alg;
    if (!isVerifyAlgorithm(named) || !o.algorithms.includes(named))
      throw new DpopError(
        'alg',
        `DPoP proof alg must be one of ${o.algorithms.join(', ')}${setting(o.settingNames?.algorithms)}`,
      );
    alg = named;
    if (header['crit'] !== undefined)
      throw new DpopError('well_formed', 'DPoP proof has a crit header: no extension is supported');
    // 7. the jwk must be public (checked before use)
    try {
      key = importPublicJwk(jwk);
    } catch (err) {
      const isPrivate = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((m) => m in jwk);
      throw new DpopError(
        isPrivate ? 'private_key' : 'signature',
        isPrivate
          ? 'DPoP proof jwk holds private key material: put the public key only in the header'
          : `DPoP proof jwk is not an acceptable public key: ${(err as Error).message.slice(0, 100)}`,
      );
    }
    if (!key.algorithms.includes(alg))
      throw new DpopError('alg', `DPoP proof alg ${alg} does not fit its jwk (key type or curve)`);
  }
  // 6. signature with the embedded key
  if (!verifySignature(alg, key.key, jws.signingInput, jws.signature))
    throw new DpopError('signature', 'DPoP proof signature does not verify with its jwk');
  // 8. htm
  const method = o.method.toUpperCase();
  if (htm !== method)
    throw new DpopError('htm', `DPoP proof htm must be ${method.slice(0, 16)}, the request method`);
  // 9. htu, ignoring query and fragment (a proof naming the URL exactly as the request did needs
  // no second parse; the request's own URL is normalised once per distinct URL in a row)
  const want = normalizedRequestUrl(o.url);
  if (want === undefined || (htu !== o.url && normalizeHtu(htu) !== want))
    throw new DpopError(
      'htu',
      want !== undefined && want.length <= 120
        ? `DPoP proof htu must be ${want}, the request URI without query and fragment`
        : 'DPoP proof htu must be the request URI without query and fragment',
    );
  // 10. nonce
  if (o.nonce) {
    const n = claims['nonce'];
    if (!o.nonce(typeof n === 'string' ? n : undefined))
      throw new DpopError(
        'nonce',
        `${n === undefined ? 'a server nonce is required in the DPoP proof' : 'the DPoP proof nonce is stale or not one this server issued'}: retry with the nonce sent in the DPoP-Nonce header`,
        'use_dpop_nonce',
      );
  }
  // 11. iat window
  if (Math.abs(iat - o.nowSeconds) > o.iatWindow) {
    const off = Math.round(iat - o.nowSeconds);
    throw new DpopError(
      'iat',
      `DPoP proof iat is ${Math.abs(off)}s ${off > 0 ? 'ahead of' : 'behind'} the server clock; proofs are accepted within ${o.iatWindow}s${setting(o.settingNames?.iatWindow)}: make a new proof per request`,
    );
  }
  // 12. ath and key binding of a presented token
  if (
    o.accessToken !== undefined &&
    claims['ath'] !== (o.accessTokenSha256 ?? accessTokenHash(o.accessToken))
  ) {
    throw new DpopError(
      'ath',
      'DPoP proof ath must be the base64url SHA-256 of the access token sent with it',
    );
  }
  if (o.expectedJkt !== undefined && key.thumbprint !== o.expectedJkt) {
    throw new DpopError('jkt', 'DPoP proof key is not the key the token is bound to (its cnf.jkt)');
  }
  // single use within the window
  if (!(await o.consumeJti(`${key.thumbprint}:${jti}`, iat + o.iatWindow)))
    throw new DpopError('replay', 'DPoP proof jti was already used: make a new proof for every request');
  // Every check passed: the header is one to know again (only now, so no refused proof is remembered).
  if (cached === undefined) rememberHeader({ encoded: proof.slice(0, dot), header, alg, key });
  return { jkt: key.thumbprint, jti, iat };
}

/** ` (name)`: the setting a description points at, when the caller named it. */
const setting = (name: string | undefined): string => (name === undefined ? '' : ` (${name})`);
