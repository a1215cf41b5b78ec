// Child processes and temp dirs of a benchmark run: every one is tracked and ended (or removed) when the
// run exits, also on error or Ctrl-C. Children are pinned to a core with `taskset -c`.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const children = new Set();
const tempDirs = new Set();

function cleanup() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

let installed = false;
/** Ends children and removes temp dirs on exit and on SIGINT/SIGTERM/SIGHUP. Call once, first. */
export function cleanupOnExit(name) {
  if (installed) return cleanup;
  installed = true;
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\n${name}: ${sig}, stopping\n`);
      cleanup();
      process.exit(130);
    });
  }
  return cleanup;
}

/** Throws unless `taskset` works and the machine has at least two cores. */
export function requirePinning() {
  if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) throw new Error('taskset is required');
  if (cpus().length < 2) throw new Error('the benchmark needs 2 cores (core 0 and core 1)');
}

/** Pins this process (every thread) to `core`. */
export function pinSelf(core) {
  const r = spawnSync('taskset', ['-a', '-p', '-c', core, String(process.pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset -p failed: ${r.stderr}`);
}

export function tempDir(prefix) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

/**
 * Starts `node ...args` pinned to `core`; the child is killed when the run exits. `wrapper` is a command
 * that runs node (e.g. valgrind and its options); the child's pid is then the wrapper's.
 */
export function pinned(core, args, spawnOpts, { wrapper = [] } = {}) {
  const child = spawn('taskset', ['-c', core, ...wrapper, process.execPath, ...args], spawnOpts);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Runs a pinned child that prints one JSON line (its last); returns it parsed. Bounded by `timeoutMs`. */
export async function runJsonChild(core, script, config, timeoutMs, { cwd, nodeArgs = [] } = {}) {
  const child = pinned(core, [...nodeArgs, script, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd,
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await once(child, 'exit');
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${script} failed (code ${code}, signal ${signal}):\n${err.slice(-3000)}`);
  return JSON.parse(out.trim().split('\n').pop());
}

export async function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Polls `url` until it answers 2xx; each attempt may take `attemptMs` (longer under valgrind). */
export async function waitReady(url, child, logFile, timeoutMs = 20_000, attemptMs = 1000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(attemptMs) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : '';
  // How it ended, and what it said: a server killed by a signal (the kernel's OOM killer) says nothing.
  const how =
    child.exitCode !== null || child.signalCode !== null
      ? `the server exited (code ${child.exitCode}, signal ${child.signalCode})`
      : `no answer within ${Math.round(timeoutMs / 1000)} s`;
  throw new Error(`server did not become ready at ${url}: ${how}; its output:\n${log || '(nothing)'}`);
}

/** CPU seconds used so far by a process (all its threads), from /proc; undefined elsewhere. */
export function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds of this process's children that have ended and been waited for (a `spawnSync` child, once
 * it returned), from /proc: the difference around one run is that run's CPU. Undefined off Linux.
 */
export function endedChildrenCpuSeconds() {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds used so far by one thread `tid` of a process (its main thread: `tid` = `pid`), from /proc:
 * { user, system, total }. System time includes what the kernel does for its socket writes.
 */
export function threadCpu(pid, tid) {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const user = Number(fields[11]) / 100;
  const system = Number(fields[12]) / 100;
  return { user, system, total: user + system };
}

/** CPU seconds used so far by one thread of a process (see `threadCpu`). */
export const threadCpuSeconds = (pid, tid) => threadCpu(pid, tid).total;

/** The soft limit on open files of a process, from /proc; undefined elsewhere. */
export function openFilesLimit(pid) {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m ? (m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1])) : undefined;
  } catch {
    return undefined;
  }
}

/** How many file descriptors a process has open, from /proc; undefined elsewhere. */
export function openFiles(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}
