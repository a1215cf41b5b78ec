import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// The README's five-minute walkthrough, run as written: its shell block is taken from the README,
// against `writ serve` started on a fresh data directory the way `npm start` does. Only the `alias`
// line is replaced (aliases do not expand in a script) and the server address is passed in WRIT_URL.
// If the README and the behaviour drift apart, this fails.

const README = fileURLToPath(new URL('../../../../README.md', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const ALIAS = "alias writ='node packages/server/dist/src/cli/main.js'";

function walkthroughScript(): string {
  const text = readFileSync(README, 'utf8');
  const section = text.slice(text.indexOf('## Five-minute walkthrough'));
  const m = /```sh\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'README has no shell block under "Five-minute walkthrough"');
  const block = m[1]!;
  assert.ok(block.includes(ALIAS), `the walkthrough should start with: ${ALIAS}`);
  return block.replace(ALIAS, 'writ() { node "$WRIT_CLI" "$@"; }');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  // Bounded by count, not by a timed assertion: 300 tries, 100 ms apart.
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) break;
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`writ serve did not become ready:\n${log().slice(-2000)}`);
}

describe('README five-minute walkthrough, run as written', () => {
  let dir: string;
  let server: ChildProcess;
  let serverLog = '';
  let url: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-readme-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    server = spawn(
      process.execPath,
      [MAIN, '--data-dir', join(dir, 'writ-data'), 'serve', '--port', String(port)],
      {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    server.stdout?.on('data', (d) => {
      serverLog += d;
    });
    server.stderr?.on('data', (d) => {
      serverLog += d;
    });
    await waitReady(`${url}/readyz`, server, () => serverLog);
  });

  after(async () => {
    if (server.exitCode === null) {
      const exited = once(server, 'exit');
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers a workload, gets a DPoP-bound token, verifies, revokes, runs a task and verifies the audit chain', async () => {
    const script = `set -euo pipefail\n${walkthroughScript()}`;
    const child = spawn('bash', ['-c', script], {
      cwd: dir,
      env: { ...process.env, WRIT_CLI: MAIN, WRIT_URL: url, WRIT_DATA_DIR: join(dir, 'writ-data') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    const [code] = await once(child, 'exit');
    clearTimeout(timer);
    assert.equal(code, 0, `walkthrough failed (exit ${code}):\n${err.slice(-3000)}\n${out.slice(-2000)}`);

    // Step 4 printed the verified claims of a DPoP-bound token for the walkthrough's audience.
    assert.match(out, /"aud":\s*"https:\/\/reports\.example\.internal"/);
    assert.match(out, /"jkt":\s*"[A-Za-z0-9_-]{43}"/);
    // Step 5: introspection after the revocation says inactive, and nothing more.
    assert.match(out, /\{\s*"active":\s*false\s*\}/);
    // Step 6: the command ran inside a task, which closed (revoking its tokens) when it exited.
    const task = /writ exec: task (task_[A-Za-z0-9_-]+) closed; its tokens are revoked/.exec(err + out);
    assert.ok(task, `writ exec did not report the task closed:\n${err.slice(-1500)}`);
    assert.match(out, new RegExp(`task ${task[1]}\\n`));
    assert.match(out, new RegExp(`closed ${task[1]} `));
    // Step 7: the audit tail shows no refusal when nothing failed: the DPoP nonce the token request
    // is first answered with is a challenge (`token.challenged`), not a refusal.
    const tail = out.split('\n').filter((l) => /^\s*\d+ \d{4}-\d\d-\d\dT[\d:.]+Z /.test(l));
    assert.ok(tail.length > 0, `no audit tail in the output:\n${out.slice(-2000)}`);
    assert.deepEqual(
      tail.filter((l) => /\brefused\b/.test(l)),
      [],
      `the audit tail shows refusals when nothing failed:\n${tail.join('\n')}`,
    );
    assert.ok(
      tail.some((l) => /token\.challenged\s+challenged /.test(l)),
      tail.join('\n'),
    );
    // Step 7: the audit chain verifies.
    assert.match(out, /audit chain OK: \d+ events/);
    // Nothing in the walkthrough's output or the server log holds the full token.
    const token = /eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/.exec(out);
    if (token) assert.ok(!serverLog.includes(token[0]), 'the server log holds a full token');
  });
});
