import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import type { AuditEvent } from '../src/audit/audit-event.js';
import { AuditChainBrokenError } from '../src/audit/chain.js';
import { verifyAuditChain } from '../src/audit/verify.js';
import { StoreUnavailableError } from '../src/errors.js';
import type { IssuanceWrite } from '../src/store/issuance-write.js';
import { IssuanceBatcher, issuanceStatements } from '../src/store/postgres/issuance-batch.js';
import { POSTGRES_MIGRATIONS } from '../src/store/postgres/migrations.js';
import { migratePostgresStore, openPostgresStore } from '../src/store/postgres/postgres-store.js';
import type { Store } from '../src/store/store.js';
import { lineMatching } from './helpers/cli.js';
import { runStoreConformance } from './store/conformance.js';

const url = process.env['WRIT_TEST_POSTGRES_URL'];
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

async function sql<R extends pg.QueryResultRow>(databaseUrl: string, text: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

const freshSchema = () => `writ_test_${randomBytes(6).toString('hex')}`;
const dropSchema = (databaseUrl: string, schema: string) =>
  sql(databaseUrl, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`);

/** Runs `fn` with a database of its own (its `public` schema is what the CLI uses), dropped afterwards. */
async function withDatabase(base: string, fn: (databaseUrl: string) => Promise<void>): Promise<void> {
  const name = freshSchema();
  await sql(base, `CREATE DATABASE ${name}`);
  try {
    const u = new URL(base);
    u.pathname = `/${name}`;
    await fn(u.toString());
  } finally {
    await sql(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

/** One issuance of `spiffe://test/w` at `now`: its assertion (default: the token id) spent, its event. */
function issuanceWrite(
  jti: string,
  now: number,
  o: { assertion?: string; fingerprint?: string } = {},
): IssuanceWrite {
  return {
    consume: [{ scope: 'assertion:c', id: o.assertion ?? jti, expiresAt: now + 60_000 }],
    now,
    token: {
      jti,
      sub: 'spiffe://test/w',
      clientId: 'spiffe://test/w',
      cls: 'c',
      aud: 'https://a.test',
      scope: 's',
      kid: 'k',
      iat: now / 1000,
      exp: now / 1000 + 300,
      fingerprint: o.fingerprint ?? jti,
    },
    audit: { ts: now, type: 'token.issued', outcome: 'success', actor: 'spiffe://test/w', jti, data: {} },
  };
}

if (url === undefined || url === '') {
  const reason = 'WRIT_TEST_POSTGRES_URL is not set';
  console.log(`store-postgres: skipped: ${reason} (CI sets it to a throwaway database)`);
  describe('store conformance: postgres', { skip: reason }, () => {});
  describe('postgres store: migrations and wiring', { skip: reason }, () => {});
} else {
  // Each case gets a fresh schema, dropped at the end; a peer is a second pool, as a second node has.
  // The contract's cases pass fixed times, which the database's clock does not follow: the store takes
  // the callers' times here; cluster-clock-skew tests what the database's clock changes.
  runStoreConformance('postgres', async () => {
    const schema = freshSchema();
    const stores: Store[] = [await openPostgresStore(url, { schema, time: 'caller' })];
    return {
      store: stores[0]!,
      openPeer: async () => {
        const peer = await openPostgresStore(url, { schema, time: 'caller' });
        stores.push(peer);
        return peer;
      },
      close: async () => {
        for (const s of stores) await s.close().catch(() => undefined);
        await dropSchema(url, schema);
      },
    };
  });

  describe('postgres store: migrations and wiring', () => {
    it('nodes opening a new schema together all start, and each migration is applied once', async () => {
      const schema = freshSchema();
      try {
        const stores = await Promise.all(
          range(8).map(() => openPostgresStore(url, { schema, maxConnections: 2 })),
        );
        await Promise.all(stores.map((s) => s.ping()));
        await Promise.all(stores.map((s) => s.close()));
        const rows = await sql<{ version: number }>(
          url,
          `SELECT version FROM "${schema}".writ_migrations ORDER BY 1`,
        );
        assert.deepEqual(
          rows.map((r) => r.version),
          POSTGRES_MIGRATIONS.map((m) => m.version),
        );
      } finally {
        await dropSchema(url, schema);
      }
    });

    it('migrating applies what is pending and reports it; a second run finds nothing', async () => {
      const schema = freshSchema();
      try {
        const first = await migratePostgresStore(url, { schema });
        assert.deepEqual(
          first.map((m) => m.version),
          POSTGRES_MIGRATIONS.map((m) => m.version),
        );
        assert.deepEqual(await migratePostgresStore(url, { schema }), []);
      } finally {
        await dropSchema(url, schema);
      }
    });

    it('with migrate: false an unmigrated schema is refused, naming `writ migrate`', async () => {
      const schema = freshSchema();
      try {
        await assert.rejects(
          openPostgresStore(url, { schema, migrate: false }),
          (err: unknown) => err instanceof StoreUnavailableError && /writ migrate/.test(err.message),
        );
        await migratePostgresStore(url, { schema });
        const store = await openPostgresStore(url, { schema, migrate: false });
        await store.ping();
        await store.close();
      } finally {
        await dropSchema(url, schema);
      }
    });

    it('an unreachable database is a StoreUnavailableError, and the message holds no password', async () => {
      await assert.rejects(
        openPostgresStore('postgres://writ:hunter2@127.0.0.1:1/writ'),
        (err: unknown) => err instanceof StoreUnavailableError && !err.message.includes('hunter2'),
      );
    });

    it('refuses a schema name that is not a plain lower-case identifier', async () => {
      for (const schema of ['Writ', 'a"; DROP TABLE x; --', '', '1abc'])
        await assert.rejects(openPostgresStore(url, { schema }), /invalid PostgreSQL schema name/);
    });

    it('an issuance batch the database linked with a hash the node does not compute is refused', async () => {
      const schema = freshSchema();
      const store = await openPostgresStore(url, { schema, time: 'caller' });
      const pool = new pg.Pool({ connectionString: url });
      try {
        // A database that hashes other bytes than the node sent (as a conversion of the text could): the
        // same call, each event's body head changed on the way in.
        const { batch } = issuanceStatements(`"${schema}"`, (p) => `${p}::bigint`);
        const tampered = batch.replace('$25::text[]', "array(SELECT h || ' ' FROM unnest($25::text[]) AS h)");
        assert.notEqual(tampered, batch);
        (store as unknown as { batcher: IssuanceBatcher }).batcher = new IssuanceBatcher({
          pool,
          sql: { batch: tampered },
          alone: () => Promise.reject(new Error('no issuance of this batch is refused')),
          fail: (err) => err,
        });
        const now = 1_700_000_000_000;
        const write = issuanceWrite('jti-1', now, { assertion: 'a-1', fingerprint: 'fp' });
        await assert.rejects(
          store.recordIssuance(write),
          (err: unknown) => err instanceof AuditChainBrokenError && /does not compute/.test(err.message),
        );
        // The event the database wrote does not verify either: the break is found again from the store.
        assert.equal((await verifyAuditChain(store)).ok, false);
      } finally {
        await pool.end();
        await store.close();
        await dropSchema(url, schema);
      }
    });

    it('a busy batcher holds its next batch open while issuances keep coming, until it is twice the last one; a quiet turn or a lone issuance is not held', async () => {
      const schema = freshSchema();
      const store = await openPostgresStore(url, { schema, time: 'caller' });
      const pool = new pg.Pool({ connectionString: url });
      // What each call of the batch function carried (the jti column), in order.
      const calls: string[][] = [];
      const counting = {
        query: (config: pg.QueryConfig) => {
          calls.push([...((config.values?.[5] as string[] | undefined) ?? [])]);
          return pool.query(config);
        },
      } as unknown as pg.Pool;
      try {
        // A hold far longer than the test: only the count or a quiet turn can end it.
        (store as unknown as { batcher: IssuanceBatcher }).batcher = new IssuanceBatcher({
          pool: counting,
          sql: issuanceStatements(`"${schema}"`, (p) => `${p}::bigint`),
          alone: () => Promise.reject(new Error('no issuance of this test is refused')),
          fail: (err) => err,
          holdMs: 600_000,
        });
        const now = 1_700_000_000_000;
        const issue = (id: string) => store.recordIssuance(issuanceWrite(id, now));
        const nextTurn = () => new Promise((r) => setImmediate(r));
        // Nothing committed before: a lone issuance goes at once (held, this test would time out), and a
        // batch of one holds nothing after it either.
        await issue('lone');
        await Promise.all([issue('a1'), issue('a2')]);
        assert.deepEqual(calls, [['lone'], ['a1', 'a2']]);
        // The last batch had two: one issuance a turn keeps the next batch open until it has four.
        const b: Promise<AuditEvent>[] = [];
        for (const id of ['b1', 'b2', 'b3', 'b4']) {
          b.push(issue(id));
          await nextTurn();
        }
        await Promise.all(b);
        assert.deepEqual(calls[2], ['b1', 'b2', 'b3', 'b4']);
        // The last batch had four: three in one turn, then a turn with none, and the three go (under eight).
        await Promise.all(['c1', 'c2', 'c3'].map(issue));
        assert.deepEqual(calls[3], ['c1', 'c2', 'c3']);
        assert.equal(calls.length, 4);
        const events = await store.queryAudit({ limit: 100 });
        assert.deepEqual(events.map((e) => e.jti).sort(), [
          'a1',
          'a2',
          'b1',
          'b2',
          'b3',
          'b4',
          'c1',
          'c2',
          'c3',
          'lone',
        ]);
        assert.equal((await verifyAuditChain(store)).ok, true);
      } finally {
        await pool.end();
        await store.close();
        await dropSchema(url, schema);
      }
    });

    it('writ migrate, then two writ serve nodes on one database: one key set, the URL masked everywhere', () =>
      withDatabase(url, async (databaseUrl) => {
        const u = new URL(databaseUrl);
        // Trust authentication ignores a password; it is there to prove it is never printed.
        if (!u.password) u.password = 'not-printed-pw';
        const storeUrl = u.toString();
        const secret = decodeURIComponent(u.password);

        const migrated = await promisify(execFile)(process.execPath, [MAIN, 'migrate', '--store', storeUrl]);
        assert.match(migrated.stdout, /applied to postgres:\/\/.*:\*\*\*@/);
        assert.match(migrated.stdout, /migration 1: initial schema/);
        assert.doesNotMatch(migrated.stdout + migrated.stderr, new RegExp(secret));

        const dirs = range(2).map(() => mkdtempSync(join(tmpdir(), 'writ-pg-node-')));
        const kek = randomBytes(32).toString('base64');
        const nodes = dirs.map((dir) =>
          spawn(process.execPath, [MAIN, '--data-dir', dir, 'serve', '--port', '0', '--store', storeUrl], {
            env: { ...process.env, WRIT_KEK: kek, WRIT_STORE: '' },
            stdio: ['ignore', 'pipe', 'pipe'],
          }),
        );
        const outputs = nodes.map(() => ({ text: '' }));
        try {
          const serving = await Promise.all(
            nodes.map((n, i) => lineMatching(n, outputs[i]!, /writ is serving/)),
          );
          for (const line of serving) {
            const log = JSON.parse(line) as { store: string; address: string; kid: string };
            assert.equal(log.store, storeUrl.replace(`:${u.password}@`, ':***@'));
            const ready = await fetch(`${log.address}/readyz`);
            assert.equal(ready.status, 200);
          }
          const kids = serving.map((l) => (JSON.parse(l) as { kid: string }).kid);
          assert.equal(kids[0], kids[1], 'both nodes sign with the same key');
          const keys = await sql<{ state: string }>(
            databaseUrl,
            'SELECT state FROM signing_keys ORDER BY state',
          );
          assert.deepEqual(
            keys.map((k) => k.state),
            ['active', 'next'],
            'nodes starting together created one key set',
          );
        } finally {
          await Promise.all(
            nodes.map(
              (n) =>
                new Promise<void>((resolve) => {
                  if (n.exitCode !== null || n.signalCode !== null) return resolve();
                  n.once('exit', () => resolve());
                  n.kill('SIGTERM');
                }),
            ),
          );
          for (const d of dirs) rmSync(d, { recursive: true, force: true });
        }
        for (const o of outputs) assert.doesNotMatch(o.text, new RegExp(secret));

        // Both nodes audited their start on one chain, which the offline verifier reads read-only.
        const verified = await promisify(execFile)(process.execPath, [
          MAIN,
          'audit',
          'verify',
          '--store',
          storeUrl,
        ]);
        assert.match(verified.stdout, /^audit chain OK: [1-9]\d* events/);
        // It names the store it verified, the URL without its password.
        assert.match(verified.stdout, /\nstore: PostgreSQL, postgres:\/\/[^\s]*:\*\*\*@127\.0\.0\.1/);
        assert.doesNotMatch(verified.stdout + verified.stderr, new RegExp(secret));
      }));
  });
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
