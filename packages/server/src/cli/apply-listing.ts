import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ownerOnlyDir } from '../file-modes.js';
import type { AppliedConfigFile } from '../store/config-file-rows.js';
import { type AdminClient, CliError } from './client.js';

/**
 * The applied files `writ apply` compares a directory with (`GET /admin/v1/config/files`), kept between
 * runs so that a run lists only what changed since the version it holds: 100,000 entries listed, sent
 * and parsed every time cost more than the rest of a one-workload apply.
 *
 * The server stays the authority: the kept listing is used only as the base of `?since=` and only when
 * the server answers with that very version (`since`) and what changed after it; anything else (no file,
 * a file of another server or format, a broken chain of changes, a file others may write, a server that
 * refuses the version or does not know `since`) falls back to the whole listing, which is kept anew.
 * A listing that misses a change could make `writ apply` skip a file, so every doubt costs a listing
 * instead.
 *
 * On disk (`<data dir>/apply-listings/<server digest>.jsonl`, 0600 in a 0700 folder): a header line, the
 * whole listing as of a version (paths, digests and stamps as three arrays, which parse faster than
 * 100,000 entries), then one line per listing of changes, each naming the version it follows. A line cut short (a run stopped while appending) breaks the chain, so it is never half-read.
 */

/** One file as listed: path, digest, stamp (0: none), named files (0: none). */
type Entry = [string, string, string | 0, string[] | 0];

interface Header {
  writ: 'apply-listing';
  format: 2;
  server: string;
}

/** Lines of changes kept before the file is written again as one whole listing. */
const CHANGE_LINES_MAX = 100;

export interface HeldListing {
  version: string;
  files: Map<string, AppliedConfigFile>;
}

interface Answer {
  version?: unknown;
  since?: unknown;
  files?: unknown;
  removed?: unknown;
}

/** The listing file for `server` under the data directory; undefined when there is no data directory. */
export function listingFile(dataDir: string, server: string): string | undefined {
  if (!existsSync(dataDir)) return undefined;
  const digest = createHash('sha256').update(server).digest('base64url').slice(0, 22);
  return join(dataDir, 'apply-listings', `${digest}.jsonl`);
}

/**
 * The applied files by path (documents empty): from the kept listing and the changes since it, or the
 * whole listing. Undefined from a server that keeps no record (older: no such endpoint).
 */
export async function appliedFiles(
  client: AdminClient,
  file: string | undefined,
): Promise<Map<string, AppliedConfigFile> | undefined> {
  const held = file ? readListing(file, client.server) : undefined;
  if (held && file) {
    let answer: Answer | undefined;
    try {
      answer = await client.get<Answer>(`/config/files?since=${encodeURIComponent(held.listing.version)}`);
    } catch (err) {
      // Refused (a version the server does not hold), or anything else: the whole listing decides.
      if (!(err instanceof CliError)) throw err;
    }
    const changes = answer && changesSince(answer, held.listing.version);
    if (changes) {
      for (const p of changes.removed) held.listing.files.delete(p);
      for (const e of changes.files) held.listing.files.set(e[0], record(e));
      if (changes.version !== held.listing.version) {
        held.listing.version = changes.version;
        keep(() => {
          if (held.lines >= CHANGE_LINES_MAX) writeListing(file, client.server, held.listing);
          else appendFileSync(file, `${JSON.stringify(changes)}\n`);
        });
      }
      return held.listing.files;
    }
  }
  let answer: Answer;
  try {
    answer = await client.get<Answer>('/config/files');
  } catch (err) {
    if (err instanceof CliError && err.message.startsWith('404 ')) return undefined;
    throw err;
  }
  const files = Array.isArray(answer.files) ? answer.files.map(entry) : undefined;
  if (!files || files.some((e) => e === undefined))
    throw new CliError('the server listed its applied files in a form this writ does not read');
  const listing: HeldListing = { version: '', files: new Map() };
  for (const e of files as Entry[]) listing.files.set(e[0], record(e));
  // A server without versions (older) is listed whole every time.
  if (typeof answer.version === 'string' && file) {
    listing.version = answer.version;
    keep(() => writeListing(file, client.server, listing));
  }
  return listing.files;
}

/** The changes an answer to `?since=held` lists; undefined unless it is exactly that (version included). */
function changesSince(
  a: Answer,
  held: string,
): { since: string; version: string; files: Entry[]; removed: string[] } | undefined {
  if (
    a.since !== held ||
    typeof a.version !== 'string' ||
    !Array.isArray(a.files) ||
    !Array.isArray(a.removed)
  )
    return undefined;
  const files = a.files.map(entry);
  if (files.some((e) => e === undefined) || a.removed.some((p) => typeof p !== 'string')) return undefined;
  return { since: held, version: a.version, files: files as Entry[], removed: a.removed as string[] };
}

/** An entry of the server's answer (`{path, digest, stamp?, refs?}`), checked. */
function entry(f: unknown): Entry | undefined {
  if (typeof f !== 'object' || f === null) return undefined;
  const { path, digest, stamp, refs } = f as Record<string, unknown>;
  if (typeof path !== 'string' || typeof digest !== 'string') return undefined;
  if (stamp !== undefined && typeof stamp !== 'string') return undefined;
  if (refs !== undefined && !(Array.isArray(refs) && refs.every((r) => typeof r === 'string')))
    return undefined;
  return [path, digest, stamp ?? 0, (refs as string[] | undefined)?.length ? (refs as string[]) : 0];
}

// Shared by every record (100,000 of them): a listed file has no documents, and most name no file.
// Frozen: nothing writes to a record's lists.
const NO_REFS: string[] = Object.freeze([]) as unknown as string[];
const NO_DOCUMENTS: AppliedConfigFile['documents'] = Object.freeze([]) as unknown as [];

function record(e: Entry): AppliedConfigFile {
  return stamped(e[0], e[1], e[2], e[3] || NO_REFS);
}

function stamped(path: string, digest: string, stamp: string | 0, refs: string[]): AppliedConfigFile {
  const f: AppliedConfigFile = { path, digest, refs, documents: NO_DOCUMENTS };
  if (stamp !== 0) f.stamp = stamp;
  return f;
}

/** The whole listing as written (see writeListing): three arrays of one length, and the named files. */
interface Whole {
  version: string;
  paths: string[];
  digests: string[];
  stamps: Array<string | 0>;
  /** By index into `paths`: the files named (only for files that name some). */
  refs: Array<[number, string[]]>;
}

function isWhole(w: Partial<Whole>): w is Whole {
  const n = Array.isArray(w.paths) ? w.paths.length : -1;
  return (
    typeof w.version === 'string' &&
    n >= 0 &&
    Array.isArray(w.digests) &&
    w.digests.length === n &&
    Array.isArray(w.stamps) &&
    w.stamps.length === n &&
    Array.isArray(w.refs) &&
    w.paths!.every((p) => typeof p === 'string') &&
    w.digests.every((d) => typeof d === 'string') &&
    w.stamps.every((s) => s === 0 || typeof s === 'string') &&
    w.refs.every(
      (r) =>
        Array.isArray(r) &&
        r.length === 2 &&
        Number.isInteger(r[0]) &&
        r[0] >= 0 &&
        r[0] < n &&
        Array.isArray(r[1]) &&
        r[1].every((x) => typeof x === 'string'),
    )
  );
}

/** Whether `e` is an entry as this file writes them. */
function isEntry(e: unknown): e is Entry {
  return (
    Array.isArray(e) &&
    e.length === 4 &&
    typeof e[0] === 'string' &&
    typeof e[1] === 'string' &&
    (e[2] === 0 || typeof e[2] === 'string') &&
    (e[3] === 0 || (Array.isArray(e[3]) && e[3].every((r) => typeof r === 'string')))
  );
}

/**
 * The kept listing with the changes after it, and how many lines of changes it has; undefined on any
 * doubt (absent, written by another user or writable by others, another server's or format, unreadable,
 * a chain of versions that does not follow).
 */
function readListing(file: string, server: string): { listing: HeldListing; lines: number } | undefined {
  try {
    const st = statSync(file, { throwIfNoEntry: false });
    if (!st?.isFile()) return undefined;
    if (process.platform !== 'win32' && ((st.mode & 0o022) !== 0 || st.uid !== process.getuid?.()))
      return undefined;
    const lines = readFileSync(file, 'utf8').split('\n');
    // Every line ends with a newline: the last piece is empty unless the last line was cut short.
    if (lines.pop() !== '' || lines.length < 2) return undefined;
    const header = JSON.parse(lines[0]!) as Partial<Header>;
    if (header.writ !== 'apply-listing' || header.format !== 2 || header.server !== server) return undefined;
    const whole = JSON.parse(lines[1]!) as Partial<Whole>;
    if (!isWhole(whole)) return undefined;
    const refs = new Map(whole.refs);
    const listing: HeldListing = { version: whole.version, files: new Map() };
    for (let i = 0; i < whole.paths.length; i++)
      listing.files.set(
        whole.paths[i]!,
        stamped(whole.paths[i]!, whole.digests[i]!, whole.stamps[i]!, refs.get(i) ?? NO_REFS),
      );
    for (const line of lines.slice(2)) {
      const c = JSON.parse(line) as {
        since?: unknown;
        version?: unknown;
        files?: unknown;
        removed?: unknown;
      };
      if (c.since !== listing.version || typeof c.version !== 'string') return undefined;
      if (!Array.isArray(c.files) || !Array.isArray(c.removed)) return undefined;
      for (const p of c.removed) {
        if (typeof p !== 'string') return undefined;
        listing.files.delete(p);
      }
      for (const e of c.files) {
        if (!isEntry(e)) return undefined;
        listing.files.set(e[0], record(e));
      }
      listing.version = c.version;
    }
    return { listing, lines: lines.length - 2 };
  } catch {
    return undefined;
  }
}

/**
 * Keeps a listing for the next run. A data directory that cannot be written only costs the next run a
 * whole listing (a line half-appended breaks the chain, which is then not read).
 */
function keep(write: () => void): void {
  try {
    write();
  } catch {
    // Not kept: the next run lists the whole record.
  }
}

/** Writes the whole listing (a new file, renamed over the old: never half-written). */
function writeListing(file: string, server: string, listing: HeldListing): void {
  const dir = join(file, '..');
  // 0700, narrowed when it was made looser by hand.
  ownerOnlyDir(dir);
  const whole: Whole = { version: listing.version, paths: [], digests: [], stamps: [], refs: [] };
  for (const f of listing.files.values()) {
    if (f.refs.length > 0) whole.refs.push([whole.paths.length, f.refs]);
    whole.paths.push(f.path);
    whole.digests.push(f.digest);
    whole.stamps.push(f.stamp ?? 0);
  }
  const header: Header = { writ: 'apply-listing', format: 2, server };
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(header)}\n${JSON.stringify(whole)}\n`, {
    mode: 0o600,
  });
  renameSync(tmp, file);
}
