import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readSync,
  realpathSync,
  type Stats,
  statSync,
} from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import { ConfigError } from '../errors.js';

/**
 * The largest file a config directory may hold: config documents, `settings.yaml`, and key and
 * certificate files named by `jwks_file` or `self_signed_certificates_file`. A SPIFFE bundle or a
 * chain of eight certificates is a few KiB; a megabyte is generous and still cheap to hold in memory.
 */
export const MAX_CONFIG_FILE_BYTES = 1_048_576;

/** Where a file was named from, for errors: the document (file and position) and the field. */
export interface FileReference {
  where: string;
  field: string;
}

/**
 * Reads a file of a config directory, or one a config document names by path. Fails closed with a
 * ConfigError naming the document and the field, and never quotes the file's content:
 * - the file, with every symlink resolved, must lie inside the config directory `root` (a path that
 *   climbs out with `../`, an absolute path elsewhere, or a link pointing out would let a config
 *   document read the KEK or any file the server can);
 * - it must be a regular file (`/dev/zero` or a FIFO would never end, or block the reader);
 * - it must be at most MAX_CONFIG_FILE_BYTES.
 *
 * @example readConfigFile(root, resolve(dirname(file), 'exporter.pub.jwk'), { where, field: 'jwks_file' })
 */
export function readConfigFile(
  root: string,
  path: string,
  ref: FileReference,
  shown = path,
  seen?: (st: Stats) => void,
): Buffer {
  const refuse = (reason: string): never => {
    throw new ConfigError(ref.where, ref.field, reason);
  };
  const inside = `keep it inside the config directory and name it relative to the file that names it`;
  let realRoot: string;
  let real: string;
  try {
    realRoot = realpathSync.native(root);
  } catch {
    return refuse('the config directory cannot be resolved');
  }
  try {
    real = realpathSync.native(path);
  } catch (err) {
    return refuse(`cannot read ${shown} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  const rel = relative(realRoot, real);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel))
    return refuse(`${shown} resolves to a file outside the config directory; ${inside}`);
  // stat before open: opening a FIFO for reading waits for a writer.
  if (!statSync(real, { throwIfNoEntry: false })?.isFile()) return refuse(notRegular(shown));
  return readRegularFile(real, refuse, shown, seen);
}

/**
 * Reads a file listed in a directory of the config directory, when the listing says it is a regular
 * file and not a link: the directory was resolved inside the config directory already, so the file is
 * too, and the open refuses a link swapped in since (O_NOFOLLOW). A directory of 100,000 workloads is
 * read without resolving each path again. Anything else goes through readConfigFile.
 */
export function readListedConfigFile(
  root: string,
  entry: { name: string; isFile(): boolean; isSymbolicLink(): boolean },
  dir: { path: string; inside: boolean },
  ref: FileReference,
  shown: string,
  seen?: (st: Stats) => void,
): Buffer {
  const path = join(dir.path, entry.name);
  if (!dir.inside || !entry.isFile() || entry.isSymbolicLink())
    return readConfigFile(root, path, ref, shown, seen);
  return readRegularFile(
    path,
    (reason) => {
      throw new ConfigError(ref.where, ref.field, reason);
    },
    shown,
    seen,
  );
}

/** Whether directory `dir`, every link resolved, lies inside the config directory `root` (or is it). */
export function resolvesInside(root: string, dir: string): boolean {
  try {
    const rel = relative(realpathSync.native(root), realpathSync.native(dir));
    return !(rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel));
  } catch {
    return false;
  }
}

const notRegular = (shown: string) =>
  `${shown} is not a regular file; name a regular file of at most ${MAX_CONFIG_FILE_BYTES} bytes`;

function readRegularFile(
  real: string,
  refuse: (reason: string) => never,
  shown: string,
  seen?: (st: Stats) => void,
): Buffer {
  const regular = notRegular(shown);
  let fd: number;
  try {
    // O_NOFOLLOW and O_NONBLOCK: if the path was swapped for a link or a FIFO since the stat, fail now.
    fd = openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    return refuse(`cannot read ${shown} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return refuse(regular);
    const tooLarge = `${shown} is larger than ${MAX_CONFIG_FILE_BYTES} bytes (the limit for a file of a config directory)`;
    if (st.size > MAX_CONFIG_FILE_BYTES) return refuse(tooLarge);
    seen?.(st);
    // Read until the end, whatever the size said (a file may grow while read), and stop one byte past
    // the limit. The first read is sized by the stat (config files are small and a directory holds
    // 100,000 of them: a zeroed 64 KiB buffer each was most of the time spent reading one).
    const chunks: Buffer[] = [];
    let total = 0;
    for (let first = true; ; first = false) {
      const want = first ? st.size + 1 : 65_536;
      const chunk = Buffer.allocUnsafe(Math.min(want, MAX_CONFIG_FILE_BYTES + 1 - total));
      const got = readSync(fd, chunk, 0, chunk.length, null);
      if (got === 0) break;
      chunks.push(chunk.subarray(0, got));
      total += got;
      if (total > MAX_CONFIG_FILE_BYTES) return refuse(tooLarge);
      // A regular file read short of what was asked is at its end: no read of 0 bytes to say so.
      if (first && got < want) break;
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}
