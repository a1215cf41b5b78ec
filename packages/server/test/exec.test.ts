import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DpopError, verifyDpopProof } from '@writ/sdk/dpop';
import { runWrit } from './helpers/cli.js';
import { classDoc, decodeClaims, introspect, workloadDoc } from './helpers/dpop.js';
import { type Harness, startHarness, testKey } from './helpers/harness.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const WORKLOAD = 'spiffe://test.writ/cron/nightly-export';
const API = 'https://items.exec.test';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

describe('writ exec: a command runs with a task-bound DPoP token that dies with it', () => {
  const key = testKey();
  let h: Harness;
  let dir: string;
  let keyFile: string;
  let n = 0;

  before(async () => {
    h = await startHarness({
      listen: true,
      extraDocs: [
        classDoc({
          name: 'items',
          audiences: [API],
          scopes: ['items:read', 'items:write'],
          default_scopes: ['items:read'],
        }),
        workloadDoc(WORKLOAD, key, ['items']),
      ],
    });
    dir = mkdtempSync(join(tmpdir(), 'writ-exec-test-'));
    keyFile = join(dir, 'workload.jwk');
    writeFileSync(
      keyFile,
      JSON.stringify({ ...key.privateKey.export({ format: 'jwk' }), kid: key.kid, alg: key.alg }),
      { mode: 0o600 },
    );
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `writ exec … -- sh -c script` with OUT pointing at a fresh directory; bounded by a timeout. */
  function writExec(script: string, extra: string[] = []): { out: string; done: Promise<Run> } {
    const outDir = mkdtempSync(join(dir, `out-${++n}-`));
    const done: Promise<Run> = runWrit(
      MAIN,
      [
        '--server',
        h.issuer,
        'exec',
        '--client-id',
        WORKLOAD,
        '--key',
        keyFile,
        '--audience',
        API,
        '--scope',
        'items:read items:write',
        '--task-purpose',
        `test run ${n}`,
        ...extra,
        '--',
        'sh',
        '-c',
        script,
      ],
      { env: { ...process.env, OUT: outDir, WRIT_MAIN: MAIN } },
    );
    return { out: outDir, done };
  }

  /** Waits (bounded) for a file the command writes. */
  async function waitFor(file: string, run: Promise<Run>): Promise<void> {
    let exited: Run | undefined;
    run.then((r) => {
      exited = r;
    });
    for (let i = 0; i < 1600 && !existsSync(file); i++) {
      if (exited) assert.fail(`writ exec exited early: ${JSON.stringify(exited)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(existsSync(file), `${file} was not written`);
  }

  const taskView = async (id: string) => {
    const r = await h.admin('GET', `/tasks/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };

  it('hands the command its token, DPoP key and task; revokes the token by the time it returns; exit code kept', async () => {
    const run = writExec(
      [
        // The token file is moved in last: once it exists, everything else is written.
        'printf %s "$WRIT_TASK_ID" > "$OUT/tid"',
        'printf %s "$WRIT_DPOP_KEY_FILE" > "$OUT/keyfile"',
        'printf %s "$WRIT_TOKEN_FILE" > "$OUT/tokenfile"',
        'cp "$WRIT_TOKEN_FILE" "$OUT/token.tmp" && mv "$OUT/token.tmp" "$OUT/token"',
        'i=0; while [ ! -f "$OUT/release" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done',
        'exit 3',
      ].join('\n'),
    );
    await waitFor(join(run.out, 'token'), run.done);
    const token = readFileSync(join(run.out, 'token'), 'utf8').trim();
    const tid = readFileSync(join(run.out, 'tid'), 'utf8');
    const dpopKeyFile = readFileSync(join(run.out, 'keyfile'), 'utf8');
    const tokenFile = readFileSync(join(run.out, 'tokenfile'), 'utf8');

    // While the command runs: the token is live, task-bound and DPoP-bound to the key it was handed.
    const live = await introspect(h, token);
    assert.equal(live['active'], true);
    assert.equal(live['tid'], tid);
    assert.equal(live['token_type'], 'DPoP');
    assert.equal(live['scope'], 'items:read items:write');
    assert.equal(statSync(dpopKeyFile).mode & 0o777, 0o600);
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    assert.equal((await taskView(tid))['state'], 'open');

    writeFileSync(join(run.out, 'release'), '');
    const r = await run.done;
    assert.equal(r.code, 3, r.stderr);
    assert.deepEqual(await introspect(h, token), { active: false });
    const view = await taskView(tid);
    assert.equal(view['state'], 'closed');
    assert.equal(view['close_reason'], 'command exited with status 3');
    assert.equal(view['purpose'], 'test run 1');
    // The token and key files go with the task.
    assert.equal(existsSync(tokenFile), false);
    assert.equal(existsSync(dpopKeyFile), false);
  });

  it('in GitHub Actions, announces the token with ::add-mask:: before the command runs; prints it nowhere itself', async () => {
    const args = (n: number) => [
      '--server',
      h.issuer,
      'exec',
      '--client-id',
      WORKLOAD,
      '--key',
      keyFile,
      '--audience',
      API,
      '--task-purpose',
      `mask run ${n}`,
      '--',
      'sh',
      '-c',
      'echo "command sees $WRIT_ACCESS_TOKEN"',
    ];
    const ci = await runWrit(MAIN, args(1), {
      env: { ...process.env, GITHUB_ACTIONS: 'true' },
      stdout: true,
    });
    assert.equal(ci.code, 0, ci.stderr);
    const lines = ci.stdout.trim().split('\n');
    const token = lines[1]?.replace('command sees ', '') ?? '';
    assert.match(token, /^eyJ/, ci.stdout);
    assert.deepEqual(lines, [`::add-mask::${token}`, `command sees ${token}`], 'the mask comes first');
    assert.ok(!ci.stderr.includes(token.split('.')[2]!), 'writ exec itself never prints the token');
    // Outside GitHub Actions there is nothing to announce to: no workflow command on the command's stdout.
    const plain = await runWrit(MAIN, args(2), {
      env: { ...process.env, GITHUB_ACTIONS: 'false' },
      stdout: true,
    });
    assert.equal(plain.code, 0, plain.stderr);
    assert.ok(!plain.stdout.includes('::add-mask::'), plain.stdout);
    assert.match(plain.stdout, /^command sees eyJ/);
  });

  it('closes the task and revokes the token when the command is killed with SIGKILL (exit 137)', async () => {
    const run = writExec(
      ['cp "$WRIT_TOKEN_FILE" "$OUT/token.tmp" && mv "$OUT/token.tmp" "$OUT/token"', 'kill -9 $$'].join('\n'),
    );
    const r = await run.done;
    assert.equal(r.code, 137, r.stderr);
    const token = readFileSync(join(run.out, 'token'), 'utf8').trim();
    const tid = decodeClaims(token)['tid'] as string;
    assert.deepEqual(await introspect(h, token), { active: false });
    const view = await taskView(tid);
    assert.equal(view['state'], 'closed');
    assert.equal(view['close_reason'], 'command exited with status 137');
    const closed = (await h.auditEvents('task.closed')).filter((e) => e.data['tid'] === tid);
    assert.equal(closed.length, 1);
    assert.equal(closed[0]!.actor, WORKLOAD);
  });

  it('`writ dpop proof` prints a proof for the token in WRIT_TOKEN_FILE that verifies (htm, htu, ath, cnf.jkt)', async () => {
    const run = writExec(
      [
        'cp "$WRIT_TOKEN_FILE" "$OUT/token"',
        `"${process.execPath}" "$WRIT_MAIN" dpop proof --method GET --url '${API}/items?page=2' > "$OUT/proof.tmp" && mv "$OUT/proof.tmp" "$OUT/proof"`,
      ].join('\n'),
    );
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const token = readFileSync(join(run.out, 'token'), 'utf8').trim();
    const proof = readFileSync(join(run.out, 'proof'), 'utf8').trim();
    const jkt = (decodeClaims(token)['cnf'] as { jkt: string }).jkt;
    const verify = (over: { accessToken?: string; url?: string; method?: string }) =>
      verifyDpopProof({
        headerValues: [proof],
        method: over.method ?? 'GET',
        url: over.url ?? `${API}/items`,
        algorithms: ['ES256', 'EdDSA'],
        nowSeconds: Math.floor(Date.now() / 1000),
        iatWindow: 60,
        accessToken: over.accessToken ?? token,
        expectedJkt: jkt,
        consumeJti: () => true,
      });
    const v = await verify({});
    assert.equal(v.jkt, jkt);
    // The proof is bound to this token and this request, not any other.
    for (const [over, check] of [
      [{ accessToken: `${token}x` }, 'ath'],
      [{ url: `${API}/other` }, 'htu'],
      [{ method: 'POST' }, 'htm'],
    ] as const) {
      await assert.rejects(verify(over), (err: unknown) => err instanceof DpopError && err.check === check);
    }
  });

  it('refuses to run with a key file others can read, and opens no task', async () => {
    const loose = join(dir, 'loose.jwk');
    writeFileSync(loose, readFileSync(keyFile), { mode: 0o644 });
    const opened = (await h.auditEvents('task.opened')).length;
    const { code, stderr } = await runWrit(MAIN, [
      '--server',
      h.issuer,
      'exec',
      '--client-id',
      WORKLOAD,
      '--key',
      loose,
      '--audience',
      API,
      '--',
      'true',
    ]);
    assert.equal(code, 1);
    assert.match(stderr, /chmod 600/);
    assert.equal((await h.auditEvents('task.opened')).length, opened);
  });
});
