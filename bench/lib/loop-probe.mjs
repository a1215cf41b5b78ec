// Loaded into a benchmark's server with `node --import` (nothing of Writ's own code changes): watches
// the event loop with perf_hooks.monitorEventLoopDelay and garbage collection with a `gc`
// PerformanceObserver and, on SIGUSR2, writes what it saw since the last report to the file named by
// WRIT_BENCH_LOOP_PROBE as { at, maxMs, p99Ms, gc }, then starts over. `gc` has, per kind (minor,
// major, incremental, weakcb), the count, total and longest pause (ms) and how many took 10 ms or more.
import { writeFileSync } from 'node:fs';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

const file = process.env.WRIT_BENCH_LOOP_PROBE;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const kinds = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  };
  let gc = {};
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = kinds[e.detail?.kind] ?? 'other';
      const k = gc[kind] ?? { count: 0, totalMs: 0, maxMs: 0, over10: 0 };
      gc[kind] = k;
      k.count++;
      k.totalMs += e.duration;
      k.maxMs = Math.max(k.maxMs, e.duration);
      if (e.duration >= 10) k.over10++;
    }
  }).observe({ entryTypes: ['gc'] });
  process.on('SIGUSR2', () => {
    writeFileSync(
      file,
      JSON.stringify({ at: Date.now(), maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6, gc }),
    );
    h.reset();
    gc = {};
  });
}
