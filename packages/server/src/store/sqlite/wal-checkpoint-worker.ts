import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type {
  CheckpointerMessage,
  CheckpointerRequest,
  CheckpointerSetup,
  WalState,
} from './wal-checkpointer.js';

/**
 * The embedded store's checkpointer thread (started by wal-checkpointer.ts): its own connection to the
 * store file copies committed WAL frames into the database with PASSIVE checkpoints every
 * `intervalMs`, so neither that copy nor its fsyncs run on the server's event loop; PASSIVE never waits
 * for and never blocks the server's connection. On request, while the server holds its store queue, a
 * TRUNCATE checkpoint copies the rest and empties the WAL, and this thread starts it over itself.
 *
 * Starting the WAL over writes its header and fsyncs it, in whichever connection writes first after
 * the WAL was copied to its end (SQLite's `walRestartLog`). Left to itself that is the server's
 * connection, on the event loop, each time a PASSIVE copy catches up with the writes (about once a
 * second under the soak benchmark's abuse, 0.3–6.5 ms each). So a second connection of this thread
 * (`pin`) holds a read transaction on the newest snapshot, taken again before each PASSIVE: SQLite does
 * not start the WAL over while another reader holds part of it, and the server's commits append
 * instead. The WAL is started over only here: after the TRUNCATE (while the server's queue is held),
 * this thread's connection commits one row (the readiness probe's), which writes and syncs the header.
 */
const setup = workerData as CheckpointerSetup;
const port = parentPort!;
const db = new Database(setup.path, { fileMustExist: true });
// The checkpoint's syncs follow the store's durability setting (WAL then database, as SQLite's own).
db.pragma('synchronous = NORMAL');
// TRUNCATE runs while the server's connection is held idle; only another process's reader can make it
// wait, and then it copies what it can and reports busy rather than holding the server's queue long.
db.pragma(`busy_timeout = ${setup.restartBusyMs}`);

// The reader that keeps the server's connection from starting the WAL over (see above).
const pin = new Database(setup.path, { fileMustExist: true });
const pinRead = pin.prepare('SELECT count(*) FROM write_probe');
const restartWrite = db.prepare(
  'INSERT INTO write_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at',
);
/** Holds a read transaction on the newest snapshot (ends the one held before). */
const pinSnapshot = () => {
  if (pin.inTransaction) pin.exec('COMMIT');
  pin.exec('BEGIN');
  pinRead.get();
};
const unpin = () => {
  if (pin.inTransaction) pin.exec('COMMIT');
};

type CheckpointRow = { busy: number; log: number; checkpointed: number };
const checkpoint = (mode: 'PASSIVE' | 'TRUNCATE'): WalState => {
  const row = (db.pragma(`wal_checkpoint(${mode})`) as CheckpointRow[])[0]!;
  return { busy: row.busy === 1, log: row.log, checkpointed: row.checkpointed };
};
const send = (m: CheckpointerMessage) => port.postMessage(m);

const timer = setInterval(() => {
  try {
    pinSnapshot();
    checkpoint('PASSIVE');
  } catch (err) {
    send({ type: 'error', message: (err as Error).message });
  }
}, setup.intervalMs);

port.on('message', (m: CheckpointerRequest) => {
  if (m.cmd === 'truncate') {
    try {
      unpin();
      const state = checkpoint('TRUNCATE');
      // The WAL is empty (unless another process's reader kept it busy): start it over here, header and
      // its fsync included, while the server's connection waits on its queue.
      if (!state.busy) restartWrite.run(Date.now());
      pinSnapshot();
      send({ type: 'truncated', id: m.id, state });
    } catch (err) {
      send({ type: 'truncated', id: m.id, error: (err as Error).message });
    }
  } else if (m.cmd === 'close') {
    clearInterval(timer);
    unpin();
    pin.close();
    db.close();
    port.close();
  }
});
