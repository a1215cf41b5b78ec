import { createHash } from 'node:crypto';
import type { Revocation } from '@writ/sdk/wire';
import pg from 'pg';
import type { AuditCheckpoint, AuditDraft, AuditEvent, AuditQuery } from '../../audit/audit-event.js';
import { type AuditHead, checkHeldHead, linkAuditEvent } from '../../audit/chain.js';
import type { ConsoleSession } from '../../console/console-session.js';
import type { DetectionConfig } from '../../detection/detection-config.js';
import type {
  DetectionControl,
  Finding,
  FindingQuery,
  FindingState,
  StoredBaseline,
  WorkloadRisk,
} from '../../detection/finding.js';
import { StoreUnavailableError } from '../../errors.js';
import type { StreamEvent } from '../../events/stream-event.js';
import type { TrustedIssuer } from '../../federation/trusted-issuer.js';
import type { BreakGlass, BreakGlassQuery, BreakGlassState } from '../../governance/break-glass.js';
import type { CredentialException, ExceptionRecord, ExceptionRuntime } from '../../governance/exception.js';
import type { KeyRecord } from '../../keys/key-record.js';
import type { Person, Team } from '../../people/person.js';
import type { ScimPutResult, ScimRecord, ScimResourceType } from '../../people/scim-record.js';
import {
  POLICY_VERSIONS_KEPT,
  type PolicyVersionSummary,
  type StoredPolicySet,
  type StoredPolicyVersion,
  type StoredResource,
} from '../../policy/policy-set.js';
import type { Operator } from '../../registry/operator.js';
import type { TokenClass } from '../../registry/token-class.js';
import type { Workload, WorkloadRecord, WorkloadState } from '../../registry/workload.js';
import type { NewRevocation } from '../../revocation/new-revocation.js';
import type { QueuedSet, SsfStream } from '../../ssf/stream-record.js';
import type { Task } from '../../tasks/task.js';
import type { WorkloadTemplate } from '../../templates/workload-template.js';
import type { IssuedToken, TokenMatch } from '../../tokens/issued-token.js';
import type { UsageAggregate, UsageScan } from '../../usage/usage-aggregate.js';
import type { VendorKeyRecord } from '../../vendor/vendor-key.js';
import type {
  AppliedConfigFile,
  ConfigFileSelect,
  ConfigFileStamp,
  ConfigFilesListing,
  ConfigFilesVersion,
} from '../config-file-rows.js';
import type { IssuanceWrite } from '../issuance-write.js';
import type { StoredPerson } from '../people-rows.js';
import { leaseAnswer } from '../rate-lease.js';
import {
  byDue,
  type Row,
  revocationAt,
  toAuditEvent,
  toCheckpoint,
  toKeyRecord,
  tokenColumn,
  tokenRowValues,
  toPolicyVersionSummary,
  toRevocation,
  toStreamEvent,
  toTask,
  toToken,
  toVendorKeyRecord,
  toWorkload,
  vendorKeyValues,
} from '../rows.js';
import type { Store, StoreCluster } from '../store.js';
import { writeIssuance } from '../write-issuance.js';
import { PostgresConfigFileOps } from './config-file-ops.js';
import { PostgresConsoleOps } from './console-ops.js';
import { PostgresDetectionOps } from './detection-ops.js';
import { watchEventNotifications } from './event-notifications.js';
import { PostgresGovernanceOps } from './governance-ops.js';
import { IssuanceBatcher, issuanceStatements } from './issuance-batch.js';
import {
  migratePostgres,
  type PostgresMigration,
  pendingPostgresMigrations,
  quoteSchema,
} from './migrations.js';
import { PostgresPeopleOps } from './people-ops.js';
import { RateLeaseBatcher, rateLeaseBatchStatement } from './rate-lease-batch.js';
import { PostgresSignalOps } from './signal-ops.js';

export interface PostgresStoreOptions {
  /** Schema holding Writ's tables; created by the first migration. Default `public`. */
  schema?: string;
  /** Connections in the pool. Default 10. */
  maxConnections?: number;
  /** Apply pending migrations when opening (default). With false, opening fails until `writ migrate` ran. */
  migrate?: boolean;
  /** Read-only sessions and no migrations (`writ audit verify`). */
  readonly?: boolean;
  /** Milliseconds to wait for a connection before the store counts as unavailable. Default 3000. */
  connectTimeoutMs?: number;
  /** Milliseconds a statement may wait for a lock (the write lock included). Default 3000. */
  lockTimeoutMs?: number;
  /**
   * Milliseconds to wait for any answer from the database before the call fails as unavailable and the
   * connection is dropped (a cut or stalled link otherwise hangs until TCP gives up). Default 6000; 0 for
   * none. Longer than `lockTimeoutMs`, so waiting for the write lock ends with the lock timeout first.
   */
  queryTimeoutMs?: number;
  /** Errors of idle pooled connections (the database restarted, say); the pool replaces them. */
  onError?: (err: Error) => void;
  /**
   * Whose clock decides shared times. `database` (default): each statement that compares or writes one
   * reads the database server's clock too (see `sharedTime`), so nodes whose clocks disagree still agree.
   * `caller`: only the `now` each call passes, as on the embedded store; for tests that move a fake
   * clock by hand, never for several nodes.
   */
  time?: 'database' | 'caller';
}

// BIGINT columns hold milliseconds and sequence numbers, all far below 2^53: return numbers, as SQLite does.
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

function createPool(url: string, o: PostgresStoreOptions): pg.Pool {
  const queryTimeout = o.queryTimeoutMs ?? 6000;
  const pool = new pg.Pool({
    connectionString: url,
    max: o.maxConnections ?? 10,
    connectionTimeoutMillis: o.connectTimeoutMs ?? 3000,
    lock_timeout: o.lockTimeoutMs ?? 3000,
    ...(queryTimeout > 0 ? { query_timeout: queryTimeout } : {}),
    // Notice a peer that vanished without closing the connection (a cut link, a killed host).
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // A node that dies or is cut off holding the write lock must not stall the others for long; no
    // transaction of Writ waits between its statements (signing happens before BEGIN).
    idle_in_transaction_session_timeout: 5000,
    application_name: 'writ',
    types: TYPES,
    ...(o.readonly ? { options: '-c default_transaction_read_only=on' } : {}),
  });
  pool.on('error', (err) => o.onError?.(err));
  return pool;
}

/**
 * Opens the cluster store: a `pg` pool on `url`, migrated to this build's schema unless told otherwise.
 *
 * @example const store = await openPostgresStore('postgres://writ@db/writ', { schema: 'writ' });
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<Store> {
  const schema = options.schema ?? 'public';
  const time = options.time ?? 'database';
  const sql = statements(quoteSchema(schema), eventChannel(schema), sharedTime(time));
  // Migrations wait for each other (nodes starting together) longer than any query may: their own pool.
  const setup = createPool(url, { ...options, maxConnections: 1, queryTimeoutMs: 0 });
  try {
    const client = await setup.connect();
    try {
      if (options.readonly) {
        // Nothing to check: a missing table shows up as an unavailable store on first use.
      } else if (options.migrate === false) {
        const pending = await pendingPostgresMigrations(client, schema);
        if (pending.length)
          throw new StoreUnavailableError(
            `postgres store: schema ${schema} lacks migrations ${pending.join(', ')} (run \`writ migrate\`)`,
          );
      } else {
        await migratePostgres(client, schema);
      }
    } finally {
      client.release();
    }
  } catch (err) {
    throw unavailable(err);
  } finally {
    await setup.end().catch(() => undefined);
  }
  const pool = createPool(url, options);
  const cluster: StoreCluster = {
    watchEvents: (wake, onError) =>
      watchEventNotifications({
        url,
        channel: sql.channel,
        connectTimeoutMs: options.connectTimeoutMs ?? 3000,
        wake,
        ...(onError ? { onError } : {}),
      }),
    databaseTime: async () => {
      if (time === 'caller') return undefined;
      try {
        return (await pool.query<{ now: number }>(`SELECT ${DATABASE_NOW} AS now`)).rows[0]!.now;
      } catch (err) {
        throw unavailable(err);
      }
    },
  };
  const store: PostgresStore = new PostgresStore(pool, sql, options.readonly ?? false, cluster);
  store.batcher = new IssuanceBatcher({
    pool,
    sql: issuanceStatements(sql.s, sharedTime(time).earlier),
    alone: (w, held) => store.transaction((tx) => writeIssuance(tx, w, held)),
    fail: unavailable,
  });
  store.leaseBatcher = new RateLeaseBatcher({
    pool,
    text: sql.rateLease,
    fail: unavailable,
  });
  return store;
}

/** `writ migrate`: applies pending migrations and returns them. */
export async function migratePostgresStore(
  url: string,
  options: Pick<PostgresStoreOptions, 'schema' | 'connectTimeoutMs'> = {},
): Promise<PostgresMigration[]> {
  const pool = createPool(url, { ...options, maxConnections: 1, queryTimeoutMs: 0 });
  try {
    const client = await pool.connect();
    try {
      return await migratePostgres(client, options.schema ?? 'public');
    } finally {
      client.release();
    }
  } catch (err) {
    throw unavailable(err);
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** An error the server sent (it has an SQLSTATE): the connection itself is fine. */
function isDatabaseError(err: unknown): boolean {
  return err instanceof pg.DatabaseError;
}

function unavailable(err: unknown): unknown {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`postgres store: ${(err as Error).message ?? String(err)}`, {
    cause: err,
  });
}

/** The LISTEN/NOTIFY channel of a schema's event log (channel names are identifiers of at most 63 bytes). */
function eventChannel(schema: string): string {
  return `writ_events_${createHash('sha256').update(schema).digest('hex').slice(0, 16)}`;
}

/**
 * The database server's clock in milliseconds. `statement_timestamp()`: when the statement arrived, the
 * same value everywhere in one statement (`clock_timestamp()` would move between two uses of it).
 */
const DATABASE_NOW = '(extract(epoch FROM statement_timestamp()) * 1000)::bigint';

/**
 * How statements read shared times, given the caller's `now` in a parameter. Nodes write their own
 * clocks into shared rows and one node's clock may be off: each comparison takes the database's clock
 * too, and whichever of the two is the safe side. An entry is forgotten (a replay `jti`, a revocation, a
 * task lease, a rate bucket's refill) only once both clocks say its time has passed: a node whose clock
 * runs ahead never expires another node's entries early. "Issued before now" is the later of the two: a
 * node whose clock is behind still revokes the tokens other nodes issued a moment ago.
 */
interface SharedTime {
  /** The earlier of the caller's time in `param` and the database's. */
  earlier(param: string): string;
  /** The later of the two. */
  later(param: string): string;
}

function sharedTime(time: 'database' | 'caller'): SharedTime {
  if (time === 'caller') return { earlier: (p) => `${p}::bigint`, later: (p) => `${p}::bigint` };
  return {
    earlier: (p) => `LEAST(${p}::bigint, ${DATABASE_NOW})`,
    later: (p) => `GREATEST(${p}::bigint, ${DATABASE_NOW})`,
  };
}

/** The fixed statements, with the schema and the clock spliced in once. */
function statements(s: string, channel: string, time: SharedTime) {
  return {
    s,
    channel,
    lock: `SELECT 1 FROM ${s}.write_head WHERE id = 1 FOR UPDATE`,
    // The revocation's time comes with its number: the later of the caller's ($1) and the database's.
    nextRevocationSeq: `UPDATE ${s}.write_head SET revocation_seq = revocation_seq + 1 WHERE id = 1
      RETURNING revocation_seq AS seq, ${time.later('$1')} AS at`,
    nextEventSeq: `UPDATE ${s}.write_head SET event_seq = event_seq + 1 WHERE id = 1 RETURNING event_seq AS seq`,
    listWorkloads: `SELECT * FROM ${s}.workloads ORDER BY id`,
    getWorkload: `SELECT * FROM ${s}.workloads WHERE id = $1`,
    putWorkload: `INSERT INTO ${s}.workloads (id, spec, state, updated_at) VALUES ($1, $2, 'active', $3)
      ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at`,
    deleteWorkload: `DELETE FROM ${s}.workloads WHERE id = $1`,
    setWorkloadState: `UPDATE ${s}.workloads SET state = $1, updated_at = $2 WHERE id = $3`,
    listClasses: `SELECT spec FROM ${s}.classes ORDER BY name`,
    putClass: `INSERT INTO ${s}.classes (name, spec) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET spec = excluded.spec`,
    deleteClass: `DELETE FROM ${s}.classes WHERE name = $1`,
    listOperators: `SELECT spec FROM ${s}.operators ORDER BY name`,
    putOperator: `INSERT INTO ${s}.operators (name, spec) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET spec = excluded.spec`,
    deleteOperator: `DELETE FROM ${s}.operators WHERE name = $1`,
    listIssuers: `SELECT spec FROM ${s}.issuers ORDER BY name`,
    putIssuer: `INSERT INTO ${s}.issuers (name, spec) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET spec = excluded.spec`,
    deleteIssuer: `DELETE FROM ${s}.issuers WHERE name = $1`,
    listTemplates: `SELECT spec FROM ${s}.workload_templates ORDER BY id`,
    putTemplate: `INSERT INTO ${s}.workload_templates (id, spec) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET spec = excluded.spec`,
    deleteTemplate: `DELETE FROM ${s}.workload_templates WHERE id = $1`,
    getPolicySet: `SELECT spec FROM ${s}.policy_set WHERE id = 1`,
    putPolicySet: `INSERT INTO ${s}.policy_set (id, spec) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET spec = excluded.spec`,
    putPolicyVersion: `INSERT INTO ${s}.policy_versions (id, counter, created_at, actor, built_in, policies, files)
      VALUES ($1, $2, $3, $4, $5, $6, $7)
      ON CONFLICT (id) DO UPDATE SET counter = excluded.counter, created_at = excluded.created_at,
        actor = excluded.actor, built_in = excluded.built_in, policies = excluded.policies, files = excluded.files`,
    prunePolicyVersions: `DELETE FROM ${s}.policy_versions WHERE id NOT IN
      (SELECT id FROM ${s}.policy_versions ORDER BY counter DESC, id DESC LIMIT $1)`,
    listPolicyVersions: `SELECT id, counter, created_at, actor, built_in, policies FROM ${s}.policy_versions
      ORDER BY counter DESC, id DESC`,
    getPolicyVersion: `SELECT * FROM ${s}.policy_versions WHERE id = $1`,
    listResourceAttributes: `SELECT spec FROM ${s}.resource_attributes ORDER BY id`,
    putResourceAttributes: `INSERT INTO ${s}.resource_attributes (id, spec) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET spec = excluded.spec`,
    deleteResourceAttributes: `DELETE FROM ${s}.resource_attributes WHERE id = $1`,
    // One statement: concurrent first uses of an id conflict on the key, and the loser sees the winner's row.
    consume: `INSERT INTO ${s}.replay AS r (scope, id, expires_at) VALUES ($1, $2, $3)
      ON CONFLICT (scope, id) DO UPDATE SET expires_at = excluded.expires_at WHERE r.expires_at <= ${time.earlier('$4')}`,
    recordToken: `INSERT INTO ${s}.tokens (jti, sub, client_id, cls, aud, scope, kid, tid, iat, exp, fingerprint, ajti)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    getToken: `SELECT * FROM ${s}.tokens WHERE jti = $1`,
    getTokens: `SELECT * FROM ${s}.tokens WHERE jti = ANY($1::text[])`,
    tokensForTask: `SELECT * FROM ${s}.tokens WHERE tid = $1 ORDER BY iat, jti LIMIT $2`,
    createTask: `INSERT INTO ${s}.tasks (id, workload, purpose, labels, opened_by, opened_at, deadline, lease_until, closed_at, close_reason)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    getTask: `SELECT * FROM ${s}.tasks WHERE id = $1`,
    closeTask: `UPDATE ${s}.tasks SET closed_at = $1, close_reason = $2 WHERE id = $3 AND closed_at IS NULL`,
    renewTaskLease: `UPDATE ${s}.tasks SET lease_until = $1 WHERE id = $2 AND closed_at IS NULL`,
    // LEAST ignores a NULL lease: the expression of the tasks_open_due index, so the index serves both.
    dueTasks: `SELECT * FROM ${s}.tasks WHERE closed_at IS NULL AND LEAST(deadline, lease_until) <= ${time.earlier('$1')}
      ORDER BY LEAST(deadline, lease_until), id LIMIT $2`,
    closeDueTasks: `UPDATE ${s}.tasks SET closed_at = $2, close_reason = CASE WHEN deadline <= ${time.earlier('$1')} THEN $4 ELSE $5 END
      WHERE closed_at IS NULL AND id IN (SELECT id FROM ${s}.tasks WHERE closed_at IS NULL AND LEAST(deadline, lease_until) <= ${time.earlier('$1')}
                   ORDER BY LEAST(deadline, lease_until), id LIMIT $3)
      RETURNING *`,
    countOpenTasks: `SELECT count(*) AS n FROM ${s}.tasks WHERE workload = $1 AND closed_at IS NULL`,
    pruneTasks: `DELETE FROM ${s}.tasks WHERE closed_at < $1`,
    latestTaskTokenExpiries: `SELECT tid, max(exp) AS exp FROM ${s}.tokens WHERE tid = ANY($1::text[]) AND exp > $2 GROUP BY tid`,
    addRevocation: `INSERT INTO ${s}.revocations (seq, kind, value, issued_before, created_at, reason, actor, expires_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    listRevocations: `SELECT * FROM ${s}.revocations WHERE seq > $1 AND expires_at > ${time.earlier('$2')} ORDER BY seq LIMIT $3`,
    lastRevocationSeq: `SELECT MAX(seq) AS seq FROM ${s}.revocations`,
    listKeys: `SELECT * FROM ${s}.signing_keys ORDER BY created_at`,
    listVendorKeys: `SELECT * FROM ${s}.vendor_keys ORDER BY name, version`,
    listVendorKeysOf: `SELECT * FROM ${s}.vendor_keys WHERE name = $1 ORDER BY version`,
    putVendorKey: `INSERT INTO ${s}.vendor_keys (name, version, sealed, fingerprint, proxies, created_at, created_by, replaced_at, overlap_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (name, version) DO UPDATE SET proxies = excluded.proxies,
           replaced_at = excluded.replaced_at, overlap_until = excluded.overlap_until`,
    deleteVendorKeys: `DELETE FROM ${s}.vendor_keys WHERE name = $1`,
    deleteVendorKey: `DELETE FROM ${s}.vendor_keys WHERE name = $1 AND version = $2`,
    putKey: `INSERT INTO ${s}.signing_keys (kid, alg, public_jwk, sealed_private_key, state, created_at, activated_at, retired_at, not_after)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
      ON CONFLICT (kid) DO UPDATE SET state = excluded.state, activated_at = excluded.activated_at,
        retired_at = excluded.retired_at, not_after = excluded.not_after`,
    auditHead: `SELECT seq, hash FROM ${s}.audit_events ORDER BY seq DESC LIMIT 1`,
    // The head and the event at $1 (the one the appending node holds), in one round trip under the lock.
    auditHeadAndHeld: `(SELECT seq, hash, true AS head FROM ${s}.audit_events ORDER BY seq DESC LIMIT 1)
      UNION ALL (SELECT seq, hash, false AS head FROM ${s}.audit_events WHERE seq = $1)`,
    appendAudit: `INSERT INTO ${s}.audit_events (seq, ts, type, outcome, actor, subject, jti, data, prev_hash, hash)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    scanAudit: `SELECT * FROM ${s}.audit_events WHERE seq > $1 ORDER BY seq LIMIT $2`,
    addCheckpoint: `INSERT INTO ${s}.audit_checkpoints (seq, hash, ts, kid, jws) VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT (seq) DO NOTHING`,
    listCheckpoints: `SELECT * FROM ${s}.audit_checkpoints ORDER BY seq`,
    // The notification travels with the insert and is delivered when (and only if) the transaction commits.
    appendEvent: `WITH e AS (INSERT INTO ${s}.events (seq, ts, type, data) VALUES ($1, $2, $3, $4) RETURNING seq)
      SELECT pg_notify('${channel}', seq::text) FROM e`,
    readEvents: `SELECT * FROM ${s}.events WHERE seq > $1 ORDER BY seq LIMIT $2`,
    eventBounds: `SELECT MIN(seq) AS first, MAX(seq) AS last FROM ${s}.events`,
    // Keep the newest event so the log's bounds never go back (the counter in write_head guarantees it too).
    trimEvents: `DELETE FROM ${s}.events WHERE ts < $1 AND seq < (SELECT MAX(seq) FROM ${s}.events)`,
    pruneReplay: `DELETE FROM ${s}.replay WHERE expires_at <= ${time.earlier('$1')}`,
    probeWrite: `INSERT INTO ${s}.write_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at`,
    pruneTokens: `DELETE FROM ${s}.tokens WHERE exp <= $1`,
    pruneBuckets: `DELETE FROM ${s}.rate_buckets WHERE full_at <= ${time.earlier('$1')}`,
    // One statement, so concurrent takes of every node queue on the buckets' rows, not on write_head:
    // the batched take (one key or many; the refill clock is the caller's time `$4`, never ahead of the
    // database's). `granted` stays written for a node of the previous release during an upgrade.
    rateLease: rateLeaseBatchStatement(s, time.earlier('$4')),
  };
}
type Statements = ReturnType<typeof statements>;

/**
 * The cluster store. Outside a transaction each call runs on any pooled connection. `transaction` holds
 * one connection from BEGIN to COMMIT and locks the `write_head` row before its first statement, like
 * SQLite's BEGIN IMMEDIATE: transactions of every node are serialized, which the audit chain and the
 * gap-free sequences need, and a read-then-write inside a callback cannot race another node's. Calls
 * that must append atomically (audit, events, revocations) open such a transaction themselves when called
 * outside one.
 *
 * The exception: statements that are atomic on their own and read nothing another transaction decides
 * on (`consume`, `recordToken`, `rateLimit`, `leaseRate`) run before the lock when they come first. Issuance (replay
 * checks, token record, then the audit append) so holds the cluster-wide lock for the append and the
 * commit only, not for every round trip of the transaction.
 */
class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  readonly #sql: Statements;
  readonly #readonly: boolean;
  /** Set on the store a transaction callback receives. */
  readonly #client: pg.PoolClient | undefined;
  readonly cluster: StoreCluster;
  /** Group commit of issuances (set on the pool's store, not on a transaction's). */
  batcher: IssuanceBatcher | undefined;
  /** Rate-bucket takes of one turn in one statement (set on the pool's store, not on a transaction's). */
  leaseBatcher: RateLeaseBatcher | undefined;
  #ended = false;
  /** In a transaction: BEGIN has been sent; the write lock has been asked for. */
  #begun = false;
  #locked = false;
  #signalOps: PostgresSignalOps | undefined;
  #detectionOps: PostgresDetectionOps | undefined;
  #governanceOps: PostgresGovernanceOps | undefined;
  #peopleOps: PostgresPeopleOps | undefined;
  #consoleOps: PostgresConsoleOps | undefined;
  #configFileOps: PostgresConfigFileOps | undefined;

  constructor(
    pool: pg.Pool,
    sql: Statements,
    readonly: boolean,
    cluster: StoreCluster,
    client?: pg.PoolClient,
  ) {
    this.#pool = pool;
    this.#sql = sql;
    this.#readonly = readonly;
    this.cluster = cluster;
    this.#client = client;
  }

  /** `lockFree`: may run in a transaction before the write lock (see the class comment). */
  async #query(text: string, values: unknown[] = [], lockFree = false): Promise<pg.QueryResult<Row>> {
    if (this.#ended) throw new Error('the transaction this store belonged to has ended');
    try {
      if (this.#client) await this.#enter(!lockFree && !this.#readonly);
      return await (this.#client ?? this.#pool).query<Row>(text, values);
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** In a transaction: BEGIN before the first statement, the write lock before the first that needs it. */
  async #enter(lock: boolean): Promise<void> {
    const client = this.#client!;
    if (!this.#begun) {
      this.#begun = true;
      this.#locked = lock;
      // One round trip: BEGIN and the write lock travel together (simple protocol, no parameters).
      await client.query(lock ? `BEGIN; ${this.#sql.lock}` : 'BEGIN');
    } else if (lock && !this.#locked) {
      this.#locked = true;
      await client.query(this.#sql.lock);
    }
  }

  async #rows(text: string, values: unknown[] = [], lockFree = false): Promise<Row[]> {
    return (await this.#query(text, values, lockFree)).rows;
  }

  async #changes(text: string, values: unknown[] = [], lockFree = false): Promise<number> {
    return (await this.#query(text, values, lockFree)).rowCount ?? 0;
  }

  async transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    // Already inside a transaction: run in it (the outer one commits or rolls back).
    if (this.#client) return fn(this);
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw unavailable(err);
    }
    const tx = new PostgresStore(this.#pool, this.#sql, this.#readonly, this.cluster, client);
    let broken: Error | undefined;
    // A checked-out client reports a dropped link as an 'error' event when no statement is running
    // (between two of them): without a listener that would end the process.
    const onError = (err: Error) => {
      broken ??= err;
    };
    client.on('error', onError);
    try {
      const result = await fn(tx);
      // A callback that ran no statement opened nothing.
      if (tx.#begun) await tx.#query('COMMIT', [], true);
      return result;
    } catch (err) {
      if (err instanceof StoreUnavailableError && !isDatabaseError(err.cause)) {
        // The link failed or went silent: a ROLLBACK would wait behind the unanswered statement. Dropping
        // the connection ends the transaction on the server (nothing of it was committed).
        broken = err;
        throw err;
      }
      try {
        if (tx.#begun) await client.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = rollbackErr as Error; // the connection is unusable: the pool drops it
      }
      throw err;
    } finally {
      tx.#ended = true;
      client.off('error', onError);
      client.release(broken);
    }
  }

  async listWorkloads(): Promise<WorkloadRecord[]> {
    return (await this.#rows(this.#sql.listWorkloads)).map(toWorkload);
  }
  async getWorkload(id: string): Promise<WorkloadRecord | undefined> {
    const r = (await this.#rows(this.#sql.getWorkload, [id]))[0];
    return r ? toWorkload(r) : undefined;
  }
  async putWorkload(w: Workload, now: number): Promise<void> {
    await this.#query(this.#sql.putWorkload, [w.id, JSON.stringify(w), now]);
  }
  async deleteWorkload(id: string): Promise<void> {
    await this.#query(this.#sql.deleteWorkload, [id]);
  }
  async setWorkloadState(id: string, state: WorkloadState, now: number): Promise<boolean> {
    return (await this.#changes(this.#sql.setWorkloadState, [state, now, id])) === 1;
  }

  async listClasses(): Promise<TokenClass[]> {
    return (await this.#rows(this.#sql.listClasses)).map(
      (r) => JSON.parse(r['spec'] as string) as TokenClass,
    );
  }
  async putClass(c: TokenClass): Promise<void> {
    await this.#query(this.#sql.putClass, [c.name, JSON.stringify(c)]);
  }
  async deleteClass(name: string): Promise<void> {
    await this.#query(this.#sql.deleteClass, [name]);
  }

  async listOperators(): Promise<Operator[]> {
    return (await this.#rows(this.#sql.listOperators)).map(
      (r) => JSON.parse(r['spec'] as string) as Operator,
    );
  }
  async putOperator(o: Operator): Promise<void> {
    await this.#query(this.#sql.putOperator, [o.name, JSON.stringify(o)]);
  }
  async deleteOperator(name: string): Promise<void> {
    await this.#query(this.#sql.deleteOperator, [name]);
  }

  async listIssuers(): Promise<TrustedIssuer[]> {
    return (await this.#rows(this.#sql.listIssuers)).map(
      (r) => JSON.parse(r['spec'] as string) as TrustedIssuer,
    );
  }
  async putIssuer(i: TrustedIssuer): Promise<void> {
    await this.#query(this.#sql.putIssuer, [i.name, JSON.stringify(i)]);
  }
  async deleteIssuer(name: string): Promise<void> {
    await this.#query(this.#sql.deleteIssuer, [name]);
  }

  async listTemplates(): Promise<WorkloadTemplate[]> {
    return (await this.#rows(this.#sql.listTemplates)).map(
      (r) => JSON.parse(r['spec'] as string) as WorkloadTemplate,
    );
  }
  async putTemplate(t: WorkloadTemplate): Promise<void> {
    await this.#query(this.#sql.putTemplate, [t.id, JSON.stringify(t)]);
  }
  async deleteTemplate(id: string): Promise<void> {
    await this.#query(this.#sql.deleteTemplate, [id]);
  }

  async getPolicySet(): Promise<StoredPolicySet | undefined> {
    const r = (await this.#rows(this.#sql.getPolicySet))[0];
    return r ? (JSON.parse(r['spec'] as string) as StoredPolicySet) : undefined;
  }
  async putPolicySet(p: StoredPolicySet): Promise<void> {
    await this.#query(this.#sql.putPolicySet, [JSON.stringify(p)]);
  }
  async putPolicyVersion(v: StoredPolicyVersion): Promise<void> {
    await this.#query(this.#sql.putPolicyVersion, [
      v.id,
      v.counter,
      v.created,
      v.actor,
      v.builtIn,
      v.policies,
      JSON.stringify(v.files),
    ]);
    await this.#query(this.#sql.prunePolicyVersions, [POLICY_VERSIONS_KEPT]);
  }
  async listPolicyVersions(): Promise<PolicyVersionSummary[]> {
    return (await this.#rows(this.#sql.listPolicyVersions)).map(toPolicyVersionSummary);
  }
  async getPolicyVersion(id: string): Promise<StoredPolicyVersion | undefined> {
    const r = (await this.#rows(this.#sql.getPolicyVersion, [id]))[0];
    return r ? { ...toPolicyVersionSummary(r), files: JSON.parse(r['files'] as string) } : undefined;
  }
  async listResourceAttributes(): Promise<StoredResource[]> {
    return (await this.#rows(this.#sql.listResourceAttributes)).map(
      (r) => JSON.parse(r['spec'] as string) as StoredResource,
    );
  }
  async putResourceAttributes(r: StoredResource): Promise<void> {
    await this.#query(this.#sql.putResourceAttributes, [r.id, JSON.stringify(r)]);
  }
  async deleteResourceAttributes(id: string): Promise<boolean> {
    return (await this.#changes(this.#sql.deleteResourceAttributes, [id])) === 1;
  }

  async consume(scope: string, id: string, expiresAt: number, now: number): Promise<boolean> {
    return (await this.#changes(this.#sql.consume, [scope, id, expiresAt, now], true)) === 1;
  }

  async rateLimit(key: string, ratePerSecond: number, burst: number, now: number): Promise<number> {
    const lease = await this.leaseRate(key, ratePerSecond, burst, 1, now);
    return lease.granted >= 1 ? 0 : lease.wait;
  }

  async leaseRate(key: string, ratePerSecond: number, burst: number, want: number, now: number) {
    if (!this.#client && this.leaseBatcher)
      return this.leaseBatcher.take(
        key,
        ratePerSecond,
        Math.max(1, burst),
        Math.max(1, Math.floor(want)),
        now,
      );
    // In a transaction: the batched statement with one key.
    const r = (
      await this.#rows(
        this.#sql.rateLease,
        [[key], ratePerSecond, Math.max(1, burst), now, [Math.max(1, Math.floor(want))]],
        true,
      )
    )[0]!;
    return leaseAnswer(Number(r['taken']), r['tokens'] as number, ratePerSecond);
  }

  async recordToken(t: IssuedToken): Promise<void> {
    await this.#query(this.#sql.recordToken, tokenRowValues(t), true);
  }
  async getToken(jti: string): Promise<IssuedToken | undefined> {
    const r = (await this.#rows(this.#sql.getToken, [jti]))[0];
    return r ? toToken(r) : undefined;
  }
  async getTokens(jtis: readonly string[]): Promise<IssuedToken[]> {
    if (jtis.length === 0) return [];
    return (await this.#rows(this.#sql.getTokens, [jtis])).map(toToken);
  }
  async tokensForTask(tid: string, limit: number): Promise<IssuedToken[]> {
    return (await this.#rows(this.#sql.tokensForTask, [tid, limit])).map(toToken);
  }

  async latestTokenExpiry(match: TokenMatch, after: number): Promise<number | undefined> {
    const iat = match.issuedBefore === null ? '' : ' AND iat <= $3';
    const r = await this.#rows(
      `SELECT max(exp) AS exp FROM ${this.#sql.s}.tokens WHERE ${tokenColumn(match.kind)} = $1 AND exp > $2${iat}`,
      [match.value, after, ...(match.issuedBefore === null ? [] : [match.issuedBefore])],
    );
    const exp = r[0]?.['exp'];
    return exp === null || exp === undefined ? undefined : Number(exp);
  }
  async latestTaskTokenExpiries(tids: string[], after: number): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (tids.length === 0) return out;
    for (const r of await this.#rows(this.#sql.latestTaskTokenExpiries, [tids, after]))
      out.set(r['tid'] as string, Number(r['exp']));
    return out;
  }
  async createTask(t: Task): Promise<void> {
    await this.#query(this.#sql.createTask, [
      t.id,
      t.workload,
      t.purpose,
      JSON.stringify(t.labels),
      t.openedBy,
      t.openedAt,
      t.deadline,
      t.leaseUntil,
      t.closedAt,
      t.closeReason,
    ]);
  }
  async getTask(id: string): Promise<Task | undefined> {
    const r = (await this.#rows(this.#sql.getTask, [id]))[0];
    return r ? toTask(r) : undefined;
  }
  async closeTask(id: string, at: number, reason: string): Promise<boolean> {
    return (await this.#changes(this.#sql.closeTask, [at, reason, id])) === 1;
  }
  async renewTaskLease(id: string, until: number): Promise<boolean> {
    return (await this.#changes(this.#sql.renewTaskLease, [until, id])) === 1;
  }
  async listTasks(q: { workload?: string; open?: boolean; limit: number }): Promise<Task[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.workload !== undefined) {
      args.push(q.workload);
      where.push(`workload = $${args.length}`);
    }
    if (q.open !== undefined) where.push(q.open ? 'closed_at IS NULL' : 'closed_at IS NOT NULL');
    args.push(q.limit);
    return (
      await this.#rows(
        `SELECT * FROM ${this.#sql.s}.tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY opened_at DESC LIMIT $${args.length}`,
        args,
      )
    ).map(toTask);
  }
  async dueTasks(now: number, limit: number): Promise<Task[]> {
    return (await this.#rows(this.#sql.dueTasks, [now, limit])).map(toTask);
  }

  async countOpenTasks(workload: string): Promise<number> {
    return Number((await this.#rows(this.#sql.countOpenTasks, [workload]))[0]!['n']);
  }
  async pruneTasks(closedBefore: number): Promise<number> {
    return this.#changes(this.#sql.pruneTasks, [closedBefore]);
  }
  async closeDueTasks(
    now: number,
    at: number,
    limit: number,
    reasons: { deadline: string; lease: string },
  ): Promise<Task[]> {
    const rows = await this.#rows(this.#sql.closeDueTasks, [now, at, limit, reasons.deadline, reasons.lease]);
    return rows.map(toTask).sort(byDue);
  }

  async addRevocation(r: NewRevocation): Promise<Revocation> {
    if (!this.#client) return this.transaction((tx) => tx.addRevocation(r));
    const head = (await this.#rows(this.#sql.nextRevocationSeq, [r.created_at]))[0]!;
    const stored = revocationAt(r, head['seq'] as number, head['at'] as number);
    await this.#query(this.#sql.addRevocation, [
      stored.seq,
      stored.kind,
      stored.value,
      stored.issued_before,
      stored.created_at,
      stored.reason,
      r.actor,
      stored.expires_at,
    ]);
    return stored;
  }
  async listRevocations(afterSeq: number, now: number, limit?: number): Promise<Revocation[]> {
    // LIMIT NULL is no limit.
    return (await this.#rows(this.#sql.listRevocations, [afterSeq, now, limit ?? null])).map(toRevocation);
  }
  async lastRevocationSeq(): Promise<number> {
    const r = (await this.#rows(this.#sql.lastRevocationSeq))[0]!;
    return (r['seq'] as number | null) ?? 0;
  }

  async listKeys(): Promise<KeyRecord[]> {
    return (await this.#rows(this.#sql.listKeys)).map(toKeyRecord);
  }
  async listVendorKeys(name?: string): Promise<VendorKeyRecord[]> {
    const rows =
      name === undefined
        ? await this.#rows(this.#sql.listVendorKeys)
        : await this.#rows(this.#sql.listVendorKeysOf, [name]);
    return rows.map(toVendorKeyRecord);
  }
  async putVendorKey(k: VendorKeyRecord): Promise<void> {
    await this.#query(this.#sql.putVendorKey, vendorKeyValues(k));
  }
  async deleteVendorKeys(name: string, version?: number): Promise<number> {
    return version === undefined
      ? await this.#changes(this.#sql.deleteVendorKeys, [name])
      : await this.#changes(this.#sql.deleteVendorKey, [name, version]);
  }
  async putKey(k: KeyRecord): Promise<void> {
    await this.#query(this.#sql.putKey, [
      k.kid,
      k.alg,
      JSON.stringify(k.publicJwk),
      k.sealedPrivateKey,
      k.state,
      k.createdAt,
      k.activatedAt,
      k.retiredAt,
      k.notAfter,
    ]);
  }

  /** The head, after checking `held` against the store (inside the transaction, so under the lock). */
  async #auditHead(held: AuditHead | undefined): Promise<AuditHead | undefined> {
    if (!held) return (await this.#rows(this.#sql.auditHead))[0] as AuditHead | undefined;
    const rows = await this.#rows(this.#sql.auditHeadAndHeld, [held.seq]);
    const head = rows.find((r) => r['head'] === true);
    const at = rows.find((r) => r['head'] === false);
    const top = head ? { seq: Number(head['seq']), hash: head['hash'] as string } : undefined;
    checkHeldHead(held, at?.['hash'] as string | undefined, top);
    return top;
  }
  async appendAudit(e: AuditDraft, held?: AuditHead): Promise<AuditEvent> {
    if (!this.#client) return this.transaction((tx) => tx.appendAudit(e, held));
    // The transaction holds the write lock: the head cannot move until it commits.
    const head = await this.#auditHead(held);
    const event = linkAuditEvent(head, e);
    await this.#query(this.#sql.appendAudit, [
      event.seq,
      e.ts,
      e.type,
      e.outcome,
      e.actor,
      e.subject ?? null,
      e.jti ?? null,
      JSON.stringify(e.data),
      event.prevHash,
      event.hash,
    ]);
    return event;
  }
  async appendAuditBatch(drafts: AuditDraft[], held?: AuditHead): Promise<AuditEvent[]> {
    if (drafts.length === 0) return [];
    if (!this.#client) return this.transaction((tx) => tx.appendAuditBatch(drafts, held));
    let head = await this.#auditHead(held);
    const events: AuditEvent[] = [];
    for (const d of drafts) {
      const event = linkAuditEvent(head, d);
      events.push(event);
      head = event;
    }
    // One INSERT of many rows, in pages well under PostgreSQL's 65,535 parameters.
    for (let i = 0; i < events.length; i += 1000) {
      const page = events.slice(i, i + 1000);
      const values: unknown[] = [];
      const rows = page.map((e) => {
        const at = values.length;
        values.push(e.seq, e.ts, e.type, e.outcome, e.actor, e.subject ?? null, e.jti ?? null);
        values.push(JSON.stringify(e.data), e.prevHash, e.hash);
        return `(${Array.from({ length: 10 }, (_, k) => `$${at + k + 1}`).join(', ')})`;
      });
      await this.#query(
        `INSERT INTO ${this.#sql.s}.audit_events (seq, ts, type, outcome, actor, subject, jti, data, prev_hash, hash)
         VALUES ${rows.join(', ')}`,
        values,
      );
    }
    return events;
  }
  recordIssuance(w: IssuanceWrite, held?: AuditHead): Promise<AuditEvent> {
    if (this.#client || !this.batcher) return this.transaction((tx) => writeIssuance(tx, w, held));
    return this.batcher.submit(w, held);
  }
  async queryAudit(q: AuditQuery): Promise<AuditEvent[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (value: unknown, sql: (p: string) => string) => {
      if (value === undefined) return;
      args.push(value);
      where.push(sql(`$${args.length}`));
    };
    add(q.afterSeq, (p) => `seq > ${p}`);
    add(q.workload, (p) => `(actor = ${p} OR subject = ${p})`);
    add(q.jti, (p) => `jti = ${p}`);
    add(q.type, (p) => `type = ${p}`);
    add(q.since, (p) => `ts >= ${p}`);
    add(q.until, (p) => `ts < ${p}`);
    args.push(q.limit);
    return (
      await this.#rows(
        `SELECT * FROM ${this.#sql.s}.audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY seq ${q.order === 'desc' ? 'DESC' : 'ASC'} LIMIT $${args.length}`,
        args,
      )
    ).map(toAuditEvent);
  }
  async scanAudit(afterSeq: number, limit: number): Promise<AuditEvent[]> {
    return (await this.#rows(this.#sql.scanAudit, [afterSeq, limit])).map(toAuditEvent);
  }
  async auditHead(): Promise<{ seq: number; hash: string } | undefined> {
    const r = (await this.#rows(this.#sql.auditHead))[0];
    return r ? { seq: r['seq'] as number, hash: r['hash'] as string } : undefined;
  }
  async addCheckpoint(c: AuditCheckpoint): Promise<void> {
    await this.#query(this.#sql.addCheckpoint, [c.seq, c.hash, c.ts, c.kid, c.jws]);
  }
  async listCheckpoints(): Promise<AuditCheckpoint[]> {
    return (await this.#rows(this.#sql.listCheckpoints)).map(toCheckpoint);
  }

  async appendEvent(e: Omit<StreamEvent, 'seq'>): Promise<StreamEvent> {
    if (!this.#client) return this.transaction((tx) => tx.appendEvent(e));
    // Numbered under the write lock, so seq N+1 cannot commit before N: a reader never skips one.
    const seq = (await this.#rows(this.#sql.nextEventSeq))[0]!['seq'] as number;
    await this.#query(this.#sql.appendEvent, [seq, e.ts, e.type, JSON.stringify(e.data)]);
    return { ...e, seq };
  }
  async readEvents(afterSeq: number, limit: number): Promise<StreamEvent[]> {
    return (await this.#rows(this.#sql.readEvents, [afterSeq, limit])).map(toStreamEvent);
  }
  async eventBounds(): Promise<{ first: number; last: number }> {
    const r = (await this.#rows(this.#sql.eventBounds))[0]!;
    return { first: (r['first'] as number | null) ?? 0, last: (r['last'] as number | null) ?? 0 };
  }
  async trimEvents(beforeTs: number): Promise<number> {
    return this.#changes(this.#sql.trimEvents, [beforeTs]);
  }

  get #signals(): PostgresSignalOps {
    this.#signalOps ??= new PostgresSignalOps(this.#sql.s, (text, values) => this.#query(text, values));
    return this.#signalOps;
  }
  addUsage(rows: UsageAggregate[]): Promise<void> {
    return this.#signals.addUsage(rows);
  }
  usageForToken(jti: string, limit: number): Promise<UsageAggregate[]> {
    return this.#signals.usageForToken(jti, limit);
  }
  pruneUsage(beforeMs: number): Promise<number> {
    return this.#signals.pruneUsage(beforeMs);
  }
  scanUsage(q: UsageScan): Promise<UsageAggregate[]> {
    return this.#signals.scanUsage(q);
  }
  putSsfStream(st: SsfStream): Promise<void> {
    return this.#signals.putSsfStream(st);
  }
  getSsfStream(id: string): Promise<SsfStream | undefined> {
    return this.#signals.getSsfStream(id);
  }
  listSsfStreams(owner?: string): Promise<SsfStream[]> {
    return this.#signals.listSsfStreams(owner);
  }
  deleteSsfStream(id: string): Promise<boolean> {
    return this.#signals.deleteSsfStream(id);
  }
  enqueueSsfSets(
    sets: Array<Omit<QueuedSet, 'attempts' | 'lastError'>>,
    maxPerStream: number,
  ): Promise<Array<{ streamId: string; dropped: number }>> {
    return this.#signals.enqueueSsfSets(sets, maxPerStream);
  }
  pendingSsfSets(streamId: string, limit: number): Promise<QueuedSet[]> {
    return this.#signals.pendingSsfSets(streamId, limit);
  }
  ackSsfSets(streamId: string, jtis: string[]): Promise<number> {
    return this.#signals.ackSsfSets(streamId, jtis);
  }
  claimSsfSet(streamId: string, now: number, leaseUntil: number): Promise<QueuedSet | undefined> {
    return this.#signals.claimSsfSet(streamId, now, leaseUntil);
  }
  deferSsfSet(streamId: string, jti: string, nextAttemptAt: number, lastError: string): Promise<void> {
    return this.#signals.deferSsfSet(streamId, jti, nextAttemptAt, lastError);
  }

  get #console(): PostgresConsoleOps {
    this.#consoleOps ??= new PostgresConsoleOps(this.#sql.s, (text, values) => this.#query(text, values));
    return this.#consoleOps;
  }
  putConsoleSession(c: ConsoleSession): Promise<void> {
    return this.#console.putConsoleSession(c);
  }
  getConsoleSession(idHash: string): Promise<ConsoleSession | undefined> {
    return this.#console.getConsoleSession(idHash);
  }
  touchConsoleSession(idHash: string, at: number): Promise<boolean> {
    return this.#console.touchConsoleSession(idHash, at);
  }
  deleteConsoleSession(idHash: string): Promise<boolean> {
    return this.#console.deleteConsoleSession(idHash);
  }
  get #configFiles(): PostgresConfigFileOps {
    this.#configFileOps ??= new PostgresConfigFileOps(this.#sql.s, (text, values) =>
      this.#query(text, values),
    );
    return this.#configFileOps;
  }
  listConfigFiles(select?: ConfigFileSelect): Promise<AppliedConfigFile[]> {
    return this.#configFiles.listConfigFiles(select);
  }
  listConfigFileChanges(since?: ConfigFilesVersion): Promise<ConfigFilesListing | undefined> {
    return this.#configFiles.listConfigFileChanges(since);
  }
  // A change of the record takes a version: in a transaction holding the write lock (see
  // PostgresConfigFileOps), its own when the caller has none.
  stampConfigFiles(stamps: readonly ConfigFileStamp[]): Promise<void> {
    if (!this.#client) return this.transaction((tx) => tx.stampConfigFiles(stamps));
    return this.#configFiles.stampConfigFiles(stamps);
  }
  putConfigFiles(files: readonly AppliedConfigFile[]): Promise<void> {
    if (!this.#client) return this.transaction((tx) => tx.putConfigFiles(files));
    return this.#configFiles.putConfigFiles(files);
  }
  deleteConfigFiles(paths: readonly string[] | 'all'): Promise<void> {
    if (!this.#client) return this.transaction((tx) => tx.deleteConfigFiles(paths));
    return this.#configFiles.deleteConfigFiles(paths);
  }

  get #people(): PostgresPeopleOps {
    this.#peopleOps ??= new PostgresPeopleOps(this.#sql.s, (text, values) => this.#query(text, values));
    return this.#peopleOps;
  }
  listPeople(): Promise<StoredPerson[]> {
    return this.#people.listPeople();
  }
  putPerson(p: Person, now: number): Promise<void> {
    return this.#people.putPerson(p, now);
  }
  deletePerson(id: string): Promise<void> {
    return this.#people.deletePerson(id);
  }
  listTeams(): Promise<Team[]> {
    return this.#people.listTeams();
  }
  putTeam(t: Team): Promise<void> {
    return this.#people.putTeam(t);
  }
  deleteTeam(id: string): Promise<void> {
    return this.#people.deleteTeam(id);
  }
  listScimResources(type: ScimResourceType): Promise<ScimRecord[]> {
    return this.#people.listScimResources(type);
  }
  getScimResource(type: ScimResourceType, id: string): Promise<ScimRecord | undefined> {
    return this.#people.getScimResource(type, id);
  }
  findScimResource(type: ScimResourceType, name: string): Promise<ScimRecord | undefined> {
    return this.#people.findScimResource(type, name);
  }
  putScimResource(r: ScimRecord, expectedVersion: number | undefined): Promise<ScimPutResult> {
    return this.#people.putScimResource(r, expectedVersion);
  }
  get #detection(): PostgresDetectionOps {
    this.#detectionOps ??= new PostgresDetectionOps(this.#sql.s, (text, values) => this.#query(text, values));
    return this.#detectionOps;
  }
  listBaselines(): Promise<StoredBaseline[]> {
    return this.#detection.listBaselines();
  }
  putBaselines(rows: StoredBaseline[]): Promise<void> {
    return this.#detection.putBaselines(rows);
  }
  listRisks(): Promise<WorkloadRisk[]> {
    return this.#detection.listRisks();
  }
  putRisk(r: WorkloadRisk): Promise<void> {
    return this.#detection.putRisk(r);
  }
  addFinding(f: Finding): Promise<void> {
    return this.#detection.addFinding(f);
  }
  getFinding(id: string): Promise<Finding | undefined> {
    return this.#detection.getFinding(id);
  }
  listFindings(q: FindingQuery): Promise<Finding[]> {
    return this.#detection.listFindings(q);
  }
  setFindingState(id: string, state: FindingState, by: string, at: number, note: string): Promise<boolean> {
    return this.#detection.setFindingState(id, state, by, at, note);
  }
  getDetectionControl(): Promise<DetectionControl | undefined> {
    return this.#detection.getDetectionControl();
  }
  putDetectionControl(c: DetectionControl): Promise<void> {
    return this.#detection.putDetectionControl(c);
  }
  getDetectionConfig(): Promise<DetectionConfig | undefined> {
    return this.#detection.getDetectionConfig();
  }
  putDetectionConfig(c: DetectionConfig, at: number): Promise<void> {
    return this.#detection.putDetectionConfig(c, at);
  }

  followerPosition(name: string): Promise<number | undefined> {
    return this.#signals.followerPosition(name);
  }
  setFollowerPosition(name: string, seq: number): Promise<void> {
    return this.#signals.setFollowerPosition(name, seq);
  }

  get #governance(): PostgresGovernanceOps {
    this.#governanceOps ??= new PostgresGovernanceOps(this.#sql.s, (text, values) =>
      this.#query(text, values),
    );
    return this.#governanceOps;
  }
  listExceptions(): Promise<ExceptionRecord[]> {
    return this.#governance.listExceptions();
  }
  getException(id: string): Promise<ExceptionRecord | undefined> {
    return this.#governance.getException(id);
  }
  putException(e: CredentialException): Promise<void> {
    return this.#governance.putException(e);
  }
  deleteException(id: string): Promise<void> {
    return this.#governance.deleteException(id);
  }
  setExceptionRuntime(id: string, runtime: ExceptionRuntime, expected: ExceptionRuntime): Promise<boolean> {
    return this.#governance.setExceptionRuntime(id, runtime, expected);
  }
  createBreakGlass(g: BreakGlass): Promise<void> {
    return this.#governance.createBreakGlass(g);
  }
  getBreakGlass(id: string): Promise<BreakGlass | undefined> {
    return this.#governance.getBreakGlass(id);
  }
  listBreakGlass(q: BreakGlassQuery): Promise<BreakGlass[]> {
    return this.#governance.listBreakGlass(q);
  }
  updateBreakGlass(g: BreakGlass, expected: BreakGlassState): Promise<boolean> {
    return this.#governance.updateBreakGlass(g, expected);
  }

  async prune(now: number): Promise<number> {
    const a = await this.#changes(this.#sql.pruneReplay, [now]);
    const b = await this.#changes(this.#sql.pruneTokens, [Math.floor(now / 1000) - 86_400]);
    const c = await this.#changes(this.#sql.pruneBuckets, [now]);
    return a + b + c + (await this.#console.pruneConsoleSessions(now));
  }
  async ping(): Promise<void> {
    await this.#query('SELECT 1');
  }
  async probeWrite(now: number): Promise<void> {
    await this.#query(this.#sql.probeWrite, [now]);
  }
  async close(): Promise<void> {
    if (this.#client) throw new Error('close the store, not the transaction');
    if (!this.#pool.ended) await this.#pool.end();
  }
}
