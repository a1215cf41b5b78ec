import type { Revocation } from '@writ/sdk/wire';
import Database from 'better-sqlite3';
import type { AuditCheckpoint, AuditDraft, AuditEvent, AuditQuery } from '../../audit/audit-event.js';
import { AuditChainBrokenError, type AuditHead, checkHeldHead, linkAuditEvent } from '../../audit/chain.js';
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
import type { ModeTightened } from '../../file-modes.js';
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
  ConfigFilesVersion,
} from '../config-file-rows.js';
import { IssuanceRefusedError, type IssuanceWrite } from '../issuance-write.js';
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
import type { Store } from '../store.js';
import { writeIssuance } from '../write-issuance.js';
import { SqliteConfigFileOps } from './config-file-ops.js';
import { SqliteConsoleOps } from './console-ops.js';
import { SqliteDetectionOps } from './detection-ops.js';
import { SqliteGovernanceOps } from './governance-ops.js';
import { SQLITE_MIGRATIONS } from './migrations.js';
import { ownerOnlyAfterOpen, ownerOnlyBeforeOpen } from './owner-only-files.js';
import { SqlitePeopleOps } from './people-ops.js';
import { SqliteSignalOps } from './signal-ops.js';
import {
  WAL_CHECKPOINT_DEFAULTS,
  WalCheckpointer,
  type WalCheckpointerStats,
  type WalCheckpointOptions,
} from './wal-checkpointer.js';

export interface SqliteStoreOptions {
  /** Database file, or ':memory:'. */
  path: string;
  readonly?: boolean;
  /** Told of each store file (database, -wal, -shm) found readable by others and narrowed to 0600. */
  onModeTightened?: (t: ModeTightened) => void;
  /**
   * Checkpoints in a worker thread (wal-checkpointer.ts; the default for a writable file), with these
   * settings changed; false: SQLite's automatic checkpoint on the server's connection.
   */
  walCheckpoint?: Partial<WalCheckpointOptions> | false;
  /** Told when the checkpointer thread is given up (SQLite's automatic checkpoint then takes over). */
  onError?: (err: Error) => void;
}

/**
 * The embedded store: better-sqlite3 in WAL mode. One connection; every operation is serialized through
 * a promise queue so an open transaction never sees another request's statements.
 */
export function openSqliteStore(options: SqliteStoreOptions): Store {
  // A read-only open (writ audit) creates nothing and leaves modes to the server that owns the files.
  const owned = options.path !== ':memory:' && !options.readonly;
  const tightened = owned ? ownerOnlyBeforeOpen(options.path) : [];
  const db = new Database(options.path, {
    readonly: options.readonly ?? false,
    fileMustExist: options.readonly ?? false,
  });
  if (!options.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 2000');
    // Random keys (jti) spread index writes over many pages: keep them in memory rather than re-read them.
    db.pragma('cache_size = -65536');
    migrate(db);
  }
  if (owned) tightened.push(...ownerOnlyAfterOpen(options.path));
  for (const t of tightened) options.onModeTightened?.(t);
  const walCheckpoint =
    owned && options.walCheckpoint !== false
      ? { ...WAL_CHECKPOINT_DEFAULTS, ...options.walCheckpoint }
      : undefined;
  return new SqliteStore(
    db,
    walCheckpoint && { path: options.path, options: walCheckpoint, onError: options.onError },
  );
}

/** Applies pending migrations to the store file (creating it 0600); returns the versions applied. */
export function migrateSqliteStore(
  path: string,
  onModeTightened: (t: ModeTightened) => void = () => {},
): number[] {
  const tightened = path !== ':memory:' ? ownerOnlyBeforeOpen(path) : [];
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    return migrate(db);
  } finally {
    db.close();
    for (const t of tightened) onModeTightened(t);
  }
}

function migrate(db: Database.Database): number[] {
  const applied: number[] = [];
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < SQLITE_MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(SQLITE_MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
    applied.push(v + 1);
  }
  return applied;
}

/** The audit chain as a group commit's issuances left it (`SqliteOps.writeIssuanceNow`). */
interface IssuanceChain {
  head: AuditHead | undefined;
  /** Whether `head` was read (or written) in this transaction since the last callback ran. */
  known: boolean;
  /** The held event last checked against the store in this transaction. */
  checked: AuditHead | undefined;
}

/** When an open task falls due: the expression of the tasks_open_due index, so the index serves it. */
const SQLITE_DUE = 'min(deadline, ifnull(lease_until, deadline))';

/** A transaction waiting for the next group commit: a callback, or an issuance's writes. */
interface PendingTx {
  fn?: (tx: Store) => Promise<unknown>;
  issuance?: { write: IssuanceWrite; held: AuditHead | undefined };
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly #ops: SqliteOps;
  #queue: Promise<unknown> = Promise.resolve();
  /** Transactions waiting for the next group commit. */
  #batch: PendingTx[] | undefined;
  readonly #begin: Database.Statement;
  readonly #commit: Database.Statement;
  readonly #savepoint: Database.Statement;
  readonly #release: Database.Statement;
  readonly #rollbackTo: Database.Statement;

  readonly #checkpointer: WalCheckpointer | undefined;

  constructor(
    db: Database.Database,
    walCheckpoint?: {
      path: string;
      options: WalCheckpointOptions;
      onError: ((err: Error) => void) | undefined;
    },
  ) {
    this.#db = db;
    this.#ops = new SqliteOps(db);
    this.#begin = db.prepare('BEGIN IMMEDIATE');
    this.#commit = db.prepare('COMMIT');
    this.#savepoint = db.prepare('SAVEPOINT writ_tx');
    this.#release = db.prepare('RELEASE writ_tx');
    this.#rollbackTo = db.prepare('ROLLBACK TO writ_tx');
    if (walCheckpoint) {
      // From here on no commit of this connection copies the WAL into the database (see wal-checkpointer.ts).
      db.pragma('wal_autocheckpoint = 0');
      this.#checkpointer = new WalCheckpointer(
        walCheckpoint.path,
        db.pragma('page_size', { simple: true }) as number,
        walCheckpoint.options,
        (fn) => this.#run(fn),
        (reason) => {
          if (db.open) db.pragma(`wal_autocheckpoint = ${walCheckpoint.options.restartPages}`);
          walCheckpoint.onError?.(
            new Error(`embedded store: ${reason}; SQLite's automatic checkpoint is back on`),
          );
        },
      );
    }
  }

  readonly #afterOperation = () => this.#checkpointer?.afterOperation();

  /** The checkpointer thread's counts (undefined without one): for tests and benchmarks. */
  walCheckpointStats(): WalCheckpointerStats | undefined {
    return this.#checkpointer?.stats();
  }

  #run<T>(fn: () => T | Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn).finally(this.#afterOperation);
    this.#queue = next.catch(() => undefined);
    return next.catch((err: unknown) => {
      throw translate(err);
    });
  }

  /**
   * Group commit: transactions that arrive while the connection is busy run together inside one SQLite
   * transaction, each in its own savepoint (a failing one rolls back alone), and all settle after the one
   * COMMIT. No caller learns of success before its writes are committed.
   */
  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#join({ fn, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** Adds `entry` to the batch of the next group commit, starting one if none is waiting. */
  #join(entry: PendingTx): void {
    if (this.#batch) {
      this.#batch.push(entry);
      return;
    }
    const batch: PendingTx[] = [entry];
    this.#batch = batch;
    // Wait for the rest of this turn of the event loop: requests read in the same I/O phase join the batch.
    setImmediate(() => {
      this.#run(() => this.#commitBatch(batch)).catch(() => undefined);
    });
  }

  async #commitBatch(batch: PendingTx[]): Promise<void> {
    if (this.#batch === batch) this.#batch = undefined;
    const db = this.#db;
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      this.#begin.run();
    } catch (err) {
      for (const e of batch) e.reject(translate(err));
      return;
    }
    // The audit head as the issuances of this batch left it, and the held event checked already: an
    // issuance after another needs neither read again (nothing else writes inside this transaction).
    // Unknown again after any callback, which may append events of its own.
    const chain: IssuanceChain = { head: undefined, known: false, checked: undefined };
    for (const e of batch) {
      if (e.issuance) {
        try {
          outcomes.push({
            ok: true,
            value: this.#ops.writeIssuanceNow(e.issuance.write, e.issuance.held, chain),
          });
        } catch (error) {
          if (!(error instanceof IssuanceRefusedError) && !(error instanceof AuditChainBrokenError)) {
            // A statement failed midway (disk full, I/O error): this issuance may have written part of
            // its rows, and it has no savepoint of its own. Nothing of the batch commits.
            if (db.inTransaction) db.exec('ROLLBACK');
            for (const x of batch) x.reject(translate(error));
            return;
          }
          outcomes.push({ ok: false, error });
        }
        continue;
      }
      chain.known = false;
      chain.checked = undefined;
      this.#savepoint.run();
      try {
        const value = await e.fn!(this.#ops);
        this.#release.run();
        outcomes.push({ ok: true, value });
      } catch (error) {
        if (db.inTransaction) {
          this.#rollbackTo.run();
          this.#release.run();
        }
        outcomes.push({ ok: false, error: translate(error) });
      }
    }
    try {
      this.#commit.run();
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      for (const e of batch) e.reject(translate(err));
      return;
    }
    batch.forEach((e, i) => {
      const o = outcomes[i]!;
      if (o.ok) e.resolve(o.value);
      else e.reject(o.error);
    });
  }

  listWorkloads = () => this.#run(() => this.#ops.listWorkloads());
  getWorkload = (id: string) => this.#run(() => this.#ops.getWorkload(id));
  putWorkload = (w: Workload, now: number) => this.#run(() => this.#ops.putWorkload(w, now));
  deleteWorkload = (id: string) => this.#run(() => this.#ops.deleteWorkload(id));
  setWorkloadState = (id: string, s: WorkloadState, now: number) =>
    this.#run(() => this.#ops.setWorkloadState(id, s, now));
  listClasses = () => this.#run(() => this.#ops.listClasses());
  putClass = (c: TokenClass) => this.#run(() => this.#ops.putClass(c));
  deleteClass = (name: string) => this.#run(() => this.#ops.deleteClass(name));
  listOperators = () => this.#run(() => this.#ops.listOperators());
  putOperator = (o: Operator) => this.#run(() => this.#ops.putOperator(o));
  deleteOperator = (name: string) => this.#run(() => this.#ops.deleteOperator(name));
  listConfigFiles = (select?: ConfigFileSelect) => this.#run(() => this.#ops.listConfigFiles(select));
  listConfigFileChanges = (since?: ConfigFilesVersion) =>
    this.#run(() => this.#ops.listConfigFileChanges(since));
  stampConfigFiles = (stamps: readonly ConfigFileStamp[]) =>
    this.#run(() => this.#ops.stampConfigFiles(stamps));
  putConfigFiles = (files: readonly AppliedConfigFile[]) => this.#run(() => this.#ops.putConfigFiles(files));
  deleteConfigFiles = (paths: readonly string[] | 'all') =>
    this.#run(() => this.#ops.deleteConfigFiles(paths));
  listPeople = () => this.#run(() => this.#ops.listPeople());
  putPerson = (p: Person, now: number) => this.#run(() => this.#ops.putPerson(p, now));
  deletePerson = (id: string) => this.#run(() => this.#ops.deletePerson(id));
  listTeams = () => this.#run(() => this.#ops.listTeams());
  putTeam = (t: Team) => this.#run(() => this.#ops.putTeam(t));
  deleteTeam = (id: string) => this.#run(() => this.#ops.deleteTeam(id));
  listScimResources = (type: ScimResourceType) => this.#run(() => this.#ops.listScimResources(type));
  getScimResource = (type: ScimResourceType, id: string) =>
    this.#run(() => this.#ops.getScimResource(type, id));
  findScimResource = (type: ScimResourceType, name: string) =>
    this.#run(() => this.#ops.findScimResource(type, name));
  putScimResource = (r: ScimRecord, expectedVersion: number | undefined) =>
    this.#run(() => this.#ops.putScimResource(r, expectedVersion));
  listIssuers = () => this.#run(() => this.#ops.listIssuers());
  putIssuer = (i: TrustedIssuer) => this.#run(() => this.#ops.putIssuer(i));
  deleteIssuer = (name: string) => this.#run(() => this.#ops.deleteIssuer(name));
  listTemplates = () => this.#run(() => this.#ops.listTemplates());
  putTemplate = (t: WorkloadTemplate) => this.#run(() => this.#ops.putTemplate(t));
  deleteTemplate = (id: string) => this.#run(() => this.#ops.deleteTemplate(id));
  getPolicySet = () => this.#run(() => this.#ops.getPolicySet());
  putPolicySet = (p: StoredPolicySet) => this.#run(() => this.#ops.putPolicySet(p));
  putPolicyVersion = (v: StoredPolicyVersion) => this.#run(() => this.#ops.putPolicyVersion(v));
  listPolicyVersions = () => this.#run(() => this.#ops.listPolicyVersions());
  getPolicyVersion = (id: string) => this.#run(() => this.#ops.getPolicyVersion(id));
  listResourceAttributes = () => this.#run(() => this.#ops.listResourceAttributes());
  putResourceAttributes = (r: StoredResource) => this.#run(() => this.#ops.putResourceAttributes(r));
  deleteResourceAttributes = (id: string) => this.#run(() => this.#ops.deleteResourceAttributes(id));
  consume = (scope: string, id: string, exp: number, now: number) =>
    this.#run(() => this.#ops.consume(scope, id, exp, now));
  rateLimit = (key: string, rate: number, burst: number, now: number) =>
    this.#run(() => this.#ops.rateLimit(key, rate, burst, now));
  leaseRate = (key: string, rate: number, burst: number, want: number, now: number) =>
    this.#run(() => this.#ops.leaseRate(key, rate, burst, want, now));
  recordToken = (t: IssuedToken) => this.#run(() => this.#ops.recordToken(t));
  getToken = (jti: string) => this.#run(() => this.#ops.getToken(jti));
  getTokens = (jtis: readonly string[]) => this.#run(() => this.#ops.getTokens(jtis));
  tokensForTask = (tid: string, limit: number) => this.#run(() => this.#ops.tokensForTask(tid, limit));
  latestTokenExpiry = (match: TokenMatch, after: number) =>
    this.#run(() => this.#ops.latestTokenExpiry(match, after));
  latestTaskTokenExpiries = (tids: string[], after: number) =>
    this.#run(() => this.#ops.latestTaskTokenExpiries(tids, after));
  countOpenTasks = (workload: string) => this.#run(() => this.#ops.countOpenTasks(workload));
  pruneTasks = (closedBefore: number) => this.#run(() => this.#ops.pruneTasks(closedBefore));
  closeDueTasks = (now: number, at: number, limit: number, reasons: { deadline: string; lease: string }) =>
    this.#run(() => this.#ops.closeDueTasks(now, at, limit, reasons));
  appendAuditBatch = (drafts: AuditDraft[], held?: AuditHead) =>
    this.#run(() => this.#ops.appendAuditBatch(drafts, held));
  createTask = (t: Task) => this.#run(() => this.#ops.createTask(t));
  getTask = (id: string) => this.#run(() => this.#ops.getTask(id));
  closeTask = (id: string, at: number, reason: string) =>
    this.#run(() => this.#ops.closeTask(id, at, reason));
  renewTaskLease = (id: string, until: number) => this.#run(() => this.#ops.renewTaskLease(id, until));
  listTasks = (q: { workload?: string; open?: boolean; limit: number }) =>
    this.#run(() => this.#ops.listTasks(q));
  dueTasks = (now: number, limit: number) => this.#run(() => this.#ops.dueTasks(now, limit));
  addRevocation = (r: NewRevocation) => this.#run(() => this.#ops.addRevocation(r));
  listRevocations = (after: number, now: number, limit?: number) =>
    this.#run(() => this.#ops.listRevocations(after, now, limit));
  lastRevocationSeq = () => this.#run(() => this.#ops.lastRevocationSeq());
  listKeys = () => this.#run(() => this.#ops.listKeys());
  putKey = (k: KeyRecord) => this.#run(() => this.#ops.putKey(k));
  listVendorKeys = (name?: string) => this.#run(() => this.#ops.listVendorKeys(name));
  putVendorKey = (k: VendorKeyRecord) => this.#run(() => this.#ops.putVendorKey(k));
  deleteVendorKeys = (name: string, version?: number) =>
    this.#run(() => this.#ops.deleteVendorKeys(name, version));
  appendAudit = (e: AuditDraft, held?: AuditHead) => this.#run(() => this.#ops.appendAudit(e, held));
  // Group-committed with the transactions arriving together (one COMMIT), written without a callback's
  // promises or a savepoint of its own (`SqliteOps.writeIssuanceNow`).
  recordIssuance = (w: IssuanceWrite, held?: AuditHead) =>
    new Promise<AuditEvent>((resolve, reject) => {
      this.#join({ issuance: { write: w, held }, resolve: resolve as (v: unknown) => void, reject });
    });
  queryAudit = (q: AuditQuery) => this.#run(() => this.#ops.queryAudit(q));
  scanAudit = (after: number, limit: number) => this.#run(() => this.#ops.scanAudit(after, limit));
  auditHead = () => this.#run(() => this.#ops.auditHead());
  addCheckpoint = (c: AuditCheckpoint) => this.#run(() => this.#ops.addCheckpoint(c));
  listCheckpoints = () => this.#run(() => this.#ops.listCheckpoints());
  appendEvent = (e: Omit<StreamEvent, 'seq'>) => this.#run(() => this.#ops.appendEvent(e));
  readEvents = (after: number, limit: number) => this.#run(() => this.#ops.readEvents(after, limit));
  eventBounds = () => this.#run(() => this.#ops.eventBounds());
  trimEvents = (beforeTs: number) =>
    this.#inChunks((limit) =>
      this.#ops.deleteSome(
        'DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts < ? AND seq < (SELECT MAX(seq) FROM events) LIMIT ?)',
        beforeTs,
        limit,
      ),
    );
  addUsage = (rows: UsageAggregate[]) => this.#run(() => this.#ops.addUsage(rows));
  usageForToken = (jti: string, limit: number) => this.#run(() => this.#ops.usageForToken(jti, limit));
  pruneUsage = (beforeMs: number) => this.#run(() => this.#ops.pruneUsage(beforeMs));
  scanUsage = (q: UsageScan) => this.#run(() => this.#ops.scanUsage(q));
  putSsfStream = (st: SsfStream) => this.#run(() => this.#ops.putSsfStream(st));
  getSsfStream = (id: string) => this.#run(() => this.#ops.getSsfStream(id));
  listSsfStreams = (owner?: string) => this.#run(() => this.#ops.listSsfStreams(owner));
  deleteSsfStream = (id: string) => this.#run(() => this.#ops.deleteSsfStream(id));
  enqueueSsfSets = (sets: Array<Omit<QueuedSet, 'attempts' | 'lastError'>>, max: number) =>
    this.#run(() => this.#ops.enqueueSsfSets(sets, max));
  pendingSsfSets = (streamId: string, limit: number) =>
    this.#run(() => this.#ops.pendingSsfSets(streamId, limit));
  ackSsfSets = (streamId: string, jtis: string[]) => this.#run(() => this.#ops.ackSsfSets(streamId, jtis));
  claimSsfSet = (streamId: string, now: number, leaseUntil: number) =>
    this.#run(() => this.#ops.claimSsfSet(streamId, now, leaseUntil));
  deferSsfSet = (streamId: string, jti: string, at: number, error: string) =>
    this.#run(() => this.#ops.deferSsfSet(streamId, jti, at, error));
  listBaselines = () => this.#run(() => this.#ops.listBaselines());
  putBaselines = (rows: StoredBaseline[]) => this.#run(() => this.#ops.putBaselines(rows));
  listRisks = () => this.#run(() => this.#ops.listRisks());
  putRisk = (r: WorkloadRisk) => this.#run(() => this.#ops.putRisk(r));
  addFinding = (f: Finding) => this.#run(() => this.#ops.addFinding(f));
  getFinding = (id: string) => this.#run(() => this.#ops.getFinding(id));
  listFindings = (q: FindingQuery) => this.#run(() => this.#ops.listFindings(q));
  setFindingState = (id: string, state: FindingState, by: string, at: number, note: string) =>
    this.#run(() => this.#ops.setFindingState(id, state, by, at, note));
  getDetectionControl = () => this.#run(() => this.#ops.getDetectionControl());
  putDetectionControl = (c: DetectionControl) => this.#run(() => this.#ops.putDetectionControl(c));
  getDetectionConfig = () => this.#run(() => this.#ops.getDetectionConfig());
  putDetectionConfig = (c: DetectionConfig, at: number) =>
    this.#run(() => this.#ops.putDetectionConfig(c, at));
  followerPosition = (name: string) => this.#run(() => this.#ops.followerPosition(name));
  setFollowerPosition = (name: string, seq: number) =>
    this.#run(() => this.#ops.setFollowerPosition(name, seq));
  listExceptions = () => this.#run(() => this.#ops.listExceptions());
  getException = (id: string) => this.#run(() => this.#ops.getException(id));
  putException = (e: CredentialException) => this.#run(() => this.#ops.putException(e));
  deleteException = (id: string) => this.#run(() => this.#ops.deleteException(id));
  setExceptionRuntime = (id: string, runtime: ExceptionRuntime, expected: ExceptionRuntime) =>
    this.#run(() => this.#ops.setExceptionRuntime(id, runtime, expected));
  createBreakGlass = (g: BreakGlass) => this.#run(() => this.#ops.createBreakGlass(g));
  getBreakGlass = (id: string) => this.#run(() => this.#ops.getBreakGlass(id));
  listBreakGlass = (q: BreakGlassQuery) => this.#run(() => this.#ops.listBreakGlass(q));
  updateBreakGlass = (g: BreakGlass, expected: BreakGlassState) =>
    this.#run(() => this.#ops.updateBreakGlass(g, expected));
  putConsoleSession = (c: ConsoleSession) => this.#run(() => this.#ops.putConsoleSession(c));
  getConsoleSession = (idHash: string) => this.#run(() => this.#ops.getConsoleSession(idHash));
  touchConsoleSession = (idHash: string, at: number) =>
    this.#run(() => this.#ops.touchConsoleSession(idHash, at));
  deleteConsoleSession = (idHash: string) => this.#run(() => this.#ops.deleteConsoleSession(idHash));
  /**
   * What is past its end, as `SqliteOps.prune`, but a chunk at a time (each its own store operation,
   * the event loop turning between): under a flood the minute's spent replay entries are thousands,
   * and deleting them in one statement held the loop 15–19 ms (profiled).
   */
  prune = async (now: number): Promise<number> => {
    const nowS = Math.floor(now / 1000);
    const replay = await this.#inChunks((limit) =>
      this.#ops.deleteSome(
        'DELETE FROM replay WHERE (scope, id) IN (SELECT scope, id FROM replay WHERE expires_at <= ? LIMIT ?)',
        now,
        limit,
      ),
    );
    const tokens = await this.#inChunks((limit) =>
      this.#ops.deleteSome(
        'DELETE FROM tokens WHERE jti IN (SELECT jti FROM tokens WHERE exp <= ? LIMIT ?)',
        nowS - 86_400,
        limit,
      ),
    );
    const buckets = await this.#inChunks((limit) =>
      this.#ops.deleteSome(
        'DELETE FROM rate_buckets WHERE key IN (SELECT key FROM rate_buckets WHERE full_at <= ? LIMIT ?)',
        now,
        limit,
      ),
    );
    return replay + tokens + buckets + (await this.#run(() => this.#ops.pruneConsoleSessions(now)));
  };

  /** Runs `chunk(limit)` as store operations until one deletes fewer than `limit` rows; returns the sum. */
  async #inChunks(chunk: (limit: number) => number): Promise<number> {
    const LIMIT = 500;
    let total = 0;
    for (let i = 0; i < 100_000; i++) {
      const n = await this.#run(() => chunk(LIMIT));
      total += n;
      if (n < LIMIT) break;
    }
    return total;
  }
  ping = () => this.#run(() => this.#ops.ping());
  probeWrite = (now: number) => this.#run(() => this.#ops.probeWrite(now));
  close = () =>
    this.#run(async () => {
      // The thread's connection first: the last connection to close copies the WAL back and removes it.
      await this.#checkpointer?.close();
      this.#db.close();
    });
}

function translate(err: unknown): unknown {
  if (
    err instanceof Database.SqliteError ||
    (err instanceof TypeError && /database connection is not open/.test(err.message))
  ) {
    return new StoreUnavailableError(`embedded store: ${(err as Error).message}`, { cause: err });
  }
  return err;
}

/** A bucket's level at @now (ms): what it held, refilled at @rate/s since last touched, capped at @burst. */
const BUCKET_LEVEL = 'min(@burst, b.tokens + max(0, @now - b.at) * @rate / 1000.0)';
/** What a take of up to `@want` requests gets: as many whole ones as the bucket holds. */
const BUCKET_TAKE = `min(@want, CAST(${BUCKET_LEVEL} AS INTEGER))`;
const FRESH_TAKE = 'min(@want, CAST(@burst AS INTEGER))';
const RATE_LEASE = `INSERT INTO rate_buckets AS b (key, tokens, at, full_at, granted, taken)
  VALUES (@key, @burst - ${FRESH_TAKE}, @now, @now + CAST(${FRESH_TAKE} * 1000 / @rate AS INTEGER) + 1,
    ${FRESH_TAKE} >= 1, ${FRESH_TAKE})
  ON CONFLICT (key) DO UPDATE SET
    tokens = ${BUCKET_LEVEL} - ${BUCKET_TAKE},
    at = max(b.at, @now),
    full_at = max(b.at, @now) + CAST((@burst - ${BUCKET_LEVEL} + ${BUCKET_TAKE}) * 1000 / @rate AS INTEGER) + 1,
    granted = ${BUCKET_TAKE} >= 1,
    taken = ${BUCKET_TAKE}
  RETURNING tokens, taken`;

/** The statements themselves; synchronous, used directly inside a transaction. */
class SqliteOps implements Store {
  readonly #db: Database.Database;
  readonly #s: Record<string, Database.Statement>;
  readonly #cache = new Map<string, Database.Statement>();
  readonly #signals: SqliteSignalOps;
  readonly #detection: SqliteDetectionOps;
  readonly #governance: SqliteGovernanceOps;
  readonly #people: SqlitePeopleOps;
  readonly #console: SqliteConsoleOps;
  readonly #configFiles: SqliteConfigFileOps;

  constructor(db: Database.Database) {
    this.#db = db;
    const p = (sql: string) => db.prepare(sql);
    this.#signals = new SqliteSignalOps(db);
    this.#detection = new SqliteDetectionOps(db);
    this.#governance = new SqliteGovernanceOps(db);
    this.#people = new SqlitePeopleOps(db);
    this.#console = new SqliteConsoleOps(db);
    this.#configFiles = new SqliteConfigFileOps(db);
    this.#s = {
      consume: p(
        `INSERT INTO replay (scope, id, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (scope, id) DO UPDATE SET expires_at = excluded.expires_at WHERE replay.expires_at <= ?`,
      ),
      recordToken: p(
        `INSERT INTO tokens (jti, sub, client_id, cls, aud, scope, kid, tid, iat, exp, fingerprint, ajti)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      // An issuance's own savepoint, when it spends several replay entries (writeIssuanceNow).
      savepoint: p('SAVEPOINT writ_issuance'),
      release: p('RELEASE writ_issuance'),
      rollbackTo: p('ROLLBACK TO writ_issuance'),
      getToken: p('SELECT * FROM tokens WHERE jti = ?'),
      head: p('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1'),
      // The head and the hash of the event at ? (the one this process holds), in one statement: no row
      // when the log is empty, and then no held event either.
      headAndHeld: p(
        `SELECT h.seq, h.hash, (SELECT hash FROM audit_events WHERE seq = ?) AS held_hash
         FROM (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) AS h`,
      ),
      appendAudit: p(
        `INSERT INTO audit_events (seq, ts, type, outcome, actor, subject, jti, data, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      getWorkload: p('SELECT * FROM workloads WHERE id = ?'),
    };
  }

  /**
   * A statement prepared once per SQL text and kept (preparing costs more than most statements run):
   * at most 256 texts, the cache starts over past that (statements built with a varying number of
   * parameters are the only ones that could fill it).
   */
  #prep(sql: string): Database.Statement {
    let s = this.#cache.get(sql);
    if (s === undefined) {
      if (this.#cache.size >= 256) this.#cache.clear();
      s = this.#db.prepare(sql);
      this.#cache.set(sql, s);
    }
    return s;
  }

  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    // Already inside a transaction: run in it (the outer one commits or rolls back).
    return fn(this);
  }

  async listWorkloads(): Promise<WorkloadRecord[]> {
    return this.#prep('SELECT * FROM workloads ORDER BY id')
      .all()
      .map((r) => toWorkload(r as Row));
  }
  async getWorkload(id: string): Promise<WorkloadRecord | undefined> {
    const r = this.#s['getWorkload']!.get(id) as Row | undefined;
    return r ? toWorkload(r) : undefined;
  }
  async putWorkload(w: Workload, now: number): Promise<void> {
    // Prepared once: applying a config of 100,000 workloads writes each.
    this.#s['putWorkload'] ??= this.#prep(
      `INSERT INTO workloads (id, spec, state, updated_at) VALUES (?, ?, 'active', ?)
       ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at`,
    );
    this.#s['putWorkload'].run(w.id, JSON.stringify(w), now);
  }
  async deleteWorkload(id: string): Promise<void> {
    this.#s['deleteWorkload'] ??= this.#prep('DELETE FROM workloads WHERE id = ?');
    this.#s['deleteWorkload'].run(id);
  }
  async setWorkloadState(id: string, state: WorkloadState, now: number): Promise<boolean> {
    return (
      this.#prep('UPDATE workloads SET state = ?, updated_at = ? WHERE id = ?').run(state, now, id)
        .changes === 1
    );
  }

  async listClasses(): Promise<TokenClass[]> {
    return this.#prep('SELECT spec FROM classes ORDER BY name')
      .all()
      .map((r) => JSON.parse((r as Row)['spec'] as string) as TokenClass);
  }
  async putClass(c: TokenClass): Promise<void> {
    this.#prep(
      'INSERT INTO classes (name, spec) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET spec = excluded.spec',
    ).run(c.name, JSON.stringify(c));
  }
  async deleteClass(name: string): Promise<void> {
    this.#prep('DELETE FROM classes WHERE name = ?').run(name);
  }

  async listOperators(): Promise<Operator[]> {
    return this.#prep('SELECT spec FROM operators ORDER BY name')
      .all()
      .map((r) => JSON.parse((r as Row)['spec'] as string) as Operator);
  }
  async putOperator(o: Operator): Promise<void> {
    this.#prep(
      'INSERT INTO operators (name, spec) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET spec = excluded.spec',
    ).run(o.name, JSON.stringify(o));
  }
  async deleteOperator(name: string): Promise<void> {
    this.#prep('DELETE FROM operators WHERE name = ?').run(name);
  }

  async listPeople(): Promise<StoredPerson[]> {
    return this.#people.listPeople();
  }
  async putPerson(p: Person, now: number): Promise<void> {
    this.#people.putPerson(p, now);
  }
  async deletePerson(id: string): Promise<void> {
    this.#people.deletePerson(id);
  }
  async listConfigFiles(select?: ConfigFileSelect): Promise<AppliedConfigFile[]> {
    return this.#configFiles.listConfigFiles(select);
  }
  async listConfigFileChanges(since?: ConfigFilesVersion) {
    return this.#configFiles.listConfigFileChanges(since);
  }
  async stampConfigFiles(stamps: readonly ConfigFileStamp[]): Promise<void> {
    this.#configFiles.stampConfigFiles(stamps);
  }
  async putConfigFiles(files: readonly AppliedConfigFile[]): Promise<void> {
    this.#configFiles.putConfigFiles(files);
  }
  async deleteConfigFiles(paths: readonly string[] | 'all'): Promise<void> {
    this.#configFiles.deleteConfigFiles(paths);
  }
  async listTeams(): Promise<Team[]> {
    return this.#people.listTeams();
  }
  async putTeam(t: Team): Promise<void> {
    this.#people.putTeam(t);
  }
  async deleteTeam(id: string): Promise<void> {
    this.#people.deleteTeam(id);
  }
  async listScimResources(type: ScimResourceType): Promise<ScimRecord[]> {
    return this.#people.listScimResources(type);
  }
  async getScimResource(type: ScimResourceType, id: string): Promise<ScimRecord | undefined> {
    return this.#people.getScimResource(type, id);
  }
  async findScimResource(type: ScimResourceType, name: string): Promise<ScimRecord | undefined> {
    return this.#people.findScimResource(type, name);
  }
  async putScimResource(r: ScimRecord, expectedVersion: number | undefined): Promise<ScimPutResult> {
    return this.#people.putScimResource(r, expectedVersion);
  }

  async listIssuers(): Promise<TrustedIssuer[]> {
    return this.#prep('SELECT spec FROM issuers ORDER BY name')
      .all()
      .map((r) => JSON.parse((r as Row)['spec'] as string) as TrustedIssuer);
  }
  async putIssuer(i: TrustedIssuer): Promise<void> {
    this.#prep(
      'INSERT INTO issuers (name, spec) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET spec = excluded.spec',
    ).run(i.name, JSON.stringify(i));
  }
  async deleteIssuer(name: string): Promise<void> {
    this.#prep('DELETE FROM issuers WHERE name = ?').run(name);
  }

  async listTemplates(): Promise<WorkloadTemplate[]> {
    return this.#prep('SELECT spec FROM workload_templates ORDER BY id')
      .all()
      .map((r) => JSON.parse((r as Row)['spec'] as string) as WorkloadTemplate);
  }
  async putTemplate(t: WorkloadTemplate): Promise<void> {
    this.#prep(
      'INSERT INTO workload_templates (id, spec) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET spec = excluded.spec',
    ).run(t.id, JSON.stringify(t));
  }
  async deleteTemplate(id: string): Promise<void> {
    this.#prep('DELETE FROM workload_templates WHERE id = ?').run(id);
  }

  async getPolicySet(): Promise<StoredPolicySet | undefined> {
    const r = this.#prep('SELECT spec FROM policy_set WHERE id = 1').get() as Row | undefined;
    return r ? (JSON.parse(r['spec'] as string) as StoredPolicySet) : undefined;
  }
  async putPolicySet(p: StoredPolicySet): Promise<void> {
    this.#prep(
      'INSERT INTO policy_set (id, spec) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET spec = excluded.spec',
    ).run(JSON.stringify(p));
  }
  async putPolicyVersion(v: StoredPolicyVersion): Promise<void> {
    this.#prep(
      `INSERT INTO policy_versions (id, counter, created_at, actor, built_in, policies, files)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET counter = excluded.counter, created_at = excluded.created_at,
           actor = excluded.actor, built_in = excluded.built_in, policies = excluded.policies, files = excluded.files`,
    ).run(v.id, v.counter, v.created, v.actor, v.builtIn ? 1 : 0, v.policies, JSON.stringify(v.files));
    this.#prep(
      'DELETE FROM policy_versions WHERE id NOT IN (SELECT id FROM policy_versions ORDER BY counter DESC, id DESC LIMIT ?)',
    ).run(POLICY_VERSIONS_KEPT);
  }
  async listPolicyVersions(): Promise<PolicyVersionSummary[]> {
    return this.#prep(
      'SELECT id, counter, created_at, actor, built_in, policies FROM policy_versions ORDER BY counter DESC, id DESC',
    )
      .all()
      .map((r) => toPolicyVersionSummary(r as Row));
  }
  async getPolicyVersion(id: string): Promise<StoredPolicyVersion | undefined> {
    const r = this.#prep('SELECT * FROM policy_versions WHERE id = ?').get(id) as Row | undefined;
    return r ? { ...toPolicyVersionSummary(r), files: JSON.parse(r['files'] as string) } : undefined;
  }
  async listResourceAttributes(): Promise<StoredResource[]> {
    return this.#prep('SELECT spec FROM resource_attributes ORDER BY id')
      .all()
      .map((r) => JSON.parse((r as Row)['spec'] as string) as StoredResource);
  }
  async putResourceAttributes(r: StoredResource): Promise<void> {
    this.#prep(
      'INSERT INTO resource_attributes (id, spec) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET spec = excluded.spec',
    ).run(r.id, JSON.stringify(r));
  }
  async deleteResourceAttributes(id: string): Promise<boolean> {
    return this.#prep('DELETE FROM resource_attributes WHERE id = ?').run(id).changes === 1;
  }

  async consume(scope: string, id: string, expiresAt: number, now: number): Promise<boolean> {
    return this.#s['consume']!.run(scope, id, expiresAt, now).changes === 1;
  }
  async rateLimit(key: string, ratePerSecond: number, burst: number, now: number): Promise<number> {
    const lease = await this.leaseRate(key, ratePerSecond, burst, 1, now);
    return lease.granted >= 1 ? 0 : lease.wait;
  }
  async leaseRate(key: string, ratePerSecond: number, burst: number, want: number, now: number) {
    this.#s['rateLease'] ??= this.#prep(RATE_LEASE);
    const r = this.#s['rateLease'].get({
      key,
      rate: ratePerSecond,
      burst: Math.max(1, burst),
      want: Math.max(1, Math.floor(want)),
      now,
    }) as Row;
    return leaseAnswer(Number(r['taken']), r['tokens'] as number, ratePerSecond);
  }

  async recordToken(t: IssuedToken): Promise<void> {
    this.#insertToken(t);
  }
  #insertToken(t: IssuedToken): void {
    this.#s['recordToken']!.run(tokenRowValues(t));
  }
  async getToken(jti: string): Promise<IssuedToken | undefined> {
    const r = this.#s['getToken']!.get(jti) as Row | undefined;
    return r ? toToken(r) : undefined;
  }
  async getTokens(jtis: readonly string[]): Promise<IssuedToken[]> {
    const out: IssuedToken[] = [];
    const unique = [...new Set(jtis)];
    // SQLite binds at most 32,766 parameters: a few hundred at a time is plenty.
    for (let i = 0; i < unique.length; i += 500) {
      const page = unique.slice(i, i + 500);
      const rows = this.#prep(`SELECT * FROM tokens WHERE jti IN (${page.map(() => '?').join(', ')})`).all(
        ...page,
      ) as Row[];
      for (const r of rows) out.push(toToken(r));
    }
    return out;
  }
  async tokensForTask(tid: string, limit: number): Promise<IssuedToken[]> {
    return this.#prep('SELECT * FROM tokens WHERE tid = ? ORDER BY iat, jti LIMIT ?')
      .all(tid, limit)
      .map((r) => toToken(r as Row));
  }

  async latestTokenExpiry(match: TokenMatch, after: number): Promise<number | undefined> {
    const iat = match.issuedBefore === null ? '' : ' AND iat <= ?';
    const r = this.#prep(
      `SELECT max(exp) AS exp FROM tokens WHERE ${tokenColumn(match.kind)} = ? AND exp > ?${iat}`,
    ).get(match.value, after, ...(match.issuedBefore === null ? [] : [match.issuedBefore])) as Row;
    return (r['exp'] as number | null) ?? undefined;
  }

  async latestTaskTokenExpiries(tids: string[], after: number): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    // SQLite binds at most 32,766 parameters: a few hundred at a time is plenty.
    for (let i = 0; i < tids.length; i += 500) {
      const page = tids.slice(i, i + 500);
      const rows = this.#prep(
        `SELECT tid, max(exp) AS exp FROM tokens WHERE tid IN (${page.map(() => '?').join(', ')}) AND exp > ?
           GROUP BY tid`,
      ).all(...page, after) as Row[];
      for (const r of rows) out.set(r['tid'] as string, r['exp'] as number);
    }
    return out;
  }

  async createTask(t: Task): Promise<void> {
    this.#prep(
      `INSERT INTO tasks (id, workload, purpose, labels, opened_by, opened_at, deadline, lease_until, closed_at, close_reason)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
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
    );
  }
  async getTask(id: string): Promise<Task | undefined> {
    const r = this.#prep('SELECT * FROM tasks WHERE id = ?').get(id) as Row | undefined;
    return r ? toTask(r) : undefined;
  }
  async closeTask(id: string, at: number, reason: string): Promise<boolean> {
    return (
      this.#prep('UPDATE tasks SET closed_at = ?, close_reason = ? WHERE id = ? AND closed_at IS NULL').run(
        at,
        reason,
        id,
      ).changes === 1
    );
  }
  async renewTaskLease(id: string, until: number): Promise<boolean> {
    return (
      this.#prep('UPDATE tasks SET lease_until = ? WHERE id = ? AND closed_at IS NULL').run(until, id)
        .changes === 1
    );
  }
  async listTasks(q: { workload?: string; open?: boolean; limit: number }): Promise<Task[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.workload !== undefined) {
      where.push('workload = ?');
      args.push(q.workload);
    }
    if (q.open !== undefined) where.push(q.open ? 'closed_at IS NULL' : 'closed_at IS NOT NULL');
    return this.#prep(
      `SELECT * FROM tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY opened_at DESC LIMIT ?`,
    )
      .all(...args, q.limit)
      .map((r) => toTask(r as Row));
  }
  async dueTasks(now: number, limit: number): Promise<Task[]> {
    return this.#prep(
      `SELECT * FROM tasks WHERE closed_at IS NULL AND ${SQLITE_DUE} <= ? ORDER BY ${SQLITE_DUE}, id LIMIT ?`,
    )
      .all(now, limit)
      .map((r) => toTask(r as Row));
  }

  async countOpenTasks(workload: string): Promise<number> {
    const r = this.#prep('SELECT count(*) AS n FROM tasks WHERE workload = ? AND closed_at IS NULL').get(
      workload,
    ) as Row;
    return r['n'] as number;
  }
  async pruneTasks(closedBefore: number): Promise<number> {
    return this.#prep('DELETE FROM tasks WHERE closed_at < ?').run(closedBefore).changes;
  }
  async closeDueTasks(
    now: number,
    at: number,
    limit: number,
    reasons: { deadline: string; lease: string },
  ): Promise<Task[]> {
    // The sweeper runs this every second: prepared once, on first use.
    this.#s['closeDueTasks'] ??= this.#prep(
      `UPDATE tasks SET closed_at = ?, close_reason = CASE WHEN deadline <= ? THEN ? ELSE ? END
       WHERE closed_at IS NULL AND id IN (SELECT id FROM tasks WHERE closed_at IS NULL AND ${SQLITE_DUE} <= ?
                    ORDER BY ${SQLITE_DUE}, id LIMIT ?)
       RETURNING *`,
    );
    const closed = this.#s['closeDueTasks']
      .all(at, now, reasons.deadline, reasons.lease, now, limit)
      .map((r) => toTask(r as Row));
    return closed.sort(byDue);
  }

  async addRevocation(r: NewRevocation): Promise<Revocation> {
    // One process, one clock: the revocation's time is the caller's.
    const stored = revocationAt(r, 0, r.created_at);
    const info = this.#prep(
      `INSERT INTO revocations (kind, value, issued_before, created_at, reason, actor, expires_at)
         VALUES (@kind, @value, @issued_before, @created_at, @reason, @actor, @expires_at)`,
    ).run({
      kind: stored.kind,
      value: stored.value,
      issued_before: stored.issued_before,
      created_at: stored.created_at,
      reason: stored.reason,
      actor: r.actor,
      expires_at: stored.expires_at,
    });
    return { ...stored, seq: Number(info.lastInsertRowid) };
  }
  async listRevocations(afterSeq: number, now: number, limit?: number): Promise<Revocation[]> {
    return this.#prep('SELECT * FROM revocations WHERE seq > ? AND expires_at > ? ORDER BY seq LIMIT ?')
      .all(afterSeq, now, limit ?? -1)
      .map((r) => toRevocation(r as Row));
  }
  async lastRevocationSeq(): Promise<number> {
    const r = this.#prep('SELECT MAX(seq) AS seq FROM revocations').get() as { seq: number | null };
    return r.seq ?? 0;
  }

  async listVendorKeys(name?: string): Promise<VendorKeyRecord[]> {
    const rows =
      name === undefined
        ? this.#prep('SELECT * FROM vendor_keys ORDER BY name, version').all()
        : this.#prep('SELECT * FROM vendor_keys WHERE name = ? ORDER BY version').all(name);
    return rows.map((r) => toVendorKeyRecord(r as Row));
  }
  async putVendorKey(k: VendorKeyRecord): Promise<void> {
    this.#prep(
      `INSERT INTO vendor_keys (name, version, sealed, fingerprint, proxies, created_at, created_by, replaced_at, overlap_until)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name, version) DO UPDATE SET proxies = excluded.proxies,
           replaced_at = excluded.replaced_at, overlap_until = excluded.overlap_until`,
    ).run(...vendorKeyValues(k));
  }
  async deleteVendorKeys(name: string, version?: number): Promise<number> {
    return version === undefined
      ? this.#prep('DELETE FROM vendor_keys WHERE name = ?').run(name).changes
      : this.#prep('DELETE FROM vendor_keys WHERE name = ? AND version = ?').run(name, version).changes;
  }

  async listKeys(): Promise<KeyRecord[]> {
    return this.#prep('SELECT * FROM signing_keys ORDER BY created_at')
      .all()
      .map((r) => toKeyRecord(r as Row));
  }
  async putKey(k: KeyRecord): Promise<void> {
    this.#prep(
      `INSERT INTO signing_keys (kid, alg, public_jwk, sealed_private_key, state, created_at, activated_at, retired_at, not_after)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (kid) DO UPDATE SET state = excluded.state, activated_at = excluded.activated_at,
           retired_at = excluded.retired_at, not_after = excluded.not_after`,
    ).run(
      k.kid,
      k.alg,
      JSON.stringify(k.publicJwk),
      k.sealedPrivateKey,
      k.state,
      k.createdAt,
      k.activatedAt,
      k.retiredAt,
      k.notAfter,
    );
  }

  async appendAudit(e: AuditDraft, held?: AuditHead): Promise<AuditEvent> {
    let head: AuditHead | undefined;
    if (held) {
      const r = this.#s['headAndHeld']!.get(held.seq) as
        | (AuditHead & { held_hash: string | null })
        | undefined;
      head = r && { seq: r.seq, hash: r.hash };
      checkHeldHead(held, r?.held_hash ?? undefined, head);
    } else head = this.#s['head']!.get() as AuditHead | undefined;
    return this.#appendAfter(head, e);
  }
  /** Appends `e` after `head`, the log's last event (read in this transaction). */
  #appendAfter(head: AuditHead | undefined, e: AuditDraft): AuditEvent {
    const event = linkAuditEvent(head, e);
    this.#s['appendAudit']!.run(
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
    );
    return event;
  }
  async appendAuditBatch(drafts: AuditDraft[], held?: AuditHead): Promise<AuditEvent[]> {
    const events: AuditEvent[] = [];
    // The first append checks `held`; the rest continue from the event just written (the head need
    // not be read again: nothing else writes inside this transaction).
    for (const d of drafts) {
      const last = events.at(-1);
      events.push(last ? this.#appendAfter(last, d) : await this.appendAudit(d, held));
    }
    return events;
  }
  // Inside a transaction already (this is the transaction's store): the writes, statement by statement.
  recordIssuance(w: IssuanceWrite, held?: AuditHead): Promise<AuditEvent> {
    return writeIssuance(this, w, held);
  }
  /**
   * One issuance of a group commit, synchronously: what `writeIssuance` writes, ordered so that every
   * refusal comes before the first write (the held event and the task are checked, then the replay
   * entries spent), so a refused issuance writes nothing and needs no savepoint; only a second replay
   * entry (a DPoP proof's) can be refused after a write, and only such an issuance takes one. `chain`
   * carries the audit head and the held event checked from one issuance of the batch to the next.
   */
  writeIssuanceNow(w: IssuanceWrite, held: AuditHead | undefined, chain: IssuanceChain): AuditEvent {
    if (!chain.known || (held && (held.seq !== chain.checked?.seq || held.hash !== chain.checked.hash))) {
      if (held) {
        const r = this.#s['headAndHeld']!.get(held.seq) as
          | (AuditHead & { held_hash: string | null })
          | undefined;
        chain.head = r && { seq: r.seq, hash: r.hash };
        checkHeldHead(held, r?.held_hash ?? undefined, chain.head);
        chain.checked = held;
      } else chain.head = this.#s['head']!.get() as AuditHead | undefined;
      chain.known = true;
    }
    // The task was open when the request was checked; read again here, under the transaction, so a
    // close that won the race is seen. A closed task's revocation covers only the tokens it recorded.
    if (w.token.tid !== undefined) {
      this.#s['taskClosed'] ??= this.#prep('SELECT closed_at FROM tasks WHERE id = ?');
      const t = this.#s['taskClosed'].get(w.token.tid) as { closed_at: number | null } | undefined;
      if (t?.closed_at !== null) throw new IssuanceRefusedError('task_closed');
    }
    const consume = this.#s['consume']!;
    const several = w.consume.length > 1;
    if (several) this.#s['savepoint']!.run();
    try {
      for (let i = 0; i < w.consume.length; i++) {
        const c = w.consume[i]!;
        if (consume.run(c.scope, c.id, c.expiresAt, w.now).changes !== 1)
          throw new IssuanceRefusedError('replay', i);
      }
    } catch (err) {
      if (several) this.#s['rollbackTo']!.run();
      throw err;
    } finally {
      if (several) this.#s['release']!.run();
    }
    this.#insertToken(w.token);
    const event = this.#appendAfter(chain.head, w.audit);
    chain.head = { seq: event.seq, hash: event.hash };
    return event;
  }
  async queryAudit(q: AuditQuery): Promise<AuditEvent[]> {
    const filters: Array<[unknown, string, unknown[]]> = [
      [q.afterSeq, 'seq > ?', [q.afterSeq]],
      [q.workload, '(actor = ? OR subject = ?)', [q.workload, q.workload]],
      [q.jti, 'jti = ?', [q.jti]],
      [q.type, 'type = ?', [q.type]],
      [q.since, 'ts >= ?', [q.since]],
      [q.until, 'ts < ?', [q.until]],
    ];
    const active = filters.filter(([v]) => v !== undefined);
    const where = active.map(([, sql]) => sql);
    const args = active.flatMap(([, , a]) => a);
    const sql = `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY seq ${q.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ?`;
    return this.#prep(sql)
      .all(...args, q.limit)
      .map((r) => toAuditEvent(r as Row));
  }
  async scanAudit(afterSeq: number, limit: number): Promise<AuditEvent[]> {
    return this.#prep('SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?')
      .all(afterSeq, limit)
      .map((r) => toAuditEvent(r as Row));
  }
  async auditHead(): Promise<{ seq: number; hash: string } | undefined> {
    return this.#s['head']!.get() as { seq: number; hash: string } | undefined;
  }
  async addCheckpoint(c: AuditCheckpoint): Promise<void> {
    this.#prep(
      'INSERT OR IGNORE INTO audit_checkpoints (seq, hash, ts, kid, jws) VALUES (?, ?, ?, ?, ?)',
    ).run(c.seq, c.hash, c.ts, c.kid, c.jws);
  }
  async listCheckpoints(): Promise<AuditCheckpoint[]> {
    return this.#prep('SELECT * FROM audit_checkpoints ORDER BY seq')
      .all()
      .map((r) => toCheckpoint(r as Row));
  }

  async appendEvent(e: Omit<StreamEvent, 'seq'>): Promise<StreamEvent> {
    this.#s['appendEvent'] ??= this.#prep('INSERT INTO events (ts, type, data) VALUES (?, ?, ?)');
    const info = this.#s['appendEvent'].run(e.ts, e.type, JSON.stringify(e.data));
    return { ...e, seq: Number(info.lastInsertRowid) };
  }
  async readEvents(afterSeq: number, limit: number): Promise<StreamEvent[]> {
    // Every event log poll (each second) and every stream's catch-up: prepared once, on first use.
    this.#s['readEvents'] ??= this.#prep('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?');
    return this.#s['readEvents'].all(afterSeq, limit).map((r) => toStreamEvent(r as Row));
  }
  async eventBounds(): Promise<{ first: number; last: number }> {
    // One subquery each: SQLite answers a lone MIN or MAX from the key, but both in one SELECT by
    // reading the whole table (about 9 ms per 100,000 events, on every stream open).
    const r = this.#prep(
      'SELECT (SELECT MIN(seq) FROM events) AS first, (SELECT MAX(seq) FROM events) AS last',
    ).get() as {
      first: number | null;
      last: number | null;
    };
    return { first: r.first ?? 0, last: r.last ?? 0 };
  }
  async trimEvents(beforeTs: number): Promise<number> {
    // Keep the newest event so the sequence never restarts (AUTOINCREMENT also guarantees it).
    return this.#prep('DELETE FROM events WHERE ts < ? AND seq < (SELECT MAX(seq) FROM events)').run(beforeTs)
      .changes;
  }

  async addUsage(rows: UsageAggregate[]): Promise<void> {
    this.#signals.addUsage(rows);
  }
  async usageForToken(jti: string, limit: number): Promise<UsageAggregate[]> {
    return this.#signals.usageForToken(jti, limit);
  }
  async pruneUsage(beforeMs: number): Promise<number> {
    return this.#signals.pruneUsage(beforeMs);
  }
  async scanUsage(q: UsageScan): Promise<UsageAggregate[]> {
    return this.#signals.scanUsage(q);
  }
  async putSsfStream(st: SsfStream): Promise<void> {
    this.#signals.putSsfStream(st);
  }
  async getSsfStream(id: string): Promise<SsfStream | undefined> {
    return this.#signals.getSsfStream(id);
  }
  async listSsfStreams(owner?: string): Promise<SsfStream[]> {
    return this.#signals.listSsfStreams(owner);
  }
  async deleteSsfStream(id: string): Promise<boolean> {
    return this.#signals.deleteSsfStream(id);
  }
  async enqueueSsfSets(
    sets: Array<Omit<QueuedSet, 'attempts' | 'lastError'>>,
    maxPerStream: number,
  ): Promise<Array<{ streamId: string; dropped: number }>> {
    return this.#signals.enqueueSsfSets(sets, maxPerStream);
  }
  async pendingSsfSets(streamId: string, limit: number): Promise<QueuedSet[]> {
    return this.#signals.pendingSsfSets(streamId, limit);
  }
  async ackSsfSets(streamId: string, jtis: string[]): Promise<number> {
    return this.#signals.ackSsfSets(streamId, jtis);
  }
  async claimSsfSet(streamId: string, now: number, leaseUntil: number): Promise<QueuedSet | undefined> {
    return this.#signals.claimSsfSet(streamId, now, leaseUntil);
  }
  async deferSsfSet(streamId: string, jti: string, nextAttemptAt: number, lastError: string): Promise<void> {
    this.#signals.deferSsfSet(streamId, jti, nextAttemptAt, lastError);
  }
  async listBaselines(): Promise<StoredBaseline[]> {
    return this.#detection.listBaselines();
  }
  async putBaselines(rows: StoredBaseline[]): Promise<void> {
    this.#detection.putBaselines(rows);
  }
  async listRisks(): Promise<WorkloadRisk[]> {
    return this.#detection.listRisks();
  }
  async putRisk(r: WorkloadRisk): Promise<void> {
    this.#detection.putRisk(r);
  }
  async addFinding(f: Finding): Promise<void> {
    this.#detection.addFinding(f);
  }
  async getFinding(id: string): Promise<Finding | undefined> {
    return this.#detection.getFinding(id);
  }
  async listFindings(q: FindingQuery): Promise<Finding[]> {
    return this.#detection.listFindings(q);
  }
  async setFindingState(
    id: string,
    state: FindingState,
    by: string,
    at: number,
    note: string,
  ): Promise<boolean> {
    return this.#detection.setFindingState(id, state, by, at, note);
  }
  async getDetectionControl(): Promise<DetectionControl | undefined> {
    return this.#detection.getDetectionControl();
  }
  async putDetectionControl(c: DetectionControl): Promise<void> {
    this.#detection.putDetectionControl(c);
  }
  async getDetectionConfig(): Promise<DetectionConfig | undefined> {
    return this.#detection.getDetectionConfig();
  }
  async putDetectionConfig(c: DetectionConfig, at: number): Promise<void> {
    this.#detection.putDetectionConfig(c, at);
  }
  async followerPosition(name: string): Promise<number | undefined> {
    return this.#signals.followerPosition(name);
  }
  async setFollowerPosition(name: string, seq: number): Promise<void> {
    this.#signals.setFollowerPosition(name, seq);
  }

  async listExceptions(): Promise<ExceptionRecord[]> {
    return this.#governance.listExceptions();
  }
  async getException(id: string): Promise<ExceptionRecord | undefined> {
    return this.#governance.getException(id);
  }
  async putException(e: CredentialException): Promise<void> {
    this.#governance.putException(e);
  }
  async deleteException(id: string): Promise<void> {
    this.#governance.deleteException(id);
  }
  async setExceptionRuntime(
    id: string,
    runtime: ExceptionRuntime,
    expected: ExceptionRuntime,
  ): Promise<boolean> {
    return this.#governance.setExceptionRuntime(id, runtime, expected);
  }
  async createBreakGlass(g: BreakGlass): Promise<void> {
    this.#governance.createBreakGlass(g);
  }
  async getBreakGlass(id: string): Promise<BreakGlass | undefined> {
    return this.#governance.getBreakGlass(id);
  }
  async listBreakGlass(q: BreakGlassQuery): Promise<BreakGlass[]> {
    return this.#governance.listBreakGlass(q);
  }
  async updateBreakGlass(g: BreakGlass, expected: BreakGlassState): Promise<boolean> {
    return this.#governance.updateBreakGlass(g, expected);
  }

  async putConsoleSession(c: ConsoleSession): Promise<void> {
    this.#console.putConsoleSession(c);
  }
  async getConsoleSession(idHash: string): Promise<ConsoleSession | undefined> {
    return this.#console.getConsoleSession(idHash);
  }
  async touchConsoleSession(idHash: string, at: number): Promise<boolean> {
    return this.#console.touchConsoleSession(idHash, at);
  }
  async deleteConsoleSession(idHash: string): Promise<boolean> {
    return this.#console.deleteConsoleSession(idHash);
  }

  /** `sql` with its two parameters (a bound, then a LIMIT): a DELETE of at most that many rows. */
  deleteSome(sql: string, bound: number, limit: number): number {
    return this.#prep(sql).run(bound, limit).changes;
  }
  pruneConsoleSessions(now: number): number {
    return this.#console.pruneConsoleSessions(now);
  }
  async prune(now: number): Promise<number> {
    const nowS = Math.floor(now / 1000);
    const a = this.#prep('DELETE FROM replay WHERE expires_at <= ?').run(now).changes;
    const b = this.#prep('DELETE FROM tokens WHERE exp <= ?').run(nowS - 86_400).changes;
    const c = this.#prep('DELETE FROM rate_buckets WHERE full_at <= ?').run(now).changes;
    return a + b + c + this.#console.pruneConsoleSessions(now);
  }
  async ping(): Promise<void> {
    this.#prep('SELECT 1').get();
  }
  async probeWrite(now: number): Promise<void> {
    this.#prep(
      'INSERT INTO write_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at',
    ).run(now);
  }
  async close(): Promise<void> {
    this.#db.close();
  }
}
