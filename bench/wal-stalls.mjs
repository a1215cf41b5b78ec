// Event-loop stalls from SQLite checkpoints: the embedded store (built modules) with SQLite's automatic
// checkpoint on its connection (`walCheckpoint: false`, as before) against the checkpointer thread (the
// default), alternating phases in one process so both see the same machine. Each phase writes at a
// fixed rate (transactions of a few ~2 KB events: about 3 MB of WAL a second, so the WAL passes 1,000
// pages about once a second) and watches the event loop with a 1 ms timer: every gap over 5, 10 and
// 20 ms is counted, with the longest, and the p99.9 of the time from a transaction's start to its
// commit. Stall counts, not wall-clock rates, are what to compare on a shared machine.
//
//   npm run build && node bench/wal-stalls.mjs                 # 4 phases of 15 s each mode
//   node bench/wal-stalls.mjs --seconds 10 --rounds 2 --rate 400
//   strace -f -qq -T -e trace=fsync,fdatasync -o trace.txt node bench/wal-stalls.mjs --mode thread --rounds 1
//     (trace.txt: which thread ran each fsync, and how long it took; the first thread id is the loop's)
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { quantile } from './lib/common.mjs';
import { fmt, loadAverage, printTable, runMain, writeResults } from './lib/report.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    rounds: { type: 'string', default: '4' },
    rate: { type: 'string', default: '400' },
    // One mode alone (e.g. under `strace -f` to see which thread fsyncs): autocheckpoint or thread.
    mode: { type: 'string' },
  },
});
const SECONDS = Math.min(120, Math.max(1, Number(opts.seconds)));
const ROUNDS = Math.min(20, Math.max(1, Number(opts.rounds)));
const RATE = Math.min(5000, Math.max(10, Number(opts.rate)));
const EVENTS_PER_TX = 4;
const PAD = 'p'.repeat(2000);

async function phase(openSqliteStore, mode) {
  const dir = mkdtempSync(join(tmpdir(), 'writ-wal-bench-'));
  const path = join(dir, 'writ.db');
  const store = openSqliteStore({ path, walCheckpoint: mode === 'thread' ? {} : false });
  const gaps = { over5: 0, over10: 0, over20: 0, max: 0 };
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    const gap = now - last - 1;
    last = now;
    if (gap > 5) gaps.over5++;
    if (gap > 10) gaps.over10++;
    if (gap > 20) gaps.over20++;
    gaps.max = Math.max(gaps.max, gap);
  }, 1);
  const commits = [];
  let walMax = 0;
  let n = 0;
  const started = performance.now();
  const end = started + SECONDS * 1000;
  const inflight = new Set();
  // Open loop: transactions start on schedule whether or not earlier ones committed.
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - started) / 1000) * RATE);
    for (; n < due; n++) {
      const t0 = performance.now();
      const p = store
        .transaction(async (tx) => {
          for (let i = 0; i < EVENTS_PER_TX; i++)
            await tx.appendEvent({ ts: n, type: 'bench', data: { n, i, pad: PAD } });
        })
        .then(() => commits.push(performance.now() - t0));
      inflight.add(p);
      p.finally(() => inflight.delete(p));
    }
    try {
      walMax = Math.max(walMax, statSync(`${path}-wal`).size);
    } catch {}
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(inflight);
  clearInterval(probe);
  const stats = store.walCheckpointStats?.();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  const sorted = commits.sort((a, b) => a - b);
  return {
    mode,
    transactions: sorted.length,
    commitP50Ms: quantile(sorted, 0.5),
    commitP999Ms: quantile(sorted, 0.999),
    commitMaxMs: sorted.at(-1),
    gaps,
    walMaxMiB: walMax / 2 ** 20,
    truncations: stats?.restarts ?? null,
  };
}

async function main() {
  const { openSqliteStore } = await import(
    pathToFileURL(join(ROOT, 'packages/server/dist/src/store/sqlite/sqlite-store.js')).href
  );
  console.log(
    `WAL stalls: ${ROUNDS} rounds of ${SECONDS} s per mode, ${RATE} transactions/s of ${EVENTS_PER_TX} ` +
      `~2 KB events; load average ${loadAverage()}`,
  );
  const phases = [];
  for (let r = 0; r < ROUNDS; r++)
    for (const mode of opts.mode
      ? [opts.mode]
      : r % 2 === 0
        ? ['autocheckpoint', 'thread']
        : ['thread', 'autocheckpoint']) {
      const p = await phase(openSqliteStore, mode);
      p.load = loadAverage();
      phases.push(p);
      console.log(
        `  ${mode}: loop gaps >5 ms ${p.gaps.over5}, >10 ms ${p.gaps.over10}, >20 ms ${p.gaps.over20}, ` +
          `longest ${fmt(p.gaps.max, 1)} ms; commit p50 ${fmt(p.commitP50Ms, 2)} ms, p99.9 ` +
          `${fmt(p.commitP999Ms, 1)} ms; WAL ≤ ${fmt(p.walMaxMiB, 1)} MiB; load ${p.load}`,
      );
    }
  const sum = (mode, f) => phases.filter((p) => p.mode === mode).reduce((a, p) => a + f(p), 0);
  const rows = [['', 'autocheckpoint (before)', 'checkpointer thread (after)']];
  for (const [label, f] of [
    ['loop gaps > 5 ms (sum of rounds)', (p) => p.gaps.over5],
    ['loop gaps > 10 ms', (p) => p.gaps.over10],
    ['loop gaps > 20 ms', (p) => p.gaps.over20],
    ['transactions', (p) => p.transactions],
  ])
    rows.push([label, String(sum('autocheckpoint', f)), String(sum('thread', f))]);
  printTable(rows);
  writeResults('wal-stalls', { seconds: SECONDS, rounds: ROUNDS, rate: RATE, phases });
}

runMain(main);
