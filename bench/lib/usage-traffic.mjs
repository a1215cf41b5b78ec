// A simulated fleet's token usage, for the detection benchmark: what verifiers report to
// `POST /v1/usage` when nothing is wrong. Deterministic (seeded), so every round and every process that
// builds the same fleet sees the same workloads, sources and tokens.
//
// Each workload runs a few pods with steady addresses inside its own /24 (a fifth of them in two
// zones, so two networks), calls one to three APIs with a handful of operations each, always with the
// same client library (user agent), and each pod holds one token per API, renewed every four fifths of
// the token lifetime. Some workloads are much busier than others. About 1% of uses are refused without
// a security signal (a missing scope) and 0.1% as expired (a token presented just past its `exp`).
import { createHash } from 'node:crypto';

/** A seeded PRNG (mulberry32): numbers in [0, 1). */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const USER_AGENTS = [
  'writ-sdk-node/0.9 node/20.20.0',
  'Go-http-client/1.1',
  'python-requests/2.32.3',
  'okhttp/4.12.0',
  'aws-sdk-java/2.25.60',
  'reqwest/0.12',
];
const OPERATIONS = [
  'GET /v1/items/:id',
  'GET /v1/items',
  'POST /v1/items',
  'PUT /v1/items/:id',
  'GET /v1/reports/:id',
  'POST /v1/jobs',
  'GET /v1/jobs/:id',
  'DELETE /v1/items/:id',
  'GET /v1/health/deep',
  'POST /v1/events',
];

/** The API audiences of a fleet: `https://api-<k>.bench.writ`. */
export const fleetApis = (n) => Array.from({ length: n }, (_, k) => `https://api-${k}.bench.writ`);

/** The verifier workload that reports the uses of an API (every replica of it shares the identity). */
export const fleetReporter = (api) => `spiffe://bench.writ/verifier/${new URL(api).hostname.split('.')[0]}`;

/**
 * The fleet: `workloads` workloads (`spiffe://bench.writ/fleet/w-<i>`) over `apis` APIs. Returns
 * { workloads, apis, slots(), uses(opts) }.
 */
export function usageFleet({ workloads: count = 1000, apis: apiCount = 8, seed = 13 } = {}) {
  const rnd = seededRandom(seed);
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const apis = fleetApis(apiCount);
  const workloads = [];
  for (let i = 0; i < count; i++) {
    const zones = rnd() < 0.2 ? 2 : 1;
    const pods = 2 + Math.floor(rnd() * 5);
    const a = 16 + (i >> 8);
    const b = i & 255;
    const calls = [];
    const nApis = 1 + Math.floor(rnd() * 3);
    const first = Math.floor(rnd() * apis.length);
    for (let k = 0; k < nApis; k++) {
      const ops = new Set();
      const nOps = 2 + Math.floor(rnd() * 5);
      while (ops.size < nOps) ops.add(pick(OPERATIONS));
      calls.push({ api: apis[(first + k) % apis.length], operations: [...ops] });
    }
    workloads.push({
      index: i,
      id: `spiffe://bench.writ/fleet/w-${String(i).padStart(4, '0')}`,
      environment: i % 5 === 0 ? 'staging' : 'prod',
      userAgent: pick(USER_AGENTS),
      // Pod p lives in zone p mod zones: 10.<a>.<b>.0/24, or 10.<a+100>.<b>.0/24 for the second zone.
      sources: Array.from({ length: pods }, (_, p) => `10.${a + (p % zones) * 100}.${b}.${10 + p}`),
      calls,
      // Busy workloads: a few do most of the calling (weights 1 to 21, skewed low).
      weight: 1 + Math.floor(rnd() ** 3 * 20),
      tasks: rnd() < 0.1,
    });
  }

  /** Every (workload, pod, API) that holds a token: what a caller with real tokens must issue. */
  const slots = () =>
    workloads.flatMap((w) =>
      w.sources.flatMap((_, pod) => w.calls.map((c) => ({ workload: w, pod, api: c.api }))),
    );

  /**
   * Uses in time order from `start` (ms) at `perSecond`, from the given workloads (default all).
   * `token(workload, pod, api, generation)` returns Writ's record of the token a pod holds (default: a
   * synthetic one, renewed every 4/5 of `tokenLifetimeMs`). Each use: { api, reporter, use, token }, with
   * `use` as `Detector.observeUses` takes it (`ObservedUse`); `usageRecord` makes what a verifier sends.
   */
  function* uses({ start, perSecond, from = workloads, tokenLifetimeMs = 300_000, token = syntheticToken }) {
    const r = seededRandom(seed * 7919 + from.length);
    const cumulative = [];
    let total = 0;
    for (const w of from) {
      total += w.weight;
      cumulative.push(total);
    }
    const renewMs = Math.floor(tokenLifetimeMs * 0.8);
    const tokens = new Map();
    const step = 1000 / perSecond;
    for (let n = 0; ; n++) {
      const time = Math.floor(start + n * step);
      // Binary search over the cumulative weights.
      const x = r() * total;
      let lo = 0;
      let hi = cumulative.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cumulative[mid] > x) hi = mid;
        else lo = mid + 1;
      }
      const w = from[lo];
      const pod = Math.floor(r() * w.sources.length);
      const call = w.calls[Math.floor(r() * w.calls.length)];
      // Pods renew at staggered times, so generations turn over steadily.
      const generation = Math.floor((time + (w.index * 7 + pod) * 997) / renewMs);
      const key = `${w.index}/${pod}/${call.api}/${generation}`;
      let t = tokens.get(key);
      if (t === undefined) {
        t = token(w, pod, call.api, generation, tokenLifetimeMs);
        tokens.set(key, t);
        if (tokens.size > 50_000) tokens.delete(tokens.keys().next().value);
      }
      const roll = r();
      const decision = roll < 0.011 ? 'deny' : 'allow';
      const reason = roll < 0.001 ? 'expired' : decision === 'deny' ? 'insufficient_scope' : '';
      const use = {
        operation: call.operations[Math.floor(r() * call.operations.length)],
        source: w.sources[pod],
        userAgent: w.userAgent,
        decision,
        reason,
        signal: reason === 'expired' ? 'expired' : '',
        time,
      };
      yield { api: call.api, reporter: fleetReporter(call.api), use, token: t };
    }
  }

  return { workloads, apis, slots, uses };
}

/** Writ's record of a token the fleet did not really get issued (the in-process benchmark). */
function syntheticToken(w, pod, api, generation, lifetimeMs) {
  const iat = Math.floor((generation * lifetimeMs * 0.8) / 1000);
  return {
    // A jti looks like Writ's: 22 base64url characters.
    jti: createHash('sha256').update(`${w.id} ${pod} ${api} ${generation}`).digest('base64url').slice(0, 22),
    sub: w.id,
    clientId: w.id,
    cls: 'fleet',
    aud: api,
    scope: 'fleet:call',
    kid: 'bench-key-1',
    ...(w.tasks ? { tid: `task-${w.index}-${pod}-${generation}` } : {}),
    iat,
    exp: iat + lifetimeMs / 1000,
    fingerprint: '',
  };
}

/** The key of a token slot (a pod's token for one API), to hand real tokens to `uses({ token })`. */
export const slotKey = (workload, pod, api) => `${workload.index}/${pod}/${api}`;

/** The wire record (`POST /v1/usage`) of a use: what `UsageReporter.record` is given. */
export function usageRecord({ use, token }) {
  return {
    jti: token.jti,
    operation: use.operation,
    source: use.source,
    userAgent: use.userAgent,
    decision: use.decision,
    ...(use.decision === 'deny' ? { reason: use.reason } : {}),
    ...(use.signal ? { signal: use.signal } : {}),
  };
}
