import { decodeBase64url } from '../jose/base64url.js';

/**
 * What a Writ access token looks like from the outside, so secret scanners, log redactors and the docs
 * share one definition. Writ signs every access token with the protected header members in a fixed
 * order, `{"typ":"at+jwt","kid":"writ-<RFC 7638 thumbprint>","alg":…}`, so every token starts with the
 * same 37 base64url characters, and the header is always 116 characters long (the thumbprint is 43
 * characters; `ES256` and `EdDSA` are both 5). Both algorithms make 64-byte signatures: 86 characters.
 * Keys created before this form (a bare thumbprint as `kid`) sign tokens the pattern does not match;
 * rotate them out (`writ keys rotate`, twice).
 */

/** The `kid` prefix of Writ's signing keys: `writ-` and the key's RFC 7638 thumbprint. */
export const WRIT_KID_PREFIX = 'writ-';

/** base64url of `{"typ":"at+jwt","kid":"writ-` (28 bytes; the 37th character holds the `-`). */
export const WRIT_TOKEN_PREFIX = 'eyJ0eXAiOiJhdCtqd3QiLCJraWQiOiJ3cml0L';

/** Characters of a Writ access token's protected header (87 bytes of JSON). */
export const WRIT_TOKEN_HEADER_CHARS = 116;

/** Characters of a Writ access token's signature (64 bytes for ES256 and for EdDSA). */
export const WRIT_TOKEN_SIGNATURE_CHARS = 86;

/** Most characters a payload may have and still be matched (a scanner's bound, far above any real one). */
export const WRIT_TOKEN_MAX_PAYLOAD_CHARS = 16_384;

const B64 = 'A-Za-z0-9_-';

/**
 * Where a token may start: not inside a longer base64url run, except right after a percent-escape
 * (`access_token%3DeyJ…`, `%22eyJ…%22` in URL-encoded JSON), whose last character is a hex digit.
 */
const START = `(?:(?<![${B64}])|(?<=%[0-9A-Fa-f]{2}))`;

/**
 * The regular expression of a whole Writ access token, without boundaries, in the syntax that GitHub
 * custom patterns, GitLab, gitleaks and trufflehog accept (no lookaround):
 * prefix, the rest of the header, a payload, and an 86-character signature.
 */
export const WRIT_TOKEN_REGEX_SOURCE = `${WRIT_TOKEN_PREFIX}[${B64}]{${WRIT_TOKEN_HEADER_CHARS - WRIT_TOKEN_PREFIX.length}}\\.[${B64}]{16,}\\.[${B64}]{${WRIT_TOKEN_SIGNATURE_CHARS}}`;

/** A fresh global RegExp of whole Writ access tokens, not inside a longer base64url run. */
export function writTokenRegExp(): RegExp {
  return new RegExp(`${START}${WRIT_TOKEN_REGEX_SOURCE}(?![${B64}])`, 'g');
}

/**
 * A fresh global RegExp of anything that starts like a Writ access token: whole tokens and truncated ones
 * (a log line cut short, a token pasted half). `classifyTokenShape` tells them apart.
 */
export function writTokenFragmentRegExp(): RegExp {
  return new RegExp(
    `${START}${WRIT_TOKEN_PREFIX}[${B64}]{0,1024}(?:\\.[${B64}]{0,${WRIT_TOKEN_MAX_PAYLOAD_CHARS}}(?:\\.[${B64}]{0,1024})?)?`,
    'g',
  );
}

/** The rest of a fragment after its prefix, matched where the prefix was found (sticky). */
const FRAGMENT_REST = new RegExp(
  `[${B64}]{0,1024}(?:\\.[${B64}]{0,${WRIT_TOKEN_MAX_PAYLOAD_CHARS}}(?:\\.[${B64}]{0,1024})?)?`,
  'y',
);

const isB64 = (c: number) =>
  (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95;
const isHex = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);

/**
 * Every Writ token or token fragment in `text`, with its offset: what `writTokenFragmentRegExp` matches,
 * found by searching for the fixed prefix first (a plain substring search, about as fast as reading the
 * text) and matching the rest only there. Scanners and redactors use this on every line they see.
 * `from`: where to start looking (a caller that already searched the text for the prefix passes where it
 * found it, so the text before is not searched twice).
 */
export function findWritTokenFragments(text: string, from = 0): Array<{ index: number; token: string }> {
  const out: Array<{ index: number; token: string }> = [];
  for (let i = text.indexOf(WRIT_TOKEN_PREFIX, from); i !== -1; ) {
    const before = i === 0 ? -1 : text.charCodeAt(i - 1);
    const starts =
      before === -1 ||
      !isB64(before) ||
      (i >= 3 && text.charCodeAt(i - 3) === 37 && isHex(text.charCodeAt(i - 2)) && isHex(before));
    if (!starts) {
      i = text.indexOf(WRIT_TOKEN_PREFIX, i + 1);
      continue;
    }
    FRAGMENT_REST.lastIndex = i + WRIT_TOKEN_PREFIX.length;
    const rest = FRAGMENT_REST.exec(text)?.[0] ?? '';
    const end = i + WRIT_TOKEN_PREFIX.length + rest.length;
    out.push({ index: i, token: text.slice(i, end) });
    i = text.indexOf(WRIT_TOKEN_PREFIX, end);
  }
  return out;
}

/**
 * What a string that starts like a Writ token is: `whole` (header, payload and signature of the right
 * lengths), `truncated` (cut somewhere: a part missing or shorter than it must be, so it cannot be
 * verified), or `other` (a part longer than any Writ token has: not one of ours, whatever its prefix).
 */
export type TokenShape = 'whole' | 'truncated' | 'other';

export function classifyTokenShape(text: string): TokenShape {
  const parts = text.split('.');
  const [h = '', p, s] = parts;
  if (parts.length > 3 || h.length > WRIT_TOKEN_HEADER_CHARS) return 'other';
  if (s !== undefined && s.length > WRIT_TOKEN_SIGNATURE_CHARS) return 'other';
  if (p === undefined || s === undefined) return 'truncated';
  return h.length === WRIT_TOKEN_HEADER_CHARS && p.length >= 16 && s.length === WRIT_TOKEN_SIGNATURE_CHARS
    ? 'whole'
    : 'truncated';
}

/** What can be read from a token-shaped string without verifying it: nothing here is proven. */
export interface UnverifiedTokenView {
  kid?: string;
  jti?: string;
  iss?: string;
}

const SAFE_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * Reads `kid` (from the header) and `jti`, `iss` (from the payload, when it is whole enough to decode)
 * of a token-shaped string, WITHOUT verifying anything. Values that are not short plain identifiers
 * are left out, so what an attacker put in a forged token cannot inject text into a log line.
 */
export function peekToken(text: string): UnverifiedTokenView {
  const out: UnverifiedTokenView = {};
  const [h, p] = text.split('.');
  const header = h ? decodeJsonObject(h) : undefined;
  const kid = header?.['kid'];
  if (typeof kid === 'string' && SAFE_ID.test(kid)) out.kid = kid;
  const payload = p ? decodeJsonObject(p) : undefined;
  const jti = payload?.['jti'];
  if (typeof jti === 'string' && SAFE_ID.test(jti)) out.jti = jti;
  const iss = payload?.['iss'];
  if (typeof iss === 'string' && iss.length <= 512 && /^https?:\/\/[\x21-\x7e]+$/.test(iss)) out.iss = iss;
  return out;
}

function decodeJsonObject(part: string): Record<string, unknown> | undefined {
  if (part.length > WRIT_TOKEN_MAX_PAYLOAD_CHARS) return undefined;
  const bytes = decodeBase64url(part);
  if (!bytes) return undefined;
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
