import type { TrustedIssuer } from '../federation/trusted-issuer.js';
import type { ExceptionRecord } from '../governance/exception.js';
import { importPublicJwk, type VerificationKey } from '../jose/jwk.js';
import { PeopleDirectory } from '../people/directory.js';
import { directoryFromStore } from '../people/stored-people.js';
import type { Store } from '../store/store.js';
import { TemplateSet } from '../templates/template-rules.js';
import type { Operator } from './operator.js';
import type { TokenClass } from './token-class.js';
import type { WorkloadRecord } from './workload.js';

/** A workload as the hot path needs it: its record plus keys already imported. */
export interface ResolvedWorkload extends WorkloadRecord {
  verificationKeys: VerificationKey[];
}

export interface ResolvedOperator extends Operator {
  verificationKeys: VerificationKey[];
}

type RegistryStore = Pick<
  Store,
  | 'listWorkloads'
  | 'getWorkload'
  | 'listClasses'
  | 'listOperators'
  | 'listIssuers'
  | 'listTemplates'
  | 'listExceptions'
  | 'listPeople'
  | 'listTeams'
  | 'listScimResources'
>;

/**
 * The in-memory view of workloads, classes and operators that the token endpoint reads. The store is
 * the truth; `reload()` rebuilds the view after `writ apply` or a state change.
 */
export class Registry {
  #workloads = new Map<string, ResolvedWorkload>();
  #classes = new Map<string, TokenClass>();
  #operators = new Map<string, ResolvedOperator>();
  #issuers: readonly TrustedIssuer[] = [];
  #templates = new TemplateSet();
  #exceptions: readonly ExceptionRecord[] = [];
  #people = new PeopleDirectory([], []);
  #generation = 0;
  /** Imported workload keys by their JWK's JSON text, from the last reload. */
  #imported = new Map<string, VerificationKey>();
  readonly #store: RegistryStore;

  constructor(store: RegistryStore) {
    this.#store = store;
  }

  async reload(): Promise<void> {
    const [workloads, classes, operators, issuers, exceptions, people, templates] = await Promise.all([
      this.#store.listWorkloads(),
      this.#store.listClasses(),
      this.#store.listOperators(),
      this.#store.listIssuers(),
      this.#store.listExceptions(),
      directoryFromStore(this.#store),
      this.#store.listTemplates(),
    ]);
    this.#templates.update(templates);
    this.#people = people;
    this.#issuers = issuers;
    this.#exceptions = exceptions;
    // Keys are imported once and kept across reloads: a reload after a one-workload change imports
    // that workload's keys, not the 100,000 others'.
    const imported = new Map<string, VerificationKey>();
    const keyOf = (k: object): VerificationKey => {
      const text = JSON.stringify(k);
      let key = imported.get(text) ?? this.#imported.get(text);
      if (!key) key = importPublicJwk(k as Parameters<typeof importPublicJwk>[0]);
      imported.set(text, key);
      return key;
    };
    // The records are this reload's own: completed in place rather than copied (100,000 of them).
    const resolved = new Map<string, ResolvedWorkload>();
    for (const w of workloads) {
      const r = w as ResolvedWorkload;
      r.verificationKeys = w.jwks.map(keyOf);
      resolved.set(w.id, r);
    }
    this.#workloads = resolved;
    this.#imported = imported;
    this.#classes = new Map(classes.map((c) => [c.name, c]));
    this.#operators = new Map(
      operators.map((o) => [o.name, { ...o, verificationKeys: o.jwks.map((k) => importPublicJwk(k)) }]),
    );
    this.#generation++;
  }

  /**
   * Reads only workloads `ids` from the store again (after an apply that changed only these): each is
   * replaced, added or, gone from the store, removed. The other 100,000 stay as they are.
   */
  async refreshWorkloads(ids: readonly string[]): Promise<void> {
    const records = await Promise.all(ids.map((id) => this.#store.getWorkload(id)));
    for (const [i, id] of ids.entries()) {
      const w = records[i];
      if (w) this.remember(w);
      else this.#workloads.delete(id);
    }
    this.#generation++;
  }

  /** How many workloads the registry holds (registered and admitted). */
  get workloadCount(): number {
    return this.#workloads.size;
  }

  /** Reloads only the people directory (after a SCIM change): the rest is unchanged. */
  async reloadPeople(): Promise<void> {
    this.#people = await directoryFromStore(this.#store);
  }

  /** People and teams, from config and SCIM: who owns what, and whether an operator's person is active. */
  people(): PeopleDirectory {
    return this.#people;
  }

  /** Grows with every reload: decisions cached before a reload carry an older generation. */
  get generation(): number {
    return this.#generation;
  }

  workload(id: string): ResolvedWorkload | undefined {
    return this.#workloads.get(id);
  }
  /** Workload templates (config `templates/`), compiled: what admits an unregistered identity on first use. */
  templates(): TemplateSet {
    return this.#templates;
  }
  /**
   * Adds a workload a template admitted (or another node did, read from the store) to this view until
   * the next reload, which reads it from the store like any other.
   */
  remember(w: WorkloadRecord): ResolvedWorkload {
    const resolved = { ...w, verificationKeys: w.jwks.map((k) => importPublicJwk(k)) };
    this.#workloads.set(w.id, resolved);
    return resolved;
  }
  tokenClass(name: string): TokenClass | undefined {
    return this.#classes.get(name);
  }
  operator(name: string): ResolvedOperator | undefined {
    return this.#operators.get(name);
  }
  /**
   * Whether workload `id` declares (config `serves`) that it serves the API `audience`: the verifier of
   * a resource server may ask about that API's tokens, and only about those.
   */
  serves(id: string, audience: string): boolean {
    return this.#workloads.get(id)?.serves?.includes(audience) ?? false;
  }
  /** The exceptions registry with its runtime state; the same array until the next reload. */
  exceptions(): readonly ExceptionRecord[] {
    return this.#exceptions;
  }
  /** Trusted outside issuers; the same array until the next reload. */
  issuers(): readonly TrustedIssuer[] {
    return this.#issuers;
  }
  operators(): ResolvedOperator[] {
    return [...this.#operators.values()];
  }
  workloads(): ResolvedWorkload[] {
    return [...this.#workloads.values()];
  }
  classes(): TokenClass[] {
    return [...this.#classes.values()];
  }
  /** The longest `max_ttl` of any class, in seconds. */
  longestTtl(): number {
    let max = 0;
    for (const c of this.#classes.values()) max = Math.max(max, c.maxTtl);
    return max;
  }
}
