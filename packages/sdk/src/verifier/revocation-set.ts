import type { Revocation, RevocationKind } from '../wire/revocation.js';

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

interface Entry {
  /** Tokens with `iat` at or before this (seconds) are revoked; +Infinity for every token. */
  bound: number;
  /** When the entry may be forgotten (ms); +Infinity when the revocation did not say. */
  expiresAt: number;
}

/**
 * The set of revocations in force, indexed by kind and value. A token is revoked when any predicate
 * matches: `issued_before === null` matches every token with that value, otherwise tokens whose
 * `iat` is at or before it. Lookups are O(number of kinds). Entries whose `expires_at` has passed can
 * no longer match a live token; `prune` drops them so the set stays as small as what is in force.
 */
export class RevocationSet {
  readonly #byKind = new Map<RevocationKind, Map<string, Entry>>();
  #seq = 0;

  /** Highest sequence number applied. */
  get seq(): number {
    return this.#seq;
  }

  /** Replaces the whole set (a snapshot from the server), then applies nothing older than `seq`. */
  reset(revocations: readonly Revocation[], seq: number): void {
    this.#byKind.clear();
    this.#seq = 0;
    for (const r of [...revocations].sort((a, b) => a.seq - b.seq)) this.apply(r);
    this.#seq = Math.max(this.#seq, seq);
  }

  apply(r: Revocation): void {
    if (r.seq <= this.#seq) return;
    this.#seq = r.seq;
    const entry = entryOf(r);
    if (entry === undefined) return;
    let values = this.#byKind.get(r.kind);
    if (!values) {
      values = new Map();
      this.#byKind.set(r.kind, values);
    }
    const had = values.get(r.value);
    // Two revocations of one value merge into their union: the later bound and the later expiry.
    values.set(
      r.value,
      had
        ? { bound: Math.max(had.bound, entry.bound), expiresAt: Math.max(had.expiresAt, entry.expiresAt) }
        : entry,
    );
  }

  /**
   * The kind of the first predicate that revokes `t`, or undefined if none does. A `jti` revocation
   * revokes the token with that id and every token exchanged from it, however many exchanges down.
   */
  match(t: RevocableToken): RevocationKind | undefined {
    if (this.#byKind.size === 0) return undefined;
    for (const [kind, values] of this.#byKind) if (revokes(kind, t, values)) return kind;
    return undefined;
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

/** Whether the one revocation `r` revokes `t`: the rule of `RevocationSet.match`, for a single event. */
export function revokedBy(r: Revocation, t: RevocableToken): boolean {
  const entry = entryOf(r);
  return entry !== undefined && revokes(r.kind, t, { get: (v) => (v === r.value ? entry : undefined) });
}

/** What a revocation holds against tokens, or undefined when it can match none. */
function entryOf(r: Revocation): Entry | undefined {
  // Expired when it was made: by the server's own reckoning no live token matches it (a jti whose
  // token was issued after its cutoff). Kept out, so neither can a token exchanged from that one.
  if (typeof r.expires_at === 'number' && r.expires_at <= r.created_at) return undefined;
  return {
    bound: r.issued_before ?? Number.POSITIVE_INFINITY,
    expiresAt:
      typeof r.expires_at === 'number' && Number.isFinite(r.expires_at)
        ? r.expires_at
        : Number.POSITIVE_INFINITY,
  };
}

/** Entries of one kind of predicate, by value. */
interface Entries {
  get(value: string): Entry | undefined;
}

/**
 * Whether a predicate of `kind` with these `entries` revokes `t`. A `jti` revocation revokes the token
 * with that id and every token exchanged from it, however many exchanges down.
 */
function revokes(kind: RevocationKind, t: RevocableToken, entries: Entries): boolean {
  const value = kind === 'tid' ? t.tid : t[kind];
  if (value === undefined) return false;
  const entry = entries.get(value);
  if (entry !== undefined && t.iat <= entry.bound) return true;
  // An "issued before" bound on a jti speaks of the token it names, whose `iat` a descendant does not
  // carry. The server stores a revocation that misses its token already expired (kept out above);
  // any other revocation of an ancestor's jti revokes the descendant (fail closed).
  return kind === 'jti' && t.ajti?.some((ancestor) => entries.get(ancestor) !== undefined) === true;
}
