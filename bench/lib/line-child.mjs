// A benchmark's helper process spoken to in JSON lines: commands on its stdin, reports on its stdout,
// each report a JSON object with a `type`. Started pinned to a core; ended with the run.
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { pinned, stopChild } from './processes.mjs';

/**
 * Starts `node script <config JSON>` pinned to `core`. Returns { pid, send(command), next(type,
 * timeoutMs), stop() }: `next` resolves with the next report of that type (reports that nobody waits
 * for yet are kept in order), and rejects on timeout or when the process exits first.
 */
export function startLineChild({ name, core, script, config, cwd }) {
  const child = pinned(core, [script, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'], cwd });
  let err = '';
  child.stderr.on('data', (d) => {
    err = (err + d).slice(-3000);
  });
  const queue = [];
  const waiting = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = JSON.parse(line);
    const w = waiting.findIndex((x) => x.type === m.type);
    if (w >= 0) waiting.splice(w, 1)[0].resolve(m);
    else queue.push(m);
  });
  const exited = once(child, 'exit');
  return {
    name,
    pid: child.pid,
    send: (m) => child.stdin.write(`${JSON.stringify(m)}\n`),
    /** The next report of `type`, within `timeoutMs`. */
    next(type, timeoutMs) {
      const q = queue.findIndex((x) => x.type === type);
      if (q >= 0) return Promise.resolve(queue.splice(q, 1)[0]);
      return new Promise((resolve, reject) => {
        const entry = { type, resolve };
        waiting.push(entry);
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(entry), 1);
          reject(new Error(`${name}: no "${type}" within ${timeoutMs} ms\n${err}`));
        }, timeoutMs);
        entry.resolve = (m) => {
          clearTimeout(timer);
          resolve(m);
        };
        exited.then(([code]) => {
          if (waiting.includes(entry)) {
            clearTimeout(timer);
            reject(new Error(`${name} exited (code ${code}) waiting for "${type}":\n${err}`));
          }
        });
      });
    },
    stop: () => stopChild(child),
  };
}
