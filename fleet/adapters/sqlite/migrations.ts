import type BetterSqlite3 from 'better-sqlite3';
import { FleetError } from '../../errors.js';

/**
 * Schema migrations of the fleet database, applied in order; `PRAGMA user_version` records
 * how many ran. Append only: never edit a shipped step, a fleet's file may be at any
 * version. Times are integer milliseconds since the epoch (the injected clock's unit);
 * JSON columns hold what has no fixed shape or is only ever read whole.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: registry, devices and their live state, samples, labels, datasets.
  `
  -- Model versions: immutable packages. The row is the registry's index; the bytes (files and
  -- the fleet-signed manifest) live in the artifact store, addressed by sha256.
  CREATE TABLE model_versions (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    -- created_at of the manifest, as written by the tool that built the package.
    created_at      TEXT    NOT NULL,
    pushed_at       INTEGER NOT NULL,
    pushed_by       TEXT    NOT NULL,
    -- sha256 of the signed manifest bytes: what a desired state pins.
    manifest_sha256 TEXT    NOT NULL,
    -- sha256 of the canonical manifest without its signature: the identity of the package
    -- (it lists every file's sha256), compared when the same name@version is pushed again.
    content_sha256  TEXT    NOT NULL,
    key_id          TEXT    NOT NULL,
    model_file      TEXT    NOT NULL,
    total_bytes     INTEGER NOT NULL,
    description     TEXT,
    evaluation      TEXT,
    dataset_version TEXT,
    training_run    TEXT,
    parent_name     TEXT,
    parent_version  TEXT,
    status          TEXT    NOT NULL DEFAULT 'registered' CHECK (status IN ('registered', 'rejected')),
    status_reasons  TEXT    NOT NULL DEFAULT '[]',
    status_at       INTEGER,
    status_by       TEXT,
    UNIQUE (name, version)
  );
  CREATE INDEX model_versions_parent ON model_versions (parent_name, parent_version);

  CREATE TABLE model_files (
    model_id INTEGER NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
    path     TEXT    NOT NULL,
    sha256   TEXT    NOT NULL,
    bytes    INTEGER NOT NULL,
    role     TEXT    NOT NULL,
    PRIMARY KEY (model_id, path)
  ) WITHOUT ROWID;
  -- For artifact garbage collection: is this blob still part of some version?
  CREATE INDEX model_files_sha ON model_files (sha256);

  -- Devices and their credentials. The id is the MQTT username and the topic namespace.
  CREATE TABLE devices (
    id            TEXT    PRIMARY KEY,
    -- The tags as one JSON object, for reading; device_tags below serves filters.
    tags          TEXT    NOT NULL DEFAULT '{}',
    -- scrypt$N$r$p$<salt b64>$<hash b64>: the secret itself is never stored.
    secret_hash   TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    secret_set_at INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE device_tags (
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (device_id, key)
  ) WITHOUT ROWID;
  CREATE INDEX device_tags_kv ON device_tags (key, value);

  -- What the fleet last heard from a device. A row appears with the first message.
  CREATE TABLE device_state (
    device_id           TEXT    PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    -- Fleet clock when the last fresh message arrived (device clocks drift; this does not).
    last_seen           INTEGER,
    -- 0 after a status with online=false or markOffline (the broker saw the connection go).
    connected           INTEGER NOT NULL DEFAULT 1,
    offline_at          INTEGER,
    -- Device timestamps of the last applied status and telemetry: older messages (a
    -- retained status replayed, a reordered publish) change nothing.
    status_ts           INTEGER,
    telemetry_ts        INTEGER,
    agent_version       TEXT,
    active_model        TEXT,
    previous_model      TEXT,
    installed_models    TEXT,
    deployment          TEXT,
    deployment_phase    TEXT,
    telemetry           TEXT,
    inference_rate      REAL,
    latency_p95_ms      REAL,
    outlier_rate        REAL,
    class_psi           REAL,
    brightness_psi      REAL,
    contrast_psi        REAL,
    queue_depth         INTEGER,
    queue_bytes         INTEGER,
    queue_evicted_total INTEGER
  ) WITHOUT ROWID;

  -- Samples the devices sent back. sample_id is the key the devices know (ingest is
  -- idempotent on it); seq is the arrival order, the stable cursor of every listing.
  CREATE TABLE samples (
    seq           INTEGER PRIMARY KEY,
    sample_id     TEXT    NOT NULL UNIQUE,
    device_id     TEXT    NOT NULL,
    site          TEXT,
    reasons       TEXT    NOT NULL,
    -- bit i set = OUTLIER_REASONS[i] (shared/schemas/common.ts, append-only enum).
    reason_mask   INTEGER NOT NULL,
    model_name    TEXT    NOT NULL,
    model_version TEXT    NOT NULL,
    predicted     TEXT    NOT NULL,
    confidence    REAL    NOT NULL,
    captured_at   INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    blob_sha256   TEXT    NOT NULL,
    blob_bytes    INTEGER NOT NULL,
    content_type  TEXT,
    brightness    REAL,
    contrast      REAL,
    shadow_model  TEXT,
    shadow_label  TEXT,
    shadow_score  REAL,
    -- The meta as received, so nothing the device sent is lost to the column choice.
    meta          TEXT    NOT NULL,
    -- Current label (the latest label event not undone); history in label_events.
    label         TEXT,
    label_state   TEXT CHECK (label_state IN ('labeled', 'skipped')),
    labeled_by    TEXT,
    labeled_at    INTEGER
  );
  CREATE INDEX samples_device    ON samples (device_id, seq);
  CREATE INDEX samples_site      ON samples (site, seq);
  CREATE INDEX samples_model     ON samples (model_name, model_version, seq);
  CREATE INDEX samples_predicted ON samples (predicted, seq);
  CREATE INDEX samples_captured  ON samples (captured_at);
  CREATE INDEX samples_label     ON samples (label_state, seq);

  CREATE TABLE label_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_seq INTEGER NOT NULL REFERENCES samples (seq) ON DELETE CASCADE,
    action     TEXT    NOT NULL CHECK (action IN ('assign', 'confirm', 'skip')),
    label      TEXT,
    actor      TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    undone_at  INTEGER,
    undone_by  TEXT
  );
  CREATE INDEX label_events_sample ON label_events (sample_seq, id);
  CREATE INDEX label_events_actor  ON label_events (actor, id) WHERE undone_at IS NULL;

  -- Dataset versions: the manifest (entries) is an artifact; this is its index.
  CREATE TABLE datasets (
    id              TEXT    PRIMARY KEY,
    name            TEXT,
    created_at      INTEGER NOT NULL,
    created_by      TEXT    NOT NULL,
    manifest_sha256 TEXT    NOT NULL,
    entries         INTEGER NOT NULL,
    counts          TEXT    NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX datasets_created ON datasets (created_at);
  `,
  // 2: API users (bearer tokens with roles), rollouts and per-device desired-state revisions.
  `
  -- People and scripts using the HTTP API. Only a hash of each token is stored.
  CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'labeler', 'viewer')),
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
  );
  -- One row per rollout: the pure machine's state as JSON (validated on load) plus what the
  -- machine does not need (selector, creator). Decisions are appended to their own table.
  CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    status TEXT NOT NULL,
    selector TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    state TEXT NOT NULL
  );
  CREATE INDEX rollouts_status ON rollouts (status);
  CREATE TABLE rollout_decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    decision TEXT NOT NULL
  );
  CREATE INDEX rollout_decisions_rollout ON rollout_decisions (rollout_id, seq);
  -- The last desired-state revision sent to each device: monotonic across restarts, so a
  -- device never mistakes a new desired state for one it already applied.
  CREATE TABLE desired_revisions (
    device_id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL
  );
  `,
  // 3: rollout state per device. A telemetry window changes one device's record; rewriting the
  // whole state (760 KB at 1,000 devices) per message made the fleet fall behind. The rollout
  // row keeps the rest of the state; decisions, already in rollout_decisions, leave it too.
  `
  CREATE TABLE rollout_devices (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    -- Position of the device in the state's key order (gate evaluation iterates it).
    ord INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
  ) WITHOUT ROWID;
  INSERT INTO rollout_devices (rollout_id, device_id, ord, record)
    SELECT r.id, j.key, j.id, j.value FROM rollouts r, json_each(r.state, '$.devices') j;
  UPDATE rollouts SET state = json_remove(state, '$.devices', '$.decisions');
  `,
  // 4: the learning loop: training runs (lineage of every candidate), retrain-trigger firings,
  // and which samples each dataset version holds (the reverse lineage: sample -> datasets).
  `
  -- One row per training run, written when it starts and completed when it ends, so a crash
  -- mid-run leaves a visible 'running' row (marked failed on the next start).
  CREATE TABLE training_runs (
    id              TEXT    PRIMARY KEY,
    model_name      TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('running', 'accepted', 'rejected', 'failed')),
    trainer         TEXT    NOT NULL,
    -- Parameters as the loop asked; the trainer's own record (params as used, code version) in run.
    params          TEXT    NOT NULL,
    seed            INTEGER NOT NULL,
    code_version    TEXT,
    trigger_kind    TEXT    NOT NULL,
    trigger_reason  TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    dataset_version TEXT,
    parent_name     TEXT,
    parent_version  TEXT,
    result_name     TEXT,
    result_version  TEXT,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    duration_ms     INTEGER,
    -- The trainer's metrics plus the evaluation summary.
    metrics         TEXT    NOT NULL DEFAULT '{}',
    -- The gate's verdict: {passed, reasons, checks}.
    gate            TEXT,
    -- The full evaluation report (confusion matrices included), an artifact.
    report_sha256   TEXT,
    rollout_id      TEXT,
    error           TEXT
  ) WITHOUT ROWID;
  CREATE INDEX training_runs_model  ON training_runs (model_name, started_at);
  CREATE INDEX training_runs_result ON training_runs (result_name, result_version);

  -- Every firing of a retrain trigger, with its reason (manual ones too).
  CREATE TABLE trigger_firings (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    details    TEXT    NOT NULL,
    run_id     TEXT
  );
  CREATE INDEX trigger_firings_model ON trigger_firings (model_name, seq);

  -- The field samples of each dataset version and their split (the manifest is the record;
  -- this index answers 'which dataset versions, and so which models, used this sample').
  CREATE TABLE dataset_samples (
    dataset_id TEXT NOT NULL,
    sample_id  TEXT NOT NULL,
    split      TEXT NOT NULL,
    PRIMARY KEY (dataset_id, sample_id)
  ) WITHOUT ROWID;
  CREATE INDEX dataset_samples_sample ON dataset_samples (sample_id);
  ALTER TABLE datasets ADD COLUMN model_name TEXT;
  `,
  // 5: the AWS (Greengrass) backend's ledger, until now a JSON file beside the database
  // (aws-ledger.json, imported on the first start after this step): the thing groups the fleet
  // made, the group each device is in and the deployment revision it was last given. In the
  // fleet database a ledger write can commit with the rollout step it reports.
  `
  CREATE TABLE aws_ledger (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    -- The last deployment revision issued (fleet-wide monotonic).
    last_revision INTEGER NOT NULL
  );
  -- One row per thing group; the record (deployment, lifecycle, members) as JSON. A rowid table:
  -- groups load in the order they were made, the order the backend sweeps them.
  CREATE TABLE aws_groups (
    name       TEXT PRIMARY KEY,
    rollout_id TEXT NOT NULL,
    record     TEXT NOT NULL
  );
  CREATE INDEX aws_groups_rollout ON aws_groups (rollout_id);
  CREATE TABLE aws_devices (
    device_id  TEXT PRIMARY KEY,
    -- The one edgeloop group the device is in (null: none).
    group_name TEXT,
    -- Revision of the deployment the device was last given (null: none yet).
    revision   INTEGER
  ) WITHOUT ROWID;
  `,
  // 6: people and roles. Tokens expire and can be revoked (a revoked user keeps its row, so its
  // name stays in the audit log and its old token is refused, not unknown); console sessions live
  // server-side; the audit log records who did what.
  `
  ALTER TABLE users ADD COLUMN expires_at INTEGER;
  ALTER TABLE users ADD COLUMN revoked_at INTEGER;
  ALTER TABLE users ADD COLUMN created_by TEXT;
  -- Console sessions: the cookie holds a random id, the table only its sha256. Revoking the user
  -- deletes them (and the cascade does it too if a user row is ever removed).
  CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    -- Sent back by the console's script as a header on every write (the cookie alone never writes).
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX sessions_user ON sessions (user_name);
  -- Who did what: pushes, rollouts and their commands, labels, user changes. Append only.
  CREATE TABLE audit_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    details TEXT
  );
  `,
  // 7: drift and outlier history per device, one row per applied telemetry message, for the
  // device page's PSI charts. Bounded: rows older than the retention are deleted as new ones come.
  `
  CREATE TABLE device_drift_history (
    device_id      TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- The telemetry message's own time (device clock), ms.
    ts             INTEGER NOT NULL,
    class_psi      REAL,
    brightness_psi REAL,
    contrast_psi   REAL,
    outlier_rate   REAL    NOT NULL,
    inference_rate REAL    NOT NULL,
    PRIMARY KEY (device_id, ts)
  ) WITHOUT ROWID;
  `,
  // 8: alerts raised by device rules (issue 15), stored on ingest from the sample that carries
  // the frame (meta.alert). Idempotent by alert id; acknowledged and resolved with who and when.
  `
  CREATE TABLE alerts (
    alert_id        TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    site            TEXT,
    camera          TEXT,
    rule            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    label           TEXT NOT NULL,
    score           REAL NOT NULL,
    count           INTEGER NOT NULL,
    model_name      TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    -- The sample holding the frame (its blob is the annotated JPEG).
    sample_id       TEXT NOT NULL,
    -- When the device raised it (ms), and when the fleet stored it.
    raised_at       INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    -- The alert record as the device sent it (detections, frame size).
    record          TEXT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at INTEGER,
    resolved_by     TEXT,
    resolved_at     INTEGER
  ) WITHOUT ROWID;
  CREATE INDEX alerts_raised ON alerts (raised_at);
  CREATE INDEX alerts_device ON alerts (device_id, raised_at);
  `,
  // 9: per-device X.509 certificates from the fleet CA. Only the current certificate's sha256 is
  // accepted at connect (a rotation replaces it, so the old one stops working); a revoked one
  // keeps its row for the record.
  `
  ALTER TABLE devices ADD COLUMN cert_sha256 TEXT;
  ALTER TABLE devices ADD COLUMN cert_serial TEXT;
  ALTER TABLE devices ADD COLUMN cert_issued_at INTEGER;
  ALTER TABLE devices ADD COLUMN cert_not_after INTEGER;
  ALTER TABLE devices ADD COLUMN cert_revoked_at INTEGER;
  `,
  // 10: the model slots a device serving several models reports (issue 14): JSON array of
  // { name, active, previous, shadow, installed, deployment }; NULL for agents older than slots.
  `
  ALTER TABLE device_state ADD COLUMN slots TEXT;
  `,
  // 11: alert rule sets (issue 15): immutable signed versions per name, the rule set each device
  // was sent (its revision orders the retained messages), and what the device says it runs.
  `
  CREATE TABLE rule_sets (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    -- The signed document exactly as devices get it (shared/schemas/rule-sets.ts).
    document    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (name, version)
  ) WITHOUT ROWID;
  CREATE TABLE rule_set_assignments (
    device_id   TEXT PRIMARY KEY,
    -- Both null: the fleet's rule set was withdrawn (the device runs its config's rules).
    name        TEXT,
    version     INTEGER,
    revision    INTEGER NOT NULL,
    assigned_at INTEGER NOT NULL,
    assigned_by TEXT NOT NULL
  ) WITHOUT ROWID;
  ALTER TABLE device_state ADD COLUMN rules TEXT;
  `,
  // 12: box labels of detection samples (issue 14). A label event of a detection sample carries
  // its boxes as JSON ({ frame, boxes }, fleet/core/labels/boxes.ts) beside a null label; the
  // sample row copies the current one like the class label. Null for class labels.
  `
  ALTER TABLE label_events ADD COLUMN boxes TEXT;
  ALTER TABLE samples ADD COLUMN boxes TEXT;
  `,
  // 13: rule-set deployments stand per selector (issue 15): a device registered later with
  // tags a deployment's selector matches gets that rule set too (the latest matching one).
  `
  CREATE TABLE rule_set_deployments (
    selector    TEXT PRIMARY KEY,
    name        TEXT,
    version     INTEGER,
    deployed_at INTEGER NOT NULL,
    deployed_by TEXT NOT NULL,
    -- Order of the deployments (the clock may not move between two).
    ord         INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
];

/** Bring the database to the latest schema, one transaction per step. */
export function migrate(db: BetterSqlite3.Database, migrations: readonly string[] = MIGRATIONS): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    // Written by a newer fleet (after a downgrade): refuse rather than guess at a schema we
    // do not know, and leave the file untouched.
    throw new FleetError('STORAGE_FAILED', `fleet database schema version ${current} is newer than this fleet supports (${migrations.length})`, {
      details: { schemaVersion: current, supported: migrations.length },
    });
  }
  for (let version = current; version < migrations.length; version++) {
    const step = migrations[version] as string;
    db.transaction(() => {
      db.exec(step);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
