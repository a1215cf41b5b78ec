import type { Revocation, RevocationKind } from '../wire/revocation.js';

/** The claims of a token that revocation predicates look at. `kid` comes from the JWS header. */
export interface RevocableToken {
  jti: string;
  sub: string;
  client_id: string;
  cls: string;
  iat: number;
  tid?: string | undefined;
  kid: string;
}

/**
 * The set of revocations in force, indexed by kind and value. A token is revoked when any predicate
 * matches: `issued_before === null` matches every token with that value, otherwise tokens whose
 * `iat` is at or before it. Lookups are O(number of kinds).
 */
export class RevocationSet {
  readonly #byKind = new Map<RevocationKind, Map<string, number>>();
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
    let values = this.#byKind.get(r.kind);
    if (!values) {
      values = new Map();
      this.#byKind.set(r.kind, values);
    }
    const bound = r.issued_before ?? Number.POSITIVE_INFINITY;
    values.set(r.value, Math.max(values.get(r.value) ?? Number.NEGATIVE_INFINITY, bound));
  }

  /** The kind of the first predicate that revokes `t`, or undefined if none does. */
  match(t: RevocableToken): RevocationKind | undefined {
    if (this.#byKind.size === 0) return undefined;
    for (const [kind, values] of this.#byKind) {
      const value = kind === 'tid' ? t.tid : t[kind];
      if (value === undefined) continue;
      const bound = values.get(value);
      if (bound !== undefined && t.iat <= bound) return kind;
    }
    return undefined;
  }

  get size(): number {
    let n = 0;
    for (const v of this.#byKind.values()) n += v.size;
    return n;
  }
}
