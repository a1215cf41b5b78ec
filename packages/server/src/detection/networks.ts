import { type AddressRange, effectiveAddress, inRange, parseIp, parseRange } from '../net/ip-address.js';

/** How sources are grouped into networks: IPv4 /24 and IPv6 /64 unless the settings say otherwise. */
export interface NetworkPrefixes {
  ipv4: number;
  ipv6: number;
}

/** One entry of `config/networks.yaml`: a range and the environment it belongs to. */
export interface NetworkEnvironment {
  cidr: string;
  environment: string;
}

const CACHE_LIMIT = 65_536;

/**
 * Maps a source address to its network (`10.1.2.0/24`) and the network to the environment
 * `networks.yaml` gives it. Both answers are cached: sources repeat, and this runs for every record.
 */
export class NetworkMap {
  readonly #prefixes: NetworkPrefixes;
  /** The entries of networks.yaml, as given. */
  readonly environments: readonly NetworkEnvironment[];
  readonly #ranges: Array<{ range: AddressRange; environment: string }>;
  readonly #networkOf = new Map<string, string>();
  readonly #environmentOf = new Map<string, string>();

  constructor(prefixes: NetworkPrefixes, environments: readonly NetworkEnvironment[] = []) {
    this.#prefixes = prefixes;
    this.environments = environments.map((e) => ({ cidr: e.cidr, environment: e.environment }));
    // The most specific range wins, as in routing.
    this.#ranges = environments
      .map((e) => {
        const range = parseRange(e.cidr);
        if (!range) throw new Error(`"${e.cidr}" is not a CIDR range`);
        return { range, environment: e.environment };
      })
      .sort((a, b) => b.range.prefix - a.range.prefix);
  }

  /** The network of `source` as `address/prefix`, or `source` itself when it is no address ("unknown"). */
  network(source: string): string {
    let n = this.#networkOf.get(source);
    if (n === undefined) {
      n = this.#compute(source);
      if (this.#networkOf.size >= CACHE_LIMIT) this.#networkOf.clear();
      this.#networkOf.set(source, n);
    }
    return n;
  }

  /**
   * The environment of an address (or of a network's base address, `10.1.2.0/24`), "" when no range of
   * networks.yaml holds it. Give it the source address itself: a range of networks.yaml may be narrower
   * than the networks sources are grouped in (a /28 inside a /24).
   */
  environment(address: string): string {
    if (this.#ranges.length === 0) return '';
    let e = this.#environmentOf.get(address);
    if (e === undefined) {
      const slash = address.indexOf('/');
      const ip = parseIp(slash < 0 ? address : address.slice(0, slash));
      e = '';
      if (ip) {
        const effective = effectiveAddress(ip);
        for (const r of this.#ranges) {
          if (inRange(effective, r.range)) {
            e = r.environment;
            break;
          }
        }
      }
      if (this.#environmentOf.size >= CACHE_LIMIT) this.#environmentOf.clear();
      this.#environmentOf.set(address, e);
    }
    return e;
  }

  #compute(source: string): string {
    const parsed = parseIp(source);
    if (!parsed) return source.slice(0, 64);
    const ip = effectiveAddress(parsed);
    const bits = ip.family === 4 ? 32 : 128;
    const prefix = ip.family === 4 ? this.#prefixes.ipv4 : this.#prefixes.ipv6;
    const shift = BigInt(bits - prefix);
    const base = (ip.value >> shift) << shift;
    return `${format(ip.family, base)}/${prefix}`;
  }
}

function format(family: 4 | 6, value: bigint): string {
  if (family === 4) {
    const n = Number(value);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const words: string[] = [];
  for (let i = 7; i >= 0; i--) words.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  return words.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}
