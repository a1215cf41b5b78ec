import type { PolicyContext } from '../../wire/policy-context.js';

/**
 * Decisions already made, by `decisionKey`; bounded, the oldest dropped first. Holding the decisions of
 * one bundle version: cleared when another is loaded.
 */
export class DecisionCache<D> {
  readonly #max: number;
  readonly #entries = new Map<string, D>();

  constructor(max: number) {
    this.#max = max;
  }

  get(key: string): D | undefined {
    return this.#entries.get(key);
  }

  set(key: string, decision: D): void {
    if (this.#max <= 0) return;
    if (this.#entries.size >= this.#max && !this.#entries.has(key))
      this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(key, decision);
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}

/**
 * What a decision depends on: the bundle version, the principal (a person's roles and second factor
 * included), the action, and the context fields the bundle's policies read (all of them when a policy
 * reads the context as a whole). Two requests with the same key get the same decision.
 */
export function decisionKey(
  version: number,
  principal: { type: string; id: string; attrs?: unknown },
  action: string,
  context: PolicyContext,
  reads: readonly string[] | 'all',
): string {
  const fields = context as unknown as Record<string, unknown>;
  return JSON.stringify([
    version,
    principal.type,
    principal.id,
    principal.type === 'Human' ? principal.attrs : null,
    action,
    reads === 'all' ? context : reads.map((f) => fields[f]),
  ]);
}
