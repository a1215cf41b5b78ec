import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// `npm install` on a clean clone warns (EBADENGINE) for every locked package whose `engines.node`
// the running Node does not satisfy. The workspace's `engines` is the Node version the README
// documents: every locked package must accept the oldest Node it allows, so installing with it
// prints no engine warning. (cookie 2, fastify's light-my-request's, asks for Node 22: the root
// package.json overrides it with cookie 1.1, the same API in CommonJS.)

const root = (path: string) => fileURLToPath(new URL(`../../../../${path}`, import.meta.url));
const json = (path: string) => JSON.parse(readFileSync(root(path), 'utf8'));
const semver = createRequire(import.meta.url)('semver') as {
  minVersion(range: string): { version: string } | null;
  satisfies(version: string, range: string): boolean;
};

describe('the documented Node version installs without an engine warning', () => {
  const engines = (json('package.json') as { engines: { node: string } }).engines.node;
  const oldest = semver.minVersion(engines)!.version;

  it('the SDK and the server ask for the same Node as the workspace', () => {
    for (const p of ['packages/sdk/package.json', 'packages/server/package.json'])
      assert.equal((json(p) as { engines?: { node?: string } }).engines?.node, engines, p);
  });

  it(`every locked package accepts Node ${oldest}, the oldest the workspace allows`, () => {
    const lock = json('package-lock.json') as {
      packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
    };
    const refused = Object.entries(lock.packages)
      .filter(([, p]) => {
        const node = Array.isArray(p.engines) ? undefined : p.engines?.node;
        return node !== undefined && !semver.satisfies(oldest, node);
      })
      .map(([path, p]) => `${path}@${p.version} wants node ${(p.engines as { node: string }).node}`);
    assert.deepEqual(refused, [], `npm install on Node ${oldest} would warn EBADENGINE for these`);
  });
});
