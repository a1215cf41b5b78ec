import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createVerifier, type Verifier } from '@writ/sdk/verifier';
import { httpAdminSession } from './helpers/admin-session.js';
import { decodeClaims } from './helpers/dpop.js';
import { freePort, type TestKey, testKey } from './helpers/harness.js';
import { eventually, outcome, presenting, ready, workloadClient } from './helpers/verifier.js';

// A real `writ serve` process killed with SIGKILL while a verifier follows its event stream, then
// started again on the same data directory and port: the verifier reconnects on its own, resumes after
// the last event it saw, hears revocations made after the restart, and keeps verifying.

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const API = 'https://api.restart.test';
const JOB = 'spiffe://writ.local/restart/job';
const VERIFIER = 'spiffe://writ.local/restart/verifier';

interface Server {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

describe('a verifier across a SIGKILL and restart of writ serve', () => {
  const jobKey = testKey();
  const verifierKey = testKey('EdDSA');
  let dir: string;
  let port: number;
  let issuer: string;
  let server: Server | undefined;
  let verifier: Verifier | undefined;

  const writeJson = (file: string, doc: unknown) => writeFileSync(file, JSON.stringify(doc, null, 2));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-verifier-restart-'));
    port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    // The config the first start picks up (it adds the KEK, an operator key and its own example class).
    const config = join(dir, 'config');
    for (const sub of ['classes', 'workloads']) mkdirSync(join(config, sub), { recursive: true });
    const klass = (name: string, audiences: string[], binding: string) => ({
      name,
      max_ttl: '10m',
      default_ttl: '5m',
      binding,
      audiences,
      scopes: ['use'],
      default_scopes: ['use'],
    });
    writeJson(join(config, 'classes', 'restart-jobs.yaml'), klass('restart-jobs', [API], 'bearer'));
    writeJson(
      join(config, 'classes', 'restart-verifier.yaml'),
      klass('restart-verifier', [`${issuer}/v1/events`], 'dpop'),
    );
    const workload = (id: string, key: TestKey, classes: string[]) => ({
      id,
      owner: 'team-restart',
      environment: 'test',
      classes,
      jwks: { keys: [key.publicJwk] },
    });
    writeJson(join(config, 'workloads', 'job.yaml'), workload(JOB, jobKey, ['restart-jobs']));
    writeJson(
      join(config, 'workloads', 'verifier.yaml'),
      workload(VERIFIER, verifierKey, ['restart-verifier']),
    );
  });

  after(async () => {
    verifier?.close();
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** `writ serve` on the data directory and port; resolves once it answers. */
  const start = async (): Promise<Server> => {
    const child = spawn(process.execPath, [MAIN, '--data-dir', dir, 'serve', '--port', String(port)], {
      env: { ...process.env, WRIT_LOG_LEVEL: 'warn', WRIT_ISSUER: '', WRIT_PORT: '', WRIT_STORE: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    let gone: unknown;
    exited.then((e) => {
      gone = e;
    });
    await eventually(
      'writ serve to answer',
      async () => {
        if (gone) throw new Error(`writ serve exited: ${JSON.stringify(gone)}: ${stderr}`);
        const res = await fetch(`${issuer}/.well-known/jwks.json`);
        return res.ok ? true : undefined;
      },
      { attempts: 400, everyMs: 50 },
    );
    return { child, exited, stderr: () => stderr };
  };

  /** An admin API call, with a token from the operator key `writ serve` created on first start. */
  const admin = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const file = JSON.parse(readFileSync(join(dir, 'operator.jwk'), 'utf8')) as {
      operator: string;
      key: Record<string, string>;
    };
    const privateKey = createPrivateKey({ key: file.key, format: 'jwk' });
    const operator: TestKey = {
      privateKey,
      publicJwk: createPublicKey(privateKey).export({ format: 'jwk' }) as Record<string, string>,
      alg: 'ES256',
      kid: file.key['kid']!,
    };
    const session = await httpAdminSession(issuer, operator, { operator: file.operator });
    const res = await fetch(`${issuer}/admin/v1${path}`, {
      method,
      headers: {
        ...session.headers(method, `/admin/v1${path}`),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('reconnects after the restart, catches up with new revocations and keeps verifying', async () => {
    server = await start();
    const job = workloadClient(issuer, JOB, jobKey);
    verifier = createVerifier({
      issuer,
      audience: API,
      client: workloadClient(issuer, VERIFIER, verifierKey),
      stalenessMs: 60_000,
    });
    await ready(verifier);
    const token = async () => (await job.requestToken({ audience: API })).access_token;
    const check = (t: string) =>
      outcome(verifier!, presenting(t, { url: `${API}/items`, holder: job.dpopKey }));
    const jti = (t: string) => decodeClaims(t)['jti'] as string;
    const revoke = async (t: string) => {
      const r = await admin('POST', '/revocations', { kind: 'jti', value: jti(t), reason: 'restart test' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    };

    const t1 = await token();
    const t2 = await token();
    assert.equal(await check(t1), `ok:${jti(t1)}`);
    assert.equal(await check(t2), `ok:${jti(t2)}`);
    await revoke(t1);
    await eventually('the first revocation', async () =>
      (await check(t1)) === 'revoked' ? true : undefined,
    );
    const seenBeforeKill = verifier.status().lastEventId;

    // Mid-stream: the verifier's stream is open when the process dies without a word.
    assert.equal(verifier.status().connected, true);
    server.child.kill('SIGKILL');
    assert.equal((await server.exited).signal, 'SIGKILL');
    await eventually('the verifier to notice', () => (verifier!.status().connected ? undefined : true));
    // Inside its staleness bound it goes on with what it knows.
    assert.equal(await check(t1), 'revoked');
    assert.equal(await check(t2), `ok:${jti(t2)}`);

    server = await start();
    await revoke(t2);
    await eventually(
      'the verifier to reconnect and hear the revocation made after the restart',
      async () => ((await check(t2)) === 'revoked' ? true : undefined),
      { attempts: 1200 },
    );
    assert.equal(await check(t1), 'revoked', 'what it knew before the crash still holds');
    const t3 = await token();
    assert.equal(await check(t3), `ok:${jti(t3)}`, 'and it keeps verifying');
    const s = verifier.status();
    assert.equal(s.connected && s.synced && !s.stale, true, JSON.stringify(s));
    assert.ok(Number(s.lastEventId) > Number(seenBeforeKill));

    // It resumed from its Last-Event-ID (the log survived the crash), not from a snapshot.
    const last = await eventually('the subscription after the restart in the audit log', async () => {
      const audit = await admin('GET', '/audit?type=events.subscribed&order=desc&limit=1');
      assert.equal(audit.status, 200, JSON.stringify(audit.body));
      const [e] = audit.body['events'] as { actor: string; data: Record<string, unknown> }[];
      return e && Number(e.data['from']) >= Number(seenBeforeKill) ? e : undefined;
    });
    assert.equal(last.actor, VERIFIER);
    assert.equal(last.data['snapshot'], false);
  });
});
