// What a benchmark prints and keeps: figures for the console with the machine's load beside them (the
// machine is shared), a table of them, the results file under bench/results/, and the end of the run.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RESULTS = join(dirname(dirname(fileURLToPath(import.meta.url))), 'results');

/** `n` with `d` decimals, or 'n/a' when it is not a finite number (a part that did not run). */
export const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

/** The one-minute load average, as printed beside a figure. */
export const loadAverage = () => loadavg()[0].toFixed(2);

/** The machine a run measured on, as its results file records it. */
export const machine = () => ({ cores: cpus().length, model: cpus()[0].model, node: process.version });

/** Prints rows of cells (the first row the header) as left-aligned columns two spaces apart. */
export function printTable(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c])).join('  '));
}

/**
 * Writes `{ machine, ...data }` (`data.machine` replaces the default) as
 * bench/results/<name>-<timestamp>.json and prints where; returns the path.
 */
export function writeResults(name, data) {
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ machine: machine(), ...data }, null, 2)}\n`);
  console.log(`results: ${file}`);
  return file;
}

/**
 * Runs a benchmark's `main` and exits: 0 when it resolves, 1 with the error when it rejects. Exiting is
 * what ends the run's children and removes its temp dirs (`cleanupOnExit` in processes.mjs).
 */
export function runMain(main) {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`bench failed: ${err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
}
