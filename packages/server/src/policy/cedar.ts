import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import type * as CedarModule from '@cedar-policy/cedar-wasm/nodejs';

// Node 20's V8 aborts the process (Deoptimizer::DoComputeBuiltinContinuation, "unreachable code") when
// optimised code that inlined a JS-to-Wasm call into Cedar is deoptimised lazily: seen when a second
// policy set is loaded after decisions ran hot (bench/policy.mjs). Not inlining those calls avoids it;
// the cost is lost in the noise of a Cedar call. Set before the module is instantiated.
setFlagsFromString('--no-turbo-inline-js-wasm-calls');

/**
 * The Cedar WebAssembly build for Node. Its `nodejs` entry is CommonJS that instantiates the module
 * synchronously at load, so `require` keeps every call on the hot path synchronous.
 */
export const cedar: typeof CedarModule = createRequire(import.meta.url)('@cedar-policy/cedar-wasm/nodejs');

export type {
  CedarValueJson,
  DetailedError,
  EntityJson,
  EntityUidJson,
  PolicyJson,
} from '@cedar-policy/cedar-wasm/nodejs';

let schemaText: string | undefined;

/**
 * Writ's Cedar schema (`schema.cedarschema` beside this module's source), read once. The compiled module
 * lives in `dist/src/policy/`; the schema ships as `src/policy/schema.cedarschema` in the package.
 */
export function writSchema(): string {
  if (schemaText === undefined) {
    schemaText = readFileSync(new URL('../../../src/policy/schema.cedarschema', import.meta.url), 'utf8');
  }
  return schemaText;
}

/** Line (1-based) of a byte offset in `text`, as Cedar reports source locations in bytes. */
export function lineAt(text: string, byteOffset: number): number {
  const prefix = Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8');
  let line = 1;
  for (let i = 0; i < prefix.length; i++) if (prefix.charCodeAt(i) === 10) line++;
  return line;
}
