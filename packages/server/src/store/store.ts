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
  /** Holder binding of issued tokens: `dpop` (default) or `bearer` (an exception, flagged in audit). */
  binding: 'dpop' | 'bearer';
  /** Seconds: a task of this class, and every token renewed in it, ends at most this long after it opened. */
  renewalMaxLifetime: number;
  /** Workloads that may act for workloads of this class through token exchange (RFC 8693 `act`). */
  delegationActors: string[];
}

export interface Operator {
  name: string;
  jwks: PublicJwk[];
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

  /** Deletes expired replay entries and tokens, and rate buckets that have refilled; returns rows removed. */
  prune(now: number): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
