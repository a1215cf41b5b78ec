import type { Clock } from '../clock.js';
import { canonicalJson } from '../jose/json.js';
import { type ClaimProgram, compileClaimRule } from './cel.js';
import { type IssuerKeys, RemoteJwks, staticKeys } from './jwks.js';
import type { TrustedIssuer } from './trusted-issuer.js';

/** A trusted issuer ready for the hot path: rules compiled, keys (and their cache) attached. */
export interface CompiledIssuer {
  spec: TrustedIssuer;
  keys: IssuerKeys;
  condition: ClaimProgram;
  subject: ClaimProgram;
  attributes: Array<[string, ClaimProgram]>;
  task?: { purpose: ClaimProgram; labels: Array<[string, ClaimProgram]> } | undefined;
}

/**
 * The trusted issuers by exact `iss`, rebuilt from the registry's records when they change. An issuer
 * whose record is unchanged keeps its compiled rules and its JWKS cache across reloads.
 */
export class FederationTrust {
  readonly #clock: Clock;
  readonly #fetch: typeof fetch | undefined;
  #byIss = new Map<string, CompiledIssuer>();
  #bySpec = new Map<string, CompiledIssuer>();
  #source: readonly TrustedIssuer[] | undefined;

  constructor(o: { clock: Clock; fetch?: typeof fetch }) {
    this.#clock = o.clock;
    this.#fetch = o.fetch;
  }

  /** The issuer whose `iss` is exactly this; undefined for anything else (no keys are fetched for it). */
  issuer(records: readonly TrustedIssuer[], iss: string): CompiledIssuer | undefined {
    if (records !== this.#source) this.#rebuild(records);
    return this.#byIss.get(iss);
  }

  #rebuild(records: readonly TrustedIssuer[]): void {
    const byIss = new Map<string, CompiledIssuer>();
    const bySpec = new Map<string, CompiledIssuer>();
    for (const r of records) {
      const key = canonicalJson(r);
      const c = this.#bySpec.get(key) ?? this.#compile(r);
      bySpec.set(key, c);
      byIss.set(r.issuer, c);
    }
    this.#byIss = byIss;
    this.#bySpec = bySpec;
    this.#source = records;
  }

  #compile(r: TrustedIssuer): CompiledIssuer {
    const keys = r.jwks
      ? staticKeys(r.jwks)
      : new RemoteJwks(r.jwksUri!, {
          clock: this.#clock,
          cooldownMs: r.jwksCooldown * 1000,
          maxAgeMs: r.jwksMaxAge * 1000,
          ...(this.#fetch ? { fetch: this.#fetch } : {}),
        });
    return {
      spec: r,
      keys,
      condition: compileClaimRule(r.condition),
      subject: compileClaimRule(r.subject),
      attributes: Object.entries(r.attributes).map(([k, e]) => [k, compileClaimRule(e)]),
      task: r.task && {
        purpose: compileClaimRule(r.task.purpose),
        labels: Object.entries(r.task.labels).map(([k, e]) => [k, compileClaimRule(e)]),
      },
    };
  }
}
