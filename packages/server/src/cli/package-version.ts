import { readFileSync } from 'node:fs';

/**
 * The version of the installed `@writ/server`, read from its package.json (which npm always
 * installs with the package), so `writ --version` cannot disagree with what was installed.
 */
export function packageVersion(): string {
  // From dist/src/cli/ (compiled) the package root is three folders up.
  const file = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}
