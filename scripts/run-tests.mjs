// Runs every compiled test file with Node's own test runner (Node 20 has no glob support of its own).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['packages/sdk/dist/test', 'packages/server/dist/test'];
const files = [];
const walk = (dir) => {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (e.endsWith('.test.js')) files.push(p);
  }
};
for (const r of roots) walk(r);
if (files.length === 0) {
  console.error('no test files found: run `npm run build` first');
  process.exit(1);
}
const filter = process.argv[2];
const selected = filter ? files.filter((f) => f.includes(filter)) : files;
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...selected], { stdio: 'inherit' });
process.exit(r.status ?? 1);
