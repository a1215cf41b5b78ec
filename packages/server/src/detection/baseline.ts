/**
 * What a workload usually does, kept per workload and updated with every signal: the networks, user
 * agents, audiences and operations it has used (each with when it was last seen), an hour-of-week
 * histogram of its uses, its issuance and use rates as moving averages over a minute and over six
 * hours, and the distinct hosts that presented its tokens in the last hour. A plain JSON object, so the
 * store keeps it as one document per workload.
 */
export interface Baseline {
  workload: string;
  /** Milliseconds: the first and the latest signal taken into this baseline. */
  firstSeen: number;
  lastSeen: number;
  uses: number;
  issuances: number;
  /** Key → last seen (ms); each map is capped, the longest unseen key going first. */
  networks: Map<string, number>;
  userAgents: Map<string, number>;
  audiences: Map<string, number>;
  /** `<audience> <operation>`. */
  operations: Map<string, number>;
  /** Uses per hour of the week (UTC), Monday 00:00 first: 168 counts. */
  hours: number[];
  /** The same summed over the weekdays (24 counts), and all of them. */
  hoursOfDay: number[];
  /** Moving averages, in events per minute, and when each was last updated (ms). */
  useRate: Rate;
  issueRate: Rate;
  /** Source addresses that presented its tokens, with when last; those older than the window go each minute. */
  hosts: Map<string, number>;
  hostsPrunedAt: number;
  /** The usual number of distinct hosts in a window: a six-hour moving average of the count. */
  hostsUsual: number;
  hostsUsualAt: number;
}

export interface Rate {
  /** Short (one minute) and long (six hours) averages, events per minute. */
  short: number;
  long: number;
  at: number;
}

export interface BaselineSettings {
  /** Learning lasts until both have passed: this long since the first signal (ms)… */
  learningMs: number;
  /** …and this many uses and issuances. */
  learningEvents: number;
  /** Distinct hosts are counted over this window (ms). */
  hostsWindowMs: number;
}

const CAPS = { networks: 256, userAgents: 64, audiences: 256, operations: 1024, hosts: 4096 } as const;
const SHORT_MS = 60_000;
const LONG_MS = 6 * 3_600_000;

export function emptyBaseline(workload: string, now: number): Baseline {
  return {
    workload,
    firstSeen: now,
    lastSeen: now,
    uses: 0,
    issuances: 0,
    networks: new Map(),
    userAgents: new Map(),
    audiences: new Map(),
    operations: new Map(),
    hours: new Array<number>(168).fill(0),
    hoursOfDay: new Array<number>(24).fill(0),
    useRate: { short: 0, long: 0, at: now },
    issueRate: { short: 0, long: 0, at: now },
    hosts: new Map(),
    hostsPrunedAt: now,
    hostsUsual: 0,
    hostsUsualAt: now,
  };
}

/** The hour of the week (UTC) of `ms`, Monday 00:00 being 0. */
export function hourOfWeek(ms: number): number {
  // The epoch fell on a Thursday, hour 72 of its Monday-based week. Arithmetic, not a Date: this runs
  // twice for every use reported.
  return (((Math.floor(ms / 3_600_000) + 72) % 168) + 168) % 168;
}

/** One use, as the baseline takes it in. */
export interface UseObservation {
  time: number;
  network: string;
  source: string;
  userAgent: string;
  audience: string;
  operation: string;
}

/** Takes one allowed use into the baseline. */
export function observeUse(b: Baseline, u: UseObservation, s: BaselineSettings): void {
  const t = Math.max(u.time, b.firstSeen);
  b.lastSeen = Math.max(b.lastSeen, t);
  b.uses++;
  remember(b.networks, u.network, t, CAPS.networks);
  if (u.userAgent !== '') remember(b.userAgents, u.userAgent, t, CAPS.userAgents);
  remember(b.audiences, u.audience, t, CAPS.audiences);
  remember(b.operations, `${u.audience} ${u.operation}`, t, CAPS.operations);
  const h = hourOfWeek(t);
  b.hours[h] = (b.hours[h] ?? 0) + 1;
  b.hoursOfDay[h % 24] = (b.hoursOfDay[h % 24] ?? 0) + 1;
  tick(b.useRate, t);
  if (t - b.hostsPrunedAt >= 60_000) {
    forgetOld(b.hosts, t - s.hostsWindowMs);
    b.hostsPrunedAt = t;
  }
  const before = b.hosts.size;
  remember(b.hosts, u.source, t, CAPS.hosts);
  // The usual count follows the count slowly: pods added over hours become usual, a sudden crowd does not.
  if (before === 0 && b.uses === 1) b.hostsUsual = b.hosts.size;
  else if (t - b.hostsUsualAt >= 60_000) {
    const w = 1 - Math.exp(-(t - b.hostsUsualAt) / LONG_MS);
    b.hostsUsual += (b.hosts.size - b.hostsUsual) * w;
    b.hostsUsualAt = t;
  }
}

/** Takes one issuance into the baseline. */
export function observeIssuance(b: Baseline, time: number): void {
  const t = Math.max(time, b.firstSeen);
  b.lastSeen = Math.max(b.lastSeen, t);
  b.issuances++;
  tick(b.issueRate, t);
}

/** Whether the rules that read this baseline only observe yet. */
export function learning(b: Baseline, now: number, s: BaselineSettings): boolean {
  return now - b.firstSeen < s.learningMs || b.uses + b.issuances < s.learningEvents;
}

/**
 * The features of a baseline that rules read (`baseline.*` in a condition), before the signal at hand
 * is taken in, so "never seen" means never before this signal.
 */
export interface BaselineFeatures {
  learning: boolean;
  uses: number;
  issuances: number;
  network_known: boolean;
  networks: number;
  user_agent_known: boolean;
  audience_known: boolean;
  operation_known: boolean;
  /** Share of all uses in this hour of the day (any weekday) and its neighbours, 0 to 1. */
  hour_share: number;
  /** Per minute: the last minute's rate and the six-hour average, as of the signal. */
  use_rate: number;
  use_rate_usual: number;
  issue_rate: number;
  issue_rate_usual: number;
  /** Distinct hosts in the window, and the usual number (six-hour moving average). */
  hosts: number;
  hosts_usual: number;
}

export function baselineFeatures(
  b: Baseline,
  at: { time: number; network: string; userAgent: string; audience: string; operation: string },
  s: BaselineSettings,
): BaselineFeatures {
  const t = Math.max(at.time, b.lastSeen);
  const hour = hourOfWeek(at.time) % 24;
  const d = b.hoursOfDay;
  const near = (d[(hour + 23) % 24] ?? 0) + (d[hour] ?? 0) + (d[(hour + 1) % 24] ?? 0);
  const all = b.uses;
  return {
    learning: learning(b, at.time, s),
    uses: b.uses,
    issuances: b.issuances,
    network_known: b.networks.has(at.network),
    networks: b.networks.size,
    user_agent_known: at.userAgent === '' || b.userAgents.has(at.userAgent),
    audience_known: at.audience === '' || b.audiences.has(at.audience),
    operation_known: at.operation === '' || b.operations.has(`${at.audience} ${at.operation}`),
    hour_share: all === 0 ? 1 : near / all,
    use_rate: rateAt(b.useRate, t, SHORT_MS),
    use_rate_usual: rateAt(b.useRate, t, LONG_MS),
    issue_rate: rateAt(b.issueRate, t, SHORT_MS),
    issue_rate_usual: rateAt(b.issueRate, t, LONG_MS),
    hosts: b.hosts.size,
    hosts_usual: b.hostsUsual,
  };
}

/** Adds one event to both moving averages (events per minute). */
function tick(r: Rate, t: number): void {
  const dt = Math.max(0, t - r.at);
  r.short = r.short * Math.exp(-dt / SHORT_MS) + 60_000 / SHORT_MS;
  r.long = r.long * Math.exp(-dt / LONG_MS) + 60_000 / LONG_MS;
  r.at = Math.max(r.at, t);
}

function rateAt(r: Rate, t: number, window: number): number {
  const v = window === SHORT_MS ? r.short : r.long;
  return v * Math.exp(-Math.max(0, t - r.at) / window);
}

function remember(m: Map<string, number>, key: string, t: number, cap: number): void {
  const seen = m.get(key);
  if (seen === undefined) {
    if (m.size >= cap) forgetOldest(m);
    m.set(key, t);
  } else if (t > seen) m.set(key, t);
}

function forgetOldest(m: Map<string, number>): void {
  let oldest: string | undefined;
  let at = Number.POSITIVE_INFINITY;
  for (const [k, v] of m) {
    if (v < at) {
      at = v;
      oldest = k;
    }
  }
  if (oldest !== undefined) m.delete(oldest);
}

function forgetOld(m: Map<string, number>, before: number): void {
  for (const [k, v] of m) if (v < before) m.delete(k);
}

/** The baseline as the store keeps it: JSON, maps as objects. */
export function baselineToJson(b: Baseline): string {
  return JSON.stringify({
    ...b,
    networks: Object.fromEntries(b.networks),
    userAgents: Object.fromEntries(b.userAgents),
    audiences: Object.fromEntries(b.audiences),
    operations: Object.fromEntries(b.operations),
    hosts: Object.fromEntries(b.hosts),
  });
}

/** A stored baseline; one that does not read as one (another version's, say) starts over. */
export function baselineFromJson(workload: string, json: string, now: number): Baseline {
  const fresh = emptyBaseline(workload, now);
  try {
    const o = JSON.parse(json) as Record<string, unknown>;
    const map = (v: unknown) =>
      new Map(
        Object.entries((v ?? {}) as Record<string, unknown>).filter(
          (e): e is [string, number] => typeof e[1] === 'number',
        ),
      );
    const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
    const counts = (v: unknown, n: number) =>
      Array.isArray(v) && v.length === n ? v.map((x) => num(x, 0)) : new Array<number>(n).fill(0);
    const rate = (v: unknown): Rate => {
      const r = (v ?? {}) as Record<string, unknown>;
      return { short: num(r['short'], 0), long: num(r['long'], 0), at: num(r['at'], now) };
    };
    return {
      workload,
      firstSeen: num(o['firstSeen'], now),
      lastSeen: num(o['lastSeen'], now),
      uses: num(o['uses'], 0),
      issuances: num(o['issuances'], 0),
      networks: map(o['networks']),
      userAgents: map(o['userAgents']),
      audiences: map(o['audiences']),
      operations: map(o['operations']),
      hours: counts(o['hours'], 168),
      hoursOfDay: counts(o['hoursOfDay'], 24),
      useRate: rate(o['useRate']),
      issueRate: rate(o['issueRate']),
      hosts: map(o['hosts']),
      hostsPrunedAt: num(o['hostsPrunedAt'], now),
      hostsUsual: num(o['hostsUsual'], 0),
      hostsUsualAt: num(o['hostsUsualAt'], now),
    };
  } catch {
    return fresh;
  }
}
