import { statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

/**
 * SQLite checkpoints off the event loop. With SQLite's automatic checkpoint, the commit that takes the
 * WAL past 1,000 pages copies them into the database and fsyncs it, on the server's one thread: every
 * request waits for that (13–22 ms at p99.9 on the benchmark VM). The store turns the automatic
 * checkpoint off and starts this: a worker thread with its own connection (wal-checkpoint-worker.ts)
 * copies committed frames with PASSIVE checkpoints every `intervalMs`, never waiting for or blocking
 * the server's connection.
 *
 * PASSIVE alone cannot start the WAL over while the server writes without pause (there are always
 * frames newer than the last copy: the WAL grew to 31–41 MB that way). So after each store operation
 * the store asks `afterOperation`, which reads the WAL file's size (a stat, at most once a millisecond);
 * at `restartPages` frames it holds the store's operation queue (the event loop stays free; store calls
 * wait) while the thread runs a TRUNCATE checkpoint over what PASSIVE has not copied yet and empties the
 * WAL, and starts it over itself (writing and syncing its header: see wal-checkpoint-worker.ts, whose
 * reader keeps the server's connection from ever doing that on the event loop). The WAL so stays
 * within about `restartPages` frames and one operation's writes. Durability is SQLite's as configured (`synchronous = NORMAL`): a checkpoint only
 * moves committed frames, and a crash leaves the WAL for recovery as before.
 *
 * If the thread fails or stops answering, the store turns SQLite's automatic checkpoint back on
 * (`fallback`), so the WAL stays bounded either way.
 */
export interface WalCheckpointOptions {
  /** How often the thread runs a PASSIVE checkpoint (ms). */
  intervalMs: number;
  /** WAL frames (read from the file's size) at which the WAL is checkpointed and emptied. */
  restartPages: number;
  /** How long a TRUNCATE may wait for another process's reader before it reports busy (ms). */
  restartBusyMs: number;
  /** How long the store's queue is held for one TRUNCATE at most; past it the thread is given up. */
  restartTimeoutMs: number;
}

export const WAL_CHECKPOINT_DEFAULTS: WalCheckpointOptions = {
  // Often enough that a TRUNCATE finds little left to copy: at thousands of tokens a second the WAL
  // grows by megabytes a second, and the store waits while a TRUNCATE copies and syncs.
  intervalMs: 50,
  // 16 MiB of 4 KiB pages: emptied a quarter as often as at SQLite's own threshold (1,000 pages), which
  // at 4,700 tokens/s held the store several times a second (issuance 10% slower; docs/benchmarks.md).
  restartPages: 4000,
  restartBusyMs: 20,
  restartTimeoutMs: 5000,
};

/** What `PRAGMA wal_checkpoint` reports: frames in the WAL and frames copied; busy if it could not finish. */
export interface WalState {
  busy: boolean;
  log: number;
  checkpointed: number;
}

export interface CheckpointerSetup {
  path: string;
  intervalMs: number;
  restartBusyMs: number;
}
export type CheckpointerRequest = { cmd: 'truncate'; id: number } | { cmd: 'close' };
export type CheckpointerMessage =
  | { type: 'truncated'; id: number; state?: WalState; error?: string }
  | { type: 'error'; message: string };
type Truncated = Extract<CheckpointerMessage, { type: 'truncated' }>;

export interface WalCheckpointerStats {
  /** TRUNCATE checkpoints run while the store's queue was held. */
  restarts: number;
  /** Of those, how many another process's reader kept from finishing. */
  busyRestarts: number;
  /** Why the thread was given up (SQLite's automatic checkpoint is back on), if it was. */
  failed: string | undefined;
}

export class WalCheckpointer {
  readonly #worker: Worker;
  readonly #wal: string;
  readonly #options: WalCheckpointOptions;
  readonly #restartBytes: number;
  /** Runs `fn` with the store's queue held: no statement of the server's connection runs meanwhile. */
  readonly #hold: (fn: () => Promise<void>) => Promise<void>;
  readonly #fallback: (reason: string) => void;
  readonly #answers = new Map<number, (m: Truncated) => void>();
  #nextId = 1;
  #closing = false;
  #pending = false;
  #checkedAt = 0;
  /** The WAL size at which to checkpoint next: higher after one another process's reader kept busy. */
  #askAt: number;
  readonly #exited: Promise<void>;
  readonly #stats: WalCheckpointerStats = { restarts: 0, busyRestarts: 0, failed: undefined };

  constructor(
    path: string,
    pageSize: number,
    options: WalCheckpointOptions,
    hold: (fn: () => Promise<void>) => Promise<void>,
    fallback: (reason: string) => void,
  ) {
    this.#wal = `${path}-wal`;
    this.#options = options;
    // A frame is a page and its 24-byte header; the file starts with a 32-byte header.
    this.#restartBytes = 32 + options.restartPages * (pageSize + 24);
    this.#askAt = this.#restartBytes;
    this.#hold = hold;
    this.#fallback = fallback;
    const setup: CheckpointerSetup = {
      path,
      intervalMs: options.intervalMs,
      restartBusyMs: options.restartBusyMs,
    };
    this.#worker = new Worker(new URL('./wal-checkpoint-worker.js', import.meta.url), {
      workerData: setup,
      // Not the process's flags: an --import (a benchmark's probe) or --input-type is not for this thread.
      execArgv: [],
    });
    this.#exited = new Promise((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.on('message', (m: CheckpointerMessage) => {
      if (m.type === 'truncated') this.#answers.get(m.id)?.(m);
      else this.#fail(`checkpoint failed: ${m.message}`);
    });
    this.#worker.on('error', (err) => this.#fail(`checkpointer thread failed: ${err.message}`));
    this.#worker.on('exit', (code) => {
      if (!this.#closing) this.#fail(`checkpointer thread exited (code ${code})`);
    });
    // A store nobody closed must not keep the process alive (after the listeners: adding one refs the port).
    this.#worker.unref();
  }

  stats(): WalCheckpointerStats {
    return { ...this.#stats };
  }

  /** After each store operation: past the size, checkpoint and empty the WAL with the queue held. */
  afterOperation(): void {
    if (this.#pending || this.#closing || this.#stats.failed) return;
    const now = performance.now();
    if (now - this.#checkedAt < 1) return;
    this.#checkedAt = now;
    let size: number;
    try {
      size = statSync(this.#wal).size;
    } catch {
      return; // no WAL yet
    }
    if (size < this.#askAt) {
      if (size < this.#askAt - this.#restartBytes) this.#askAt = this.#restartBytes;
      return;
    }
    this.#pending = true;
    this.#hold(() => this.#truncate())
      .catch(() => undefined)
      .finally(() => {
        this.#pending = false;
      });
  }

  /** One TRUNCATE checkpoint, run while `#hold` keeps the store idle; bounded by `restartTimeoutMs`. */
  async #truncate(): Promise<void> {
    if (this.#closing || this.#stats.failed) return;
    const id = this.#nextId++;
    const answer = await new Promise<Truncated | undefined>((resolve) => {
      // Store calls wait on this answer: keep the process alive for it (an idle thread does not).
      this.#worker.ref();
      const timer = setTimeout(() => resolve(undefined), this.#options.restartTimeoutMs);
      this.#answers.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      this.#post({ cmd: 'truncate', id });
    });
    this.#answers.delete(id);
    this.#worker.unref();
    if (!answer)
      return this.#fail(`checkpointer thread did not answer in ${this.#options.restartTimeoutMs} ms`);
    if (answer.error) return this.#fail(`truncate checkpoint failed: ${answer.error}`);
    this.#stats.restarts++;
    if (answer.state?.busy) {
      // Another process's reader holds frames: try again once the WAL holds `restartPages` more.
      this.#stats.busyRestarts++;
      this.#askAt += this.#restartBytes;
    }
  }

  #post(m: CheckpointerRequest): void {
    try {
      this.#worker.postMessage(m);
    } catch {
      // The thread is gone; its exit handler has fallen back already.
    }
  }

  #fail(reason: string): void {
    if (this.#stats.failed || this.#closing) return;
    this.#stats.failed = reason;
    void this.#worker.terminate();
    this.#fallback(reason);
  }

  /** Stops the thread and closes its connection; resolves once it is gone. */
  async close(): Promise<void> {
    if (this.#closing) return this.#exited;
    this.#closing = true;
    this.#post({ cmd: 'close' });
    const timer = setTimeout(() => void this.#worker.terminate(), 2000);
    await this.#exited;
    clearTimeout(timer);
  }
}
