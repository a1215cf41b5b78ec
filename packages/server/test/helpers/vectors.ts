import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * Where the shared test vectors live: `WRIT_VECTORS_DIR`, else `../shared/vectors` beside the repository
 * root. The root is found by walking up from this (compiled) file to the workspace's package.json.
 */
export function vectorsDir(): string | undefined {
  const fromEnv = process.env['WRIT_VECTORS_DIR'];
  if (fromEnv) return resolve(fromEnv);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { workspaces?: unknown }).workspaces)
      return resolve(dir, '..', 'shared', 'vectors');
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

export interface WycheproofTest {
  tcId: number;
  comment: string;
  result: 'valid' | 'invalid' | 'acceptable';
  flags: string[];
  [field: string]: unknown;
}

export interface WycheproofGroup {
  tests: WycheproofTest[];
  [field: string]: unknown;
}

export interface WycheproofFile {
  testGroups: WycheproofGroup[];
  numberOfTests?: number;
}

/** The Wycheproof file `name`, or why it cannot be read (the caller skips with that reason). */
export function loadWycheproof(name: string): { file: WycheproofFile } | { skip: string } {
  const dir = vectorsDir();
  if (!dir) return { skip: 'no vectors directory: repository root not found and WRIT_VECTORS_DIR unset' };
  const path = join(dir, 'wycheproof', name);
  if (!existsSync(path)) return { skip: `Wycheproof vectors not found at ${path} (set WRIT_VECTORS_DIR)` };
  return { file: JSON.parse(readFileSync(path, 'utf8')) as WycheproofFile };
}

export const countTests = (file: WycheproofFile): number =>
  file.testGroups.reduce((n, g) => n + g.tests.length, 0);

/** Runs `body` with the vector file, or registers one skipped test that says why it is missing. */
export function withVectors(name: string, body: (file: WycheproofFile) => void): void {
  const loaded = loadWycheproof(name);
  if ('skip' in loaded) {
    console.log(`${name}: skipped: ${loaded.skip}`);
    it(name, { skip: loaded.skip }, () => {});
    return;
  }
  body(loaded.file);
}
