// Summarizes a V8 .cpuprofile (node --cpu-prof): self time per function and per area of the code.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt } from './report.mjs';

/** Where a call frame's code lives, for the per-area summary. */
function area(url, functionName, root) {
  if (!url) {
    if (functionName === '(garbage collector)') return 'V8 garbage collector';
    if (functionName === '(idle)') return 'idle (waiting for I/O)';
    if (functionName === '(program)') return 'V8/native (program)';
    return `native: ${functionName || '(anonymous)'}`;
  }
  if (url.startsWith('node:')) return `node internals (${url.split('/')[1] ?? url})`;
  const path = url.replace(/^file:\/\//, '').replace(root, '');
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 'node_modules/'.length).split('/');
    return `dependency ${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const m = path.match(/packages\/(\w+)\/dist\/src\/(\w+)/);
  if (m) return `writ ${m[1]}: ${m[2]}/`;
  return path;
}

/**
 * Self time per function and per area. `window` ([from, to], monotonic microseconds, the clock of
 * `process.hrtime`) keeps only the samples taken then, e.g. the timed phase of a load run.
 */
export function summarizeCpuProfile(profile, root, window = [0, Number.POSITIVE_INFINITY]) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMicros = new Map();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (t < window[0] || t > window[1]) continue;
    const id = profile.samples[i];
    selfMicros.set(id, (selfMicros.get(id) ?? 0) + delta);
  }
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const whereOf = (f) =>
    f.url ? `${f.url.replace(/^file:\/\//, '').replace(root, '')}:${f.lineNumber + 1}` : '';
  // Inclusive time of Writ's own functions: a sample counts once for every distinct function on its stack.
  const inclusive = new Map();
  for (const [id, us] of selfMicros) {
    const seen = new Set();
    for (let n = id; n !== undefined; n = parent.get(n)) {
      const f = byId.get(n).callFrame;
      if (!f.url.includes('/packages/')) continue;
      const key = `${f.functionName || '(anonymous)'}  ${whereOf(f)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const fns = new Map();
  const areas = new Map();
  let total = 0;
  for (const [id, us] of selfMicros) {
    const { callFrame: f } = byId.get(id);
    total += us;
    const where = whereOf(f);
    const key = `${f.functionName}|${where}`;
    const row = fns.get(key) ?? { name: f.functionName || '(anonymous)', where, micros: 0 };
    row.micros += us;
    fns.set(key, row);
    const a = area(f.url, f.functionName, root);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const percent = (us) => (100 * us) / total;
  return {
    totalSeconds: total / 1e6,
    top: [...fns.values()]
      .sort((a, b) => b.micros - a.micros)
      .slice(0, 40)
      .map((r) => ({ ...r, percent: percent(r.micros) })),
    inclusive: [...inclusive.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 30)
      .map(([fn, us]) => ({ fn, percent: percent(us) })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 25)
      .map(([a, us]) => ({ area: a, percent: percent(us) })),
  };
}

/**
 * The longest holds of the event loop in `window`: stretches of consecutive samples that are not
 * `(idle)` (the thread waiting for I/O or a timer), each with its length and the Writ functions (or,
 * for none, the native frames: the garbage collector, `(program)`) its samples spent most time under.
 * A stretch may span two callbacks that ran back to back without the thread waiting between them: what
 * a request that arrived meanwhile waited behind. Returns the `count` longest of those `minMs` or longer,
 * and how many there were in all. The length of a hold counts each sample as at most four sampling
 * intervals: a longer gap is the thread waiting for a core on a loaded machine.
 */
export function longHolds(profile, root, window = [0, Number.POSITIVE_INFINITY], minMs = 5, count = 15) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const whereOf = (f) =>
    f.url ? `${f.url.replace(/^file:\/\//, '').replace(root, '')}:${f.lineNumber + 1}` : '';
  /** The Writ functions on a sample's stack (outermost last), else its own frame's name. */
  const framesOf = (id) => {
    const out = [];
    for (let n = id; n !== undefined; n = parent.get(n)) {
      const f = byId.get(n).callFrame;
      if (f.url.includes('/packages/')) out.push(`${f.functionName || '(anonymous)'}  ${whereOf(f)}`);
    }
    if (out.length === 0) out.push(byId.get(id).callFrame.functionName || '(anonymous)');
    return out;
  };
  const holds = [];
  let cur;
  let t = profile.startTime;
  // A sample's time is the gap since the one before; a gap much longer than the sampling interval is
  // the thread waiting for a core (a shared machine), not work: it counts as at most `maxGap`.
  const maxGap = 4 * medianDelta(profile);
  for (let i = 0; i < profile.samples.length; i++) {
    const gap = profile.timeDeltas[i] ?? 0;
    t += gap;
    if (t < window[0] || t > window[1]) continue;
    const delta = Math.min(gap, maxGap);
    const id = profile.samples[i];
    const idle = byId.get(id).callFrame.functionName === '(idle)';
    if (idle) {
      if (cur) holds.push(cur);
      cur = undefined;
      continue;
    }
    cur ??= { start: t - delta, micros: 0, frames: new Map() };
    cur.micros += delta;
    for (const f of new Set(framesOf(id))) cur.frames.set(f, (cur.frames.get(f) ?? 0) + delta);
  }
  if (cur) holds.push(cur);
  const long = holds.filter((h) => h.micros >= minMs * 1000).sort((a, b) => b.micros - a.micros);
  return {
    total: long.length,
    longest: long.slice(0, count).map((h) => ({
      ms: h.micros / 1000,
      at: h.start,
      under: [...h.frames.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([fn, us]) => `${fmt((100 * us) / h.micros)}% ${fn}`),
    })),
  };
}

/** The usual gap between two samples (the sampling interval, µs). */
function medianDelta(profile) {
  const d = profile.timeDeltas.slice(0, 10_000).sort((a, b) => a - b);
  return d[Math.floor(d.length / 2)] || 1000;
}

/** The profile that `node --cpu-prof --cpu-prof-dir=<dir>` wrote, parsed. */
export function readCpuProfile(dir) {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no CPU profile was written in ${dir}`);
  return JSON.parse(readFileSync(join(dir, file), 'utf8'));
}

/**
 * Prints a summary of `summarizeCpuProfile`: its `top` functions by self time, its `inclusive` first
 * Writ functions by inclusive time (0: none) and, with `areas`, self time by area; `indent` goes before
 * each heading.
 */
export function printCpuProfile(summary, { top = 25, inclusive = 25, areas = true, indent = '' } = {}) {
  const row = (percent, what) => console.log(`  ${fmt(percent, 1).padStart(5)}%  ${what}`);
  for (const r of summary.top.slice(0, top)) row(r.percent, `${r.name}  ${r.where}`);
  if (inclusive > 0) {
    console.log(`${indent}inclusive time of Writ functions (synchronous segments on the stack):`);
    for (const r of summary.inclusive.slice(0, inclusive)) row(r.percent, r.fn);
  }
  if (areas) {
    console.log(`${indent}by area:`);
    for (const r of summary.areas) row(r.percent, r.area);
  }
}

/**
 * What the server was doing while given requests waited: for each window ([from, to], monotonic
 * microseconds, e.g. a slow request's scheduled send and its answer), the profile's samples in it, by the
 * outermost Writ function on their stack (the callback that held the loop: a route, the sweeper, a
 * stream's fan-out), else the sample's own frame (the garbage collector, `(program)`, `(idle)`), and by
 * the leaf function. Returns the `count` largest of each as { what, ms, percent } over all windows.
 */
export function blameWindows(profile, root, windows, count = 20) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const whereOf = (f) =>
    f.url ? `${f.url.replace(/^file:\/\//, '').replace(root, '')}:${f.lineNumber + 1}` : '';
  const times = new Float64Array(profile.samples.length);
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    times[i] = t;
  }
  const firstAtOrAfter = (x) => {
    let lo = 0;
    let hi = times.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (times[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const outer = new Map();
  const leaf = new Map();
  let total = 0;
  for (const [from, to] of windows) {
    for (let i = firstAtOrAfter(from); i < times.length && times[i] <= to; i++) {
      const id = profile.samples[i];
      const us = Math.min(profile.timeDeltas[i] ?? 0, times[i] - from);
      total += us;
      let top;
      for (let n = id; n !== undefined; n = parent.get(n)) {
        const f = byId.get(n).callFrame;
        if (f.url.includes('/packages/')) top = `${f.functionName || '(anonymous)'}  ${whereOf(f)}`;
      }
      const own = byId.get(id).callFrame;
      top ??= own.functionName || '(anonymous)';
      const leafName = `${own.functionName || '(anonymous)'}  ${whereOf(own)}`;
      outer.set(top, (outer.get(top) ?? 0) + us);
      leaf.set(leafName, (leaf.get(leafName) ?? 0) + us);
    }
  }
  const rows = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)
      .map(([what, us]) => ({ what, ms: us / 1000, percent: (100 * us) / (total || 1) }));
  return { totalMs: total / 1000, byCallback: rows(outer), byLeaf: rows(leaf) };
}
