import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';

/**
 * The built console (`@writ/console`'s `dist/`: `index.html` and `assets/`), found through the package so
 * an installed server finds it wherever npm put it; undefined while it is not built. Looked up again
 * until found, so building the console does not need a restart.
 */
let found: string | undefined;
export function consoleDistDir(): string | undefined {
  if (found) return found;
  try {
    const pkg = createRequire(import.meta.url).resolve('@writ/console/package.json');
    const dist = join(dirname(pkg), 'dist');
    if (existsSync(join(dist, 'index.html'))) found = dist;
  } catch {
    // not installed: the console is not built
  }
  return found;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** A file name in `assets/`: letters, digits, `.`, `_`, `-`, not starting with a dot. */
const ASSET_PATH = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** Reads one file of the built console: `index.html`, or `assets/<path>`; undefined when there is none. */
export async function readConsoleFile(
  dist: string,
  file: { index: true } | { asset: string },
): Promise<{ body: Buffer; type: string } | undefined> {
  let path: string;
  if ('index' in file) path = join(dist, 'index.html');
  else {
    if (!ASSET_PATH.test(file.asset)) return undefined;
    path = join(dist, 'assets', file.asset);
  }
  try {
    const body = await readFile(path);
    return { body, type: TYPES[extname(path)] ?? 'application/octet-stream' };
  } catch {
    return undefined;
  }
}
