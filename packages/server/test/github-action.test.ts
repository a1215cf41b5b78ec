import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { decodeClaims, introspect } from './helpers/dpop.js';
import { ciClassDoc, githubWorkloadDoc, localIssuerDoc } from './helpers/federation.js';
import { configDocuments, type Harness, startHarness } from './helpers/harness.js';
import {
  type ActionsEndpoint,
  githubClaims,
  type LocalIssuer,
  startActionsEndpoint,
  startLocalIssuer,
} from './helpers/oidc-issuer.js';
import { localPrebuilds, packWorkspace, REPO, registryUnreachable, userEnv } from './helpers/packed.js';

// The composite action .github/actions/writ-exec, run the way a runner runs it: its one step's `run`
// under bash, with the step's `env` filled in from the inputs, against the runner's ID-token endpoint
// stand-in the federation tests use (helpers/oidc-issuer.ts) and a Writ server trusting that issuer.

const ACTION = join(REPO, '.github/actions/writ-exec');
const DEPLOY = 'https://deploy.action.test';
const GH = 'spiffe://test.writ/github/acme/deployer';
const REQUEST_TOKEN = 'actions-runtime-request-token';
const RUN_ID = '777001';

interface Step {
  name: string;
  shell: string;
  env: Record<string, string>;
  run: string;
}
interface ActionFile {
  runs: { using: string; steps: Step[] };
  inputs: Record<string, { required: boolean; default?: string }>;
}
const action = parse(readFileSync(join(ACTION, 'action.yml'), 'utf8')) as ActionFile;

const installSkip =
  process.env['WRIT_TEST_STORE'] === 'postgres'
    ? 'the install runs once, in the embedded-store pass'
    : registryUnreachable();
if (installSkip) console.log(`github-action: install from the packed tarballs skipped: ${installSkip}`);

describe('the writ-exec composite action', () => {
  it('is composite, and no input is spliced into a script: inputs reach it as environment only', () => {
    assert.equal(action.runs.using, 'composite');
    const used = new Set<string>();
    for (const step of action.runs.steps) {
      assert.doesNotMatch(
        step.run,
        /\$\{\{\s*inputs\./,
        `step "${step.name}" splices an input into its script`,
      );
      for (const v of Object.values(step.env ?? {})) {
        const m = /^\$\{\{ inputs\.([\w-]+) \}\}$/.exec(v);
        if (m) used.add(m[1]!);
      }
    }
    assert.deepEqual(
      [...used].sort(),
      Object.keys(action.inputs).sort(),
      'every input is passed, and only inputs',
    );
    accessSync(join(ACTION, 'writ-exec.sh'), constants.R_OK);
  });

  let h: Harness;
  let github: LocalIssuer;
  let actions: ActionsEndpoint;
  let dir: string;
  let n = 0;
  const now = () => Math.floor(Date.now() / 1000);

  before(async () => {
    github = await startLocalIssuer('RS256');
    actions = await startActionsEndpoint(github, {
      requestToken: REQUEST_TOKEN,
      claims: () => githubClaims(now(), { runId: RUN_ID }),
    });
    h = await startHarness({ listen: true });
    const applied = await h.admin('POST', '/config', {
      documents: [
        ...configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey }),
        ciClassDoc(DEPLOY),
        localIssuerDoc('github', 'github-actions', github, h.issuer),
        githubWorkloadDoc(GH),
      ],
      policies: null,
      dry_run: false,
    });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    dir = mkdtempSync(join(tmpdir(), 'writ-action-'));
  });
  after(async () => {
    await h.close();
    await github.close();
    await actions.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * The action's step as the runner runs it: `${{ inputs.x }}` in its env replaced by the input given
   * (or its default), `${{ github.action_path }}` by the action's folder, the runner's variables set.
   * OUT is a folder the command may write to.
   */
  async function runAction(
    inputs: Record<string, string>,
    runner: Record<string, string> = {},
  ): Promise<{ code: number | null; stderr: string; out: string; runnerTemp: string; githubPath: string }> {
    const [step] = action.runs.steps;
    assert.equal(step!.shell, 'bash');
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(step!.env))
      env[k] = v.replace(/^\$\{\{ inputs\.([\w-]+) \}\}$/, (_, name: string) => {
        assert.ok(name in action.inputs, `no input ${name}`);
        return inputs[name] ?? action.inputs[name]!.default ?? '';
      });
    const work = mkdtempSync(join(dir, `job-${++n}-`));
    const runnerTemp = join(work, 'runner-temp');
    const out = join(work, 'out');
    mkdirSync(runnerTemp);
    mkdirSync(out);
    const githubPath = join(work, 'github-path');
    writeFileSync(githubPath, '');
    const script = step!.run.replace(/\$\{\{ github\.action_path \}\}/, ACTION);
    const child = spawn('bash', ['-e', '-c', script], {
      cwd: work,
      env: userEnv({
        RUNNER_TEMP: runnerTemp,
        GITHUB_PATH: githubPath,
        GITHUB_ACTIONS: 'true',
        ACTIONS_ID_TOKEN_REQUEST_URL: actions.url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN,
        OUT: out,
        ...runner,
        ...env,
      }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    return { code, stderr, out, runnerTemp, githubPath };
  }

  const SAVE = 'printf %s "$WRIT_TASK_ID" > "$OUT/tid"; cp "$WRIT_TOKEN_FILE" "$OUT/token"';
  /** The checkout's CLI on PATH, for `install: false`. */
  const checkoutWrit = { PATH: [join(REPO, 'bin'), userEnv()['PATH']!].join(delimiter) };
  const base = { server: '', audience: DEPLOY, install: 'false' };

  it('installs the CLI from the packed tarballs and runs the command under writ exec with the job identity', {
    skip: installSkip,
  }, async () => {
    const packed = packWorkspace(dir);
    // prebuild-install looks for its settings from the addon's folder upwards: the install prefix is
    // under RUNNER_TEMP, itself under `dir`.
    writeFileSync(join(dir, '.prebuild-installrc'), `local-prebuilds=${localPrebuilds(dir).folder}\n`);
    const r0 = await runAction(
      {
        server: h.issuer,
        audience: DEPLOY,
        command: `${SAVE}; writ --version > "$OUT/version"; exit 3`,
        labels: 'step=deploy\n  environment=prod  \n',
        packages: packed.map((p) => join(dir, p.filename)).join(' '),
        install: 'true',
      },
      // A runner with a warm npm cache (as the packed-install test leaves it): metadata from the cache.
      { npm_config_prefer_offline: 'true' },
    );
    assert.equal(r0.code, 3, r0.stderr);
    const prefixBin = join(r0.runnerTemp, 'writ-cli', 'bin');
    assert.ok(existsSync(join(prefixBin, 'writ')), 'writ installed under RUNNER_TEMP');
    assert.equal(readFileSync(r0.githubPath, 'utf8'), `${prefixBin}\n`, 'on PATH for the later steps');
    assert.equal(readFileSync(join(r0.out, 'version'), 'utf8').trim(), packed[1]!.version);
    const tid = readFileSync(join(r0.out, 'tid'), 'utf8');
    const token = readFileSync(join(r0.out, 'token'), 'utf8').trim();
    const claims = decodeClaims(token);
    assert.equal(claims['sub'], GH);
    assert.equal(claims['aud'], DEPLOY);
    assert.equal(claims['tid'], tid);
    assert.deepEqual(await introspect(h, token), { active: false }, 'revoked when the command exited');
    const task = await h.admin('GET', `/tasks/${tid}`);
    assert.equal(task.body['state'], 'closed');
    assert.equal(task.body['close_reason'], 'command exited with status 3');
    assert.deepEqual(task.body['labels'], {
      step: 'deploy',
      environment: 'prod',
      federation: 'github',
      ci_run_id: RUN_ID,
      ci_run_attempt: '1',
    });
  });

  it('refuses before anything runs when the job has no id-token permission', async () => {
    const r = await runAction(
      { ...base, server: h.issuer, command: 'touch "$OUT/ran"' },
      { ...checkoutWrit, ACTIONS_ID_TOKEN_REQUEST_URL: '', ACTIONS_ID_TOKEN_REQUEST_TOKEN: '' },
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /::error title=writ exec::no GitHub OIDC token for this job: give it 'permissions: id-token: write'/,
    );
    assert.equal(existsSync(join(r.out, 'ran')), false);
  });

  it('does not run the command when the runner refuses the ID token request', async () => {
    const r = await runAction(
      { ...base, server: h.issuer, command: 'touch "$OUT/ran"' },
      { ...checkoutWrit, ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'not-the-runtime-token' },
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /401/);
    assert.equal(existsSync(join(r.out, 'ran')), false);
  });

  it('an input is one argument, never shell: an audience with quotes and a command substitution', async () => {
    const r = await runAction(
      {
        ...base,
        server: h.issuer,
        audience: 'x"; touch "$OUT/pwned"; echo "$(touch "$OUT/pwned2")',
        command: 'touch "$OUT/ran"',
      },
      checkoutWrit,
    );
    assert.notEqual(r.code, 0);
    assert.equal(existsSync(join(r.out, 'pwned')), false);
    assert.equal(existsSync(join(r.out, 'pwned2')), false);
    assert.equal(existsSync(join(r.out, 'ran')), false, 'refused by the server: not a class audience');
  });

  it('refuses a label that is not name=value, and a missing required input', async () => {
    const bad = await runAction(
      { ...base, server: h.issuer, labels: 'deploy', command: 'touch "$OUT/ran"' },
      checkoutWrit,
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /label 'deploy' is not name=value/);
    assert.equal(existsSync(join(bad.out, 'ran')), false);
    const none = await runAction({ ...base, command: 'touch "$OUT/ran"' }, checkoutWrit);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /the input 'server' is required/);
  });

  it('without installing, runs the writ already on PATH', async () => {
    const r = await runAction({ ...base, server: h.issuer, command: `${SAVE}` }, checkoutWrit);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(r.githubPath, 'utf8'), '', 'nothing added to PATH');
    const token = readFileSync(join(r.out, 'token'), 'utf8').trim();
    assert.equal(decodeClaims(token)['sub'], GH);
    assert.deepEqual(await introspect(h, token), { active: false });
  });
});
