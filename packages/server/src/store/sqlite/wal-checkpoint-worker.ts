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
 * TRUNCATE checkpoint copies the rest and empties the WAL, so the next commit starts it over.
 */
const setup = workerData as CheckpointerSetup;
const port = parentPort!;
const db = new Database(setup.path, { fileMustExist: true });
// The checkpoint's syncs follow the store's durability setting (WAL then database, as SQLite's own).
db.pragma('synchronous = NORMAL');
// TRUNCATE runs while the server's connection is held idle; only another process's reader can make it
// wait, and then it copies what it can and reports busy rather than holding the server's queue long.
db.pragma(`busy_timeout = ${setup.restartBusyMs}`);

type CheckpointRow = { busy: number; log: number; checkpointed: number };
const checkpoint = (mode: 'PASSIVE' | 'TRUNCATE'): WalState => {
  const row = (db.pragma(`wal_checkpoint(${mode})`) as CheckpointRow[])[0]!;
  return { busy: row.busy === 1, log: row.log, checkpointed: row.checkpointed };
};
const send = (m: CheckpointerMessage) => port.postMessage(m);

const timer = setInterval(() => {
  try {
    checkpoint('PASSIVE');
  } catch (err) {
    send({ type: 'error', message: (err as Error).message });
  }
}, setup.intervalMs);

port.on('message', (m: CheckpointerRequest) => {
  if (m.cmd === 'truncate') {
    try {
      send({ type: 'truncated', id: m.id, state: checkpoint('TRUNCATE') });
    } catch (err) {
      send({ type: 'truncated', id: m.id, error: (err as Error).message });
    }
  } else if (m.cmd === 'close') {
    clearInterval(timer);
    db.close();
    port.close();
  }
});
