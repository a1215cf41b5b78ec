import type { Revocation, RevocationKind } from '@writ/sdk/wire';
import type { PublicJwk } from '../jose/jwk.js';

/** The Store port: everything Writ keeps. Adapters: SQLite (embedded default); PostgreSQL (cluster). */

export type WorkloadState = 'active' | 'disabled' | 'quarantined';

export interface Workload {
  /** SPIFFE ID; also the OAuth `client_id`. */
  id: string;
  owner: string;
  environment: string;
  attributes: Record<string, string | number | boolean>;
  classes: string[];
  /** Registered public keys for `private_key_jwt`. */
  jwks: PublicJwk[];
  /** SHA-256 (hex) of a legacy client secret; only honoured when a class marks the exception. */
  secretSha256?: string;
  description?: string;
  /** RFC 8705 §2.1: how a CA-issued client certificate is matched to this workload. */
  tlsClientAuth?: TlsClientAuthRule;
  /** RFC 8705 §2.2: `x5t#S256` thumbprints of the self-signed certificates it registered. */
  tlsCertificates?: string[];
  /** Trusted issuers (config `issuers/`) whose tokens may prove this workload's identity. */
  federation?: string[];
}

/**
 * A `tls_client_auth` registration (RFC 8705 §2.1.2): exactly one rule. `x509_svid`: a SPIFFE
 * X.509-SVID whose URI SAN is the workload's own id, chaining to its trust domain's bundle.
 */
export interface TlsClientAuthRule {
  rule: 'x509_svid' | 'subject_dn' | 'san_dns' | 'san_uri' | 'san_ip' | 'san_email';
  /** The expected value; for `x509_svid` the workload id. */
  value: string;
}

export interface WorkloadRecord extends Workload {
  state: WorkloadState;
  updatedAt: number;
}

export interface TokenClass {
  name: string;
  description?: string;
  /** Seconds. */
  maxTtl: number;
  /** Seconds. */
  defaultTtl: number;
  audiences: string[];
  scopes: string[];
  /** Scopes granted when a request names none; empty means a scope is required. */
  defaultScopes: string[];
  /** A registered exception: workloads of this class may authenticate with a client secret. */
  legacyClientSecret?: { justification: string; owner: string; expires: string };
  /**
   * Holder binding of issued tokens: `dpop` (default), `mtls` (bound to the client certificate the
   * workload authenticated with, RFC 8705 §3) or `bearer` (an exception, flagged in audit).
   */
  binding: 'dpop' | 'mtls' | 'bearer';
  /** Seconds: a task of this class, and every token renewed in it, ends at most this long after it opened. */
  renewalMaxLifetime: number;
  /** Workloads that may act for workloads of this class through token exchange (RFC 8693 `act`). */
  delegationActors: string[];
}

export interface Operator {
  name: string;
  jwks: PublicJwk[];
}

/**
 * An outside OIDC issuer (GitHub Actions, GitLab CI, Kubernetes, SPIRE…) whose signed tokens prove what
 * a workload is (config `issuers/`, presets already expanded). Claim rules are CEL expressions.
 */
export interface TrustedIssuer {
  name: string;
  description?: string;
  preset?: string;
  /** The exact `iss` its tokens carry. */
  issuer: string;
  /** Where its signing keys are published; absent when `jwks` holds them (air-gapped). */
  jwksUri?: string;
  /** Static public keys (from `jwks_file`). */
  jwks?: Record<string, unknown>[];
  /** `aud` must include one of these. */
  audiences: string[];
  algorithms: string[];
  /** Seconds: a token whose `iat` is older is refused. */
  maxTokenAge: number;
  /** Seconds of leeway on `exp`, `nbf` and `iat`. */
  clockSkew: number;
  /** Seconds between two fetches of the JWKS caused by an unknown `kid`. */
  jwksCooldown: number;
  /** Seconds a fetched JWKS is used before it is fetched again. */
  jwksMaxAge: number;
  /** CEL over `claims`: must be true. */
  condition: string;
  /** CEL over `claims`: the workload's SPIFFE ID. */
  subject: string;
  /** Name → CEL over `claims`: attributes for policy and audit. */
  attributes: Record<string, string>;
  /** When set, each CI run (these labels, all non-empty) gets its own task. */
  task?: { purpose: string; labels: Record<string, string> };
}

/** Attributes of one API (a token audience) as policies see it. */
export interface StoredResource {
  id: string;
  sensitivity: string;
  environment: string;
  owner: string;
}

/**
 * The running policy set, shared by every node: the sources it was compiled from (`null`: the built-in
 * set), its version, and the base of the policy bundle versions verifiers see.
 */
export interface StoredPolicySet {
  sources: { files: Array<{ file: string; text: string }>; resources: StoredResource[] } | null;
  counter: number;
  /** SHA-256 (hex) of the compiled set (see docs/policy.md, Versions). */
  hash: string;
  /** Hash of the set last applied from a config directory at start; null when none was. */
  configHash: string | null;
  /** Milliseconds: bundle versions are this plus an event-log seq (fixed when the store first held a set). */
  bundleEpoch: number;
  /** Milliseconds. */
  updatedAt: number;
}

/** One unit of work; tokens issued for it carry its id as `tid` and die when it closes. */
export interface Task {
  id: string;
  workload: string;
  purpose: string;
  labels: Record<string, string>;
  /** The workload itself or `operator:<name>`. */
  openedBy: string;
  /** Milliseconds. */
  openedAt: number;
  /** Milliseconds: the server closes the task at this time. */
  deadline: number;
  /** Milliseconds: when set, the task closes unless its owner renews the lease before then. */
  leaseUntil: number | null;
  closedAt: number | null;
  closeReason: string | null;
}

export interface IssuedToken {
  jti: string;
  sub: string;
  clientId: string;
  cls: string;
  aud: string;
  scope: string;
  kid: string;
  tid?: string;
  iat: number;
  exp: number;
  /** SHA-256 fingerprint (base64url) of the serialized token. */
  fingerprint: string;
}

export type KeyState = 'next' | 'active' | 'retired';

export interface KeyRecord {
  kid: string;
  alg: 'ES256' | 'EdDSA';
  publicJwk: PublicJwk;
  /** AES-256-GCM sealed PKCS#8 private key; opened only inside the KeyManager. */
  sealedPrivateKey: Buffer;
  state: KeyState;
  createdAt: number;
  activatedAt: number | null;
  retiredAt: number | null;
  /** When a retired key may leave the JWKS: its last token has expired. */
  notAfter: number | null;
}

export interface NewRevocation {
  kind: RevocationKind;
  value: string;
  issued_before: number | null;
  created_at: number;
  reason: string;
  actor: string;
  /** After this time no token the revocation matches can still be valid. */
  expires_at: number;
}

export interface AuditDraft {
  ts: number;
  type: string;
  outcome: 'success' | 'refused' | 'failure';
  actor: string;
  subject?: string | undefined;
  jti?: string | undefined;
  data: Record<string, unknown>;
}

export interface AuditEvent extends AuditDraft {
  seq: number;
  prevHash: string;
  hash: string;
}

export interface AuditQuery {
  afterSeq?: number;
  /** Matches `actor` or `subject`. */
  workload?: string;
  jti?: string;
  type?: string;
  since?: number;
  until?: number;
  limit: number;
  order?: 'asc' | 'desc';
}

/** One entry of the event log that verifiers and nodes follow (revocations, key and workload changes). */
export interface StreamEvent {
  seq: number;
  /** Milliseconds. */
  ts: number;
  type: string;
  data: Record<string, unknown>;
}

export interface AuditCheckpoint {
  seq: number;
  hash: string;
  ts: number;
  kid: string;
  /** Compact JWS over `{ seq, hash, ts }` signed by the server key. */
  jws: string;
}

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
}

/**
 * One kind of use of one token as verifiers report it, counted: the key is (jti, operation, source,
 * decision, reason); `count`, `firstSeen` and `lastSeen` aggregate every report of it.
 */
export interface UsageAggregate {
  jti: string;
  sub: string;
  tid: string | null;
  /** Method and route, e.g. `GET /reports/:id`. */
  operation: string;
  /** The caller's address as the verifier saw it. */
  source: string;
  decision: 'allow' | 'deny';
  /** Why the use was denied (`revoked`, `expired`, …); empty when allowed. */
  reason: string;
  /** The verifier workload that reported the latest use. */
  reporter: string;
  userAgent: string | null;
  count: number;
  /** Milliseconds. */
  firstSeen: number;
  lastSeen: number;
}

export type SsfStreamStatus = 'enabled' | 'paused' | 'disabled';

/** A Shared Signals (SSF 1.0) event stream to one receiver. */
export interface SsfStream {
  id: string;
  /** Who manages it: `operator:<name>`, or the receiver workload that created it. */
  owner: string;
  /** The SETs' `aud`: the receiver. */
  aud: string[];
  /** `urn:ietf:rfc:8935` (push) or `urn:ietf:rfc:8936` (poll). */
  deliveryMethod: string;
  /** Push: the receiver's endpoint. Poll: the transmitter's endpoint for this stream. */
  endpointUrl: string;
  /** Push: the `Authorization` header value to send, sealed with the key-encryption key. */
  sealedAuthorization: Buffer | null;
  eventsRequested: string[];
  description: string | null;
  status: SsfStreamStatus;
  statusReason: string | null;
  /** The event log's last seq when the stream was created: only later events are delivered. */
  fromSeq: number;
  /** Milliseconds. */
  createdAt: number;
  updatedAt: number;
}

/** A Security Event Token waiting for delivery on a stream (signed when sent, so key rotation never strands it). */
export interface QueuedSet {
  streamId: string;
  jti: string;
  /** The event-log seq that caused it; null for verification and stream-updated events. */
  eventSeq: number | null;
  /** The SET claims. */
  payload: Record<string, unknown>;
  /** Milliseconds. */
  createdAt: number;
  /** Push attempts made so far. */
  attempts: number;
  /** Milliseconds: a push is not tried before this time. */
  nextAttemptAt: number;
  lastError: string | null;
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

  listIssuers(): Promise<TrustedIssuer[]>;
  putIssuer(i: TrustedIssuer): Promise<void>;
  deleteIssuer(name: string): Promise<void>;

  /** The running policy set; undefined before a node first stored one. */
  getPolicySet(): Promise<StoredPolicySet | undefined>;
  /** Replaces the running policy set. */
  putPolicySet(p: StoredPolicySet): Promise<void>;
  /** Attributes of APIs set through the admin API (they override `resources.yaml`), by id. */
  listResourceAttributes(): Promise<StoredResource[]>;
  putResourceAttributes(r: StoredResource): Promise<void>;
  /** False if none were set for `id`. */
  deleteResourceAttributes(id: string): Promise<boolean>;

  /** Records a one-time use of `id` in `scope`; true on first use, false if still remembered. Atomic. */
  consume(scope: string, id: string, expiresAt: number, now: number): Promise<boolean>;
  /**
   * Takes one request from the token bucket `key` (refilled at `ratePerSecond` up to `burst`, full when
   * new); returns 0 when allowed, else the whole seconds until one is. Atomic across every instance.
   */
  rateLimit(key: string, ratePerSecond: number, burst: number, now: number): Promise<number>;

  recordToken(t: IssuedToken): Promise<void>;
  getToken(jti: string): Promise<IssuedToken | undefined>;
  /** Tokens issued for a task, oldest first. */
  tokensForTask(tid: string, limit: number): Promise<IssuedToken[]>;

  createTask(t: Task): Promise<void>;
  getTask(id: string): Promise<Task | undefined>;
  /** Closes an open task; false if it is unknown or already closed. */
  closeTask(id: string, at: number, reason: string): Promise<boolean>;
  /** Extends the lease of an open task; false if it is unknown or closed. */
  renewTaskLease(id: string, until: number): Promise<boolean>;
  listTasks(q: { workload?: string; open?: boolean; limit: number }): Promise<Task[]>;
  /** Open tasks whose deadline or lease has passed at `now`. */
  dueTasks(now: number, limit: number): Promise<Task[]>;

  /** Stores a revocation and gives it the next sequence number. */
  addRevocation(r: NewRevocation): Promise<Revocation>;
  /** Revocations after `afterSeq` that can still match a live token at `now`. */
  listRevocations(afterSeq: number, now: number): Promise<Revocation[]>;

  listKeys(): Promise<KeyRecord[]>;
  putKey(k: KeyRecord): Promise<void>;

  /** Appends to the hash chain; the adapter links the event to the current head atomically. */
  appendAudit(e: AuditDraft): Promise<AuditEvent>;
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

  /** How far a named follower of the event log (the SSF transmitter, say) has got; undefined if never. */
  followerPosition(name: string): Promise<number | undefined>;
  /** Moves a follower forward to `seq` (never back). */
  setFollowerPosition(name: string, seq: number): Promise<void>;

  /** Deletes expired replay entries and tokens, and rate buckets that have refilled; returns rows removed. */
  prune(now: number): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
