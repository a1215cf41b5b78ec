import { readFileSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { OWNER_ONLY_FILE } from '../file-modes.js';
import type { AuditCheckpoint } from './audit-event.js';

/**
 * The audit anchor: the newest signed checkpoint, kept outside the store (a file in the data directory,
 * 0600). Someone who can edit the database can delete the newest audit rows and their checkpoints
 * together; the anchor still names the head the server signed, so a restart or `writ audit verify
 * --anchor` sees the cut. It does not help against someone who can also roll this file back.
 */

/** Bounded: a checkpoint is a few hundred bytes. */
const MAX_ANCHOR_BYTES = 8192;

/** Reads the anchor; undefined when there is none yet. Throws on a file that is not an anchor. */
export function readAuditAnchor(path: string): AuditCheckpoint | undefined {
  let text: string;
  try {
    const buf = readFileSync(path);
    if (buf.length > MAX_ANCHOR_BYTES) throw new Error(`${path}: larger than ${MAX_ANCHOR_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${path}: not JSON; expected an audit checkpoint { seq, hash, ts, kid, jws }`);
  }
  const ok =
    typeof v === 'object' &&
    v !== null &&
    Number.isSafeInteger(v['seq']) &&
    (v['seq'] as number) >= 1 &&
    typeof v['hash'] === 'string' &&
    /^[0-9a-f]{64}$/.test(v['hash']) &&
    Number.isSafeInteger(v['ts']) &&
    typeof v['kid'] === 'string' &&
    typeof v['jws'] === 'string';
  if (!ok) throw new Error(`${path}: not an audit checkpoint { seq, hash, ts, kid, jws }`);
  return { seq: v['seq'], hash: v['hash'], ts: v['ts'], kid: v['kid'], jws: v['jws'] } as AuditCheckpoint;
}

/**
 * Replaces the anchor atomically (a crash leaves the old one or the new one, never half of one). The
 * write and its fsync run on libuv's thread pool: a checkpoint does not hold the event loop for the
 * 5–8 ms an fsync takes.
 */
export async function writeAuditAnchor(path: string, c: AuditCheckpoint): Promise<void> {
  const tmp = `${path}.tmp`;
  // A leftover from a crash may have any mode: start from a file created 0600.
  await rm(tmp, { force: true });
  const file = await open(tmp, 'w', OWNER_ONLY_FILE);
  try {
    await file.writeFile(
      `${JSON.stringify({ seq: c.seq, hash: c.hash, ts: c.ts, kid: c.kid, jws: c.jws })}\n`,
    );
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
}
