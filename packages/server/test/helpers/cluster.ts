import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WorkloadClient } from '@writ/sdk/client';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import pg from 'pg';
import pino from 'pino';
import { resolveSettings } from '../../src/config/settings.js';
import { kekFromBytes } from '../../src/keys/kek.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createWrit, type Writ } from '../../src/writ.js';
import { openAdminSession } from './admin-session.js';
import { privateJwk, signJwt, type TestKey, testKey } from './harness.js';

/**
 * Test helpers for Writ as several `writ serve` processes on one PostgreSQL database: fresh databases,
 * nodes, a TCP proxy that can cut a node's link to PostgreSQL for real, and plain HTTP clients.
 */

export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const POSTGRES_URL = process.env['WRIT_TEST_POSTGRES_URL'] ?? '';

/** Runs one statement on its own connection. */
export async function sql<R extends pg.QueryResultRow>(
  databaseUrl: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/**
 * `describe(title, body)` where WRIT_TEST_POSTGRES_URL names a database; elsewhere the suite is skipped and
 * `file` says so in the log.
 */
export function describeOnPostgres(file: string, title: string, body: () => void): void {
  if (POSTGRES_URL === '') {
    const reason = 'WRIT_TEST_POSTGRES_URL is not set';
    console.log(`${file}: skipped: ${reason} (CI sets it to a throwaway database)`);
    describe(title, { skip: reason }, () => {});
  } else {
    describe(title, body);
  }
}

/** A database of its own and its removal. */
export interface FreshDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A database of its own (its `public` schema is what `writ serve --store <url>` uses), and its removal. */
export async function freshDatabase(base: string): Promise<FreshDatabase> {
  const name = `writ_test_${randomBytes(6).toString('hex')}`;
  await sql(base, `CREATE DATABASE ${name}`);
  const u = new URL(base);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      await sql(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** Polls `check` until it returns something other than undefined; fails after `attempts` tries. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  o: { attempts?: number; everyMs?: number } = {},
): Promise<T> {
  const attempts = o.attempts ?? 400;
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const v = await check();
      if (v !== undefined) return v;
      last = undefined;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, o.everyMs ?? 50));
  }
  throw new Error(`gave up waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/**
 * A TCP proxy in front of PostgreSQL. `cut('refuse')` closes the listener and every connection
 * (connections are refused); `cut('stall')` keeps everything open but forwards nothing, like a link that
 * went silent; `restore()` forwards again (on the same port).
 */
export interface LinkProxy {
  port: number;
  /** The database URL with host and port replaced by the proxy's. */
  url(databaseUrl: string): string;
  cut(mode: 'refuse' | 'stall'): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(target: { host: string; port: number }): Promise<LinkProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  /** Connections accepted while stalled: held open, never answered. */
  const held = new Set<Socket>();
  let mode: 'open' | 'refuse' | 'stall' = 'open';
  let server: Server;

  const onConnection = (client: Socket) => {
    if (mode === 'stall') {
      // Accept and say nothing: the client's connect succeeds, its startup message goes unanswered.
      held.add(client);
      client.on('error', () => undefined).on('close', () => held.delete(client));
      client.pause();
      return;
    }
    const upstream = netConnect(target.port, target.host);
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server = createServer(onConnection);
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
  const port = await listen(0);

  return {
    port,
    url(databaseUrl) {
      const u = new URL(databaseUrl);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    async cut(how) {
      mode = how;
      if (how === 'refuse') {
        // Stop accepting first; `close` completes once the connections it still has are gone.
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const p of pairs) {
          p.client.destroy();
          p.upstream.destroy();
        }
        pairs.clear();
        for (const c of held) c.destroy();
        held.clear();
        await closed;
      } else {
        for (const p of pairs) {
          p.client.unpipe(p.upstream);
          p.upstream.unpipe(p.client);
          p.client.pause();
          p.upstream.pause();
        }
      }
    },
    async restore() {
      const was = mode;
      mode = 'open';
      if (was === 'refuse') {
        // The port was free a moment ago; retry briefly should the system hand it out meanwhile.
        await eventually('the proxy port to be free again', () => listen(port).then(() => true), {
          attempts: 100,
        });
      } else {
        // Stalled connections stay dead, as after a real partition: their peers have timed out.
        for (const p of pairs) {
          p.client.destroy();
          p.upstream.destroy();
        }
        pairs.clear();
        for (const c of held) c.destroy();
        held.clear();
      }
    },
    async close() {
      mode = 'refuse';
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
      for (const c of held) c.destroy();
      held.clear();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The token classes the cluster tests share: `items` (bearer tokens for the API) and `verifier` (event streams). */
export function clusterClasses(api: string, events: string): Record<string, unknown>[] {
  const common = { max_ttl: '10m', default_ttl: '5m' };
  return [
    {
      name: 'items',
      ...common,
      binding: 'bearer',
      audiences: [api],
      scopes: ['items:read'],
      default_scopes: ['items:read'],
    },
    {
      name: 'verifier',
      ...common,
      audiences: [events],
      scopes: ['events:read'],
      default_scopes: ['events:read'],
    },
  ];
}

/**
 * The names one cluster test uses under its own `domain`: the issuer the nodes share, its event stream,
 * the API its tokens are for, and workloads `spiffe://<domain>/<name>`.
 */
export interface ClusterNames {
  issuer: string;
  events: string;
  api: string;
  client(name: string): ClusterClient;
}

export function clusterNames(domain: string): ClusterNames {
  const issuer = `http://writ.${domain}`;
  return {
    issuer,
    events: `${issuer}/v1/events`,
    api: `https://items.${domain}`,
    client: (name) => clusterClient(domain, name),
  };
}

/** The configuration every node applies at start (one directory, shared, like one Git checkout). */
export interface ClusterConfig {
  dir: string;
  issuer: string;
  operatorKey: TestKey;
}

/** Writes classes, workloads (id → key) and the operator into a fresh config directory. */
export function writeClusterConfig(o: {
  issuer: string;
  operatorKey: TestKey;
  classes: Array<Record<string, unknown>>;
  /** `serves`: the APIs a workload verifies tokens for (config `serves`). */
  workloads: Array<{ id: string; key: TestKey; classes: string[]; serves?: string[] }>;
  settings?: Record<string, unknown>;
}): ClusterConfig {
  const dir = mkdtempSync(join(tmpdir(), 'writ-cluster-config-'));
  for (const sub of ['classes', 'workloads', 'operators']) mkdirSync(join(dir, sub));
  // JSON is YAML.
  writeFileSync(join(dir, 'settings.yaml'), `${JSON.stringify(o.settings ?? {})}\n`);
  for (const c of o.classes)
    writeFileSync(join(dir, 'classes', `${String(c['name'])}.yaml`), `${JSON.stringify(c)}\n`);
  o.workloads.forEach((w, i) => {
    const doc = {
      id: w.id,
      owner: 'team-cluster',
      environment: 'test',
      classes: w.classes,
      jwks: { keys: [w.key.publicJwk] },
      ...(w.serves ? { serves: w.serves } : {}),
    };
    writeFileSync(join(dir, 'workloads', `w-${i}.yaml`), `${JSON.stringify(doc)}\n`);
  });
  writeFileSync(
    join(dir, 'operators', 'ops.yaml'),
    `${JSON.stringify({ name: 'ops', jwks: { keys: [o.operatorKey.publicJwk] } })}\n`,
  );
  return { dir, issuer: o.issuer, operatorKey: o.operatorKey };
}

/** Settings and workloads beside the shared classes (`clusterClasses`) and a fresh operator key. */
export interface ClusterSetup {
  workloads: Parameters<typeof writeClusterConfig>[0]['workloads'];
  settings?: Record<string, unknown>;
}

/** `writeClusterConfig` for the issuer and API of `names`, the `clusterClasses` and a fresh operator key. */
export function clusterConfig(names: ClusterNames, o: ClusterSetup): ClusterConfig {
  return writeClusterConfig({
    issuer: names.issuer,
    operatorKey: testKey(),
    ...(o.settings ? { settings: o.settings } : {}),
    classes: clusterClasses(names.api, names.events),
    workloads: o.workloads,
  });
}

/** One `writ serve` process. */
export interface WritNode {
  name: string;
  /** Where this node listens (the issuer is shared by every node, like a load balancer's name). */
  origin: string;
  child: ChildProcess;
  output: { text: string };
  /** SIGTERM, then SIGKILL after a bound; resolves once the process has exited. */
  stop(): Promise<void>;
  kill(): Promise<void>;
}

/** Starts `writ serve` on `storeUrl` with the shared KEK and config; resolves once it is serving. */
export async function startNode(o: {
  name: string;
  storeUrl: string;
  kek: string;
  config: ClusterConfig;
  env?: Record<string, string>;
  /**
   * A data directory the caller keeps (its audit anchor survives the node, for a restart on it); by
   * default a fresh one, removed when the node stops.
   */
  dataDir?: string;
  /** How long the node may take to start before the start fails (default 60 s). */
  startBoundMs?: number;
}): Promise<WritNode> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), `writ-${o.name}-`));
  const child = spawn(
    process.execPath,
    [
      MAIN,
      '--data-dir',
      dataDir,
      'serve',
      '--port',
      '0',
      '--store',
      o.storeUrl,
      '--config',
      o.config.dir,
      '--issuer',
      o.config.issuer,
    ],
    {
      env: { ...process.env, WRIT_KEK: o.kek, WRIT_STORE: '', WRIT_LOG_LEVEL: 'info', ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const output = { text: '' };
  // Should the test process end first (a failure, a timeout), the node must not outlive it.
  const orphaned = () => child.kill('SIGKILL');
  process.once('exit', orphaned);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      process.off('exit', orphaned);
      resolve();
    }),
  );
  const serving = await new Promise<string>((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(
      () => reject(new Error(`${o.name} did not start:\n${output.text}`)),
      o.startBoundMs ?? 60_000,
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      output.text += chunk.toString();
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      const hit = lines.find((l) => l.includes('writ is serving'));
      if (hit) {
        clearTimeout(timer);
        resolve(hit);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      output.text += chunk.toString();
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${o.name} exited (${code ?? signal}) before serving:\n${output.text}`));
    });
  });
  const origin = (JSON.parse(serving) as { address: string }).address;
  const done = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const hard = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(hard);
    }
    if (o.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
  };
  return {
    name: o.name,
    origin,
    child,
    output,
    stop: () => done('SIGTERM'),
    kill: () => done('SIGKILL'),
  };
}

/** `writ serve` nodes on one fresh database, started with one KEK and one config directory. */
export interface Cluster {
  db: FreshDatabase;
  config: ClusterConfig;
  /** The KEK every node shares (base64), for a node started later. */
  kek: string;
  /** In the order of their names; a node started later and pushed here is stopped with the rest. */
  nodes: WritNode[];
}

/**
 * A fresh database, a config directory (`clusterConfig`) and a node for each of `nodes`, started together
 * or, with `oneAtATime`, one after the other. `prepare` adds files to the directory before any node reads
 * it. Should a node not start, what was started is undone.
 */
export async function startCluster(
  names: ClusterNames,
  o: ClusterSetup & { nodes: string[]; prepare?: (config: ClusterConfig) => void; oneAtATime?: boolean },
): Promise<Cluster> {
  const db = await freshDatabase(POSTGRES_URL);
  const cluster: Cluster = {
    db,
    config: clusterConfig(names, o),
    kek: randomBytes(32).toString('base64'),
    nodes: [],
  };
  const start = (name: string) =>
    startNode({ name, storeUrl: db.url, kek: cluster.kek, config: cluster.config });
  try {
    o.prepare?.(cluster.config);
    if (o.oneAtATime) {
      for (const name of o.nodes) cluster.nodes.push(await start(name));
    } else {
      const started = await Promise.allSettled(o.nodes.map(start));
      for (const s of started) if (s.status === 'fulfilled') cluster.nodes.push(s.value);
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;
    }
  } catch (err) {
    await stopCluster(cluster);
    throw err;
  }
  return cluster;
}

/** Stops every node, removes the config directory and drops the database (nothing where none started). */
export async function stopCluster(c: Cluster | undefined): Promise<void> {
  if (!c) return;
  await Promise.all(c.nodes.map((n) => n.stop()));
  rmSync(c.config.dir, { recursive: true, force: true });
  await c.db.drop();
}

/** Two in-process nodes (`createWrit`) on one fresh database with one KEK. */
export interface WritPair {
  readonly db: FreshDatabase;
  readonly a: Writ;
  readonly b: Writ;
}

/**
 * A `WritPair` for the tests of the enclosing `describe`, started in its `before` and closed in its
 * `after`: both nodes on the default settings with `overrides` (logs silent). Read its parts in the tests.
 */
export function writPairForSuite(overrides: Parameters<typeof resolveSettings>[2] = {}): WritPair {
  let db: FreshDatabase | undefined;
  let a: Writ | undefined;
  let b: Writ | undefined;
  before(async () => {
    const fresh = await freshDatabase(POSTGRES_URL);
    db = fresh;
    const settings = resolveSettings(undefined, {}, { 'log.level': 'silent', ...overrides });
    const kek = randomBytes(32);
    const node = async () =>
      createWrit({
        settings,
        store: await openPostgresStore(fresh.url),
        kek: kekFromBytes(kek, 'test'),
        logger: pino({ level: 'silent' }),
      });
    a = await node();
    b = await node();
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await db?.drop();
  });
  const started = <T>(part: T | undefined): T =>
    part ?? assert.fail('the pair starts before the suite’s tests');
  return {
    get db() {
      return started(db);
    },
    get a() {
      return started(a);
    },
    get b() {
      return started(b);
    },
  };
}

/** `writ audit verify --store <url>`: the offline verifier reads the chain read-only. */
export async function verifyAuditOffline(storeUrl: string): Promise<string> {
  const r = await promisify(execFile)(process.execPath, [MAIN, 'audit', 'verify', '--store', storeUrl], {
    env: { ...process.env, WRIT_STORE: '' },
  });
  return r.stdout;
}

/** The answer to one HTTP request: status and parsed JSON (or text) body. */
export interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

/** Every request is bounded: a node that hangs fails the test instead of stalling it. */
export const REQUEST_BOUND_MS = 30_000;

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    body = { text };
  }
  return { status: res.status, body, headers: res.headers };
}

export async function postForm(
  origin: string,
  path: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await fetch(`${origin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
    signal: AbortSignal.timeout(REQUEST_BOUND_MS),
  });
  return answer(res);
}

export async function getJson(origin: string, path: string, headers: Record<string, string> = {}) {
  return answer(await fetch(`${origin}${path}`, { headers, signal: AbortSignal.timeout(REQUEST_BOUND_MS) }));
}

/** A private_key_jwt client assertion for `clientId`, audience the shared issuer. */
export function clientAssertion(issuer: string, clientId: string, key: TestKey): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt(key, {
    iss: clientId,
    sub: clientId,
    aud: issuer,
    iat: now,
    exp: now + 60,
    jti: randomBytes(12).toString('base64url'),
  });
}

export function clientAuthForm(issuer: string, clientId: string, key: TestKey): Record<string, string> {
  return {
    client_id: clientId,
    client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
    client_assertion: clientAssertion(issuer, clientId, key),
  };
}

/** client_credentials (bearer class) at `node`. */
export function requestToken(
  node: { origin: string },
  issuer: string,
  client: { id: string; key: TestKey },
  resource: string,
): Promise<Answer> {
  return postForm(node.origin, '/oauth2/token', {
    grant_type: GrantType.clientCredentials,
    resource,
    ...clientAuthForm(issuer, client.id, client.key),
  });
}

/** RFC 7662 introspection at `node`, authenticated as `client`; the `active` member. */
export async function introspect(
  node: { origin: string },
  issuer: string,
  client: { id: string; key: TestKey },
  token: string,
): Promise<Answer> {
  return postForm(node.origin, '/oauth2/introspect', {
    token,
    ...clientAuthForm(issuer, client.id, client.key),
  });
}

/**
 * Admin sessions at `node` (the operator key's assertion and DPoP proof, as `writ` sends them); `call`
 * opens one and sends JSON with its proof. Proofs name the shared issuer's URLs, as behind a load balancer.
 */
export function adminClient(node: { origin: string }, config: ClusterConfig) {
  const nonce: { value?: string } = {};
  const session = () =>
    openAdminSession({
      issuer: config.issuer,
      key: config.operatorKey,
      nowSeconds: () => Math.floor(Date.now() / 1000),
      nonce,
      post: async (form, headers) => {
        const r = await postForm(node.origin, '/admin/v1/token', form, headers);
        return { ...r, nonce: r.headers.get('dpop-nonce') ?? undefined };
      },
    });
  return {
    session,
    async call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<Answer> {
      const s = await session();
      const res = await fetch(`${node.origin}/admin/v1${path}`, {
        method,
        headers: {
          ...s.headers(method, `/admin/v1${path}`),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(REQUEST_BOUND_MS),
      });
      return answer(res);
    },
  };
}

/** A fetch that sends requests for the shared issuer to one node, as a load balancer would. */
export function routedFetch(issuer: string, node: { origin: string }): typeof fetch {
  return ((input: string | URL | Request, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const routed = url.startsWith(issuer) ? `${node.origin}${url.slice(issuer.length)}` : url;
    return fetch(routed, init);
  }) as typeof fetch;
}

/** The payload of a compact JWS, and its header. */
export function decodeJwt(token: string): {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
} {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>,
    claims: JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>,
  };
}

/** A workload the cluster tests register: its client id and a fresh signing key. */
export interface ClusterClient {
  id: string;
  key: TestKey;
}

/** `spiffe://<trustDomain>/<name>` with a key of its own. */
export const clusterClient = (trustDomain: string, name: string): ClusterClient => ({
  id: `spiffe://${trustDomain}/${name}`,
  key: testKey(),
});

/** An SDK workload client authenticating as `c`, whose requests for `issuer` all go to `node`. */
export function workloadClientAt(issuer: string, c: ClusterClient, node: { origin: string }): WorkloadClient {
  return new WorkloadClient({
    issuer,
    clientId: c.id,
    privateJwk: privateJwk(c.key),
    fetch: routedFetch(issuer, node),
  });
}
