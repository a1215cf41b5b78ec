import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import Database from 'better-sqlite3';
import pg from 'pg';
import pino from 'pino';
import type { Clock } from '../../src/clock.js';
import { type RawDocument, validateConfig } from '../../src/config/config-dir.js';
import { resolveSettings, type Settings } from '../../src/config/settings.js';
import { encodeBase64url } from '../../src/jose/base64url.js';
import { jwkThumbprint } from '../../src/jose/jwk.js';
import { kekFromBytes } from '../../src/keys/kek.js';
import type { HostResolver } from '../../src/net/resolver.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import type { VendorRoute } from '../../src/vendor/route.js';
import { createWrit, type Writ } from '../../src/writ.js';
import { type AdminSession, openAdminSession } from './admin-session.js';
import { type ConformanceRecord, recordConformance } from './openapi-conformance.js';

/** A key pair for tests, with its public JWK. */
export interface TestKey {
  privateKey: KeyObject;
  publicJwk: Record<string, string>;
  alg: 'ES256' | 'EdDSA';
  kid: string;
}

export function testKey(alg: 'ES256' | 'EdDSA' = 'ES256'): TestKey {
  const { privateKey, publicKey } =
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  const kid = jwkThumbprint(jwk);
  return { privateKey, publicJwk: { ...jwk, kid, alg }, alg, kid };
}

/** The private half of a test key as a JWK with its `kid` and `alg`, as the SDK and `writ` read keys. */
export const privateJwk = (k: TestKey) => ({
  ...k.privateKey.export({ format: 'jwk' }),
  kid: k.kid,
  alg: k.alg,
});

/** Signs arbitrary header and claims (for negative tests the header may lie). */
export function signJwt(
  key: TestKey,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): string {
  const h = encodeBase64url(JSON.stringify({ alg: key.alg, kid: key.kid, ...header }));
  const p = encodeBase64url(JSON.stringify(claims));
  const input = `${h}.${p}`;
  const sig =
    key.alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign(null, Buffer.from(input), key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

export const WORKLOAD = 'spiffe://test.writ/reports/exporter';
export const OTHER_WORKLOAD = 'spiffe://test.writ/billing/job';
export const LEGACY_WORKLOAD = 'spiffe://test.writ/legacy/cron';
export const LEGACY_SECRET = 'legacy-secret-0123456789abcdef';
export const AUDIENCE = 'https://reports.test.writ';
export const OTHER_AUDIENCE = 'https://billing.test.writ';

export interface Harness {
  writ: Writ;
  settings: Settings;
  store: Store;
  dir: string;
  issuer: string;
  workloadKey: TestKey;
  otherKey: TestKey;
  operatorKey: TestKey;
  /** A fresh valid client assertion for `clientId`, with claim overrides. */
  assertion(opts?: {
    clientId?: string;
    key?: TestKey;
    claims?: Record<string, unknown>;
    header?: Record<string, unknown>;
  }): string;
  /** POST a form to a path in-process; returns status, parsed body and headers. */
  post(
    path: string,
    form: Record<string, string | string[]>,
    headers?: Record<string, string>,
  ): Promise<Reply>;
  /** client_credentials for WORKLOAD with a fresh assertion, plus extra form fields. */
  requestToken(
    extra?: Record<string, string | string[]>,
    opts?: Parameters<Harness['assertion']>[0],
  ): Promise<Reply>;
  /** A new admin session of operator `ops`, bound (DPoP) to its key as `writ` opens one. */
  adminSession(): Promise<AdminSession>;
  /** The token of a new admin session (calls with it need `AdminSession.headers`, or `adminHeaders`). */
  adminToken(): Promise<string>;
  /** `Authorization: DPoP` and a proof for one admin call, in a new session. */
  adminHeaders(method: string, path: string): Promise<{ authorization: string; dpop: string }>;
  admin(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Reply>;
  auditEvents(type?: string): Promise<import('../../src/audit/audit-event.js').AuditEvent[]>;
  /** Rows of one store table, counted through a second connection (what a refusal must not add). */
  countRows(table: 'tokens' | 'revocations' | 'tasks' | 'console_sessions'): Promise<number>;
  /**
   * Runs SQL through a second connection to the store (the schema's tables unqualified), as someone
   * with write access to the database would; returns the rows of the last statement.
   */
  attackerSql(text: string): Promise<Record<string, unknown>[]>;
  /**
   * Stops the server (a clean stop: last checkpoint, store closed) and starts a new one on the same store,
   * data directory, keys and config; rejects when the new one refuses to start. `writ`/`store` are replaced.
   * With `startup`, the config is what `writ serve` would apply from a directory (readStartupConfig).
   */
  restart(startup?: HarnessStartup): Promise<void>;
  close(): Promise<void>;
}

/** The config a restart applies, as `writ serve` reads it from a directory (see readStartupConfig). */
export interface HarnessStartup {
  config?: import('../../src/config/config-dir.js').ConfigBundle;
  files: import('../../src/config/config-files.js').ConfigFilesChange | 'unchanged';
}

export interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | number | undefined>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function configDocuments(
  keys: { workload: TestKey; other: TestKey; operator: TestKey },
  extra: RawDocument[] = [],
): RawDocument[] {
  const doc = (kind: RawDocument['kind'], d: unknown, i: number): RawDocument => ({
    kind,
    file: `${kind}-${i}.yaml`,
    index: 0,
    doc: d,
  });
  return [
    doc(
      'class',
      {
        name: 'reports-read',
        max_ttl: '15m',
        default_ttl: '5m',
        audiences: [AUDIENCE],
        scopes: ['reports:read', 'reports:export'],
        binding: 'bearer',
        default_scopes: ['reports:read'],
      },
      1,
    ),
    doc(
      'class',
      {
        name: 'billing-write',
        max_ttl: '10m',
        audiences: [OTHER_AUDIENCE],
        scopes: ['billing:write'],
        binding: 'bearer',
      },
      2,
    ),
    doc(
      'class',
      {
        name: 'legacy-cron',
        binding: 'bearer',
        max_ttl: '5m',
        audiences: [AUDIENCE],
        scopes: ['reports:read'],
      },
      3,
    ),
    doc(
      'exception',
      {
        id: 'legacy-cron-client-secret',
        covers: { kind: 'legacy_client_secret', class: 'legacy-cron' },
        owner: 'team-reports',
        justification: 'vendor cron cannot sign JWTs yet',
        expires: '2099-12-31',
      },
      1,
    ),
    doc(
      'workload',
      {
        id: WORKLOAD,
        owner: 'team-reports',
        environment: 'prod',
        classes: ['reports-read'],
        jwks: { keys: [keys.workload.publicJwk] },
      },
      1,
    ),
    doc(
      'workload',
      {
        id: OTHER_WORKLOAD,
        owner: 'team-billing',
        environment: 'prod',
        classes: ['billing-write'],
        jwks: { keys: [keys.other.publicJwk] },
      },
      2,
    ),
    doc(
      'workload',
      {
        id: LEGACY_WORKLOAD,
        owner: 'team-reports',
        environment: 'prod',
        classes: ['legacy-cron'],
        client_secret_sha256: sha256hex(LEGACY_SECRET),
      },
      3,
    ),
    doc('operator', { name: 'ops', jwks: { keys: [keys.operator.publicJwk] } }, 1),
    ...extra,
  ];
}

/** The harness's own configuration documents (`configDocuments` with its keys), and `extra`. */
export function harnessDocuments(
  h: Pick<Harness, 'workloadKey' | 'otherKey' | 'operatorKey'>,
  extra: RawDocument[] = [],
): RawDocument[] {
  return configDocuments({ workload: h.workloadKey, other: h.otherKey, operator: h.operatorKey }, extra);
}

function sha256hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * The store every harness runs on: the embedded SQLite file by default; with WRIT_TEST_STORE=postgres,
 * a fresh schema of its own in the database at WRIT_TEST_POSTGRES_URL (dropped on close), so the whole
 * HTTP suite can run once on each store.
 */
export const TEST_STORE: 'sqlite' | 'postgres' =
  process.env['WRIT_TEST_STORE'] === 'postgres' ? 'postgres' : 'sqlite';

/** `{ skip }` for cases that reach into the SQLite file itself (with the reason printed under PostgreSQL). */
export const sqliteFileOnly = {
  skip:
    TEST_STORE === 'postgres'
      ? 'edits the embedded SQLite file directly (the chain check is the same code on both stores; PostgreSQL chain integrity is in the store conformance suite, its faults in cluster-faults)'
      : false,
} as const;

interface HarnessStore {
  store: Store;
  count: (table: string) => Promise<number>;
  attackerSql: (text: string) => Promise<Record<string, unknown>[]>;
  reopen: () => Promise<Store>;
  drop: () => Promise<void>;
}

/**
 * `fakeTime`: the test moves a fake clock, which the database's clock cannot follow: the PostgreSQL store
 * then takes the callers' times, as the embedded store does.
 */
async function openHarnessStore(dir: string, fakeTime: boolean): Promise<HarnessStore> {
  if (TEST_STORE === 'sqlite') {
    const path = join(dir, 'writ.db');
    const count = async (table: string) => {
      const db = new Database(path, { readonly: true, fileMustExist: true });
      try {
        return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
      } finally {
        db.close();
      }
    };
    const attackerSql = async (text: string) => {
      const db = new Database(path, { fileMustExist: true });
      try {
        const statements = text.split(';').filter((t) => t.trim());
        let rows: Record<string, unknown>[] = [];
        for (const t of statements) {
          const st = db.prepare(t);
          if (st.reader) rows = st.all() as Record<string, unknown>[];
          else st.run();
        }
        return rows;
      } finally {
        db.close();
      }
    };
    return {
      store: openSqliteStore({ path }),
      count,
      attackerSql,
      reopen: async () => openSqliteStore({ path }),
      drop: async () => {},
    };
  }
  const url = process.env['WRIT_TEST_POSTGRES_URL'];
  if (!url) throw new Error('WRIT_TEST_STORE=postgres needs WRIT_TEST_POSTGRES_URL');
  const schema = `writ_h_${randomBytes(6).toString('hex')}`;
  const open = () =>
    openPostgresStore(url, {
      schema,
      maxConnections: 4,
      ...(fakeTime ? { time: 'caller' as const } : {}),
    });
  const store = await open();
  const sql = async (text: string): Promise<pg.QueryResult> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return await c.query(text);
    } finally {
      await c.end();
    }
  };
  return {
    store,
    count: async (table) => Number((await sql(`SELECT count(*) AS n FROM "${schema}".${table}`)).rows[0].n),
    attackerSql: async (text) => {
      // Several statements answer with one result each.
      const r = (await sql(`SET search_path TO "${schema}"; ${text}`)) as unknown as pg.QueryResult[];
      return r.at(-1)?.rows ?? [];
    },
    reopen: open,
    drop: async () => {
      await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
  };
}

/** Starts a Writ on a real store (see TEST_STORE) in a temp dir, with a real KEK and real keys. */
export async function startHarness(
  opts: {
    clock?: Clock;
    settings?: Record<string, unknown>;
    /** The values of the settings.yaml the server starts with (`settings` overrides them). */
    settingsFile?: Record<string, unknown>;
    extraDocs?: RawDocument[];
    listen?: boolean;
    logger?: import('pino').Logger;
    /** SQLite only: the directory of the store file (a test's own file system), instead of `dir`. */
    storeDir?: string;
    /** Resolves push receivers' hosts instead of the system resolver (a DNS the test controls). */
    resolveHost?: HostResolver;
    /** Vendor routes for the proxy inside the server (with the setting `vendor_proxy.workload`). */
    vendorRoutes?: readonly VendorRoute[];
  } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-test-'));
  const port = opts.listen ? await freePort() : 8080;
  const settings = resolveSettings(
    opts.settingsFile ? { name: 'settings.yaml', values: opts.settingsFile } : undefined,
    {},
    { 'listen.port': port, 'log.level': 'silent', ...opts.settings },
  );
  const { store, count, attackerSql, reopen, drop } = await openHarnessStore(
    opts.storeDir ?? dir,
    opts.clock !== undefined,
  );
  const workloadKey = testKey();
  const otherKey = testKey('EdDSA');
  const operatorKey = testKey();
  const config = validateConfig(
    configDocuments({ workload: workloadKey, other: otherKey, operator: operatorKey }, opts.extraDocs),
    settings.tokens.maxLifetime,
    settings.issuer,
  );
  const kekBytes = randomBytes(32);
  // Every request a server accepts must conform to the OpenAPI document; close() fails otherwise.
  const conformance: ConformanceRecord[] = [];
  const start = async (on: Store, startup?: HarnessStartup) => {
    const started = await createWrit({
      settings,
      store: on,
      kek: kekFromBytes(kekBytes, 'test'),
      ...(startup
        ? { ...(startup.config ? { config: startup.config } : {}), configFiles: startup.files }
        : { config }),
      auditAnchor: join(dir, 'audit-anchor.json'),
      logger: opts.logger ?? pino({ level: 'silent' }),
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.resolveHost ? { resolveHost: opts.resolveHost } : {}),
      ...(opts.vendorRoutes ? { vendorRoutes: opts.vendorRoutes } : {}),
    });
    conformance.push(recordConformance(started.app));
    return started;
  };
  const writ = await start(store).catch(async (err: unknown) => {
    // A server that did not start (a test of a start refusal) leaves no store open behind it.
    await store.close().catch(() => undefined);
    await drop().catch(() => undefined);
    throw err;
  });
  if (opts.listen) await writ.listen();
  const clock = writ.ctx.clock;
  const issuer = settings.issuer;
  const adminNonce: { value?: string } = {};

  const h: Harness = {
    writ,
    settings,
    store,
    dir,
    issuer,
    workloadKey,
    otherKey,
    operatorKey,
    assertion(o = {}) {
      const clientId = o.clientId ?? WORKLOAD;
      const now = Math.floor(clock.now() / 1000);
      return signJwt(
        o.key ?? workloadKey,
        {
          iss: clientId,
          sub: clientId,
          aud: issuer,
          iat: now,
          exp: now + 60,
          jti: randomBytes(12).toString('base64url'),
          ...o.claims,
        },
        o.header,
      );
    },
    async post(path, form, headers = {}) {
      const body = new URLSearchParams();
      for (const [k, v] of Object.entries(form))
        for (const x of Array.isArray(v) ? v : [v]) body.append(k, x);
      const res = await h.writ.app.inject({
        method: 'POST',
        url: path,
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        payload: body.toString(),
      });
      return {
        status: res.statusCode,
        body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {},
        headers: res.headers,
      };
    },
    async requestToken(extra = {}, o = {}) {
      return h.post('/oauth2/token', {
        grant_type: GrantType.clientCredentials,
        client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
        client_assertion: h.assertion(o),
        resource: AUDIENCE,
        ...extra,
      });
    },
    adminSession() {
      return openAdminSession({
        issuer,
        key: operatorKey,
        nowSeconds: () => Math.floor(clock.now() / 1000),
        nonce: adminNonce,
        post: async (form, headers) => {
          const r = await h.post('/admin/v1/token', form, headers);
          const nonce = r.headers['dpop-nonce'];
          return { ...r, nonce: typeof nonce === 'string' ? nonce : undefined };
        },
      });
    },
    async adminToken() {
      return (await h.adminSession()).token;
    },
    async adminHeaders(method, path) {
      return (await h.adminSession()).headers(method, path);
    },
    async admin(method, path, body) {
      const res = await h.writ.app.inject({
        method,
        url: `/admin/v1${path}`,
        headers: {
          ...(await h.adminHeaders(method, `/admin/v1${path}`)),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
      });
      return {
        status: res.statusCode,
        body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {},
        headers: res.headers,
      };
    },
    async auditEvents(type) {
      return h.store.queryAudit({ limit: 100_000, ...(type ? { type } : {}) });
    },
    countRows: (table) => count(table),
    attackerSql,
    async restart(startup) {
      await h.writ.close();
      const next = await reopen();
      h.store = next;
      try {
        h.writ = await start(next, startup);
      } catch (err) {
        await next.close();
        throw err;
      }
    },
    async close() {
      await h.writ.close();
      await drop();
      rmSync(dir, { recursive: true, force: true });
      const problems = conformance.flatMap((c) => c.problems);
      if (problems.length > 0)
        throw new Error(
          `requests the server accepted do not conform to the OpenAPI document (src/http/openapi.ts):\n${problems.join('\n')}`,
        );
    },
  };
  return h;
}
