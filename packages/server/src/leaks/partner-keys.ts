import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Clock } from '../clock.js';
import { OAuthError } from '../errors.js';
import { RemoteDocument } from '../net/remote-document.js';

/** How long a fetched key list is used, and how often an unknown key id may cause a fetch. */
const MAX_AGE_MS = 3_600_000;
const COOLDOWN_MS = 60_000;
const TIMEOUT_MS = 5000;
const MAX_BYTES = 65_536;
const MAX_KEYS = 100;

/** A key id as GitHub names them (64 hex characters today), bounded. */
export const PARTNER_KEY_ID = /^[A-Za-z0-9_.-]{1,128}$/;

const unavailable = (message: string) =>
  new OAuthError('temporarily_unavailable', `${message}: the report was not taken; retry later`, {
    detail: { reason: 'partner_keys_unavailable' },
  });

/**
 * The public keys of GitHub's secret scanning partner program, from the one configured URL
 * (`leaks.github_keys_url`): `{"public_keys": [{"key_identifier", "key": "<PEM>", "is_current"}]}`.
 * Fetched as a JWKS is (`RemoteDocument`: bounded, no redirects, cached an hour, an unknown key id
 * refetches at most once a minute). Only ECDSA P-256 keys are kept: the program signs with nothing
 * else, so nothing else may verify a report.
 */
export class PartnerKeys {
  readonly #doc: RemoteDocument<Map<string, KeyObject>>;

  constructor(url: string, o: { clock: Clock; fetch?: typeof fetch }) {
    this.#doc = new RemoteDocument(url, {
      clock: o.clock,
      cooldownMs: COOLDOWN_MS,
      maxAgeMs: MAX_AGE_MS,
      timeoutMs: TIMEOUT_MS,
      maxBytes: MAX_BYTES,
      ...(o.fetch ? { fetch: o.fetch } : {}),
      name: 'the partner keys',
      unavailable,
      parse: parsePartnerKeys,
    });
  }

  /** The key `id` names; refuses (`partner_key_unknown`) when the URL does not publish it. */
  async key(id: string): Promise<KeyObject> {
    const held = await this.#doc.current();
    const key = held.get(id) ?? (await this.#doc.newer(held))?.get(id);
    if (key) return key;
    throw new OAuthError(
      'invalid_client',
      'Github-Public-Key-Identifier names a key the configured key URL does not publish',
      { detail: { reason: 'partner_key_unknown', key_id: id } },
    );
  }
}

function parsePartnerKeys(body: string): Map<string, KeyObject> {
  let list: unknown;
  try {
    list = (JSON.parse(body) as { public_keys?: unknown }).public_keys;
  } catch {
    throw unavailable('the partner keys are not JSON');
  }
  if (!Array.isArray(list) || list.length > MAX_KEYS)
    throw unavailable(`the partner keys have no public_keys array (or more than ${MAX_KEYS})`);
  const keys = new Map<string, KeyObject>();
  for (const entry of list) {
    const { key_identifier: id, key: pem } = (entry ?? {}) as Record<string, unknown>;
    if (typeof id !== 'string' || !PARTNER_KEY_ID.test(id) || typeof pem !== 'string') continue;
    try {
      const k = createPublicKey(pem);
      if (k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === 'prime256v1')
        keys.set(id, k);
    } catch {
      // A key that does not parse verifies nothing: left out.
    }
  }
  return keys;
}
