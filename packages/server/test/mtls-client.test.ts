import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ClientTls, tlsFetch, WorkloadClient } from '@writ/sdk/client';
import { createVerifier, type Verifier, writNodeHttp } from '@writ/sdk/verifier';
import {
  hasOpenssl,
  makeCa,
  makeLeaf,
  makeLocalhostServer,
  type TestCertificate,
  x5tS256,
} from './helpers/certificates.js';
import { runWrit } from './helpers/cli.js';
import { classDoc, decodeClaims, introspect, rawDoc } from './helpers/dpop.js';
import { freePort, type Harness, startHarness } from './helpers/harness.js';
import { bearerGet } from './helpers/https.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const API = 'https://api.mtls-client.test';
const SVID = 'spiffe://test.writ/mtls-client/svid';
const VERIFIER = 'spiffe://test.writ/mtls-client/verifier';

interface Run {
  code: number | null;
  stderr: string;
}

describe('the SDK client and the CLI over mutual TLS (RFC 8705)', {
  skip: hasOpenssl() ? false : 'the openssl CLI is not installed',
}, () => {
  let dir: string;
  let h: Harness;
  let serverCa: TestCertificate;
  let svid: TestCertificate;
  let verifierSvid: TestCertificate;
  let verifier: Verifier;
  let verifierClient: WorkloadClient;
  let verifierFetch: ReturnType<typeof tlsFetch>;
  let api: Server;
  let apiPort: number;
  const tls = (c: TestCertificate): ClientTls => ({ cert: c.pem, key: c.key, ca: serverCa.pem });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-mtls-client-'));
    serverCa = makeCa(dir, 'server-ca');
    const server = makeLocalhostServer(dir, 'server', serverCa);
    const spiffeCa = makeCa(dir, 'spiffe-ca', '/O=SPIFFE/CN=test.writ');
    svid = makeLeaf(dir, 'svid', spiffeCa, { subject: '/O=SPIFFE', san: `URI:${SVID}` });
    verifierSvid = makeLeaf(dir, 'verifier-svid', spiffeCa, { subject: '/O=SPIFFE', san: `URI:${VERIFIER}` });
    chmodSync(svid.keyFile, 0o600);
    const port = await freePort();
    h = await startHarness({
      listen: true,
      settings: {
        'listen.port': port,
        'events.heartbeat': 1,
        'tls.cert_file': server.certFile,
        'tls.key_file': server.keyFile,
        'tls.spiffe_bundles': [`test.writ=${spiffeCa.certFile}`],
      },
      extraDocs: [
        classDoc({
          name: 'api-mtls',
          audiences: [API],
          scopes: ['reports:read'],
          default_scopes: ['reports:read'],
          binding: 'mtls',
        }),
        classDoc({
          name: 'verifier-events',
          audiences: [`https://127.0.0.1:${port}/v1/events`],
          scopes: ['events:read'],
          default_scopes: ['events:read'],
        }),
        rawDoc('workload', {
          id: SVID,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['api-mtls'],
          tls_client_auth: { x509_svid: true },
        }),
        rawDoc('workload', {
          id: VERIFIER,
          owner: 'team-mtls',
          environment: 'prod',
          classes: ['verifier-events'],
          tls_client_auth: { x509_svid: true },
        }),
      ],
    });
    assert.equal(h.issuer, `https://127.0.0.1:${port}`);
    // The resource server's verifier is itself an mTLS client: certificate authentication, DPoP-bound
    // stream tokens (its class has the default binding).
    verifierClient = new WorkloadClient({
      issuer: h.issuer,
      clientId: VERIFIER,
      tls: tls(verifierSvid),
      dpop: true,
    });
    verifierFetch = tlsFetch(tls(verifierSvid));
    verifier = createVerifier({
      issuer: h.issuer,
      audience: API,
      client: verifierClient,
      fetch: verifierFetch.fetch,
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      verifier.ready(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the verifier did not get its snapshot')), 20_000);
      }),
    ]).finally(() => clearTimeout(timer));
    const apiCert = makeLocalhostServer(dir, 'api', serverCa);
    const auth = writNodeHttp(verifier, { baseUrl: API });
    api = createServer(
      { cert: apiCert.pem, key: apiCert.key, requestCert: true, rejectUnauthorized: false },
      async (req, res) => {
        const claims = await auth(req, res);
        if (!claims) return;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ sub: claims.sub }));
      },
    );
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    apiPort = (api.address() as { port: number }).port;
  });
  after(async () => {
    verifier?.close();
    verifierClient?.close();
    verifierFetch?.close();
    if (api) {
      api.closeAllConnections();
      await new Promise<void>((resolve) => api.close(() => resolve()));
    }
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('gets a certificate-bound token with an X.509-SVID and calls an API with it over mTLS', async () => {
    const client = new WorkloadClient({ issuer: h.issuer, clientId: SVID, tls: tls(svid) });
    try {
      const res = await client.requestToken({ audience: API });
      assert.equal(res.token_type, 'Bearer');
      const claims = decodeClaims(res.access_token);
      assert.equal(claims['sub'], SVID);
      assert.deepEqual(claims['cnf'], { 'x5t#S256': x5tS256(svid.pem) });
      const issued = (await h.auditEvents('token.issued')).at(-1)!;
      assert.equal(issued.data['auth_method'], 'tls_client_auth');
      assert.equal(issued.data['binding'], 'mtls');

      const ok = await client.fetch(`https://127.0.0.1:${apiPort}/reports`, { audience: API });
      assert.equal(ok.status, 200, await ok.clone().text());
      assert.deepEqual(await ok.json(), { sub: SVID });

      // The same token from a client without the certificate: refused.
      const token = await client.token({ audience: API });
      // Presenting no client certificate, as a thief holding only the token would.
      const stolen = await bearerGet(apiPort, serverCa, '/reports', token);
      assert.equal(stolen.status, 401);
      assert.equal(stolen.body['error'], 'invalid_token');
      assert.match(String(stolen.body['error_description']), /present it over mutual TLS/);
    } finally {
      client.close();
    }
  });

  it('opens, uses and closes a task with the certificate (task endpoints take tls_client_auth)', async () => {
    const client = new WorkloadClient({ issuer: h.issuer, clientId: SVID, tls: tls(svid) });
    try {
      let token = '';
      await client.withTask('mtls client test', async (task) => {
        token = await task.token({ audience: API });
        assert.equal(decodeClaims(token)['tid'], task.id);
        assert.equal((await introspect(h, token))['active'], true);
      });
      assert.deepEqual(await introspect(h, token), { active: false });
    } finally {
      client.close();
    }
  });

  it('`writ token get --tls-cert --tls-key --tls-ca` prints a certificate-bound token', async () => {
    const { code, stdout, stderr } = await runWrit(
      MAIN,
      [
        '--server',
        h.issuer,
        'token',
        'get',
        '--raw',
        '--client-id',
        SVID,
        '--tls-cert',
        svid.certFile,
        '--tls-key',
        svid.keyFile,
        '--tls-ca',
        serverCa.certFile,
        '--audience',
        API,
      ],
      { stdout: true },
    );
    assert.equal(code, 0, stderr);
    const claims = decodeClaims(stdout.trim());
    assert.equal(claims['sub'], SVID);
    assert.deepEqual(claims['cnf'], { 'x5t#S256': x5tS256(svid.pem) });
  });

  /** `writ exec --tls-cert/--tls-key … -- sh -c script`, bounded by a timeout. */
  function writExec(keyFile: string, script: string, out: string): Promise<Run> {
    return runWrit(
      MAIN,
      [
        '--server',
        h.issuer,
        'exec',
        '--client-id',
        SVID,
        '--tls-cert',
        svid.certFile,
        '--tls-key',
        keyFile,
        '--tls-ca',
        serverCa.certFile,
        '--audience',
        API,
        '--',
        'sh',
        '-c',
        script,
      ],
      { env: { ...process.env, OUT: out } },
    );
  }

  it('`writ exec --tls-cert --tls-key` runs the command with a certificate-bound token, revoked when it exits', async () => {
    const out = mkdtempSync(join(dir, 'exec-'));
    const r = await writExec(
      svid.keyFile,
      [
        'cp "$WRIT_TOKEN_FILE" "$OUT/token"',
        'printf %s "$WRIT_TASK_ID" > "$OUT/tid"',
        'printf %s "$WRIT_TOKEN_TYPE" > "$OUT/type"',
        'printf %s "$WRIT_CLIENT_CERT_FILE" > "$OUT/cert"',
        'printf %s "$WRIT_CLIENT_KEY_FILE" > "$OUT/key"',
        'printf %s "$WRIT_CLIENT_CA_FILE" > "$OUT/ca"',
        'exit 4',
      ].join('\n'),
      out,
    );
    assert.equal(r.code, 4, r.stderr);
    const token = readFileSync(join(out, 'token'), 'utf8').trim();
    const tid = readFileSync(join(out, 'tid'), 'utf8');
    const claims = decodeClaims(token);
    assert.equal(claims['sub'], SVID);
    assert.equal(claims['tid'], tid);
    assert.deepEqual(claims['cnf'], { 'x5t#S256': x5tS256(svid.pem) });
    assert.equal(readFileSync(join(out, 'type'), 'utf8'), 'Bearer');
    assert.equal(readFileSync(join(out, 'cert'), 'utf8'), svid.certFile);
    assert.equal(readFileSync(join(out, 'key'), 'utf8'), svid.keyFile);
    assert.equal(readFileSync(join(out, 'ca'), 'utf8'), serverCa.certFile);
    // The command has exited: its task is closed and the token revoked.
    assert.deepEqual(await introspect(h, token), { active: false });
    const view = await h.admin('GET', `/tasks/${tid}`);
    assert.equal(view.status, 200, JSON.stringify(view.body));
    assert.equal(view.body['state'], 'closed');
    assert.equal(view.body['close_reason'], 'command exited with status 4');
  });

  it('`writ exec` refuses a TLS key file others can read, and opens no task', async () => {
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, svid.key);
    chmodSync(loose, 0o644);
    const opened = (await h.auditEvents('task.opened')).length;
    const out = mkdtempSync(join(dir, 'exec-'));
    const r = await writExec(loose, 'touch "$OUT/ran"', out);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /chmod 600/);
    assert.equal(existsSync(join(out, 'ran')), false, 'the command did not run');
    assert.equal((await h.auditEvents('task.opened')).length, opened);
  });
});
