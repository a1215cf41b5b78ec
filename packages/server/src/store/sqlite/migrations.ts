/** Forward-only schema migrations for the embedded store; `PRAGMA user_version` records the last applied. */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE workloads (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE classes (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
  CREATE TABLE operators (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
  CREATE TABLE replay (
    scope TEXT NOT NULL,
    id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (scope, id)
  ) WITHOUT ROWID;
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
    iat INTEGER NOT NULL,
    exp INTEGER NOT NULL,
    fingerprint TEXT NOT NULL
  );
  CREATE INDEX tokens_exp ON tokens (exp);
  CREATE INDEX tokens_sub ON tokens (sub);
  CREATE TABLE revocations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    issued_before INTEGER,
    created_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    sealed_private_key BLOB NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    activated_at INTEGER,
    retired_at INTEGER,
    not_after INTEGER
  );
  CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
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
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    ts INTEGER NOT NULL,
    kid TEXT NOT NULL,
    jws TEXT NOT NULL
  );
  `,
  `
  CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    workload TEXT NOT NULL,
    purpose TEXT NOT NULL,
    labels TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    lease_until INTEGER,
    closed_at INTEGER,
    close_reason TEXT
  );
  CREATE INDEX tasks_workload ON tasks (workload, opened_at);
  CREATE INDEX tasks_open_deadline ON tasks (deadline) WHERE closed_at IS NULL;
  CREATE INDEX tokens_tid ON tokens (tid) WHERE tid IS NOT NULL;
  `,
  `
  CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
  );
  `,
  // Issuance writes one token row and one audit row per request; indexes keyed by workload put every
  // concurrent request on a different page and multiplied the pages each commit writes. Queries by
  // workload scan the log newest-first instead (bounded by their limit); lookups by jti stay indexed.
  `
  DROP INDEX audit_actor;
  DROP INDEX audit_subject;
  DROP INDEX tokens_sub;
  `,
  // Token buckets for rate limits held in the store (one process keeps them in memory instead).
  `
  CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    at INTEGER NOT NULL,
    full_at INTEGER NOT NULL,
    granted INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX rate_buckets_full_at ON rate_buckets (full_at);
  `,
  // Usage reports from verifiers, aggregated per token and kind of use; Shared Signals streams, their
  // queues of SETs, and the positions of event-log followers (the SSF transmitter).
  `
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
    count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (jti, operation, source, decision, reason)
  ) WITHOUT ROWID;
  CREATE INDEX token_usage_last_seen ON token_usage (last_seen);
  CREATE TABLE ssf_streams (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    spec TEXT NOT NULL,
    sealed_authorization BLOB,
    status TEXT NOT NULL,
    status_reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE ssf_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    event_seq INTEGER,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    UNIQUE (stream_id, jti)
  );
  CREATE INDEX ssf_sets_stream ON ssf_sets (stream_id, id);
  CREATE TABLE event_followers (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
  `,
  // Trusted outside issuers (config `issuers/`): workload federation.
  `
  CREATE TABLE issuers (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
  `,
  // The running policy set (one row) and the API attributes set through the admin API, shared by nodes.
  `
  CREATE TABLE policy_set (id INTEGER PRIMARY KEY CHECK (id = 1), spec TEXT NOT NULL);
  CREATE TABLE resource_attributes (id TEXT PRIMARY KEY, spec TEXT NOT NULL);
  `,
  // Open tasks by when they fall due, the earlier of deadline and lease end: the sweeper closes a task
  // whose lease lapsed in turn with those past their deadline, not after every one of them.
  `
  DROP INDEX tasks_open_deadline;
  CREATE INDEX tasks_open_due ON tasks (min(deadline, ifnull(lease_until, deadline)), id) WHERE closed_at IS NULL;
  `,
  // Exchanged tokens record the tokens they descend from (`ajti`, a JSON list): a jti revocation of
  // any of them covers the record too, in the task view and the token trace.
  `
  ALTER TABLE tokens ADD COLUMN ajti TEXT;
  `,
  // Open tasks per workload (the open-task limit counts them) and closed tasks by when they closed
  // (deleted after tasks.retention).
  `
  CREATE INDEX tasks_open_workload ON tasks (workload) WHERE closed_at IS NULL;
  CREATE INDEX tasks_closed_at ON tasks (closed_at) WHERE closed_at IS NOT NULL;
  `,
  // One row rewritten by the readiness probe: whether the store accepts writes, not only reads.
  `
  CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);
  `,
  // Detection: each workload's baseline (a JSON document) and risk, the findings newest first (all of
  // them, by state, by workload and by rule), and the operator's switch over automatic responses.
  `
  CREATE TABLE detection_baselines (
    workload TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE workload_risk (workload TEXT PRIMARY KEY, score REAL NOT NULL, at INTEGER NOT NULL);
  CREATE TABLE findings (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    mode TEXT NOT NULL,
    workload TEXT NOT NULL,
    jti TEXT,
    tid TEXT,
    created_at INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    response TEXT NOT NULL,
    outcome TEXT NOT NULL,
    risk REAL NOT NULL,
    state TEXT NOT NULL,
    state_by TEXT,
    state_at INTEGER,
    note TEXT NOT NULL
  );
  CREATE INDEX findings_newest ON findings (created_at, id);
  CREATE INDEX findings_state ON findings (state, created_at, id);
  CREATE INDEX findings_workload ON findings (workload, created_at, id);
  CREATE INDEX findings_rule ON findings (rule, created_at, id);
  CREATE TABLE detection_control (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    paused INTEGER NOT NULL,
    set_by TEXT NOT NULL,
    set_at INTEGER NOT NULL,
    reason TEXT NOT NULL
  );
  `,
  // The detection rules and networks the config last applied: one JSON document every node loads.
  `
  CREATE TABLE detection_config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
  // Governance: the exceptions registry (declaration + runtime state) and break-glass grants.
  `
  CREATE TABLE credential_exceptions (id TEXT PRIMARY KEY, spec TEXT NOT NULL, runtime TEXT NOT NULL);
  CREATE TABLE break_glass (
    id TEXT PRIMARY KEY,
    workload TEXT NOT NULL,
    state TEXT NOT NULL,
    ends_at INTEGER,
    open_review INTEGER NOT NULL,
    requested_at INTEGER NOT NULL,
    doc TEXT NOT NULL
  );
  CREATE INDEX break_glass_workload ON break_glass (workload, state);
  CREATE INDEX break_glass_active_end ON break_glass (ends_at) WHERE state = 'active';
  CREATE INDEX break_glass_open_review ON break_glass (requested_at) WHERE open_review = 1;
  `,
  // People and teams from config (`people/`), and what identity providers provisioned over SCIM.
  `
  CREATE TABLE people (id TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_at INTEGER NOT NULL);
  CREATE TABLE teams (id TEXT PRIMARY KEY, spec TEXT NOT NULL);
  CREATE TABLE scim_resources (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    PRIMARY KEY (type, id)
  );
  CREATE UNIQUE INDEX scim_resources_live_name ON scim_resources (type, name) WHERE deleted = 0;
  `,
  // Static vendor API keys sealed under the KEK, one row per version (the vendor-key proxy).
  `
  CREATE TABLE vendor_keys (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    proxies TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    replaced_at INTEGER,
    overlap_until INTEGER,
    PRIMARY KEY (name, version)
  );
  `,
  // Console sign-ins (docs/console.md): the SHA-256 of the cookie's id, never the id itself.
  `
  CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    operator TEXT NOT NULL,
    person TEXT,
    csrf TEXT NOT NULL,
    via TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
  `,
  // The files of the config directory last applied: digest and documents, so start-up and
  // `writ apply` read and send only what changed.
  `
  CREATE TABLE config_files (path TEXT PRIMARY KEY, digest TEXT NOT NULL, spec TEXT NOT NULL);
  `,
  // Workload templates (config templates/): families of workloads admitted on first use.
  `
  CREATE TABLE workload_templates (id TEXT PRIMARY KEY, spec TEXT NOT NULL);
  `,
  // How many requests a bucket's last take leased: a node of a cluster takes several at once.
  `
  ALTER TABLE rate_buckets ADD COLUMN taken INTEGER NOT NULL DEFAULT 0;
  `,
  // Applied policy versions with their sources (the console's diffs); the newest 50 are kept.
  `
  CREATE TABLE policy_versions (
    id TEXT PRIMARY KEY,
    counter INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    actor TEXT,
    built_in INTEGER NOT NULL,
    policies INTEGER NOT NULL,
    files TEXT NOT NULL
  );
  CREATE INDEX policy_versions_counter ON policy_versions (counter);
  `,
  // A stamp of each applied config file as last seen (size, times, inode): a file whose stamp is the same
  // is not read again to be digested.
  `
  ALTER TABLE config_files ADD COLUMN stamp TEXT;
  `,
  // Versions of the record of applied files (each change moves it on, with a random tag): writ apply
  // lists only what changed since the version it holds. Removed paths are kept with the version that
  // removed them.
  `
  ALTER TABLE config_files ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX config_files_seq ON config_files (seq);
  CREATE TABLE config_file_removals (path TEXT PRIMARY KEY, seq INTEGER NOT NULL);
  CREATE INDEX config_file_removals_seq ON config_file_removals (seq);
  CREATE TABLE config_file_versions (n INTEGER PRIMARY KEY, tag TEXT NOT NULL);
  INSERT INTO config_file_versions (n, tag) VALUES (0, lower(hex(randomblob(16))));
  `,
];
