import type { VerifierRisk } from '../wire/events.js';
import { MAX_RISK } from '../wire/policy-context.js';
import { DigestMemo, isSha256Digest } from './value-digest.js';

interface Held {
  risk: number;
  at: number;
  halfLifeMs: number;
}

/** Workloads whose risk is held; past it the one announced longest ago is forgotten. */
const MAX_HELD = 100_000;

/**
 * The risk of each workload as the server last announced it (`risk` events and a snapshot's `risks`),
 * by the digest of its id, decayed by the server's half-life: the `risk` local policy reads for the
 * tokens of that workload. A verifier is sent no workload ids; it finds a token's by hashing its `sub`.
 */
export class WorkloadRisks {
  #held = new Map<string, Held>();
  readonly #digests = new DigestMemo();

  /** Workloads whose risk is held (some may have decayed to zero since). */
  get size(): number {
    return this.#held.size;
  }

  /**
   * Takes one announcement, unless an announcement as of a later time is held. One it cannot read (a
   * digest that is none, a risk that is not an integer from 0 to 100, a time or half-life that is not a
   * positive number) throws, as an unreadable revocation does: the verifier drops its stream and hears
   * the event again rather than running on a risk it did not take.
   */
  apply(r: VerifierRisk): void {
    const held = readable(r);
    const had = this.#held.get(r.sub_sha256);
    if (had && had.at > held.at) return;
    // Kept in the order announced: the first entry is the one announced longest ago.
    this.#held.delete(r.sub_sha256);
    if (this.#held.size >= MAX_HELD) this.#held.delete(this.#held.keys().next().value!);
    this.#held.set(r.sub_sha256, held);
  }

  /** Replaces every risk held with a snapshot's; one it cannot read throws and changes nothing. */
  reset(risks: readonly VerifierRisk[]): void {
    const next = new Map<string, Held>();
    for (const r of risks.slice(-MAX_HELD)) {
      const held = readable(r);
      const had = next.get(r.sub_sha256);
      if (!had || had.at <= held.at) next.set(r.sub_sha256, held);
    }
    this.#held = next;
  }

  /** The risk of workload `sub` at `nowMs`, an integer from 0 to 100 (0 for one never announced). */
  of(sub: string, nowMs: number): number {
    if (this.#held.size === 0) return 0;
    const h = this.#held.get(this.#digests.of(sub));
    return h ? decayed(h, nowMs) : 0;
  }
}

function decayed(h: Held, nowMs: number): number {
  const r = h.risk * 0.5 ** (Math.max(0, nowMs - h.at) / h.halfLifeMs);
  return Math.min(MAX_RISK, Math.max(0, Math.floor(r)));
}

function readable(r: VerifierRisk): Held {
  const what = (problem: string) =>
    new TypeError(`risk of ${String((r as Partial<VerifierRisk>)?.sub_sha256).slice(0, 64)}: ${problem}`);
  if (typeof r !== 'object' || r === null) throw new TypeError('risk: not an object');
  if (!isSha256Digest(r.sub_sha256)) throw what('sub_sha256 is not a SHA-256 digest');
  if (!Number.isInteger(r.risk) || r.risk < 0 || r.risk > MAX_RISK)
    throw what(`risk is not an integer from 0 to ${MAX_RISK}`);
  if (!Number.isFinite(r.risk_at) || r.risk_at < 0) throw what('risk_at is not a time');
  if (!Number.isFinite(r.half_life) || r.half_life <= 0) throw what('half_life is not a positive number');
  return { risk: r.risk, at: r.risk_at, halfLifeMs: r.half_life * 1000 };
}
