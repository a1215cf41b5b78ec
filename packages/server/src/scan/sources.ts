import { spawn } from 'node:child_process';
import { closeSync, type Dirent, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * What `writ scan` reads: files (directories walked), standard input, and every blob of every commit of
 * a git repository. Each input is handed over whole and bounded (`maxBytes`); larger files and binary
 * content are skipped and counted, so a scan's memory is one input at a time, whatever the corpus.
 */

/** Where a piece of text was found: a path (relative to the scanned root, or `-` for stdin), and for git
 * history the commit that first added that blob at that path. */
export interface SourceLocation {
  path: string;
  commit?: string;
}

export interface ScanInput {
  where: SourceLocation;
  /** The input's bytes, at most `maxBytes` (stdin is cut into pieces at line ends). */
  data: Buffer;
  /** The line number of the first line of `data` (1 except for later pieces of stdin). */
  firstLine: number;
}

export interface SkipCounter {
  tooLarge: number;
  binary: number;
  unreadable: number;
}

/** Bytes read to decide whether content is binary: a NUL byte among them means it is (as git decides). */
const BINARY_SNIFF = 8000;

export const isBinary = (data: Buffer): boolean => data.subarray(0, BINARY_SNIFF).includes(0);

/** Files under `paths` (directories walked; `.git` folders and symbolic links are not followed). */
export async function* fileInputs(
  paths: readonly string[],
  maxBytes: number,
  skipped: SkipCounter,
): AsyncGenerator<ScanInput> {
  for (const root of paths) {
    let stat: ReturnType<typeof lstatSync>;
    try {
      stat = lstatSync(root);
    } catch {
      skipped.unreadable++;
      continue;
    }
    if (stat.isFile()) {
      const input = readInput(root, root, stat.size, maxBytes, skipped);
      if (input) yield input;
      continue;
    }
    if (!stat.isDirectory()) continue;
    const stack = [root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries: Dirent[];
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        skipped.unreadable++;
        continue;
      }
      entries.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) {
          if (e.name !== '.git') stack.push(p);
        } else if (e.isFile()) {
          let size: number;
          try {
            size = lstatSync(p).size;
          } catch {
            skipped.unreadable++;
            continue;
          }
          const input = readInput(p, relative(root, p) || p, size, maxBytes, skipped);
          if (input) yield input;
        }
      }
    }
  }
}

function readInput(
  file: string,
  shown: string,
  size: number,
  maxBytes: number,
  skipped: SkipCounter,
): ScanInput | undefined {
  if (size > maxBytes) {
    skipped.tooLarge++;
    return undefined;
  }
  let data: Buffer;
  try {
    // Read at most what stat said (and maxBytes): a file that grows meanwhile cannot grow the read.
    const fd = openSync(file, 'r');
    try {
      data = Buffer.allocUnsafe(size);
      let off = 0;
      while (off < size) {
        const n = readSync(fd, data, off, size - off, off);
        if (n === 0) break;
        off += n;
      }
      data = data.subarray(0, off);
    } finally {
      closeSync(fd);
    }
  } catch {
    skipped.unreadable++;
    return undefined;
  }
  if (isBinary(data)) {
    skipped.binary++;
    return undefined;
  }
  return { where: { path: shown }, data, firstLine: 1 };
}

/**
 * Standard input, in pieces of at most `pieceBytes` cut after a line end (a line longer than a piece
 * is cut where the piece ends), so a log of any length is scanned in bounded memory.
 */
export async function* streamInputs(
  stream: NodeJS.ReadableStream,
  pieceBytes: number,
  skipped: SkipCounter,
): AsyncGenerator<ScanInput> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let line = 1;
  const piece = (data: Buffer): ScanInput | undefined => {
    const first = line;
    for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, i + 1)) line++;
    if (isBinary(data)) {
      skipped.binary++;
      return undefined;
    }
    return { where: { path: '-' }, data, firstLine: first };
  };
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    pending.push(buf);
    pendingBytes += buf.length;
    while (pendingBytes >= pieceBytes) {
      const all = Buffer.concat(pending);
      const nl = all.lastIndexOf(10, pieceBytes - 1);
      const cut = nl === -1 ? pieceBytes : nl + 1;
      const p = piece(all.subarray(0, cut));
      if (p) yield p;
      const rest = all.subarray(cut);
      pending = [rest];
      pendingBytes = rest.length;
    }
  }
  if (pendingBytes > 0) {
    const p = piece(Buffer.concat(pending));
    if (p) yield p;
  }
}

/** A blob of the history and where it first appeared. */
interface BlobSite {
  commit: string;
  path: string;
}

/**
 * Every blob of every commit reachable from any ref of the repository at `dir`, each once (by object
 * id), with the commit (oldest first) and path where it first appeared. Reads through the git CLI:
 * `git log --raw` for the sites, `git cat-file --batch-check` for sizes, `git cat-file --batch` for
 * contents (one process each, streamed).
 */
export async function* gitHistoryInputs(
  dir: string,
  maxBytes: number,
  skipped: SkipCounter,
  onCount?: (blobs: number) => void,
): AsyncGenerator<ScanInput> {
  const sites = await blobSites(dir);
  const sizes = await blobSizes(dir, [...sites.keys()]);
  const wanted: string[] = [];
  for (const [id, size] of sizes) {
    if (size > maxBytes) skipped.tooLarge++;
    else wanted.push(id);
  }
  onCount?.(wanted.length);
  for await (const [id, data] of catBlobs(dir, wanted)) {
    const site = sites.get(id)!;
    if (isBinary(data)) {
      skipped.binary++;
      continue;
    }
    yield { where: { path: site.path, commit: site.commit }, data, firstLine: 1 };
  }
}

function git(dir: string, args: string[]) {
  const child = spawn('git', ['-C', dir, '-c', 'core.quotePath=false', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 4096) stderr += c.toString();
  });
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (err) => reject(new Error(`cannot run git: ${err.message}`)));
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`git ${args[0]} failed (${code}): ${stderr.trim()}`)),
    );
  });
  return { child, exited };
}

const NULL_ID = /^0+$/;
const SKIP = '';

async function blobSites(dir: string): Promise<Map<string, BlobSite>> {
  // -m: merges too (a conflict resolution adds blobs no parent has); --no-renames: a renamed file's
  // blob is the same object, seen once anyway. -z: paths as they are, NUL-separated.
  const { child, exited } = git(dir, [
    'log',
    '--all',
    '--reverse',
    '--no-renames',
    '-m',
    '--raw',
    '--no-abbrev',
    '-z',
    '--format=%x01%H',
  ]);
  child.stdin.end();
  const sites = new Map<string, BlobSite>();
  let commit = '';
  let pendingBlob: string | undefined;
  let rest = '';
  const take = (field: string) => {
    if (pendingBlob !== undefined) {
      if (pendingBlob !== SKIP && !sites.has(pendingBlob)) sites.set(pendingBlob, { commit, path: field });
      pendingBlob = undefined;
      return;
    }
    const f = field.replace(/^\n+/, '');
    if (f.startsWith('\x01')) {
      commit = f.slice(1).trim();
      return;
    }
    if (f.startsWith(':')) {
      // :<old mode> <new mode> <old id> <new id> <status>; the path is the next field.
      const parts = f.slice(1).split(' ');
      const newMode = parts[1] ?? '';
      const newId = parts[3] ?? '';
      // Not deletions, not submodules (mode 160000: a commit of another repository).
      pendingBlob = NULL_ID.test(newId) || newMode === '160000' ? SKIP : newId;
    }
  };
  child.stdout.setEncoding('utf8');
  for await (const chunk of child.stdout) {
    const fields = (rest + (chunk as string)).split('\0');
    rest = fields.pop() ?? '';
    for (const f of fields) take(f);
  }
  if (rest) take(rest);
  await exited;
  return sites;
}

async function blobSizes(dir: string, ids: string[]): Promise<Map<string, number>> {
  const { child, exited } = git(dir, ['cat-file', '--batch-check=%(objectname) %(objecttype) %(objectsize)']);
  const sizes = new Map<string, number>();
  child.stdin.on('error', () => undefined);
  child.stdin.end(ids.length > 0 ? `${ids.join('\n')}\n` : '');
  let rest = '';
  child.stdout.setEncoding('utf8');
  for await (const chunk of child.stdout) {
    const lines = (rest + (chunk as string)).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) {
      const [id, type, size] = l.split(' ');
      if (id && type === 'blob') sizes.set(id, Number(size));
    }
  }
  await exited;
  return sizes;
}

/** Streams `git cat-file --batch` output as [id, content] pairs, one blob in memory at a time. */
async function* catBlobs(dir: string, ids: string[]): AsyncGenerator<[string, Buffer]> {
  if (ids.length === 0) return;
  const { child, exited } = git(dir, ['cat-file', '--batch']);
  child.stdin.on('error', () => undefined);
  child.stdin.end(`${ids.join('\n')}\n`);
  // Chunks are kept in a list and joined once a whole object (its content and a line feed) is in.
  let chunks: Buffer[] = [];
  let have = 0;
  let header: { id: string; size: number } | undefined;
  const joined = () => {
    const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    chunks = [all];
    return all;
  };
  for await (const chunk of child.stdout) {
    chunks.push(chunk as Buffer);
    have += (chunk as Buffer).length;
    for (;;) {
      if (!header) {
        const all = joined();
        const nl = all.indexOf(10);
        if (nl === -1) break;
        const [id = '', , size] = all.subarray(0, nl).toString('utf8').split(' ');
        header = { id, size: Number(size) };
        chunks = [all.subarray(nl + 1)];
        have = all.length - nl - 1;
      }
      if (have < header.size + 1) break;
      const all = joined();
      const data = Buffer.from(all.subarray(0, header.size));
      chunks = [all.subarray(header.size + 1)];
      have = all.length - header.size - 1;
      const id = header.id;
      header = undefined;
      yield [id, data];
    }
  }
  await exited;
}
