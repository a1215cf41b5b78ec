/**
 * A Prometheus histogram by route counted in plain arrays, written out in the text exposition format
 * when scraped. prom-client hashes the label set of every observation; the proxy observes once per
 * request, so the counting is kept to a bucket search and two additions. Routes are known up front.
 */
export class RouteLatencyHistogram {
  readonly #bounds: readonly number[];
  readonly #byRoute = new Map<string, { buckets: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    bounds: readonly number[],
    routes: readonly string[],
  ) {
    this.#bounds = [...bounds].sort((a, b) => a - b);
    for (const r of routes)
      this.#byRoute.set(r, { buckets: new Array(this.#bounds.length).fill(0), sum: 0, count: 0 });
  }

  /** Counts `seconds` for `route`; a route not given at construction is ignored, as is a value that is not finite. */
  observe(route: string, seconds: number): void {
    const h = this.#byRoute.get(route);
    if (!h || !Number.isFinite(seconds)) return;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++)
      if (seconds <= bounds[i]!) {
        h.buckets[i]!++;
        break;
      }
    h.sum += seconds;
    h.count++;
  }

  /** The histogram in the Prometheus text format (cumulative buckets, `+Inf`, sum and count per route). */
  exposition(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const [route, h] of this.#byRoute) {
      const label = `route="${escapeLabel(route)}"`;
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += h.buckets[i]!;
        out += `${this.name}_bucket{le="${this.#bounds[i]}",${label}} ${acc}\n`;
      }
      out += `${this.name}_bucket{le="+Inf",${label}} ${h.count}\n`;
      out += `${this.name}_sum{${label}} ${h.sum}\n`;
      out += `${this.name}_count{${label}} ${h.count}\n`;
    }
    return out;
  }
}

/** A label value as the text format quotes it: backslash, double quote and newline escaped. */
function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
