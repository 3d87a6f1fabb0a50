//! The schema, as an ordered list of migrations. `PRAGMA user_version` holds
//! how many have been applied; new releases only ever append.
//!
//! Conventions: times are INTEGER unix milliseconds in `*_ms` columns; JSON
//! values are TEXT; payloads live once in `blobs`, addressed by sha256.

/// Migration `i` (0-based) brings the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[MIGRATION_1];

const MIGRATION_1: &str = r#"
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,            -- hex of the stored bytes
    size   INTEGER NOT NULL,            -- length of data
    data   BLOB NOT NULL
);

CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY,
    uuid            TEXT NOT NULL UNIQUE,    -- ours, one per real-kernel launch
    kernel_session  TEXT,                    -- header.session of the real kernel
    kernelspec      TEXT,                    -- the wrapped kernelspec's name
    argv            TEXT,                    -- JSON array: the real kernel's command
    language        TEXT,
    language_info   TEXT,                    -- JSON, from kernel_info_reply
    implementation  TEXT,
    implementation_version TEXT,
    started_ms      INTEGER NOT NULL,
    ended_ms        INTEGER,
    exit_code       INTEGER,
    exit_signal     INTEGER,
    notebook_path   TEXT,
    cwd             TEXT,
    project_root    TEXT,
    user            TEXT,
    host            TEXT,
    pid             INTEGER,                 -- the proxy's pid
    kernel_pid      INTEGER,                 -- the real kernel's pid
    git_head        TEXT,
    git_dirty       INTEGER,
    packages_sha256 TEXT REFERENCES blobs(sha256)  -- JSON list of installed packages
);
CREATE INDEX sessions_started ON sessions(started_ms);

CREATE TABLE executions (
    id                INTEGER PRIMARY KEY,
    session_id        INTEGER NOT NULL REFERENCES sessions(id),
    msg_id            TEXT NOT NULL,          -- the execute_request's header.msg_id
    cell_id           TEXT,                   -- metadata.cellId (JupyterLab, VS Code)
    notebook_path     TEXT,
    execution_count   INTEGER,
    code              TEXT,                   -- NULL when skipped
    silent            INTEGER NOT NULL DEFAULT 0,
    store_history     INTEGER NOT NULL DEFAULT 1,
    started_ms        INTEGER NOT NULL,
    ended_ms          INTEGER,
    status            TEXT NOT NULL CHECK (status IN
                        ('running','ok','error','aborted','interrupted','died','skipped')),
    error_name        TEXT,
    error_value       TEXT,
    traceback         TEXT,                   -- JSON array of strings
    wall_ms           REAL,
    cpu_ms            REAL,                   -- CPU time of the kernel's process tree
    rss_start         INTEGER,                -- bytes, process tree
    rss_end           INTEGER,
    peak_rss          INTEGER,
    rss_delta         INTEGER,                -- rss_end - rss_start
    gpu_mem_peak      INTEGER,                -- bytes; NULL without NVML
    gpu_util_max      REAL,                   -- percent; NULL without NVML
    exit_code         INTEGER,                -- status 'died' only
    exit_signal       INTEGER,
    prev_execution_id INTEGER,                -- previous execution of the session
    output_count      INTEGER NOT NULL DEFAULT 0,
    truncated         INTEGER NOT NULL DEFAULT 0  -- some output payload was cut
);
CREATE INDEX executions_notebook ON executions(notebook_path, id DESC);
CREATE INDEX executions_cell     ON executions(cell_id, id DESC);
CREATE INDEX executions_session  ON executions(session_id, id);
CREATE INDEX executions_status   ON executions(status, id DESC);
CREATE INDEX executions_started  ON executions(started_ms);

-- Outputs as the notebook shows them after streams are coalesced and
-- clear_output / update_display_data applied.
CREATE TABLE outputs (
    id              INTEGER PRIMARY KEY,
    execution_id    INTEGER NOT NULL REFERENCES executions(id),
    position        INTEGER NOT NULL,
    output_type     TEXT NOT NULL CHECK (output_type IN
                        ('stream','display_data','execute_result','error')),
    name            TEXT,                     -- stream name
    display_id      TEXT,                     -- transient.display_id
    execution_count INTEGER,                  -- execute_result only
    metadata        TEXT,                     -- JSON object
    error           TEXT,                     -- JSON {ename, evalue, traceback}
    UNIQUE (execution_id, position)
);
CREATE INDEX outputs_display ON outputs(display_id) WHERE display_id IS NOT NULL;

-- One row per MIME type of an output (a stream's text is 'text/plain').
CREATE TABLE output_data (
    output_id INTEGER NOT NULL REFERENCES outputs(id),
    mime      TEXT NOT NULL,
    sha256    TEXT NOT NULL REFERENCES blobs(sha256),
    size      INTEGER NOT NULL,               -- size before truncation
    truncated INTEGER NOT NULL DEFAULT 0,
    is_json   INTEGER NOT NULL DEFAULT 0,     -- the value was JSON, not a string
    PRIMARY KEY (output_id, mime)
) WITHOUT ROWID;
CREATE INDEX output_data_sha256 ON output_data(sha256);

-- Resource time series of an execution, offsets from its start.
CREATE TABLE samples (
    execution_id INTEGER NOT NULL REFERENCES executions(id),
    seq          INTEGER NOT NULL,
    t_ms         INTEGER NOT NULL,
    rss          INTEGER,
    cpu_ms       REAL,                        -- cumulative since the start
    gpu_mem      INTEGER,
    gpu_util     REAL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;

-- Full-text search over code and text outputs; rowid = executions.id.
CREATE VIRTUAL TABLE executions_fts USING fts5(
    code, text, content='', contentless_delete=1
);
"#;
