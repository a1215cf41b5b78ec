import { EventType, type VerifierRisk } from '@writ/sdk/wire';
import type { Clock } from '../clock.js';
import type { Store } from '../store/store.js';
import type { FrameChunk } from './stream.js';
import { verifierRevocation } from './verifier-view.js';

/** How long past `expires_at` a revocation stays in snapshots: more than any verifier's `exp` leeway. */
export const SNAPSHOT_EXPIRY_GRACE_MS = 60_000;

/** Rows taken from the store in one read: each read holds the event loop for as long as it takes. */
const READ_PAGE = 1000;

/**
 * How often the set is read whole again (when a snapshot is asked for), which drops the revocations that
 * expired since; in between, only the rows stored after the newest one held are read.
 */
const REREAD_MS = 30_000;

/**
 * Revocations per block of a held set. A block once full never changes, so its bytes are built once and
 * shared by every snapshot that covers it; only the block at the end, still filling, is built for each
 * snapshot (fewer than this many revocations). Pages were held whole before, and the last page (up to
 * `events.snapshot_page` revocations) changed with every revocation stored: under a trickle of
 * revocations every open built it again (12.5 ms of the event loop per open at 9,000 revocations in
 * force, bench/abuse-cost.mjs). A divisor of the default page (5,000), so that pages of that size
 * start and end on block boundaries and no part of a block is built at a page's edge.
 */
const BLOCK = 250;

const OPEN = Buffer.from('[');
const CLOSE = Buffer.from(']');

/**
 * The revocations of one snapshot as verifiers are sent them (`verifier-view.ts`), as JSON, fixed when it
 * was read (later reads do not change it).
 */
export interface SnapshotRevocations {
  readonly size: number;
  /**
   * The revocations from index `from` up to `to` (excluded), in seq order, as a JSON array (UTF-8) in
   * parts: written one after the other they are the array, and most are shared with other snapshots.
   */
  json(from: number, to: number): readonly Buffer[];
}

interface Held {
  /**
   * Each revocation's JSON as verifiers see it (its value as a digest), in seq order. Only appended to:
   * a snapshot handed out keeps its length.
   */
  json: string[];
  /** Every revocation up to this seq that is not in `json` had expired when it was read. */
  after: number;
  /**
   * The bytes of each full block of `json` (block `k` holds `json[k * BLOCK]` up to the next block, each
   * followed by a comma), built when first asked for.
   */
  blocks: Buffer[];
}

/**
 * The revocations in force that new event streams start from, held by each node as JSON and brought up
 * to date from the store for every snapshot: a snapshot reads only the rows stored since the last one,
 * instead of every revocation in force (about 9,000 after the soak benchmark, read, digested and
 * serialized again for each of its reconnects, 25 ms of the event loop each).
 *
 * What `read` returns holds every revocation stored before it was called, unless it expired more than
 * `SNAPSHOT_EXPIRY_GRACE_MS` ago by the store's reckoning, as a read of the whole table would: revocation
 * numbers are taken under the store's write lock, so a row becomes visible only after every row numbered
 * before it, and reading after the newest seq held misses none. It may hold a few stored since; a
 * verifier applies each revocation once, by its seq, so the catch-up sending them again changes nothing.
 * Revocations that expired stay until the next whole read (at most `REREAD_MS` later): longer in the
 * verifiers' sets, which prune them by `expires_at` themselves, never shorter.
 */
export class SnapshotSet {
  readonly #store: Pick<Store, 'listRevocations' | 'lastRevocationSeq'>;
  readonly #clock: Clock;
  #held: Held | undefined;
  /** When the last whole read started (the clock's milliseconds). */
  #wholeReadAt = Number.NEGATIVE_INFINITY;
  /** Reads run one at a time, in the order asked; a caller may use a read that started after it asked. */
  #queue: Promise<unknown> = Promise.resolve();
  #started = 0;
  #done = 0;

  constructor(store: Pick<Store, 'listRevocations' | 'lastRevocationSeq'>, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  /** The revocations in force now, for a snapshot (see the class comment for what "now" guarantees). */
  async read(): Promise<SnapshotRevocations> {
    const asked = this.#started;
    const turn = this.#queue.then(async () => {
      // A read that started after this call began has already finished: it saw all this call must see.
      if (this.#done > asked) return;
      const n = ++this.#started;
      await this.#refresh();
      this.#done = n;
    });
    this.#queue = turn.catch(() => undefined);
    await turn;
    const held = this.#held!;
    const size = held.json.length;
    return { size, json: (from, to) => arrayParts(held, from, Math.min(to, size)) };
  }

  async #refresh(): Promise<void> {
    const now = this.#clock.now();
    const whole = this.#held === undefined || now - this.#wholeReadAt >= REREAD_MS;
    // A whole read builds a new set and puts it in place only once complete: one that fails half-way
    // leaves the last good set. Reading on from `after` adds to the set page by page, each consistent.
    const held: Held = whole || this.#held === undefined ? { json: [], after: 0, blocks: [] } : this.#held;
    // Rows up to the newest stored before the reads below are in them or expired: moving `after` past
    // them spares every later read from going over expired rows again.
    const newest = await this.#store.lastRevocationSeq();
    for (;;) {
      const rows = await this.#store.listRevocations(
        held.after,
        this.#clock.now() - SNAPSHOT_EXPIRY_GRACE_MS,
        READ_PAGE,
      );
      for (const r of rows) held.json.push(JSON.stringify(verifierRevocation(r)));
      if (rows.length > 0) held.after = rows[rows.length - 1]!.seq;
      if (rows.length < READ_PAGE) break;
      // Let requests in between pages: an embedded store answers without any I/O to wait for.
      await new Promise((r) => setImmediate(r));
    }
    held.after = Math.max(held.after, newest);
    if (whole) {
      this.#held = held;
      this.#wholeReadAt = now;
    }
  }
}

/**
 * `held.json[from..to)` as a JSON array in parts: the full blocks inside the range shared, the revocations
 * of a block the range covers only in part (at its ends) built for this call.
 */
function arrayParts(held: Held, from: number, to: number): Buffer[] {
  const parts: Buffer[] = [OPEN];
  for (let i = from; i < to; ) {
    const k = Math.floor(i / BLOCK);
    const end = Math.min((k + 1) * BLOCK, to);
    const last = end === to;
    if (i === k * BLOCK && end === (k + 1) * BLOCK) {
      // A full block: it ends in a comma, dropped (without a copy) when it closes the array.
      let block = held.blocks[k];
      if (!block) {
        block = Buffer.from(`${held.json.slice(i, end).join(',')},`);
        held.blocks[k] = block;
      }
      parts.push(last ? block.subarray(0, block.length - 1) : block);
    } else parts.push(Buffer.from(`${held.json.slice(i, end).join(',')}${last ? '' : ','}`));
    i = end;
  }
  parts.push(CLOSE);
  return parts;
}

/**
 * The closing `snapshot` event of a stream (with the log position as its id), `revocations` as JSON, and
 * `risks`: every workload whose risk is above zero (few; built for each open). In parts: copying the
 * revocations into one buffer for every open (1.2 MB a page) cost more than the rest of an open, most of
 * it in garbage collection.
 */
export function snapshotFrame(
  snapshot: {
    seq: number;
    ts: number;
    keys: readonly (string | undefined)[];
    paged: boolean;
    risks: readonly VerifierRisk[];
  },
  revocations: readonly Buffer[],
): FrameChunk {
  const paged = snapshot.paged ? ',"paged":true' : '';
  const risks = JSON.stringify(snapshot.risks);
  return [
    `id: ${snapshot.seq}\nevent: ${EventType.snapshot}\ndata: {"revocations":`,
    ...revocations,
    `,"keys":${JSON.stringify(snapshot.keys)}${paged},"risks":${risks},"seq":${snapshot.seq},"ts":${snapshot.ts}}\n\n`,
  ];
}

/** A `snapshot.page` event (no id: a reconnect in the middle of a snapshot starts over), in parts. */
export function snapshotPageFrame(seq: number, revocations: readonly Buffer[]): FrameChunk {
  return [`event: ${EventType.snapshotPage}\ndata: {"revocations":`, ...revocations, `,"seq":${seq}}\n\n`];
}
