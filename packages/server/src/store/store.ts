import type { Revocation } from '@writ/sdk/wire';
import type { AuditCheckpoint, AuditDraft, AuditEvent, AuditQuery } from '../audit/audit-event.js';
import type { AuditHead } from '../audit/chain.js';
import type { ConsoleSession } from '../console/console-session.js';
import type { DetectionConfig } from '../detection/detection-config.js';
import type {
  DetectionControl,
  Finding,
  FindingQuery,
  FindingState,
  StoredBaseline,
  WorkloadRisk,
} from '../detection/finding.js';
import type { StreamEvent } from '../events/stream-event.js';
import type { TrustedIssuer } from '../federation/trusted-issuer.js';
import type { BreakGlass, BreakGlassQuery, BreakGlassState } from '../governance/break-glass.js';
import type { CredentialException, ExceptionRecord, ExceptionRuntime } from '../governance/exception.js';
import type { KeyRecord } from '../keys/key-record.js';
import type { Person, Team } from '../people/person.js';
import type { ScimPutResult, ScimRecord, ScimResourceType } from '../people/scim-record.js';
import type {
  PolicyVersionSummary,
  StoredPolicySet,
  StoredPolicyVersion,
  StoredResource,
} from '../policy/policy-set.js';
import type { Operator } from '../registry/operator.js';
import type { TokenClass } from '../registry/token-class.js';
import type { Workload, WorkloadRecord, WorkloadState } from '../registry/workload.js';
import type { NewRevocation } from '../revocation/new-revocation.js';
import type { QueuedSet, SsfStream } from '../ssf/stream-record.js';
import type { Task } from '../tasks/task.js';
import type { WorkloadTemplate } from '../templates/workload-template.js';
import type { IssuedToken, TokenMatch } from '../tokens/issued-token.js';
import type { UsageAggregate, UsageScan } from '../usage/usage-aggregate.js';
import type { VendorKeyRecord } from '../vendor/vendor-key.js';
import type {
  AppliedConfigFile,
  ConfigFileSelect,
  ConfigFileStamp,
  ConfigFilesListing,
  ConfigFilesVersion,
} from './config-file-rows.js';
import type { IssuanceWrite } from './issuance-write.js';
import type { StoredPerson } from './people-rows.js';
import type { RateLease } from './rate-lease.js';

/** The Store port: everything Writ keeps. Adapters: SQLite (embedded default); PostgreSQL (cluster). */

/**
 * What a store that several nodes share offers beyond the Store contract. Absent on the embedded store,
 * whose only writer is this process.
 */
export interface StoreCluster {
  /**
   * Calls `wake` soon after any node commits an event, and again after each reconnection (a notification
   * sent while disconnected is lost). Notifications only wake: the reader reads the log, which is the
   * truth. Returns a function that stops watching.
   */
  watchEvents(wake: () => void, onError?: (err: Error) => void): () => Promise<void>;
  /**
   * The database server's clock (milliseconds), read in one round trip: the clock the store compares
   * shared times with (replay entries, due tasks, "issued before now" revocations, rate buckets), so nodes
   * whose own clocks disagree still agree on what has expired. Nodes measure their skew against it.
   * Undefined when the store was opened to take the callers' times instead (tests on a fake clock).
   */
  databaseTime(): Promise<number | undefined>;
}

export interface Store {
  /** Present when several nodes may share this store (PostgreSQL); node state then follows its event log. */
  readonly cluster?: StoreCluster | undefined;

  /** Runs `fn` atomically. The callback gets a store bound to the transaction; it never sees a driver. */
  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T>;

  listWorkloads(): Promise<WorkloadRecord[]>;
  getWorkload(id: string): Promise<WorkloadRecord | undefined>;
  putWorkload(w: Workload, now: number): Promise<void>;
  deleteWorkload(id: string): Promise<void>;
  setWorkloadState(id: string, state: WorkloadState, now: number): Promise<boolean>;

  listClasses(): Promise<TokenClass[]>;
  putClass(c: TokenClass): Promise<void>;
  deleteClass(name: string): Promise<void>;

  listOperators(): Promise<Operator[]>;
  putOperator(o: Operator): Promise<void>;
  deleteOperator(name: string): Promise<void>;

  /**
   * The files of the config directory last applied, with their digests, stamps and documents, by path;
   * `select` lists only some paths, or none of the documents (a start-up that finds nothing changed).
   */
  listConfigFiles(select?: ConfigFileSelect): Promise<AppliedConfigFile[]>;
  /**
   * The record of applied files without documents, and its version, in one consistent read: all of it,
   * or with `since` what changed after that version. Undefined when the store does not hold `since`
   * (another store's, older than the versions kept, or from before a whole apply forgot the files).
   * Every write below moves the version on.
   */
  listConfigFileChanges(since?: ConfigFilesVersion): Promise<ConfigFilesListing | undefined>;
  /** Records files' stamps, each only where the file still has the digest given with it. */
  stampConfigFiles(stamps: readonly ConfigFileStamp[]): Promise<void>;
  /** Creates or replaces the record of applied config files. */
  putConfigFiles(files: readonly AppliedConfigFile[]): Promise<void>;
  /** Forgets applied config files (`all`: a config applied without them, whole). */
  deleteConfigFiles(paths: readonly string[] | 'all'): Promise<void>;

  /** People of the config (`people/`), with when `writ apply` last changed each. */
  listPeople(): Promise<StoredPerson[]>;
  /** Creates or replaces a config person, changed at `now` (ms). */
  putPerson(p: Person, now: number): Promise<void>;
  deletePerson(id: string): Promise<void>;
  listTeams(): Promise<Team[]>;
  putTeam(t: Team): Promise<void>;
  deleteTeam(id: string): Promise<void>;
  /** The SCIM resources of a type, deleted ones included, by id. */
  listScimResources(type: ScimResourceType): Promise<ScimRecord[]>;
  getScimResource(type: ScimResourceType, id: string): Promise<ScimRecord | undefined>;
  /** The live (not deleted) SCIM resource of the type with that `name`, read by index. */
  findScimResource(type: ScimResourceType, name: string): Promise<ScimRecord | undefined>;
  /**
   * Creates (`expectedVersion` undefined) or replaces a SCIM resource. Replacing only succeeds while the
   * stored version is `expectedVersion` ('stale' otherwise, or when it does not exist); either refuses
   * with 'name_taken' when another live resource of the type has the name. Never throws for those, so a
   * transaction stays usable.
   */
  putScimResource(r: ScimRecord, expectedVersion: number | undefined): Promise<ScimPutResult>;

  listIssuers(): Promise<TrustedIssuer[]>;
  putIssuer(i: TrustedIssuer): Promise<void>;
  deleteIssuer(name: string): Promise<void>;

  /** Workload templates (config `templates/`), by id. */
  listTemplates(): Promise<WorkloadTemplate[]>;
  putTemplate(t: WorkloadTemplate): Promise<void>;
  deleteTemplate(id: string): Promise<void>;

  /** The running policy set; undefined before a node first stored one. */
  getPolicySet(): Promise<StoredPolicySet | undefined>;
  /** Replaces the running policy set. */
  putPolicySet(p: StoredPolicySet): Promise<void>;
  /**
   * Records an applied policy version with its sources (replacing one of the same id), then keeps only
   * the newest `POLICY_VERSIONS_KEPT` by counter.
   */
  putPolicyVersion(v: StoredPolicyVersion): Promise<void>;
  /** The kept policy versions, newest (highest counter) first, without their sources. */
  listPolicyVersions(): Promise<PolicyVersionSummary[]>;
  /** One kept policy version with its sources; undefined when unknown or pruned. */
  getPolicyVersion(id: string): Promise<StoredPolicyVersion | undefined>;
  /** Attributes of APIs set through the admin API (they override `resources.yaml`), by id. */
  listResourceAttributes(): Promise<StoredResource[]>;
  putResourceAttributes(r: StoredResource): Promise<void>;
  /** False if none were set for `id`. */
  deleteResourceAttributes(id: string): Promise<boolean>;

  /*
   * Times called `now` below are the caller's clock. A store several nodes share (`cluster`) compares
   * shared rows with its database's clock instead, or with the earlier of the two where forgetting early
   * would be unsafe (a replay entry, a revocation): one node's clock running ahead never makes another
   * node's entries expire. The embedded store has one process and so one clock: the caller's.
   */

  /** Records a one-time use of `id` in `scope`; true on first use, false if still remembered. Atomic. */
  consume(scope: string, id: string, expiresAt: number, now: number): Promise<boolean>;
  /**
   * Takes one request from the token bucket `key` (refilled at `ratePerSecond` up to `burst`, full when
   * new); returns 0 when allowed, else the whole seconds until one is. Atomic across every instance.
   */
  rateLimit(key: string, ratePerSecond: number, burst: number, now: number): Promise<number>;
  /**
   * Takes up to `want` requests at once from the same bucket: as many whole ones as it holds. What a
   * node of a cluster hands out from its own memory afterwards (`StoreRateLimiter`). Atomic too.
   */
  leaseRate(key: string, ratePerSecond: number, burst: number, want: number, now: number): Promise<RateLease>;

  recordToken(t: IssuedToken): Promise<void>;
  getToken(jti: string): Promise<IssuedToken | undefined>;
  /** The recorded tokens among `jtis`, in any order; ids never recorded (or pruned) are left out. */
  getTokens(jtis: readonly string[]): Promise<IssuedToken[]>;
  /** Tokens issued for a task, oldest first. */
  tokensForTask(tid: string, limit: number): Promise<IssuedToken[]>;
  /**
   * The latest `exp` (seconds) of the recorded tokens `match` selects, among those expiring after
   * `after` (seconds); undefined when there are none. How long a revocation must be kept.
   */
  latestTokenExpiry(match: TokenMatch, after: number): Promise<number | undefined>;
  /** `latestTokenExpiry` of many tasks' tokens at once: task id → latest `exp` after `after`, when any. */
  latestTaskTokenExpiries(tids: string[], after: number): Promise<Map<string, number>>;

  createTask(t: Task): Promise<void>;
  getTask(id: string): Promise<Task | undefined>;
  /** Closes an open task; false if it is unknown or already closed. */
  closeTask(id: string, at: number, reason: string): Promise<boolean>;
  /** Extends the lease of an open task; false if it is unknown or closed. */
  renewTaskLease(id: string, until: number): Promise<boolean>;
  listTasks(q: { workload?: string; open?: boolean; limit: number }): Promise<Task[]>;
  /** How many tasks of `workload` are open. */
  countOpenTasks(workload: string): Promise<number>;
  /** Deletes tasks closed before `closedBefore` (ms); returns how many. */
  pruneTasks(closedBefore: number): Promise<number>;
  /**
   * Closes up to `limit` of the tasks `dueTasks(now, limit)` would return, in one statement, at `at`
   * with `reasons.deadline` or `reasons.lease` (whichever ran out), and returns them closed, earliest
   * due first. A task whose lease was renewed meanwhile is no longer due and stays open.
   */
  closeDueTasks(
    now: number,
    at: number,
    limit: number,
    reasons: { deadline: string; lease: string },
  ): Promise<Task[]>;
  /**
   * Open tasks whose deadline or lease has passed at `now`, the earliest due first (due: the earlier of
   * deadline and lease end), then by id.
   */
  dueTasks(now: number, limit: number): Promise<Task[]>;

  /** Stores a revocation and gives it the next sequence number. */
  addRevocation(r: NewRevocation): Promise<Revocation>;
  /** Revocations after `afterSeq` that can still match a live token at `now`, in seq order; at most `limit`. */
  listRevocations(afterSeq: number, now: number, limit?: number): Promise<Revocation[]>;
  /** The seq of the newest revocation stored, expired or not; 0 when there is none. */
  lastRevocationSeq(): Promise<number>;

  listKeys(): Promise<KeyRecord[]>;
  putKey(k: KeyRecord): Promise<void>;

  /** Every version of vendor key `name` (every vendor key without it), oldest first. */
  listVendorKeys(name?: string): Promise<VendorKeyRecord[]>;
  /** Inserts a version, or updates `replacedAt`, `overlapUntil` and `proxies` of one that exists. */
  putVendorKey(k: VendorKeyRecord): Promise<void>;
  /** Deletes versions of `name` (every version without `version`); returns how many went. */
  deleteVendorKeys(name: string, version?: number): Promise<number>;

  /**
   * Appends to the hash chain; the adapter links the event to the current head atomically. With `held`
   * (the newest event the caller wrote or verified), it first checks under the same lock that the store
   * still has that event with that hash, and throws `AuditChainBrokenError` (appending nothing) if not:
   * a cut tail is never silently continued with reused sequence numbers.
   */
  appendAudit(e: AuditDraft, held?: AuditHead): Promise<AuditEvent>;
  /** `appendAudit` of several events in order, linked in one chain (one round trip where it matters). */
  appendAuditBatch(drafts: AuditDraft[], held?: AuditHead): Promise<AuditEvent[]>;
  /**
   * Commits one issuance (`writeIssuance`: replay entries, token record, audit event with `held` checked)
   * in its own transaction, or with others that arrive together (group commit: PostgreSQL batches them
   * into a few statements). Resolves only once committed; throws `IssuanceRefusedError` (nothing of it
   * written) on a spent entry or a closed task, `AuditChainBrokenError` as `appendAudit`. Other
   * issuances of the same batch are not affected by one's refusal.
   */
  recordIssuance(w: IssuanceWrite, held?: AuditHead): Promise<AuditEvent>;
  queryAudit(q: AuditQuery): Promise<AuditEvent[]>;
  /** Every event in sequence order, in pages; for verification. */
  scanAudit(afterSeq: number, limit: number): Promise<AuditEvent[]>;
  auditHead(): Promise<{ seq: number; hash: string } | undefined>;
  addCheckpoint(c: AuditCheckpoint): Promise<void>;
  listCheckpoints(): Promise<AuditCheckpoint[]>;

  /** Appends to the event log (inside the transaction that made the change); returns the event with its seq. */
  appendEvent(e: Omit<StreamEvent, 'seq'>): Promise<StreamEvent>;
  /** Events after `afterSeq`, in order. */
  readEvents(afterSeq: number, limit: number): Promise<StreamEvent[]>;
  /** The lowest and highest seq still in the log (0, 0 when empty). */
  eventBounds(): Promise<{ first: number; last: number }>;
  /** Drops events before `ts`; a verifier further behind gets a snapshot first. */
  trimEvents(beforeTs: number): Promise<number>;

  /** Merges counted uses into the usage aggregate (count added, first/last seen widened). */
  addUsage(rows: UsageAggregate[]): Promise<void>;
  /** The usage aggregate of one token, earliest first seen first. */
  usageForToken(jti: string, limit: number): Promise<UsageAggregate[]>;
  /** Drops aggregates last seen before `beforeMs`; returns rows removed. */
  pruneUsage(beforeMs: number): Promise<number>;
  /**
   * Aggregates last seen at or after `q.lastSeenFrom`, in key order (jti, operation, source, decision,
   * reason), at most `q.limit`; a page continues with `after` set to the last key read (`usageKey`).
   */
  scanUsage(q: UsageScan): Promise<UsageAggregate[]>;

  /** Creates or replaces a stream. */
  putSsfStream(s: SsfStream): Promise<void>;
  getSsfStream(id: string): Promise<SsfStream | undefined>;
  /** Streams, oldest first; only those of `owner` when given. */
  listSsfStreams(owner?: string): Promise<SsfStream[]>;
  /** Deletes a stream and everything queued on it; false if it is unknown. */
  deleteSsfStream(id: string): Promise<boolean>;
  /**
   * Queues SETs; one already queued with the same (stream, jti) is left alone, so several nodes may
   * queue the same event. A stream holding more than `maxPerStream` loses its oldest SETs; returns how
   * many each stream lost.
   */
  enqueueSsfSets(
    sets: Array<Omit<QueuedSet, 'attempts' | 'lastError'>>,
    maxPerStream: number,
  ): Promise<Array<{ streamId: string; dropped: number }>>;
  /** Queued SETs of a stream, oldest first. */
  pendingSsfSets(streamId: string, limit: number): Promise<QueuedSet[]>;
  /** Removes delivered (or acknowledged) SETs; returns how many were queued. */
  ackSsfSets(streamId: string, jtis: string[]): Promise<number>;
  /**
   * Claims the oldest SET of a stream for one push attempt if it is due at `now`: counts the attempt and
   * holds it until `leaseUntil`, so no other node pushes it meanwhile. Atomic.
   */
  claimSsfSet(streamId: string, now: number, leaseUntil: number): Promise<QueuedSet | undefined>;
  /** After a failed push: try again at `nextAttemptAt`. */
  deferSsfSet(streamId: string, jti: string, nextAttemptAt: number, lastError: string): Promise<void>;

  /** Detection baselines, one JSON document per workload; every one (nodes load them at start). */
  listBaselines(): Promise<StoredBaseline[]>;
  /** Creates or replaces baselines (written behind, every few seconds, by each node). */
  putBaselines(rows: StoredBaseline[]): Promise<void>;
  /** Risk scores as last raised, every workload that has one. */
  listRisks(): Promise<WorkloadRisk[]>;
  /** Creates or replaces a workload's risk. */
  putRisk(r: WorkloadRisk): Promise<void>;
  /** Stores a new finding (its id is new). */
  addFinding(f: Finding): Promise<void>;
  getFinding(id: string): Promise<Finding | undefined>;
  /**
   * Findings newest first (by `createdAt`, then id), filtered by `q`; at most 1000, whatever `q.limit`
   * asks. A page continues with `before` set to its last finding.
   */
  listFindings(q: FindingQuery): Promise<Finding[]>;
  /** Sets a finding's state, who set it, when and why; false if it is unknown. */
  setFindingState(id: string, state: FindingState, by: string, at: number, note: string): Promise<boolean>;
  /** The switch over automatic responses; undefined when never set (responses on). */
  getDetectionControl(): Promise<DetectionControl | undefined>;
  putDetectionControl(c: DetectionControl): Promise<void>;
  /**
   * The detection rules and networks the config last applied (`writ apply`), one document; undefined
   * when none was ever applied (the built-in rules, no networks).
   */
  getDetectionConfig(): Promise<DetectionConfig | undefined>;
  /** Replaces the detection config, at `at` (ms). */
  putDetectionConfig(c: DetectionConfig, at: number): Promise<void>;

  /** How far a named follower of the event log (the SSF transmitter, say) has got; undefined if never. */
  followerPosition(name: string): Promise<number | undefined>;
  /** Moves a follower forward to `seq` (never back). */
  setFollowerPosition(name: string, seq: number): Promise<void>;

  /** The exceptions registry (docs/governance.md): every declaration with its runtime state, by id. */
  listExceptions(): Promise<ExceptionRecord[]>;
  getException(id: string): Promise<ExceptionRecord | undefined>;
  /** Creates or replaces a declaration (`writ apply`); its runtime state is kept (empty when new). */
  putException(e: CredentialException): Promise<void>;
  deleteException(id: string): Promise<void>;
  /**
   * Replaces an exception's runtime state if it is still `expected` (as read): false, changing nothing,
   * when another writer changed it first or the exception is unknown. Atomic.
   */
  setExceptionRuntime(id: string, runtime: ExceptionRuntime, expected: ExceptionRuntime): Promise<boolean>;

  /** Stores a new break-glass request (its id is new). */
  createBreakGlass(g: BreakGlass): Promise<void>;
  getBreakGlass(id: string): Promise<BreakGlass | undefined>;
  /** Break-glass grants `q` selects, oldest request first; at most `q.limit` (capped at 1000). */
  listBreakGlass(q: BreakGlassQuery): Promise<BreakGlass[]>;
  /** Replaces a grant if its state is still `expected`; false, changing nothing, otherwise. Atomic. */
  updateBreakGlass(g: BreakGlass, expected: BreakGlassState): Promise<boolean>;

  /** Deletes expired replay entries and tokens, and rate buckets that have refilled; returns rows removed. */
  /**
   * Console sessions (docs/console.md), keyed by the SHA-256 of the cookie's id. `touch` moves
   * `lastSeenAt` forward only (concurrent requests cannot move it back); false when there is no such
   * session. `prune` drops those past their absolute end.
   */
  putConsoleSession(s: ConsoleSession): Promise<void>;
  getConsoleSession(idHash: string): Promise<ConsoleSession | undefined>;
  touchConsoleSession(idHash: string, at: number): Promise<boolean>;
  deleteConsoleSession(idHash: string): Promise<boolean>;

  prune(now: number): Promise<number>;
  ping(): Promise<void>;
  /**
   * Rewrites the one row of the write probe with @now (ms) and commits: resolves only when the store
   * accepts writes (a full disk, a read-only file or a held write lock reject as StoreUnavailableError).
   */
  probeWrite(now: number): Promise<void>;
  close(): Promise<void>;
}
