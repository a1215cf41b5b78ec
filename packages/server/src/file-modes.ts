import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';

// What Writ keeps on disk (the store, its write-ahead log, the key-encryption key, the operator key) is
// for the user running Writ alone: another local user who can read the database or its WAL can copy
// every sealed key and token record. Folders are 0700 and files 0600, also when they already exist with
// looser modes (a folder made by hand, files copied from a backup, an older Writ): those are narrowed,
// and the caller logs it.

/** A path whose mode Writ narrowed, for the log (modes in octal). */
export interface ModeTightened {
  path: string;
  from: string;
  to: string;
}

export const OWNER_ONLY_DIR = 0o700;
export const OWNER_ONLY_FILE = 0o600;

// Windows has no POSIX modes to narrow (Node reports 0666 for every file there).
const POSIX = process.platform !== 'win32';

/**
 * Narrows `path` to the bits of `allowed` when it grants any other (a stricter mode is left alone).
 * Undefined when the path is absent or already within `allowed`.
 */
export function tightenMode(path: string, allowed: number): ModeTightened | undefined {
  if (!POSIX) return undefined;
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if ((mode & ~allowed) === 0) return undefined;
  const to = mode & allowed;
  chmodSync(path, to);
  return { path, from: mode.toString(8), to: to.toString(8) };
}

/** Creates the folder (and its parents) 0700, or narrows it when it exists. */
export function ownerOnlyDir(path: string): ModeTightened | undefined {
  mkdirSync(path, { recursive: true, mode: OWNER_ONLY_DIR });
  return tightenMode(path, OWNER_ONLY_DIR);
}

/**
 * Creates an empty file 0600 when it is absent, or narrows it: a file another library opens later
 * (SQLite creates its database 0644 under the usual umask) then never exists with a looser mode.
 */
export function ownerOnlyFile(path: string): ModeTightened | undefined {
  try {
    closeSync(openSync(path, 'wx', OWNER_ONLY_FILE));
    return undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return tightenMode(path, OWNER_ONLY_FILE);
}
