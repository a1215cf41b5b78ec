import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { VendorKeySource } from './proxy.js';

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const MAX_KEY_BYTES = 8192;

/**
 * Vendor keys from a directory only the proxy can read (a mounted secret beside the proxy container,
 * never the workload's): file `NAME` holds the key sent now; `NAME.previous`, while present, the key
 * being rotated out, which is never sent but still overwritten wherever a response echoes it. A file
 * is re-read when it changes, so a rotation is: move `NAME` to `NAME.previous`, write the new `NAME`,
 * remove `NAME.previous` once the vendor no longer accepts the old key.
 */
export class FileVendorKeys implements VendorKeySource {
  readonly #dir: string;
  readonly #cache = new Map<string, { stamp: string; value: string | undefined }>();

  constructor(dir: string) {
    this.#dir = dir;
  }

  async current(name: string): Promise<string> {
    const key = this.#read(name);
    if (key === undefined) throw new Error(`no vendor key ${name}`);
    return key;
  }

  inFlight(name: string): readonly string[] {
    const previous = this.#read(`${name}.previous`);
    const current = this.#read(name);
    return [current, previous].filter((k): k is string => k !== undefined);
  }

  #read(file: string): string | undefined {
    if (!NAME.test(file.replace(/\.previous$/, ''))) return undefined;
    const path = join(this.#dir, file);
    let stamp: string;
    let mode: number;
    try {
      const s = statSync(path);
      if (!s.isFile() || s.size > MAX_KEY_BYTES) return undefined;
      stamp = `${s.mtimeMs}:${s.ctimeMs}:${s.size}:${s.ino}:${s.mode}`;
      mode = s.mode;
    } catch {
      this.#cache.delete(file);
      return undefined;
    }
    const hit = this.#cache.get(file);
    if (hit?.stamp === stamp) return hit.value;
    // A key others can read is not a secret any more: refuse it, as the KEK file is refused.
    const value = (mode & 0o077) === 0 ? readFileSync(path, 'utf8').trim() || undefined : undefined;
    this.#cache.set(file, { stamp, value });
    return value;
  }
}
