import type { VerificationKey } from '../../jose/jwk.js';
import { isOAuthErrorCode } from '../../wire/errors.js';
import { POLICY_BUNDLE_PATH, type PolicyBundleClaims } from '../../wire/policy-bundle.js';
import { PolicyBundleError, verifyPolicyBundle } from '../policy-bundle.js';

/** What following the bundle of one API needs. */
export interface BundleFollowerDeps<B> {
  issuer: string;
  audience: string;
  fetch: typeof fetch;
  /** Milliseconds, the verifier's clock: bundles are taken and used until their `exp`. */
  now: () => number;
  /** Seconds of clock difference allowed on a bundle's `exp`. */
  leewaySeconds: number;
  /** The server's policy-bundle keys (its `POLICY_BUNDLE_KEYS_PATH`, not the token JWKS). */
  keys: () => readonly VerificationKey[];
  refreshKeys: () => Promise<void>;
  /** `Authorization` and `DPoP` headers for a GET of `url`, with a fresh token when `fresh`. */
  authorize: (url: string, fresh: boolean) => Promise<Record<string, string>>;
  /** Largest bundle accepted (bytes). */
  maxBytes: number;
  /** Makes a verified bundle ready to decide (Cedar parses it); throws `PolicyBundleError` to refuse it. */
  prepare: (claims: PolicyBundleClaims) => Promise<B>;
  /** Called when a newer bundle is in force. */
  onLoad?: (bundle: B) => void;
}

export interface BundleFollowerStatus {
  /** The version in force, undefined until a valid bundle is loaded. */
  version: number | undefined;
  /** When the bundle in force expires (seconds): it is fetched again before then, and not used after. */
  expires: number | undefined;
  policyVersion: string | undefined;
  /** The highest version the stream announced. */
  announced: number;
  /** Why the last fetched bundle was refused or could not be fetched. */
  lastError: string | undefined;
  /** Bundles refused so far (bad signature, wrong typ, issuer or audience, older version...). */
  refused: number;
}

export interface BundleFollower<B> {
  /** The bundle in force, undefined until a valid one is loaded. */
  current(): B | undefined;
  /** The stream announced `version`: fetch until one at least as new is in force. */
  announce(version: number): void;
  /** Fetches now (and again, backing off, until the announced version is in force). */
  refresh(): Promise<void>;
  /** Resolves with the version in force once it is at least `version`. */
  loaded(version?: number): Promise<number>;
  /**
   * True once the bundle in force is at least as new as every one announced and has not expired; waits
   * up to `waitMs` for one announced but not yet loaded, or for a fresh one when the held one expired.
   */
  upToDate(waitMs: number): Promise<boolean>;
  /** True when the bundle held has passed its `exp` (no valid bundle to decide with). */
  expired(): boolean;
  status(): BundleFollowerStatus;
  close(): void;
}

/**
 * Follows the signed policy bundle of one API: fetches it when asked, whenever the stream announces a
 * newer version, and again once half of the held bundle's life has passed (it is not used past its
 * `exp`); refuses any that does not verify (signature, `typ`, issuer, audience, expiry, size) or that is
 * older than the one held, and retries with backoff until the announced version is in force.
 */
export function followBundle<B extends { claims: PolicyBundleClaims }>(
  d: BundleFollowerDeps<B>,
): BundleFollower<B> {
  const url = `${d.issuer}${POLICY_BUNDLE_PATH}`;
  let current: B | undefined;
  let announced = 0;
  let lastError: string | undefined;
  let refused = 0;
  let closed = false;
  let fetching: Promise<void> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let backoff = 250;
  /** Seconds: the held bundle's `exp`, and when to fetch a fresh one (half its life). */
  let expires = 0;
  let renewAt = 0;
  /** Milliseconds: no second renewal attempt before this (a failing one is not repeated per decision). */
  let renewAfter = 0;
  const waiters = new Set<{ version: number; done: (v: number) => void; fail: (e: Error) => void }>();
  const version = () => current?.claims.version;
  const nowSeconds = () => Math.floor(d.now() / 1000);
  const expired = () => current !== undefined && nowSeconds() >= expires + d.leewaySeconds;

  const wake = () => {
    for (const w of waiters) {
      if (current && current.claims.version >= w.version && !expired()) {
        waiters.delete(w);
        w.done(current.claims.version);
      }
    }
  };

  /** The held bundle's validity, from the bundle (of the same version or newer) just verified. */
  const renewed = (claims: PolicyBundleClaims) => {
    expires = claims.exp;
    renewAt = claims.iat + Math.max(1, Math.floor((claims.exp - claims.iat) / 2));
  };

  const load = async (jws: string) => {
    const check = {
      issuer: d.issuer,
      audience: d.audience,
      maxBytes: d.maxBytes,
      held: version(),
      nowSeconds: nowSeconds(),
      leeway: d.leewaySeconds,
    };
    let claims: PolicyBundleClaims;
    try {
      claims = verifyPolicyBundle(jws, { ...check, keys: d.keys() });
    } catch (err) {
      // Signed by a key published since the JWKS was read (a rotation): look once more.
      if (!(err instanceof PolicyBundleError) || err.reason !== 'no_key') throw err;
      await d.refreshKeys();
      claims = verifyPolicyBundle(jws, { ...check, keys: d.keys() });
    }
    if (claims.version === version()) {
      // The same policies, signed again: the one held stays in force, valid as long as this one.
      if (claims.exp > expires) renewed(claims);
      wake();
      return;
    }
    const next = await d.prepare(claims);
    // A newer bundle may have been loaded while this one was being prepared.
    if (current && claims.version <= current.claims.version) return;
    current = next;
    renewed(claims);
    d.onLoad?.(next);
    wake();
  };

  const fetchOnce = async () => {
    let res: Response | undefined;
    for (const fresh of [false, true]) {
      res = await d.fetch(`${url}?audience=${encodeURIComponent(d.audience)}`, {
        headers: { ...(await d.authorize(url, fresh)), accept: 'application/jwt' },
      });
      if (res.status !== 401) break;
      await res.body?.cancel().catch(() => undefined);
    }
    if (!res?.ok) {
      throw new PolicyBundleError(
        'http',
        `policy bundle: HTTP ${res?.status ?? 'error'}${await refusalOf(res)}`,
      );
    }
    await load((await boundedText(res, d.maxBytes)).trim());
  };

  const behind = () => !current || current.claims.version < announced || expired();

  /** Past half the held bundle's life: fetch a fresh one in the background (at most every 5 s). */
  const renewIfDue = () => {
    if (!current || nowSeconds() < renewAt || d.now() < renewAfter) return;
    renewAfter = d.now() + 5000;
    refresh().catch(() => undefined);
  };

  const refresh = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (retry) {
      clearTimeout(retry);
      retry = undefined;
    }
    fetching ??= fetchOnce()
      .then(
        () => {
          lastError = undefined;
          if (!behind()) backoff = 250;
        },
        (err: unknown) => {
          if (err instanceof PolicyBundleError && err.reason !== 'http' && err.reason !== 'cedar_missing')
            refused++;
          lastError = err instanceof Error ? err.message : String(err);
          // Without Cedar no bundle will ever load: whoever waits for one hears why now.
          if (err instanceof PolicyBundleError && err.reason === 'cedar_missing')
            for (const w of waiters) {
              waiters.delete(w);
              w.fail(err);
            }
        },
      )
      .finally(() => {
        fetching = undefined;
        // Refused, unreachable, or older than announced (the server was still applying): try again.
        if (behind() && !closed) {
          retry = setTimeout(() => {
            retry = undefined;
            refresh().catch(() => undefined);
          }, backoff);
          retry.unref();
          backoff = Math.min(backoff * 2, 5000);
        }
      });
    return fetching;
  };

  return {
    current: () => current,
    announce(v) {
      if (Number.isSafeInteger(v) && v > announced) announced = v;
      if (behind()) refresh().catch(() => undefined);
    },
    refresh,
    loaded(v = 1) {
      if (current && current.claims.version >= v) return Promise.resolve(current.claims.version);
      return new Promise<number>((done, fail) => {
        waiters.add({ version: v, done, fail });
      });
    },
    expired,
    async upToDate(waitMs) {
      if (!behind()) {
        renewIfDue();
        return true;
      }
      if (!current && announced === 0 && fetching === undefined) return false;
      if (expired()) refresh().catch(() => undefined);
      const ok = await new Promise<boolean>((resolve) => {
        const w = {
          version: Math.max(announced, 1),
          done: () => {
            clearTimeout(timer);
            resolve(true);
          },
          fail: () => {
            clearTimeout(timer);
            resolve(false);
          },
        };
        // Given up on: the waiter goes, so requests during a long outage do not pile up waiters.
        const timer = setTimeout(() => {
          waiters.delete(w);
          resolve(false);
        }, waitMs);
        waiters.add(w);
      });
      return ok && !behind();
    },
    status: () => ({
      version: current?.claims.version,
      expires: current ? expires : undefined,
      policyVersion: current?.claims.policy_version,
      announced,
      lastError,
      refused,
    }),
    close() {
      closed = true;
      if (retry) clearTimeout(retry);
      for (const w of waiters) w.fail(new PolicyBundleError('closed', 'the verifier is closed'));
      waiters.clear();
    },
  };
}

/** `: <error_description>` of a refusal answered with an RFC 6749 error body (read up to 4 KiB), or nothing. */
async function refusalOf(res: Response | undefined): Promise<string> {
  if (!res) return '';
  try {
    const body = JSON.parse(await boundedText(res, 4096)) as { error?: unknown; error_description?: unknown };
    if (isOAuthErrorCode(body.error) && typeof body.error_description === 'string')
      return `: ${body.error} (${body.error_description.slice(0, 300)})`;
  } catch {
    // not an error body: the status says enough
  }
  await res.body?.cancel().catch(() => undefined);
  return '';
}

/** The body as text, refusing (and no longer reading) one longer than `max` bytes. */
export async function boundedText(res: Response, max: number): Promise<string> {
  const tooLarge = () => new PolicyBundleError('too_large', `policy bundle: larger than ${max} bytes`);
  if (Number(res.headers.get('content-length') ?? 0) > max) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) {
      await res.body.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
