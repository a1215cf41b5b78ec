import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tokenFromFile, WorkloadClient } from '@writ/sdk/client';
import { generateDpopKey } from '@writ/sdk/dpop';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import { runWrit } from './helpers/cli.js';
import { decodeClaims, dpopTokenRequest, introspect, lastEvent, rawDoc } from './helpers/dpop.js';
import { ciClassDoc, localIssuerDoc } from './helpers/federation.js';
import { configDocuments, type Harness, startHarness } from './helpers/harness.js';
import {
  type ActionsEndpoint,
  githubClaims,
  kubernetesClaims,
  type LocalIssuer,
  startActionsEndpoint,
  startLocalIssuer,
} from './helpers/oidc-issuer.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const DEPLOY = 'https://deploy.fedexec.test';
const GH = 'spiffe://test.writ/github/acme/deployer';
const GH_OTHER = 'spiffe://test.writ/github/acme/not-federated';
const K8S = 'spiffe://test.writ/ns/payments/sa/ledger';
const REQUEST_TOKEN = 'actions-runtime-request-token';
const RUN_ID = '424242';

interface Run {
  code: number | null;
  stderr: string;
}

describe('writ exec with an ambient identity opens, keeps and closes its own task', () => {
  let h: Harness;
  let github: LocalIssuer;
  let cluster: LocalIssuer;
  let rogue: LocalIssuer;
  let actions: ActionsEndpoint;
  let actionsUrl: string;
  let dir: string;
  let n = 0;
  const now = () => Math.floor(Date.now() / 1000);

  before(async () => {
    [github, cluster, rogue] = await Promise.all([
      startLocalIssuer('RS256'),
      startLocalIssuer('ES256'),
      startLocalIssuer('RS256'),
    ]);
    actions = await startActionsEndpoint(github, {
      requestToken: REQUEST_TOKEN,
      claims: () => githubClaims(now(), { runId: RUN_ID }),
    });
    actionsUrl = actions.url;
    h = await startHarness({ listen: true });
    const applied = await h.admin('POST', '/config', {
      documents: [
        ...configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey }),
        ciClassDoc(DEPLOY),
        localIssuerDoc('github', 'github-actions', github, h.issuer),
        localIssuerDoc('cluster', 'kubernetes', cluster, h.issuer),
        ...[
          [GH, ['github']],
          [K8S, ['cluster']],
          // Maps from a GitHub token (repository acme/not-federated) but does not list the issuer.
          [GH_OTHER, ['cluster']],
        ].map(([id, federation]) =>
          rawDoc('workload', { id, owner: 'ci', environment: 'prod', classes: ['ci'], federation }),
        ),
      ],
      policies: null,
      dry_run: false,
    });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    dir = mkdtempSync(join(tmpdir(), 'writ-fedexec-'));
  });
  after(async () => {
    await h.close();
    await Promise.all([github.close(), cluster.close(), rogue.close()]);
    await actions.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const actionsEnv = { ACTIONS_ID_TOKEN_REQUEST_URL: '', ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN };
  const projected = async () => {
    const file = join(dir, `writ-token-${++n}`);
    writeFileSync(file, await cluster.mint({ ...kubernetesClaims(now(), cluster.url), aud: [h.issuer] }));
    return file;
  };

  /** `writ exec --audience DEPLOY [extra] -- sh -c script` with no key file; OUT is a fresh directory. */
  function writExec(script: string, extra: string[], env: Record<string, string>) {
    const out = mkdtempSync(join(dir, `out-${++n}-`));
    const done: Promise<Run> = runWrit(
      MAIN,
      ['--server', h.issuer, 'exec', '--audience', DEPLOY, ...extra, '--', 'sh', '-c', script],
      {
        env: {
          ...process.env,
          ACTIONS_ID_TOKEN_REQUEST_URL: '',
          ACTIONS_ID_TOKEN_REQUEST_TOKEN: '',
          WRIT_FEDERATION_TOKEN: '',
          WRIT_FEDERATION_TOKEN_FILE: '',
          SPIFFE_JWT_SVID_FILE: '',
          ...env,
          OUT: out,
        },
      },
    );
    return { out, done };
  }

  const SAVE = 'printf %s "$WRIT_TASK_ID" > "$OUT/tid" && cp "$WRIT_TOKEN_FILE" "$OUT/token"';

  const taskView = async (id: string) => {
    const r = await h.admin('GET', `/tasks/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };

  /** What the command saw and what is left after writ exec returned: a dead token, a closed task. */
  const afterExit = async (out: string, code: number, sub: string) => {
    const tid = readFileSync(join(out, 'tid'), 'utf8');
    const token = readFileSync(join(out, 'token'), 'utf8').trim();
    assert.match(tid, /^task_/);
    assert.doesNotMatch(tid, /^task_run_/, 'its own task, not the shared run task');
    const claims = decodeClaims(token);
    assert.equal(claims['sub'], sub);
    assert.equal(claims['tid'], tid, 'the token is for the task the command was given');
    assert.deepEqual(await introspect(h, token), { active: false });
    const view = await taskView(tid);
    assert.equal(view['state'], 'closed');
    assert.equal(view['close_reason'], `command exited with status ${code}`);
    assert.equal(view['workload'], sub);
    const closed = (await h.auditEvents('task.closed')).filter((e) => e.data['tid'] === tid);
    assert.equal(closed.length, 1);
    assert.equal(closed[0]!.actor, sub);
    return { tid, view };
  };

  it('a projected token file: the command sees WRIT_TASK_ID; after it exits its token is inactive and the task closed', async () => {
    const file = await projected();
    const run = writExec(`${SAVE} && exit 4`, ['--federation-token-file', file], {});
    const r = await run.done;
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /proving the workload with file:/);
    assert.doesNotMatch(r.stderr, /no task/);
    const { tid, view } = await afterExit(run.out, 4, K8S);
    assert.deepEqual(view['labels'], { federation: 'cluster' });
    const opened = (await h.auditEvents('task.opened')).find((e) => e.data['tid'] === tid);
    assert.equal(opened?.actor, K8S);
    assert.equal(opened?.data['auth_method'], 'federation:cluster');
    assert.doesNotMatch(JSON.stringify(opened?.data), /eyJ[\w-]*\.eyJ/, 'no token in the audit event');
  });

  it('a projected token file, the command killed with SIGKILL: exit 137, token inactive, task closed', async () => {
    const file = await projected();
    const run = writExec(`${SAVE} && kill -9 $$`, ['--federation-token-file', file], {});
    const r = await run.done;
    assert.equal(r.code, 137, r.stderr);
    await afterExit(run.out, 137, K8S);
  });

  it('GitHub Actions: the task carries the run labels; closed on a normal exit and on SIGKILL', async () => {
    for (const [script, code] of [
      [`${SAVE} && exit 0`, 0],
      [`${SAVE} && kill -9 $$`, 137],
    ] as const) {
      const run = writExec(script, ['--label', 'step=deploy'], {
        ...actionsEnv,
        ACTIONS_ID_TOKEN_REQUEST_URL: actionsUrl,
      });
      const r = await run.done;
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, /proving the workload with github-actions/);
      const { tid, view } = await afterExit(run.out, code, GH);
      assert.deepEqual(view['labels'], {
        step: 'deploy',
        federation: 'github',
        ci_run_id: RUN_ID,
        ci_run_attempt: '1',
      });
      const opened = (await h.auditEvents('task.opened')).find((e) => e.data['tid'] === tid);
      assert.equal(opened?.data['auth_method'], 'federation:github');
      const f = opened?.data['federation'] as Record<string, unknown>;
      assert.equal(f['issuer'], 'github');
      assert.equal((f['attributes'] as Record<string, string>)['run_id'], RUN_ID);
    }
  });

  it('the SDK opens, renews and closes a task with a federationToken, re-reading the token for each call', async () => {
    const file = await projected();
    const client = new WorkloadClient({ issuer: h.issuer, federationToken: tokenFromFile(file) });
    let seen: { id: string; token: string } | undefined;
    await client.withTask(
      'sdk task',
      async (task) => {
        const token = await task.token({ audience: DEPLOY });
        assert.equal(decodeClaims(token)['tid'], task.id);
        // The file is read for every call: a broken one fails the heartbeat, a rotated one is used.
        writeFileSync(file, 'not a token');
        await assert.rejects(client.heartbeat(task.id, 30), /does not hold a compact JWT/);
        writeFileSync(file, await cluster.mint({ ...kubernetesClaims(now(), cluster.url), aud: [h.issuer] }));
        const hb = await client.heartbeat(task.id, 30);
        assert.ok(hb.lease_until > Date.now());
        seen = { id: task.id, token };
      },
      { labels: { ticket: 'OPS-1' } },
    );
    assert.ok(seen);
    assert.deepEqual(await introspect(h, seen.token), { active: false });
    const view = await taskView(seen.id);
    assert.equal(view['state'], 'closed');
    assert.deepEqual(view['labels'], { ticket: 'OPS-1', federation: 'cluster' });
  });

  it('fails closed: when the task cannot be opened the command does not run', async () => {
    const file = join(dir, `wrong-aud-${++n}`);
    writeFileSync(
      file,
      await cluster.mint({ ...kubernetesClaims(now(), cluster.url), aud: ['https://elsewhere.test'] }),
    );
    const before = await h.countRows('tasks');
    const run = writExec('touch "$OUT/ran"', ['--federation-token-file', file], {});
    const r = await run.done;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot open a task/);
    assert.throws(() => readFileSync(join(run.out, 'ran')), 'the command did not run');
    assert.equal(await h.countRows('tasks'), before);
  });

  const openTask = (assertion: string, extra: Record<string, string> = {}) =>
    h.post('/v1/tasks', {
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: assertion,
      purpose: 'federated task',
      ...extra,
    });

  /** A refused task open: the RFC error and status, audited with its reason, no task created. */
  const refusedOpen = async (assertion: string, reason: string, error = 'invalid_client', status = 401) => {
    const tasks = await h.countRows('tasks');
    const opened = (await h.auditEvents('task.opened')).length;
    const r = await openTask(assertion);
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal(r.body['error'], error);
    assert.equal(typeof r.body['error_description'], 'string');
    assert.equal(r.body['id'], undefined);
    assert.equal(await h.countRows('tasks'), tasks, 'no task created');
    assert.equal((await h.auditEvents('task.opened')).length, opened);
    const e = await lastEvent(h, 'task.refused');
    assert.equal(e.data['reason'], reason, JSON.stringify(e.data));
    assert.equal(e.data['error'], error);
    assert.doesNotMatch(JSON.stringify(e.data), /eyJ[\w-]*\.eyJ/, 'no token in the audit event');
  };

  it('refuses a task open with a token from an untrusted issuer, with a wrong audience, or for a workload that does not list the issuer', async () => {
    await refusedOpen(
      await rogue.mint({ ...githubClaims(now(), { runId: RUN_ID }), aud: h.issuer }),
      'untrusted_issuer',
    );
    await refusedOpen(
      await github.mint({ ...githubClaims(now()), aud: 'https://another-service.test' }),
      'audience',
    );
    await refusedOpen(
      await github.mint({ ...githubClaims(now(), { repo: 'acme/not-federated' }), aud: h.issuer }),
      'federation_not_allowed',
    );
    await refusedOpen(await github.mint({ ...githubClaims(now() - 3600), aud: h.issuer }), 'expired');
  });

  it('task calls neither consume nor are refused by the first-holder binding', async () => {
    const token = await cluster.mint({ ...kubernetesClaims(now(), cluster.url), aud: [h.issuer] });
    const grant = (taskId?: string) => () => ({
      grant_type: GrantType.jwtBearer,
      assertion: token,
      resource: DEPLOY,
      ...(taskId ? { task_id: taskId } : {}),
    });
    // A task opened first does not bind the token: the first DPoP holder at the token endpoint is.
    const first = await openTask(token);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const tid = first.body['id'] as string;
    const holder = generateDpopKey();
    const issued = await dpopTokenRequest(h, grant(tid), holder);
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    assert.equal(decodeClaims(issued.body['access_token'] as string)['tid'], tid, 'the explicit task_id');
    // Once bound, the task endpoints still accept it (they carry no DPoP key to compare)…
    const second = await openTask(token);
    assert.equal(second.status, 201, JSON.stringify(second.body));
    const hb = await h.post(`/v1/tasks/${tid}/heartbeat`, {
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: token,
      lease: '30',
    });
    assert.equal(hb.status, 200, JSON.stringify(hb.body));
    // …and another holder is still refused at the token endpoint.
    const thief = await dpopTokenRequest(h, grant(tid), generateDpopKey());
    assert.equal(thief.status, 400);
    assert.equal(thief.body['error'], 'invalid_grant');
    const closed = await h.post(`/v1/tasks/${tid}/close`, {
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: token,
    });
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    assert.deepEqual(await introspect(h, issued.body['access_token'] as string), { active: false });
  });

  it('a federated caller reaches only tasks its issuer and run opened', async () => {
    const mine = await openTask(await github.mint({ ...githubClaims(now(), { runId: '1' }), aud: h.issuer }));
    assert.equal(mine.status, 201, JSON.stringify(mine.body));
    const tid = mine.body['id'] as string;
    const other = await github.mint({ ...githubClaims(now(), { runId: '2' }), aud: h.issuer });
    const close = await h.post(`/v1/tasks/${tid}/close`, {
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: other,
    });
    assert.equal(close.status, 404, JSON.stringify(close.body));
    assert.equal((await taskView(tid))['state'], 'open');
    // A wrong client_id next to the platform token is a failed client authentication.
    const wrongId = await openTask(await github.mint({ ...githubClaims(now()), aud: h.issuer }), {
      client_id: K8S,
    });
    assert.equal(wrongId.status, 401, JSON.stringify(wrongId.body));
    assert.equal(wrongId.body['error'], 'invalid_client');
  });
});
