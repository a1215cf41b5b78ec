import type { Revocation, RevocationKind } from '@writ/sdk/wire';
import type { AuditCheckpoint, AuditEvent } from '../audit/audit-event.js';
import type { StreamEvent } from '../events/stream-event.js';
import type { KeyRecord } from '../keys/key-record.js';
import type { PolicyVersionSummary } from '../policy/policy-set.js';
import type { WorkloadRecord, WorkloadState } from '../registry/workload.js';
import type { NewRevocation } from '../revocation/new-revocation.js';
import type { Task } from '../tasks/task.js';
import type { IssuedToken } from '../tokens/issued-token.js';
import type { VendorKeyRecord } from '../vendor/vendor-key.js';

/**
 * Rows to domain records, shared by every SQL adapter: the tables have the same columns everywhere,
 * JSON is kept as text (so audit data hashes the same after a round trip) and integers come back as
 * JavaScript numbers.
 */
export type Row = Record<string, unknown>;

export function toWorkload(r: Row): WorkloadRecord {
  // The parsed spec is the record (100,000 of them at start): completed in place, not copied.
  const w = JSON.parse(r['spec'] as string) as WorkloadRecord;
  w.state = r['state'] as WorkloadState;
  w.updatedAt = r['updated_at'] as number;
  return w;
}

/** The `tokens` column a revocation kind matches on; the kinds are a closed set, never caller text. */
export function tokenColumn(kind: RevocationKind): string {
  const column = TOKEN_COLUMNS[kind];
  if (column === undefined) throw new Error(`unknown revocation kind ${JSON.stringify(kind)}`);
  return column;
}

const TOKEN_COLUMNS: Readonly<Record<RevocationKind, string>> = {
  jti: 'jti',
  tid: 'tid',
  sub: 'sub',
  client_id: 'client_id',
  cls: 'cls',
  kid: 'kid',
};

/** Earliest due first (the earlier of deadline and lease end), then by id: the sweeper's order. */
export function byDue(a: Task, b: Task): number {
  const due = (t: Task) => (t.leaseUntil === null ? t.deadline : Math.min(t.deadline, t.leaseUntil));
  return due(a) - due(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export function toToken(r: Row): IssuedToken {
  const t: IssuedToken = {
    jti: r['jti'] as string,
    sub: r['sub'] as string,
    clientId: r['client_id'] as string,
    cls: r['cls'] as string,
    aud: r['aud'] as string,
    scope: r['scope'] as string,
    kid: r['kid'] as string,
    iat: r['iat'] as number,
    exp: r['exp'] as number,
    fingerprint: r['fingerprint'] as string,
  };
  if (r['tid'] !== null) t.tid = r['tid'] as string;
  if (r['ajti'] !== null && r['ajti'] !== undefined) t.ajti = JSON.parse(r['ajti'] as string) as string[];
  return t;
}

export function toTask(r: Row): Task {
  return {
    id: r['id'] as string,
    workload: r['workload'] as string,
    purpose: r['purpose'] as string,
    labels: JSON.parse(r['labels'] as string) as Record<string, string>,
    openedBy: r['opened_by'] as string,
    openedAt: r['opened_at'] as number,
    deadline: r['deadline'] as number,
    leaseUntil: (r['lease_until'] as number | null) ?? null,
    closedAt: (r['closed_at'] as number | null) ?? null,
    closeReason: (r['close_reason'] as string | null) ?? null,
  };
}

export function toRevocation(r: Row): Revocation {
  return {
    seq: r['seq'] as number,
    kind: r['kind'] as RevocationKind,
    value: r['value'] as string,
    issued_before: (r['issued_before'] as number | null) ?? null,
    created_at: r['created_at'] as number,
    reason: r['reason'] as string,
    expires_at: r['expires_at'] as number,
  };
}

/**
 * A new revocation as stored with sequence number `seq` at `at` (milliseconds, the store's time for it):
 * "issued before now" becomes that time in seconds, and the expiry moves with it.
 */
export function revocationAt(r: NewRevocation, seq: number, at: number): Revocation {
  return {
    seq,
    kind: r.kind,
    value: r.value,
    issued_before: r.issued_before === 'now' ? Math.floor(at / 1000) : r.issued_before,
    created_at: at,
    reason: r.reason,
    expires_at: r.expires_at + (at - r.created_at),
  };
}

export function toKeyRecord(r: Row): KeyRecord {
  return {
    kid: r['kid'] as string,
    alg: r['alg'] as KeyRecord['alg'],
    publicJwk: JSON.parse(r['public_jwk'] as string),
    sealedPrivateKey: r['sealed_private_key'] as Buffer,
    state: r['state'] as KeyRecord['state'],
    createdAt: r['created_at'] as number,
    activatedAt: (r['activated_at'] as number | null) ?? null,
    retiredAt: (r['retired_at'] as number | null) ?? null,
    notAfter: (r['not_after'] as number | null) ?? null,
  };
}

export function toVendorKeyRecord(r: Row): VendorKeyRecord {
  return {
    name: r['name'] as string,
    version: Number(r['version']),
    sealed: r['sealed'] as Buffer,
    fingerprint: r['fingerprint'] as string,
    proxies: JSON.parse(r['proxies'] as string) as string[],
    createdAt: Number(r['created_at']),
    createdBy: r['created_by'] as string,
    replacedAt: r['replaced_at'] === null ? null : Number(r['replaced_at']),
    overlapUntil: r['overlap_until'] === null ? null : Number(r['overlap_until']),
  };
}

/** The row of a vendor key version, in column order. */
export const vendorKeyValues = (k: VendorKeyRecord) => [
  k.name,
  k.version,
  k.sealed,
  k.fingerprint,
  JSON.stringify(k.proxies),
  k.createdAt,
  k.createdBy,
  k.replacedAt,
  k.overlapUntil,
];

export function toAuditEvent(r: Row): AuditEvent {
  const e: AuditEvent = {
    seq: r['seq'] as number,
    ts: r['ts'] as number,
    type: r['type'] as string,
    outcome: r['outcome'] as AuditEvent['outcome'],
    actor: r['actor'] as string,
    data: JSON.parse(r['data'] as string) as Record<string, unknown>,
    prevHash: r['prev_hash'] as string,
    hash: r['hash'] as string,
  };
  if (r['subject'] !== null) e.subject = r['subject'] as string;
  if (r['jti'] !== null) e.jti = r['jti'] as string;
  return e;
}

export function toCheckpoint(r: Row): AuditCheckpoint {
  return {
    seq: r['seq'] as number,
    hash: r['hash'] as string,
    ts: r['ts'] as number,
    kid: r['kid'] as string,
    jws: r['jws'] as string,
  };
}

export function toStreamEvent(r: Row): StreamEvent {
  return {
    seq: r['seq'] as number,
    ts: r['ts'] as number,
    type: r['type'] as string,
    data: JSON.parse(r['data'] as string) as Record<string, unknown>,
  };
}

export function toPolicyVersionSummary(r: Row): PolicyVersionSummary {
  return {
    id: r['id'] as string,
    counter: Number(r['counter']),
    created: Number(r['created_at']),
    actor: (r['actor'] as string | null) ?? null,
    // SQLite keeps 0/1, PostgreSQL a boolean.
    builtIn: r['built_in'] === true || r['built_in'] === 1,
    policies: Number(r['policies']),
  };
}

/**
 * A token record's columns in the order both stores' `recordToken` statements name them: positional, since
 * binding by name looks every one up on an object built for the purpose (the issuance path).
 */
export function tokenRowValues(t: IssuedToken): unknown[] {
  return [
    t.jti,
    t.sub,
    t.clientId,
    t.cls,
    t.aud,
    t.scope,
    t.kid,
    t.tid ?? null,
    t.iat,
    t.exp,
    t.fingerprint,
    t.ajti !== undefined ? JSON.stringify(t.ajti) : null,
  ];
}
