import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// The README's five-minute walkthrough and its "Protect your API in five minutes" step, run as
// written: their shell blocks are taken from the README, against `writ serve` started on a fresh data
// directory the way `npm start` does. Only the line putting the checkout's `bin/` on PATH is given
// the checkout's absolute path (the blocks run in a temporary folder, not at the repository root),
// the server address is passed in WRIT_URL and the API's port in PORT. If the README and the
// behaviour drift apart, this fails.

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const README = join(REPO, 'README.md');
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const PATH_LINE = 'export PATH="$PWD/bin:$PATH"';
const PATH_HERE = `export PATH="${join(REPO, 'bin')}:$PATH"`;

/** The text of the README section under `heading`, up to the next section of the same level. */
function section(heading: string): string {
  const text = readFileSync(README, 'utf8');
  const start = text.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `README has no section "${heading}"`);
  const end = text.indexOf('\n## ', start + heading.length + 2);
  return text.slice(start, end < 0 ? undefined : end);
}

/** The shell blocks of a README section, in order. */
function shellBlocks(heading: string): string[] {
  return [...section(heading).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

function walkthroughScript(): string {
  const [block] = shellBlocks('## Five-minute walkthrough');
  assert.ok(block, 'README has no shell block under "Five-minute walkthrough"');
  assert.ok(block.startsWith(`${PATH_LINE} `), `the walkthrough should start with: ${PATH_LINE}`);
  return block.replace(PATH_LINE, PATH_HERE);
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

/** Waits until `url` answers 2xx (`anyAnswer`: answers at all, a 401 included). */
async function waitReady(
  url: string,
  child: ChildProcess,
  log: () => string,
  anyAnswer = false,
): Promise<void> {
  // Bounded by count, not by a timed assertion: 300 tries, 100 ms apart.
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) break;
    const ok = await fetch(url).then(
      (r) => anyAnswer || r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not become ready:\n${log().slice(-2000)}`);
}

/** A bash script run to its end in `cwd` (killed after two minutes): its exit code and output. */
async function runBash(
  script: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn('bash', ['-c', `set -euo pipefail\n${script}`], {
    cwd,
    env,
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
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, out, err };
}

const hasGit = spawnSync('git', ['--version']).status === 0;

describe('README five-minute walkthrough and protect-your-API step, run as written', () => {
  let dir: string;
  let server: ChildProcess;
  let serverLog = '';
  let url: string;
  let env: NodeJS.ProcessEnv;
  const api: { child?: ChildProcess; log: string } = { log: '' };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-readme-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = { ...process.env, WRIT_URL: url, WRIT_DATA_DIR: join(dir, 'writ-data'), PORT: '' };
    delete env['WRIT_OPERATOR_KEY'];
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
    const apiChild = api.child;
    if (apiChild?.pid !== undefined && apiChild.exitCode === null && apiChild.signalCode === null) {
      const exited = once(apiChild, 'exit');
      process.kill(-apiChild.pid, 'SIGTERM');
      await exited;
    }
    if (server.exitCode === null) {
      const exited = once(server, 'exit');
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers a workload, gets a DPoP-bound token, verifies, revokes, runs a task and verifies the audit chain', async () => {
    const { code, out, err } = await runBash(walkthroughScript(), dir, env);
    assert.equal(code, 0, `walkthrough failed (exit ${code}):\n${err.slice(-3000)}\n${out.slice(-2000)}`);

    // Step 2: the starter settings.yaml is the one the server runs with, so apply says nothing of it.
    assert.doesNotMatch(out, /settings\.yaml/);
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
    // Step 7: the audit chain verifies, and the verdict names the store it read.
    assert.match(out, /audit chain OK: \d+ events/);
    assert.match(out, new RegExp(`store: embedded SQLite, ${join(dir, 'writ-data', 'writ.db')}`));
    // Step 8: `writ console` printed a one-time link to this server's console; it signs in once.
    const link =
      /(https?:\/\/[^\s#]+)\/console\/signin#([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)/.exec(out);
    assert.ok(link, `writ console printed no sign-in link:\n${out.slice(-1500)}`);
    const signIn = () =>
      fetch(`${link[1]}/console/api/signin`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ link: link[2] }),
      });
    const first = await signIn();
    assert.equal(first.status, 200, await first.text());
    assert.match(first.headers.get('set-cookie') ?? '', /^writ_console=[^;]+;.*HttpOnly/i);
    const again = await signIn();
    assert.equal(again.status, 401);
    assert.equal(((await again.json()) as { error: string }).error, 'invalid_grant');
    // Nothing in the walkthrough's output or the server log holds the full token.
    const token = /eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/.exec(out);
    if (token) assert.ok(!serverLog.includes(token[0]), 'the server log holds a full token');
    // Step 1: the private keys are in .writ/, owner-only.
    assert.equal(statSync(join(dir, '.writ')).mode & 0o777, 0o700);
    for (const key of ['exporter.jwk', 'exporter.dpop.jwk'])
      assert.equal(statSync(join(dir, '.writ', key)).mode & 0o777, 0o600, key);
  });

  it('protects the reports API with the verifier SDK: a DPoP call is served, the key-less token refused and revoked', async () => {
    assert.ok(existsSync(join(dir, '.writ', 'exporter.jwk')), 'the walkthrough ran first');
    const [setup, start, call, ...rest] = shellBlocks('## Protect your API in five minutes');
    assert.ok(setup && start && call && rest.length === 0, 'three shell blocks: setup, the API, the call');
    // The API runs the example the README links to (the blocks run in a folder of their own).
    assert.match(section('## Protect your API in five minutes'), /\]\(examples\/resource-server\.mjs\)/);
    assert.match(start, /^node examples\/resource-server\.mjs /);
    symlinkSync(join(REPO, 'examples'), join(dir, 'examples'));

    // 1. In the walkthrough's terminal: the API's workload and class, applied.
    const applied = await runBash(`${PATH_HERE}\n${setup}`, dir, env);
    assert.equal(applied.code, 0, `setup failed:\n${applied.err}\n${applied.out}`);
    assert.match(applied.out, /reports-api/);

    // In a third terminal: the API, until its verifier has the revocation snapshot and it listens.
    const port = await freePort();
    const apiEnv = { ...env, PORT: String(port) };
    // A process group of its own, so that stopping it stops node and not only the shell.
    api.child = spawn('bash', ['-c', start], {
      cwd: dir,
      env: apiEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    api.child.stdout?.on('data', (d) => {
      api.log += d;
    });
    api.child.stderr?.on('data', (d) => {
      api.log += d;
    });
    await waitReady(`http://127.0.0.1:${port}/`, api.child, () => api.log, true);
    assert.match(
      api.log,
      new RegExp(
        `resource server for https://reports\\.example\\.internal on http://127\\.0\\.0\\.1:${port}`,
      ),
    );

    // 2 and 3. Back in the walkthrough's terminal: the job's call, then its token without the key.
    const called = await runBash(`${PATH_HERE}\n${call}`, dir, apiEnv);
    assert.equal(called.code, 0, `call failed:\n${called.err}\n${called.out}\nAPI:\n${api.log}`);
    assert.match(
      called.out,
      /^\{"ok":true,"sub":"spiffe:\/\/example\.internal\/reports\/exporter","scope":"reports:read","tid":"task_[A-Za-z0-9_-]+"\}$/m,
    );
    assert.match(called.out, /^401 without the key$/m);

    // The API reported both uses, and the key-less one made the built-in rule revoke the token.
    const writ = (...args: string[]) =>
      spawnSync(process.execPath, [MAIN, ...args], { cwd: dir, env, encoding: 'utf8' });
    let findings = '';
    const seen = (rule: string) =>
      new RegExp(`${rule}\\s+spiffe://example\\.internal/reports/exporter `).test(findings);
    for (let i = 0; i < 100 && !seen('bound-token-without-key'); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      findings = writ('detections', 'list').stdout;
    }
    const keyless =
      /bound-token-without-key\s+spiffe:\/\/example\.internal\/reports\/exporter revoke_token jti=(\S+)/.exec(
        findings,
      );
    assert.ok(keyless, `no bound-token-without-key finding that revoked the token:\n${findings}`);
    // curl is a command-line tool scripts use too: not taken for a person at the workload's token.
    assert.ok(!seen('human-user-agent'), findings);
    const reported = writ('audit', 'query', '--type', 'usage.reported', '--json').stdout;
    assert.match(reported, /"actor": "spiffe:\/\/example\.internal\/reports\/api"/);
    // writ audit trace shows the token's issuance, its uses and its revocation.
    const trace = writ('audit', 'trace', keyless[1]!).stdout;
    assert.match(trace, /\bissued\s+to spiffe:\/\/example\.internal\/reports\/exporter /);
    assert.match(trace, /\bused\s+GET .*allowed/);
    assert.match(trace, /\bused\s+GET .*denied/);
    assert.match(trace, /\brevoked\b/);
  });

  it('the protect-your-API section links to what exists', () => {
    const text = readFileSync(README, 'utf8');
    const slug = (heading: string) =>
      heading
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-');
    const anchors = new Set([...text.matchAll(/^#{2,4} (.+)$/gm)].map((m) => slug(m[1]!)));
    const links = [...section('## Protect your API in five minutes').matchAll(/\]\(([^)\s]+)\)/g)].map(
      (m) => m[1]!,
    );
    assert.ok(links.length >= 6, links.join(' '));
    for (const link of links) {
      if (link.startsWith('#')) assert.ok(anchors.has(link.slice(1)), `no README heading for ${link}`);
      else assert.ok(existsSync(join(REPO, link.split('#')[0]!)), `no file ${link}`);
    }
  });

  it('leaves no file git would add: the private keys are in an ignored folder', {
    skip: hasGit ? false : 'git is not installed',
  }, () => {
    // The folder the README's blocks ran in, as if it were the repository: its own .gitignore.
    writeFileSync(join(dir, '.gitignore'), readFileSync(join(REPO, '.gitignore')));
    const git = (...args: string[]) => spawnSync('git', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(git('init', '-q').status, 0);
    const untracked = git('status', '--porcelain', '--untracked-files=all')
      .stdout.split('\n')
      .filter((l) => l !== '' && l !== '?? .gitignore' && l !== '?? examples');
    assert.deepEqual(untracked, [], 'the README blocks left files git would add');
    for (const key of ['.writ/exporter.jwk', '.writ/reports-api.jwk'])
      assert.equal(git('check-ignore', '-q', key).status, 0, `${key} is not ignored`);
  });
});
