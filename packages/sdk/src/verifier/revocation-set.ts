import {
  REVOCATION_KINDS,
  type Revocation,
  type RevocationKind,
  type VerifierRevocation,
} from '../wire/revocation.js';
import { DigestMemo, isSha256Digest, revocationDigest } from './value-digest.js';

export { revocationDigest };

/** The claims of a token that revocation predicates look at. `kid` comes from the JWS header. */
export interface RevocableToken {
  jti: string;
  /** The tokens it was exchanged from (RFC 8693): a `jti` revocation of any of them revokes it too. */
  ajti?: readonly string[] | undefined;
  sub: string;
  client_id: string;
  cls: string;
  iat: number;
  tid?: string | undefined;
  kid: string;
}

/** A revocation as the server stores it (its value in clear) or as verifiers receive it (a digest). */
export type AnyRevocation = Revocation | VerifierRevocation;

interface Entry {
  /** Tokens with `iat` at or before this (seconds) are revoked; +Infinity for every token. */
  bound: number;
  /** When the entry may be forgotten (ms); +Infinity when the revocation did not say. */
  expiresAt: number;
  /** When the revocation that set `bound` was made (ms): a time at which every token under it was revoked. */
  since: number;
}

/**
 * The set of revocations in force, indexed by kind and by the digest of the value. A token is revoked
 * when any predicate matches: `issued_before === null` matches every token with that value, otherwise
 * tokens whose `iat` is at or before it. Lookups are O(number of kinds); the digests of the token
 * values looked up are remembered, so a repeat presentation costs map lookups, not SHA-256. Entries
 * whose `expires_at` has passed can no longer match a live token; `prune` drops them so the set stays
 * as small as what is in force.
 */
export class RevocationSet {
  #byKind = new Map<RevocationKind, Map<string, Entry>>();
  #seq = 0;
  readonly #digests = new DigestMemo();

  /** Highest sequence number applied. */
  get seq(): number {
    return this.#seq;
  }

  /**
   * Replaces the whole set (a snapshot from the server), then applies nothing older than `seq`. A
   * revocation it cannot read throws and leaves the set as it was.
   */
  reset(revocations: readonly AnyRevocation[], seq: number): void {
    const byKind = new Map<RevocationKind, Map<string, Entry>>();
    let last = 0;
    for (const r of [...revocations].sort((a, b) => a.seq - b.seq)) {
      const key = digestOf(r);
      const entry = entryOf(r);
      if (r.seq <= last) continue;
      last = r.seq;
      if (entry !== undefined) merge(byKind, r.kind, key, entry);
    }
    this.#byKind = byKind;
    this.#seq = Math.max(last, seq);
  }

  /**
   * Adds one revocation (in sequence order: one at or below `seq` is ignored). One it cannot read (an
   * unknown kind, no value, a bound that is not a number) throws and is not counted as applied, so a
   * verifier that drops its stream on the error hears it again rather than resuming past it.
   */
  apply(r: AnyRevocation): void {
    const key = digestOf(r);
    const entry = entryOf(r);
    if (r.seq <= this.#seq) return;
    this.#seq = r.seq;
    if (entry !== undefined) merge(this.#byKind, r.kind, key, entry);
  }

  /**
   * The kind of the first predicate that revokes `t`, or undefined if none does. A `jti` revocation
   * revokes the token with that id and every token exchanged from it, however many exchanges down.
   */
  match(t: RevocableToken): RevocationKind | undefined {
    if (this.#byKind.size === 0) return undefined;
    for (const [kind, values] of this.#byKind)
      if (revokingEntry(kind, t, (value) => values.get(this.#digests.of(value)))) return kind;
    return undefined;
  }

  /**
   * When `t` was revoked (ms, the `created_at` of a revocation that covers it), or undefined if it is
   * not. Where several revocations cover it, a time at which it surely was: never earlier than the
   * first, so "revoked before this use" is never said of a use that came before every revocation.
   */
  revokedAt(t: RevocableToken): number | undefined {
    if (this.#byKind.size === 0) return undefined;
    let at: number | undefined;
    for (const [kind, values] of this.#byKind) {
      const entry = revokingEntry(kind, t, (value) => values.get(this.#digests.of(value)));
      if (entry !== undefined && (at === undefined || entry.since < at)) at = entry.since;
    }
    return at;
  }

  /** Forgets revocations whose `expires_at` is at or before `nowMs`; returns how many. */
  prune(nowMs: number): number {
    let dropped = 0;
    for (const [kind, values] of this.#byKind) {
      for (const [value, entry] of values) {
        if (entry.expiresAt <= nowMs) {
          values.delete(value);
          dropped++;
        }
      }
      if (values.size === 0) this.#byKind.delete(kind);
    }
    return dropped;
  }

  get size(): number {
    let n = 0;
    for (const v of this.#byKind.values()) n += v.size;
    return n;
  }
}

/**
 * Whether the one revocation `r` revokes `t`: the rule of `RevocationSet.match`, for a single event. A
 * value in clear is compared as it is (no digest to compute per token); a digest against the token's.
 */
export function revokedBy(r: AnyRevocation, t: RevocableToken): boolean {
  const entry = entryOf(r);
  if (entry === undefined) return false;
  if ('value' in r && typeof r.value === 'string') {
    const value = r.value;
    return revokingEntry(r.kind, t, (v) => (v === value ? entry : undefined)) !== undefined;
  }
  const key = digestOf(r);
  return revokingEntry(r.kind, t, (v) => (revocationDigest(v) === key ? entry : undefined)) !== undefined;
}

/**
 * What a revocation holds against tokens, or undefined when it can match none. Throws on what no set
 * can enforce as intended: a sequence number, kind or bound it cannot read.
 */
function entryOf(r: AnyRevocation): Entry | undefined {
  if (!Number.isSafeInteger(r.seq)) throw unreadable(r, 'its seq is not an integer');
  if (!(REVOCATION_KINDS as readonly string[]).includes(r.kind))
    throw unreadable(r, `unknown kind ${JSON.stringify(r.kind)}`);
  if (r.issued_before !== null && !Number.isFinite(r.issued_before))
    throw unreadable(r, 'issued_before is neither null nor a number');
  // Expired when it was made: by the server's own reckoning no live token matches it (a jti whose
  // token was issued after its cutoff). Kept out, so neither can a token exchanged from that one.
  if (typeof r.expires_at === 'number' && r.expires_at <= r.created_at) return undefined;
  return {
    bound: r.issued_before ?? Number.POSITIVE_INFINITY,
    expiresAt:
      typeof r.expires_at === 'number' && Number.isFinite(r.expires_at)
        ? r.expires_at
        : Number.POSITIVE_INFINITY,
    since: r.created_at,
  };
}

/** The digest `r` is indexed by: as sent (`value_sha256`), or computed from the value in clear. */
function digestOf(r: AnyRevocation): string {
  if ('value_sha256' in r && isSha256Digest(r.value_sha256)) return r.value_sha256;
  if ('value' in r && typeof r.value === 'string') return revocationDigest(r.value);
  throw unreadable(r, 'neither a value nor a SHA-256 digest of one');
}

function unreadable(r: AnyRevocation, what: string): TypeError {
  return new TypeError(`revocation ${String(r.seq)}: ${what}`);
}

/**
 * Adds an entry; two revocations of one value merge into their union: the later bound and expiry. The
 * time kept is that of the revocation whose bound is kept (it covers every token the union does).
 */
function merge(
  byKind: Map<RevocationKind, Map<string, Entry>>,
  kind: RevocationKind,
  key: string,
  entry: Entry,
): void {
  let values = byKind.get(kind);
  if (!values) {
    values = new Map();
    byKind.set(kind, values);
  }
  const had = values.get(key);
  values.set(
    key,
    had
      ? {
          bound: Math.max(had.bound, entry.bound),
          expiresAt: Math.max(had.expiresAt, entry.expiresAt),
          since:
            entry.bound > had.bound
              ? entry.since
              : entry.bound < had.bound
                ? had.since
                : Math.min(had.since, entry.since),
        }
      : entry,
  );
}

/**
 * The entry of a predicate of `kind` (found by `lookup` from a token's value in clear) that revokes
 * `t`, or undefined. A `jti` revocation revokes the token with that id and every token exchanged from
 * it, however many exchanges down.
 */
function revokingEntry(
  kind: RevocationKind,
  t: RevocableToken,
  lookup: (value: string) => Entry | undefined,
): Entry | undefined {
  const value = kind === 'tid' ? t.tid : t[kind];
  if (value === undefined) return undefined;
  const entry = lookup(value);
  if (entry !== undefined && t.iat <= entry.bound) return entry;
  if (kind !== 'jti' || t.ajti === undefined) return undefined;
  // An "issued before" bound on a jti speaks of the token it names, whose `iat` a descendant does not
  // carry. The server stores a revocation that misses its token already expired (kept out: `entryOf`);
  // any other revocation of an ancestor's jti revokes the descendant (fail closed).
  for (const ancestor of t.ajti) {
    const e = lookup(ancestor);
    if (e !== undefined) return e;
  }
  return undefined;
}
