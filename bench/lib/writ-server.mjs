// A Writ server for a benchmark: `writ init` on a fresh data dir, classes, workloads and settings
// written into its config directory, then `writ serve` on a free loopback port, pinned to a core.
// Also the two clients a benchmark needs besides the SDK: an operator's admin session and a plain
// (unbound, no DPoP) client_credentials request.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ASSERTION_TYPE, es256Signer, freePort } from './common.mjs';
import { pinned, stopChild, tempDir, waitReady } from './processes.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The built CLI of the checkout at `root` (this one by default). */
export const writCli = (root = ROOT) => join(root, 'packages/server/dist/src/cli/main.js');
export const WRIT_CLI = writCli();

/**
 * Starts `writ serve` pinned to `core`. `classes(issuer)` returns class documents (the issuer is only
 * known once the port is), `workloads` workload documents, `settings` a nested settings object, `cli`
 * the CLI to run (another checkout's, to compare builds), `wrapper` a command that runs node
 * (valgrind), `nodeArgs` node's own options, `readyMs` how long it may take to answer /readyz, `files`
 * more config documents by path in the config directory (`exceptions/x.yaml`).
 * Returns { origin, issuer, pid, logFile, operatorKeyFile, stop }.
 */
export async function startWritServer({
  core,
  classes,
  workloads,
  settings = {},
  env = {},
  cli = WRIT_CLI,
  wrapper = [],
  nodeArgs = [],
  readyMs = 20_000,
  files = {},
}) {
  const dir = tempDir('writ-bench-');
  const data = join(dir, 'data');
  const init = spawnSync(process.execPath, [cli, '--data-dir', data, 'init'], { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`writ init failed: ${init.stderr}`);
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const config = join(data, 'config');
  // JSON is YAML.
  writeFileSync(join(config, 'settings.yaml'), `${JSON.stringify(settings)}\n`);
  for (const c of classes(origin))
    writeFileSync(join(config, 'classes', `${c.name}.yaml`), `${JSON.stringify(c)}\n`);
  for (const [i, w] of workloads.entries())
    writeFileSync(join(config, 'workloads', `w-${i}.yaml`), `${JSON.stringify(w)}\n`);
  for (const [path, doc] of Object.entries(files)) {
    mkdirSync(dirname(join(config, path)), { recursive: true });
    writeFileSync(join(config, path), `${JSON.stringify(doc)}\n`);
  }
  const logFile = join(dir, 'server.log');
  const log = openSync(logFile, 'a');
  const child = pinned(
    core,
    [...nodeArgs, cli, '--data-dir', data, 'serve', '--port', String(port)],
    { stdio: ['ignore', log, log], env: { ...process.env, NODE_ENV: 'production', ...env } },
    { wrapper },
  );
  closeSync(log);
  await waitReady(`${origin}/readyz`, child, logFile, readyMs, Math.max(1000, readyMs / 10));
  return {
    origin,
    issuer: origin,
    pid: child.pid,
    logFile,
    operatorKeyFile: join(data, 'operator.jwk'),
    stop: (graceMs) => stopChild(child, graceMs),
  };
}

/** The tail of a server log, for error messages. */
export const logTail = (server, n = 2000) => readFileSync(server.logFile, 'utf8').slice(-n);

/**
 * An operator's admin session, as `writ` opens and uses it (the CLI's own client): an admin token bound
 * (DPoP) to the operator key `writ init` wrote, a fresh proof by that key on every call, renewed when half
 * its lifetime is gone. `open()` opens or renews it now, outside a timed call.
 */
export function adminSession(issuer, operatorKeyFile) {
  // Loaded when first used: a script can start (and say what is missing) before the build exists.
  let client;
  const loaded = async () => {
    client ??= import(pathToFileURL(join(ROOT, 'packages/server/dist/src/cli/client.js')).href).then(
      ({ AdminClient }) => new AdminClient({ server: issuer, operatorKey: operatorKeyFile }),
    );
    return client;
  };
  /** `POST /admin/v1<path>` with a JSON body; resolves with the answer once it is read. */
  const post = async (path, json) => (await loaded()).post(path, json);
  return {
    open: async () => (await loaded()).open(),
    /** `GET /admin/v1<path>` (query included); resolves with the answer once it is read. */
    get: async (path) => (await loaded()).get(path),
    post,
    /** `POST /admin/v1/revocations`: resolves with the stored revocation once the response is read. */
    revoke: (revocation) => post('/revocations', revocation),
  };
}

/**
 * A client_credentials token with private_key_jwt and no DPoP proof: a bearer token when the class
 * allows it. `client` is { clientId, privateJwk }.
 */
export async function bearerToken(issuer, client, { resource, scope }) {
  const now = Math.floor(Date.now() / 1000);
  const assertion = es256Signer(client.privateJwk)({
    iss: client.clientId,
    sub: client.clientId,
    aud: issuer,
    iat: now,
    exp: now + 60,
    jti: randomBytes(16).toString('base64url'),
  });
  const res = await fetch(`${issuer}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: client.clientId,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: assertion,
      resource,
      scope,
    }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`token request: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

/** A workload document for the config directory; `extra` adds fields (`serves` for a verifier). */
export function workloadDoc(client, classes, extra = {}) {
  return {
    id: client.clientId,
    owner: 'team-bench',
    environment: 'bench',
    classes,
    jwks: { keys: [client.publicJwk] },
    ...extra,
  };
}
