import type { NetworkEnvironment } from '../../src/detection/networks.js';

/**
 * A generated week of benign traffic, for the false-positive acceptance test of detection
 * (detection-benign-week.test.ts): 50 workloads calling 8 APIs from a handful of pods each, busy in the
 * day, quiet but not silent at night, lighter at weekends (a few batch workloads the other way round);
 * pods come and go, each new one with a new address inside its environment's networks; on day 3 a
 * deployment replaces the pods of some workloads with more of them (new addresses in the same networks,
 * sometimes a newer client library); on day 5 a config change grants some workloads one more API, which
 * they use from then on. Each pod holds its own tokens, one per API, renewed as the SDK's WorkloadClient
 * renews them: at the first use with a third or less of the lifetime left.
 *
 * Deterministic: the world comes from one seed, and each workload draws its traffic from a PRNG of its
 * own, so the traffic of a few workloads is the same whether or not the others are generated beside them.
 */

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Monday 2 March 2026, 00:00 UTC: day 1 of the week. */
export const WEEK_START = Date.UTC(2026, 2, 2);

/** What every class gives: tokens live ten minutes unless asked otherwise (the SDK does not ask). */
export const TOKEN_TTL_SECONDS = 600;

export interface Api {
  audience: string;
  /** The verifier in front of the API: the workload that reports its uses (it `serves` the audience). */
  reporter: string;
  operations: string[];
}

interface Cluster {
  environment: string;
  /** Node networks, pods get addresses inside them: `10.1.7` (a /24) or `fd00:1:1:7` (a /64). */
  nodes: string[];
  family: 4 | 6;
}

export interface WeightedApi {
  audience: string;
  weight: number;
  operations: Array<{ operation: string; weight: number }>;
}

export interface WorkloadSpec {
  id: string;
  owner: string;
  environment: string;
  /** The one class the workload holds (its name), granting the audiences it calls. */
  className: string;
  rhythm: 'service' | 'batch';
  pods: number;
  /** Uses per pod and hour at the busiest hour of a weekday. */
  peakPerPod: number;
  apis: WeightedApi[];
  userAgent: string;
  cluster: Cluster;
  /** Day 3: when its pods are replaced, by how many, and the client library of the new ones. */
  deployment?: { at: number; pods: number; userAgent: string };
  /** Day 5: the API its class gains by a config change, used from `from`. */
  grant?: { api: WeightedApi; from: number };
}

export interface BenignWeek {
  seed: number;
  start: number;
  apis: Api[];
  /** `config/networks.yaml`: every address a pod gets is inside one of these, of its environment. */
  networks: NetworkEnvironment[];
  workloads: WorkloadSpec[];
  /** The config change of day 5: at `at`, the classes of `workloads` gain `audience`. */
  grant: { at: number; audience: string; workloads: string[] };
}

/** A token as the generator hands it out: the fields of Writ's record of it, bar the signing key. */
export interface WeekToken {
  jti: string;
  sub: string;
  clientId: string;
  cls: string;
  aud: string;
  scope: string;
  /** Seconds. */
  iat: number;
  exp: number;
}

export type WeekEvent =
  | { kind: 'issue'; time: number; token: WeekToken; pod: string; source: string }
  | {
      kind: 'use';
      time: number;
      token: WeekToken;
      pod: string;
      reporter: string;
      operation: string;
      source: string;
      userAgent: string;
      decision: 'allow' | 'deny';
      reason: string;
    };

/** mulberry32: small, fast, and the same everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

type Rng = () => number;
const between = (r: Rng, lo: number, hi: number) => lo + r() * (hi - lo);
const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

function pickWeighted<T extends { weight: number }>(r: Rng, xs: readonly T[]): T {
  let total = 0;
  for (const x of xs) total += x.weight;
  let u = r() * total;
  for (const x of xs) {
    u -= x.weight;
    if (u < 0) return x;
  }
  return xs[xs.length - 1]!;
}

/** A shuffled copy (Fisher-Yates). */
function shuffle<T>(r: Rng, xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Knuth's method: fine for the means here (under a hundred). */
function poisson(r: Rng, mean: number): number {
  const limit = Math.exp(-mean);
  let k = 0;
  let p = r();
  while (p > limit) {
    k++;
    p *= r();
  }
  return k;
}

const API_OPERATIONS: Record<string, string[]> = {
  payments: ['POST /payments', 'GET /payments/:id', 'POST /payments/:id/capture', 'POST /refunds'],
  orders: ['GET /orders/:id', 'POST /orders', 'PATCH /orders/:id', 'GET /orders'],
  search: ['GET /search', 'GET /suggest'],
  identity: ['GET /users/:id', 'POST /sessions/verify', 'GET /users/:id/roles'],
  catalog: ['GET /products/:id', 'GET /products', 'PUT /products/:id/stock'],
  shipping: ['POST /shipments', 'GET /shipments/:id', 'GET /rates'],
  ledger: ['POST /entries', 'GET /accounts/:id/balance', 'GET /entries'],
  notify: ['POST /messages', 'GET /messages/:id/status'],
};

const TEAMS = [
  'payments',
  'orders',
  'search',
  'identity',
  'catalog',
  'shipping',
  'ledger',
  'notify',
  'reports',
  'fraud',
];
const SERVICES = ['api', 'worker', 'sync', 'gateway', 'scheduler'];

/** Client libraries as they announce themselves, each with a newer version a deployment may bring. */
const USER_AGENTS: Array<[string, string]> = [
  ['writ-sdk-node/0.9.2 node/22.12.0', 'writ-sdk-node/0.9.3 node/22.13.1'],
  ['python-requests/2.32.3', 'python-requests/2.32.4'],
  ['Go-http-client/2.0', 'Go-http-client/2.0'],
  ['okhttp/4.12.0', 'okhttp/5.0.0'],
  ['axios/1.7.9', 'axios/1.8.1'],
  ['Java-http-client/21.0.5', 'Java-http-client/21.0.6'],
  ['aiohttp/3.11.11 Python/3.12', 'aiohttp/3.11.12 Python/3.12'],
  ['reqwest/0.12.12', 'reqwest/0.12.12'],
];

const CLUSTERS: Record<string, Cluster> = {
  // Two availability zones, a node network (/24) per node.
  'prod-v4': {
    environment: 'production',
    family: 4,
    nodes: [...range(24).map((n) => `10.1.${n}`), ...range(24).map((n) => `10.2.${n}`)],
  },
  'prod-v6': {
    environment: 'production',
    family: 6,
    nodes: range(16).map((n) => `fd00:1:1:${n.toString(16)}`),
  },
  staging: { environment: 'staging', family: 4, nodes: range(8).map((n) => `10.20.${n}`) },
};

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** The week: its APIs, networks, workloads, the day-3 deployment and the day-5 grant. */
export function benignWeek(seed = 13): BenignWeek {
  const r = prng(seed);
  const apis: Api[] = Object.entries(API_OPERATIONS).map(([name, operations]) => ({
    audience: `https://${name}.api.internal`,
    reporter: `spiffe://bench.writ/${name}/verifier`,
    operations,
  }));
  const weighted = (api: Api, weight: number): WeightedApi => {
    const n = Math.min(api.operations.length, int(r, 2, 3));
    const ops = shuffle(r, api.operations).slice(0, n);
    return {
      audience: api.audience,
      weight,
      operations: ops.map((operation) => ({ operation, weight: between(r, 0.4, 1.5) })),
    };
  };
  const workloads: WorkloadSpec[] = [];
  for (const team of TEAMS) {
    for (const service of SERVICES) {
      const environment = r() < 0.7 ? 'production' : 'staging';
      const cluster =
        environment === 'staging'
          ? CLUSTERS['staging']!
          : r() < 0.25
            ? CLUSTERS['prod-v6']!
            : CLUSTERS['prod-v4']!;
      const rhythm = service === 'scheduler' && r() < 0.8 ? 'batch' : 'service';
      const own = `https://${team}.api.internal`;
      const callable = apis.filter((a) => a.audience !== own);
      const calls = shuffle(r, callable).slice(0, int(r, 1, 3));
      workloads.push({
        id: `spiffe://bench.writ/${team}/${service}`,
        owner: `team-${team}`,
        environment,
        className: `${team}-${service}-calls`,
        rhythm,
        pods: environment === 'staging' ? int(r, 1, 3) : pick(r, [2, 2, 3, 3, 4, 4, 5, 6, 8, 12, 16]),
        peakPerPod: Math.round(between(r, 25, 55)),
        apis: calls.map((a, i) => weighted(a, i === 0 ? 1 : between(r, 0.2, 0.8))),
        userAgent: pick(r, USER_AGENTS)[0],
        cluster,
      });
    }
  }
  // Day 3 (Wednesday), in the afternoon: a dozen workloads roll out a new version with a quarter to twice
  // as many pods again; the busiest service among them doubles.
  const day3 = WEEK_START + 2 * DAY;
  const deployed = shuffle(r, workloads).slice(0, 12);
  const doubled = deployed
    .filter((w) => w.rhythm === 'service')
    .reduce((a, b) => (b.pods * b.peakPerPod > a.pods * a.peakPerPod ? b : a));
  for (const w of deployed) {
    const library = USER_AGENTS.find(([old]) => old === w.userAgent)!;
    const added = w === doubled ? w.pods : Math.max(1, Math.ceil(w.pods * between(r, 0.25, 1)));
    w.deployment = {
      at: day3 + 13 * HOUR + Math.floor(between(r, 0, 4 * HOUR)),
      pods: w.pods + added,
      userAgent: r() < 0.5 ? library[1] : library[0],
    };
  }
  // Day 5 (Friday), 10:00: the ledger API is granted to eight more workloads, which start using it.
  const grantAt = WEEK_START + 4 * DAY + 10 * HOUR;
  const ledger = apis.find((a) => a.audience.startsWith('https://ledger.'))!;
  const granted = shuffle(r, workloads)
    .filter(
      (w) =>
        w.rhythm === 'service' &&
        w.owner !== 'team-ledger' &&
        !w.apis.some((a) => a.audience === ledger.audience),
    )
    .slice(0, 8);
  for (const w of granted)
    w.grant = {
      api: weighted(ledger, between(r, 0.3, 0.7)),
      from: grantAt + Math.floor(between(r, 10 * MINUTE, 3 * HOUR)),
    };
  return {
    seed,
    start: WEEK_START,
    apis,
    networks: [
      { cidr: '10.1.0.0/16', environment: 'production' },
      { cidr: '10.2.0.0/16', environment: 'production' },
      { cidr: 'fd00:1:1::/48', environment: 'production' },
      { cidr: '10.20.0.0/16', environment: 'staging' },
    ],
    workloads,
    grant: { at: grantAt, audience: ledger.audience, workloads: granted.map((w) => w.id) },
  };
}

/** How busy a workload is at `t`, 0 to 1 of its peak: a smooth day curve over a floor that never stops. */
export function busyness(rhythm: WorkloadSpec['rhythm'], t: number): number {
  const d = new Date(t);
  const hour = d.getUTCHours() + d.getUTCMinutes() / 60;
  const weekend = d.getUTCDay() === 0 || d.getUTCDay() === 6;
  // Services peak at 14:00 UTC and rest at night; batch work peaks at 02:00, every day of the week.
  const peak = rhythm === 'service' ? 14 : 2;
  const shape = ((1 + Math.cos((2 * Math.PI * (hour - peak)) / 24)) / 2) ** 2;
  const floor = rhythm === 'service' ? 0.08 : 0.06;
  return floor + (1 - floor) * shape * (weekend && rhythm === 'service' ? 0.3 : 1);
}

interface Pod {
  id: string;
  address: string;
  start: number;
  end: number;
  /** Ended by a deployment: not replaced by a pod of the same version. */
  retired: boolean;
  userAgent: string;
  tokens: Map<string, WeekToken>;
}

/** One workload's traffic, hour by hour, from its own PRNG. */
class WorkloadTraffic {
  readonly #w: WorkloadSpec;
  readonly #r: Rng;
  readonly #pods: Pod[] = [];
  #podSeq = 0;
  #jtiSeq = 0;
  #deployed = false;

  constructor(w: WorkloadSpec, seed: number, from: number) {
    this.#w = w;
    this.#r = prng(seed);
    const deployedBefore = w.deployment !== undefined && w.deployment.at < from;
    this.#deployed = deployedBefore;
    const n = deployedBefore ? w.deployment!.pods : w.pods;
    const ua = deployedBefore ? w.deployment!.userAgent : w.userAgent;
    // Pods already running when the generation starts: they end at any time in the next two days.
    for (let i = 0; i < n; i++) this.#addPod(from, from + between(this.#r, 30 * MINUTE, 2 * DAY), ua);
  }

  #addPod(start: number, end: number, userAgent: string): void {
    const c = this.#w.cluster;
    const node = pick(this.#r, c.nodes);
    const address =
      c.family === 4
        ? `${node}.${int(this.#r, 2, 254)}`
        : `${node}:${range(4)
            .map(() => int(this.#r, 0, 0xffff).toString(16))
            .join(':')}`;
    this.#pods.push({
      id: `${this.#w.id}#${++this.#podSeq}`,
      address,
      start,
      end,
      retired: false,
      userAgent,
      tokens: new Map(),
    });
  }

  /** Pods started after a replacement lives 6 to 48 hours. */
  #lifetime(): number {
    return between(this.#r, 6 * HOUR, 48 * HOUR);
  }

  /** The events of the hour starting at `t0`, in time order. */
  hour(t0: number): WeekEvent[] {
    const t1 = t0 + HOUR;
    const w = this.#w;
    const dep = w.deployment;
    if (dep && !this.#deployed && dep.at < t1) {
      // A rolling update over ten minutes: each old pod goes, the new ones (more of them) come.
      this.#deployed = true;
      const old = this.#pods.filter((p) => p.end > dep.at);
      old.forEach((p, i) => {
        p.end = dep.at + ((i + 1) * 10 * MINUTE) / old.length;
        p.retired = true;
      });
      for (let i = 0; i < dep.pods; i++) {
        const start = dep.at + (i * 10 * MINUTE) / dep.pods;
        this.#addPod(start, start + this.#lifetime(), dep.userAgent);
      }
    }
    // Pods that end are replaced at once (a node drained, a crash, an eviction): same version, new address.
    for (let i = 0; i < this.#pods.length; i++) {
      const p = this.#pods[i]!;
      if (p.end < t1 && !p.retired) {
        p.retired = true;
        this.#addPod(p.end, p.end + this.#lifetime(), p.userAgent);
      }
    }
    const events: WeekEvent[] = [];
    const perPod = w.peakPerPod * busyness(w.rhythm, t0 + HOUR / 2);
    for (const p of this.#pods) {
      const from = Math.max(p.start, t0);
      const to = Math.min(p.end, t1);
      if (to <= from) continue;
      const n = poisson(this.#r, (perPod * (to - from)) / HOUR);
      const times = range(n)
        .map(() => Math.floor(between(this.#r, from, to)))
        .sort((a, b) => a - b);
      for (const time of times) this.#use(p, time, events);
    }
    // Pods gone for good are dropped once their last hour has passed.
    for (let i = this.#pods.length - 1; i >= 0; i--) if (this.#pods[i]!.end < t0) this.#pods.splice(i, 1);
    return events;
  }

  #use(p: Pod, time: number, out: WeekEvent[]): void {
    const w = this.#w;
    const apis = w.grant && time >= w.grant.from ? [...w.apis, w.grant.api] : w.apis;
    const api = pickWeighted(this.#r, apis);
    const { operation } = pickWeighted(this.#r, api.operations);
    const token = this.#token(p, api.audience, time, out);
    // A few uses are refused by the API's own checks (a scope it wants): benign, and reported too.
    const denied = this.#r() < 0.003;
    out.push({
      kind: 'use',
      time,
      token,
      pod: p.id,
      reporter: reporterOf(api.audience),
      operation,
      source: p.address,
      userAgent: p.userAgent,
      decision: denied ? 'deny' : 'allow',
      reason: denied ? 'insufficient_scope' : '',
    });
  }

  /** The pod's token for `aud`, renewed as the SDK renews: a third or less of its lifetime left. */
  #token(p: Pod, aud: string, time: number, out: WeekEvent[]): WeekToken {
    const now = Math.floor(time / 1000);
    const held = p.tokens.get(aud);
    if (held && held.exp - now > TOKEN_TTL_SECONDS / 3) return held;
    const w = this.#w;
    const token: WeekToken = {
      jti: `${Math.floor(this.#r() * 2 ** 32).toString(36)}${Math.floor(this.#r() * 2 ** 32).toString(36)}${(++this.#jtiSeq).toString(36)}`,
      sub: w.id,
      clientId: w.id,
      cls: w.className,
      aud,
      scope: 'api:call',
      iat: now,
      exp: now + TOKEN_TTL_SECONDS,
    };
    p.tokens.set(aud, token);
    out.push({ kind: 'issue', time, token, pod: p.id, source: p.address });
    return token;
  }
}

const reporterOf = (audience: string) =>
  `spiffe://bench.writ/${new URL(audience).hostname.split('.')[0]}/verifier`;

/**
 * The traffic of `hours` hours from `from` (on the hour), one array of events per hour in time order (an
 * issuance before the use it serves). `workloads` limits it to some workloads; each one's traffic is the
 * same as in the whole, given the same `from`.
 */
export function* traffic(
  week: BenignWeek,
  o: { from?: number; hours?: number; workloads?: readonly string[] } = {},
): Generator<WeekEvent[]> {
  const from = o.from ?? week.start;
  const hours = o.hours ?? 7 * 24;
  const only = o.workloads ? new Set(o.workloads) : undefined;
  const sims = week.workloads
    .map((w, i) => ({ w, i }))
    .filter(({ w }) => !only || only.has(w.id))
    .map(({ w, i }) => new WorkloadTraffic(w, (week.seed * 7919 + i * 104_729) >>> 0, from));
  for (let h = 0; h < hours; h++) {
    const t0 = from + h * HOUR;
    const events = sims.flatMap((s) => s.hour(t0));
    // Stable: an issuance stays before the use at the same millisecond it was made for.
    events.sort((a, b) => a.time - b.time);
    yield events;
  }
}
