import { createHash } from 'node:crypto';
import type pg from 'pg';

export interface PostgresMigration {
  version: number;
  name: string;
  /** Runs with `search_path` set to the store's schema. */
  sql: string;
}

/**
 * Forward-only schema migrations for the PostgreSQL store, recorded in `writ_migrations`. Never edit an
 * applied migration: add the next version. Columns mirror the SQLite schema (JSON as text, so audit data
 * hashes the same after a round trip); times are BIGINT milliseconds or seconds as in the Store types.
 */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
    CREATE TABLE workloads (
      id TEXT PRIMARY KEY,
      spec TEXT NOT NULL,
      state TEXT NOT NULL DEFAULT 'active',
      updated_at BIGINT NOT NULL
    );
    CREATE TABLE classes (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
    CREATE TABLE operators (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
    CREATE TABLE replay (
      scope TEXT NOT NULL,
      id TEXT NOT NULL,
      expires_at BIGINT NOT NULL,
      PRIMARY KEY (scope, id)
    );
    CREATE INDEX replay_expiry ON replay (expires_at);
    CREATE TABLE tokens (
      jti TEXT PRIMARY KEY,
      sub TEXT NOT NULL,
      client_id TEXT NOT NULL,
      cls TEXT NOT NULL,
      aud TEXT NOT NULL,
      scope TEXT NOT NULL,
      kid TEXT NOT NULL,
      tid TEXT,
      iat BIGINT NOT NULL,
      exp BIGINT NOT NULL,
      fingerprint TEXT NOT NULL
    );
    CREATE INDEX tokens_exp ON tokens (exp);
    CREATE INDEX tokens_sub ON tokens (sub);
    CREATE INDEX tokens_tid ON tokens (tid) WHERE tid IS NOT NULL;
    CREATE TABLE tasks (
      id TEXT PRIMARY KEY,
      workload TEXT NOT NULL,
      purpose TEXT NOT NULL,
      labels TEXT NOT NULL,
      opened_by TEXT NOT NULL,
      opened_at BIGINT NOT NULL,
      deadline BIGINT NOT NULL,
      lease_until BIGINT,
      closed_at BIGINT,
      close_reason TEXT
    );
    CREATE INDEX tasks_workload ON tasks (workload, opened_at);
    CREATE INDEX tasks_open_deadline ON tasks (deadline) WHERE closed_at IS NULL;
    CREATE TABLE revocations (
      seq BIGINT PRIMARY KEY,
      kind TEXT NOT NULL,
      value TEXT NOT NULL,
      issued_before BIGINT,
      created_at BIGINT NOT NULL,
      reason TEXT NOT NULL,
      actor TEXT NOT NULL,
      expires_at BIGINT NOT NULL
    );
    CREATE TABLE signing_keys (
      kid TEXT PRIMARY KEY,
      alg TEXT NOT NULL,
      public_jwk TEXT NOT NULL,
      sealed_private_key BYTEA NOT NULL,
      state TEXT NOT NULL,
      created_at BIGINT NOT NULL,
      activated_at BIGINT,
      retired_at BIGINT,
      not_after BIGINT
    );
    CREATE TABLE audit_events (
      seq BIGINT PRIMARY KEY,
      ts BIGINT NOT NULL,
      type TEXT NOT NULL,
      outcome TEXT NOT NULL,
      actor TEXT NOT NULL,
      subject TEXT,
      jti TEXT,
      data TEXT NOT NULL,
      prev_hash TEXT NOT NULL,
      hash TEXT NOT NULL
    );
    CREATE INDEX audit_jti ON audit_events (jti) WHERE jti IS NOT NULL;
    CREATE INDEX audit_actor ON audit_events (actor, seq);
    CREATE INDEX audit_subject ON audit_events (subject, seq) WHERE subject IS NOT NULL;
    CREATE INDEX audit_ts ON audit_events (ts);
    CREATE TABLE audit_checkpoints (
      seq BIGINT PRIMARY KEY,
      hash TEXT NOT NULL,
      ts BIGINT NOT NULL,
      kid TEXT NOT NULL,
      jws TEXT NOT NULL
    );
    CREATE TABLE events (
      seq BIGINT PRIMARY KEY,
      ts BIGINT NOT NULL,
      type TEXT NOT NULL,
      data TEXT NOT NULL
    );
    -- One row, locked by every transaction before it writes (the cluster's BEGIN IMMEDIATE): appends to
    -- the audit chain, the event log and the revocation list are serialized, so a sequence number is
    -- only handed out after the previous one has committed and readers never see a gap close later.
    -- The counters never go back, like SQLite's AUTOINCREMENT (a rollback returns the number unused).
    CREATE TABLE write_head (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      revocation_seq BIGINT NOT NULL,
      event_seq BIGINT NOT NULL
    );
    INSERT INTO write_head (id, revocation_seq, event_seq) VALUES (1, 0, 0);
    `,
  },
  {
    version: 2,
    name: 'rate buckets shared by the nodes',
    // Unlogged: a bucket is worth nothing after a crash (it starts full again), and skipping the WAL keeps
    // the one write per token request cheap. Rows never take the write lock of write_head.
    sql: `
    CREATE UNLOGGED TABLE rate_buckets (
      key TEXT PRIMARY KEY,
      tokens DOUBLE PRECISION NOT NULL,
      at BIGINT NOT NULL,
      full_at BIGINT NOT NULL,
      granted BOOLEAN NOT NULL
    );
    CREATE INDEX rate_buckets_full_at ON rate_buckets (full_at);
    `,
  },
  {
    version: 3,
    name: 'usage aggregates, shared signals streams, event-log followers',
    sql: `
    CREATE TABLE token_usage (
      jti TEXT NOT NULL,
      operation TEXT NOT NULL,
      source TEXT NOT NULL,
      decision TEXT NOT NULL,
      reason TEXT NOT NULL,
      sub TEXT NOT NULL,
      tid TEXT,
      reporter TEXT NOT NULL,
      user_agent TEXT,
      count BIGINT NOT NULL,
      first_seen BIGINT NOT NULL,
      last_seen BIGINT NOT NULL,
      PRIMARY KEY (jti, operation, source, decision, reason)
    );
    CREATE INDEX token_usage_last_seen ON token_usage (last_seen);
    CREATE TABLE ssf_streams (
      id TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      spec TEXT NOT NULL,
      sealed_authorization BYTEA,
      status TEXT NOT NULL,
      status_reason TEXT,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL
    );
    CREATE TABLE ssf_sets (
      id BIGSERIAL PRIMARY KEY,
      stream_id TEXT NOT NULL,
      jti TEXT NOT NULL,
      event_seq BIGINT,
      payload TEXT NOT NULL,
      created_at BIGINT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at BIGINT NOT NULL,
      last_error TEXT,
      UNIQUE (stream_id, jti)
    );
    CREATE INDEX ssf_sets_stream ON ssf_sets (stream_id, id);
    CREATE TABLE event_followers (name TEXT PRIMARY KEY, seq BIGINT NOT NULL);
    `,
  },
  {
    version: 4,
    name: 'trusted outside issuers (workload federation)',
    sql: `
    CREATE TABLE issuers (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
    `,
  },
  {
    version: 5,
    name: 'the running policy set and admin-API resource attributes',
    sql: `
    CREATE TABLE policy_set (id INTEGER PRIMARY KEY CHECK (id = 1), spec TEXT NOT NULL);
    CREATE TABLE resource_attributes (id TEXT PRIMARY KEY, spec TEXT NOT NULL);
    `,
  },
  {
    version: 6,
    name: 'open tasks indexed by when they fall due (the earlier of deadline and lease end)',
    sql: `
    DROP INDEX tasks_open_deadline;
    CREATE INDEX tasks_open_due ON tasks (LEAST(deadline, lease_until), id) WHERE closed_at IS NULL;
    `,
  },
  {
    version: 7,
    name: 'exchanged tokens record the tokens they descend from (ajti)',
    sql: `
    ALTER TABLE tokens ADD COLUMN ajti TEXT;
    `,
  },
  {
    version: 8,
    name: 'open tasks per workload (the open-task limit) and closed tasks by close time (retention)',
    sql: `
    CREATE INDEX tasks_open_workload ON tasks (workload) WHERE closed_at IS NULL;
    CREATE INDEX tasks_closed_at ON tasks (closed_at) WHERE closed_at IS NOT NULL;
    `,
  },
  {
    version: 9,
    name: 'one row rewritten by the readiness probe (the store accepts writes)',
    sql: `
    CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at BIGINT NOT NULL);
    `,
  },
  {
    version: 10,
    name: 'detection: baselines, risk, findings (newest first, by state, workload and rule), the pause switch',
    sql: `
    CREATE TABLE detection_baselines (
      workload TEXT PRIMARY KEY,
      data TEXT NOT NULL,
      updated_at BIGINT NOT NULL
    );
    CREATE TABLE workload_risk (workload TEXT PRIMARY KEY, score DOUBLE PRECISION NOT NULL, at BIGINT NOT NULL);
    CREATE TABLE findings (
      id TEXT PRIMARY KEY,
      rule TEXT NOT NULL,
      severity TEXT NOT NULL,
      mode TEXT NOT NULL,
      workload TEXT NOT NULL,
      jti TEXT,
      tid TEXT,
      created_at BIGINT NOT NULL,
      evidence TEXT NOT NULL,
      response TEXT NOT NULL,
      outcome TEXT NOT NULL,
      risk DOUBLE PRECISION NOT NULL,
      state TEXT NOT NULL,
      state_by TEXT,
      state_at BIGINT,
      note TEXT NOT NULL
    );
    CREATE INDEX findings_newest ON findings (created_at, id);
    CREATE INDEX findings_state ON findings (state, created_at, id);
    CREATE INDEX findings_workload ON findings (workload, created_at, id);
    CREATE INDEX findings_rule ON findings (rule, created_at, id);
    CREATE TABLE detection_control (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      paused BOOLEAN NOT NULL,
      set_by TEXT NOT NULL,
      set_at BIGINT NOT NULL,
      reason TEXT NOT NULL
    );
    `,
  },
  {
    version: 11,
    name: 'detection: the rules and networks the config last applied, one document',
    sql: `
    CREATE TABLE detection_config (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      data TEXT NOT NULL,
      updated_at BIGINT NOT NULL
    );
    `,
  },
  {
    version: 12,
    name: 'governance: the exceptions registry and break-glass grants',
    sql: `
    CREATE TABLE credential_exceptions (id TEXT PRIMARY KEY, spec TEXT NOT NULL, runtime TEXT NOT NULL);
    CREATE TABLE break_glass (
      id TEXT PRIMARY KEY,
      workload TEXT NOT NULL,
      state TEXT NOT NULL,
      ends_at BIGINT,
      open_review INTEGER NOT NULL,
      requested_at BIGINT NOT NULL,
      doc TEXT NOT NULL
    );
    CREATE INDEX break_glass_workload ON break_glass (workload, state);
    CREATE INDEX break_glass_active_end ON break_glass (ends_at) WHERE state = 'active';
    CREATE INDEX break_glass_open_review ON break_glass (requested_at) WHERE open_review = 1;
    `,
  },
  {
    version: 13,
    name: 'people and teams from config, and what identity providers provisioned over SCIM',
    sql: `
    CREATE TABLE people (id TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_at BIGINT NOT NULL);
    CREATE TABLE teams (id TEXT PRIMARY KEY, spec TEXT NOT NULL);
    CREATE TABLE scim_resources (
      type TEXT NOT NULL,
      id TEXT NOT NULL,
      name TEXT NOT NULL,
      deleted BOOLEAN NOT NULL,
      version INTEGER NOT NULL,
      spec TEXT NOT NULL,
      PRIMARY KEY (type, id)
    );
    CREATE UNIQUE INDEX scim_resources_live_name ON scim_resources (type, name) WHERE NOT deleted;
    `,
  },
  {
    version: 14,
    name: 'vendor keys: static vendor API keys sealed under the KEK, one row per version',
    sql: `
    CREATE TABLE vendor_keys (
      name TEXT NOT NULL,
      version INTEGER NOT NULL,
      sealed BYTEA NOT NULL,
      fingerprint TEXT NOT NULL,
      proxies TEXT NOT NULL,
      created_at BIGINT NOT NULL,
      created_by TEXT NOT NULL,
      replaced_at BIGINT,
      overlap_until BIGINT,
      PRIMARY KEY (name, version)
    );
    `,
  },
  {
    version: 15,
    name: 'console sessions: the SHA-256 of the cookie id, operator, person, CSRF token and timeouts',
    sql: `
    CREATE TABLE console_sessions (
      id_hash TEXT PRIMARY KEY,
      operator TEXT NOT NULL,
      person TEXT,
      csrf TEXT NOT NULL,
      via TEXT NOT NULL,
      created_at BIGINT NOT NULL,
      last_seen_at BIGINT NOT NULL,
      expires_at BIGINT NOT NULL
    );
    CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
    `,
  },
  {
    version: 16,
    name: 'config files: the digest and documents of each file of the config directory last applied',
    sql: `
    CREATE TABLE config_files (path TEXT PRIMARY KEY, digest TEXT NOT NULL, spec TEXT NOT NULL);
    `,
  },
  {
    version: 17,
    name: 'workload templates: families of workloads admitted on first use (config templates/)',
    sql: `
    CREATE TABLE workload_templates (id TEXT PRIMARY KEY, spec TEXT NOT NULL);
    `,
  },
  {
    version: 18,
    name: 'rate buckets: how many requests the last take leased (a node takes several at once)',
    sql: `
    ALTER TABLE rate_buckets ADD COLUMN taken INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 19,
    name: 'policy versions: each applied policy set with its sources, the newest 50 kept',
    sql: `
    CREATE TABLE policy_versions (
      id TEXT PRIMARY KEY,
      counter BIGINT NOT NULL,
      created_at BIGINT NOT NULL,
      actor TEXT,
      built_in BOOLEAN NOT NULL,
      policies INTEGER NOT NULL,
      files TEXT NOT NULL
    );
    CREATE INDEX policy_versions_counter ON policy_versions (counter);
    `,
  },
  {
    version: 20,
    name: 'issuance batches in one statement: the audit chain linked in the database under the write lock',
    // One call commits a node's batch of issuances (autocommit: one round trip, one commit). The write
    // lock is taken inside and held only while the call runs and commits: no node's round trip, nor its
    // event loop, is inside it. Each statement of a volatile function reads with a fresh snapshot, so
    // the task check and the chain's head are read after the lock, seeing every earlier batch. Refusals
    // (a spent replay entry, a closed task) raise WR001, a held event the chain no longer has raises
    // WR002 (DETAIL: the head's sequence number, a space, the hash at the held sequence number): either
    // rolls the whole call back. Event hashes are SHA-256 over the previous hash, a newline and the
    // event's canonical JSON, which the caller sends in two parts around the sequence number.
    sql: `
    CREATE FUNCTION writ_issue_batch(
      p_rscope TEXT[], p_rid TEXT[], p_rexp BIGINT[], p_rnow BIGINT, p_tids TEXT[],
      p_jti TEXT[], p_sub TEXT[], p_client TEXT[], p_cls TEXT[], p_aud TEXT[], p_scope TEXT[], p_kid TEXT[],
      p_tid TEXT[], p_iat BIGINT[], p_exp BIGINT[], p_fp TEXT[], p_ajti TEXT[],
      p_ts BIGINT[], p_type TEXT[], p_outcome TEXT[], p_actor TEXT[], p_subject TEXT[], p_ejti TEXT[],
      p_data TEXT[], p_body_head TEXT[], p_body_tail TEXT[], p_held_seq BIGINT, p_held_hash TEXT)
    RETURNS TABLE (o_base_seq BIGINT, o_base_hash TEXT, o_last_hash TEXT)
    LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $f$
    DECLARE
      v_spent BIGINT;
      v_top BIGINT;
      v_top_hash TEXT;
      v_at TEXT;
      v_seq BIGINT;
      v_hash TEXT;
      v_seqs BIGINT[] := '{}';
      v_prev TEXT[] := '{}';
      v_hashes TEXT[] := '{}';
    BEGIN
      WITH c AS (
        INSERT INTO replay AS r (scope, id, expires_at) SELECT * FROM unnest(p_rscope, p_rid, p_rexp)
        ON CONFLICT (scope, id) DO UPDATE SET expires_at = excluded.expires_at WHERE r.expires_at <= p_rnow
        RETURNING 1)
      SELECT count(*) INTO v_spent FROM c;
      IF v_spent <> cardinality(p_rscope) THEN
        RAISE EXCEPTION 'a replay-cache entry of the batch was already spent' USING ERRCODE = 'WR001';
      END IF;
      INSERT INTO tokens (jti, sub, client_id, cls, aud, scope, kid, tid, iat, exp, fingerprint, ajti)
        SELECT * FROM unnest(p_jti, p_sub, p_client, p_cls, p_aud, p_scope, p_kid, p_tid, p_iat, p_exp, p_fp, p_ajti);
      PERFORM 1 FROM write_head WHERE id = 1 FOR UPDATE;
      IF (SELECT count(*) FROM tasks WHERE id = ANY(p_tids) AND closed_at IS NULL) <> cardinality(p_tids) THEN
        RAISE EXCEPTION 'a task of the batch is closed' USING ERRCODE = 'WR001';
      END IF;
      SELECT seq, hash INTO v_top, v_top_hash FROM audit_events ORDER BY seq DESC LIMIT 1;
      IF p_held_seq > 0 THEN
        SELECT hash INTO v_at FROM audit_events WHERE seq = p_held_seq;
        IF v_at IS DISTINCT FROM p_held_hash THEN
          RAISE EXCEPTION 'the audit chain no longer holds the event this node holds' USING ERRCODE = 'WR002',
            DETAIL = coalesce(v_top, 0)::text || ' ' || coalesce(v_at, '');
        END IF;
      END IF;
      v_seq := coalesce(v_top, 0);
      v_hash := coalesce(v_top_hash, repeat('0', 64));
      o_base_seq := v_seq;
      o_base_hash := v_top_hash;
      FOR i IN 1 .. cardinality(p_type) LOOP
        v_prev := v_prev || v_hash;
        v_seq := v_seq + 1;
        v_hash := encode(sha256(convert_to(v_hash || E'\\n' || p_body_head[i] || v_seq::text || p_body_tail[i], 'UTF8')), 'hex');
        v_seqs := v_seqs || v_seq;
        v_hashes := v_hashes || v_hash;
      END LOOP;
      INSERT INTO audit_events (seq, ts, type, outcome, actor, subject, jti, data, prev_hash, hash)
        SELECT * FROM unnest(v_seqs, p_ts, p_type, p_outcome, p_actor, p_subject, p_ejti, p_data, v_prev, v_hashes);
      o_last_hash := v_hash;
      RETURN NEXT;
    END
    $f$;
    `,
  },
  {
    version: 21,
    name: 'config files: a stamp of each file as last seen (size, times, inode), so it is not read again',
    sql: `
    ALTER TABLE config_files ADD COLUMN stamp TEXT;
    `,
  },
  {
    version: 22,
    name: 'config files: versions of the record, so writ apply lists only what changed since the one it holds',
    sql: `
    ALTER TABLE config_files ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX config_files_seq ON config_files (seq);
    CREATE TABLE config_file_removals (path TEXT PRIMARY KEY, seq BIGINT NOT NULL);
    CREATE INDEX config_file_removals_seq ON config_file_removals (seq);
    CREATE TABLE config_file_versions (n BIGINT PRIMARY KEY, tag TEXT NOT NULL);
    INSERT INTO config_file_versions (n, tag) VALUES (0, md5(random()::text || clock_timestamp()::text));
    `,
  },
];

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The schema name, checked so it can be spliced into SQL as a quoted identifier. */
export function quoteSchema(schema: string): string {
  if (!SCHEMA_NAME.test(schema))
    throw new Error(`invalid PostgreSQL schema name ${JSON.stringify(schema)} (lower case, digits, _)`);
  return `"${schema}"`;
}

/** A 64-bit advisory lock key of this schema's migrations (advisory locks are per database). */
function migrationLockKey(schema: string): string {
  return createHash('sha256').update(`writ:migrate:${schema}`).digest().readBigInt64BE(0).toString();
}

/**
 * Applies pending migrations in one transaction under an advisory lock, so nodes starting together
 * wait for the first and then find nothing left to do. Returns the migrations this call applied.
 */
export async function migratePostgres(client: pg.ClientBase, schema: string): Promise<PostgresMigration[]> {
  const s = quoteSchema(schema);
  const applied: PostgresMigration[] = [];
  await client.query('BEGIN');
  try {
    // Another node may be migrating: wait for it longer than for an ordinary lock.
    await client.query(`SET LOCAL lock_timeout = '5min'`);
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [migrationLockKey(schema)]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(`SET LOCAL search_path TO ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS writ_migrations (
         version INTEGER PRIMARY KEY,
         name TEXT NOT NULL,
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
       )`,
    );
    const done = new Set(
      (await client.query<{ version: number }>('SELECT version FROM writ_migrations')).rows.map(
        (r) => r.version,
      ),
    );
    for (const m of POSTGRES_MIGRATIONS) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO writ_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Versions this build knows that the schema has not applied yet (all of them when it does not exist). */
export async function pendingPostgresMigrations(client: pg.ClientBase, schema: string): Promise<number[]> {
  const table = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [
    `${quoteSchema(schema)}.writ_migrations`,
  ]);
  if (table.rows[0]?.t == null) return POSTGRES_MIGRATIONS.map((m) => m.version);
  const done = new Set(
    (
      await client.query<{ version: number }>(`SELECT version FROM ${quoteSchema(schema)}.writ_migrations`)
    ).rows.map((r) => r.version),
  );
  return POSTGRES_MIGRATIONS.filter((m) => !done.has(m.version)).map((m) => m.version);
}
