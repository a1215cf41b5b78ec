// Loaded into a benchmark's server with `node --import` (nothing of Writ's own code changes): watches
// the event loop with perf_hooks.monitorEventLoopDelay and, on SIGUSR2, writes the longest delay since
// the last report to the file named by WRIT_BENCH_LOOP_PROBE as { at, maxMs, p99Ms }, then starts over.
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.WRIT_BENCH_LOOP_PROBE;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  process.on('SIGUSR2', () => {
    writeFileSync(
      file,
      JSON.stringify({ at: Date.now(), maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6 }),
    );
    h.reset();
  });
}
