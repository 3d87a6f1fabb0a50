//! The query layer: what the comm service and the CLI ask. Every answer is a
//! `Serialize` struct; callers turn it into JSON or a table.

use std::collections::BTreeMap;

use rusqlite::{params, params_from_iter, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::write::decode_value;
use super::{Store, StoreError};

/// Filters for [`Store::history`]; every field is optional (`Default` = all).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryFilter {
    pub notebook: Option<String>,
    pub cell_id: Option<String>,
    /// One of the execution statuses (`ok`, `error`, …).
    pub status: Option<String>,
    pub session_id: Option<i64>,
    /// Executions started at or after this (unix ms).
    pub since_ms: Option<i64>,
    /// Executions started before this (unix ms).
    pub until_ms: Option<i64>,
    /// Full-text query over code and text outputs: words, all required,
    /// each matching the start of a word (see [`fts_query`]).
    pub text: Option<String>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<usize>,
    /// Cursor: only executions with a smaller id (the previous page's `next_cursor`).
    pub before: Option<i64>,
    /// Include silent executions (default: no).
    pub include_silent: bool,
}

/// A row of history: everything but the outputs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExecutionSummary {
    pub id: i64,
    pub session_id: i64,
    pub msg_id: String,
    pub cell_id: Option<String>,
    pub notebook_path: Option<String>,
    pub execution_count: Option<i64>,
    /// The first lines of the code (up to 10 lines / 1000 bytes).
    pub code_preview: Option<String>,
    pub status: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub wall_ms: Option<f64>,
    pub cpu_ms: Option<f64>,
    pub rss_start: Option<i64>,
    pub peak_rss: Option<i64>,
    pub rss_delta: Option<i64>,
    pub gpu_mem_peak: Option<i64>,
    pub gpu_util_max: Option<f64>,
    pub error_name: Option<String>,
    pub error_value: Option<String>,
    pub output_count: i64,
    pub truncated: bool,
    pub silent: bool,
    pub prev_execution_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryPage {
    pub items: Vec<ExecutionSummary>,
    /// Pass as `before` for the next (older) page; None on the last page.
    pub next_cursor: Option<i64>,
    /// With a text search: its words. Each matched the start of a word in
    /// the code or a text output (case-insensitive), which is what a view
    /// highlights. Absent without a search.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search_terms: Vec<String>,
}

/// One output, as an nbformat output object plus what the lineage knows.
#[derive(Debug, Clone, Serialize)]
pub struct OutputView {
    /// nbformat v4 output (`output_type`, `data`/`text`, `metadata`…),
    /// renderable as is by JupyterLab's rendermime.
    pub output: Value,
    pub display_id: Option<String>,
    /// MIME types whose payload was cut at the size cap.
    pub truncated: Vec<String>,
    /// sha256 of each MIME payload (equal hashes = equal payloads).
    pub sha256: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SampleRow {
    pub t_ms: i64,
    pub rss: Option<i64>,
    pub cpu_ms: Option<f64>,
    pub gpu_mem: Option<i64>,
    pub gpu_util: Option<f64>,
}

/// One execution in full.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionDetail {
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    pub session_uuid: String,
    pub code: Option<String>,
    pub store_history: bool,
    pub traceback: Option<Value>,
    pub rss_end: Option<i64>,
    pub exit_code: Option<i64>,
    pub exit_signal: Option<i64>,
    pub outputs: Vec<OutputView>,
    pub samples: Vec<SampleRow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CellSummary {
    pub cell_id: String,
    pub notebook_path: Option<String>,
    pub runs: i64,
    pub errors: i64,
    pub last_execution_id: i64,
    pub last_status: String,
    pub last_started_ms: i64,
    pub last_wall_ms: Option<f64>,
    pub min_wall_ms: Option<f64>,
    pub max_wall_ms: Option<f64>,
    pub peak_rss: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub id: i64,
    pub uuid: String,
    pub kernel_session: Option<String>,
    pub kernelspec: Option<String>,
    pub argv: Option<Value>,
    pub language: Option<String>,
    pub language_info: Option<Value>,
    pub implementation: Option<String>,
    pub implementation_version: Option<String>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub exit_code: Option<i64>,
    pub exit_signal: Option<i64>,
    pub notebook_path: Option<String>,
    pub cwd: Option<String>,
    pub project_root: Option<String>,
    pub user: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub kernel_pid: Option<i64>,
    pub git_head: Option<String>,
    pub git_dirty: Option<bool>,
    pub packages_sha256: Option<String>,
    pub executions: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub db_path: String,
    /// Bytes of the main file (page_count × page_size), plus the WAL if any.
    pub db_bytes: u64,
    pub wal_bytes: u64,
    pub schema_version: u32,
    pub journal_mode: String,
    pub sessions: i64,
    pub executions: i64,
    pub by_status: BTreeMap<String, i64>,
    pub notebooks: i64,
    pub outputs: i64,
    pub blobs: i64,
    pub blob_bytes: i64,
    pub samples: i64,
    pub oldest_ms: Option<i64>,
    pub newest_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PruneOptions {
    /// Remove executions that started before this time (unix ms).
    pub older_than_ms: Option<i64>,
    /// Then remove the oldest executions until the database is at most this many bytes.
    pub max_size: Option<u64>,
    /// Skip the final VACUUM (the file will not shrink).
    pub no_vacuum: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PruneReport {
    pub executions_removed: i64,
    pub sessions_removed: i64,
    pub blobs_removed: i64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Executions by age, for a prune's plan.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct AgeProfile {
    /// Executions in all.
    pub total: i64,
    /// Those started before the cutoff (0 without one).
    pub older: i64,
    pub oldest_ms: Option<i64>,
}

/// The code a session executed, in order, for `export`.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSequence {
    pub session: SessionSummary,
    pub executions: Vec<ExecutionDetail>,
}

const SUMMARY_COLUMNS: &str = "e.id, e.session_id, e.msg_id, e.cell_id, e.notebook_path,
    e.execution_count, substr(e.code, 1, 1000), e.status, e.started_ms, e.ended_ms, e.wall_ms,
    e.cpu_ms, e.rss_start, e.peak_rss, e.rss_delta, e.gpu_mem_peak, e.gpu_util_max,
    e.error_name, e.error_value, e.output_count, e.truncated, e.silent, e.prev_execution_id";

fn summary_from_row(r: &Row) -> rusqlite::Result<ExecutionSummary> {
    let code: Option<String> = r.get(6)?;
    Ok(ExecutionSummary {
        id: r.get(0)?,
        session_id: r.get(1)?,
        msg_id: r.get(2)?,
        cell_id: r.get(3)?,
        notebook_path: r.get(4)?,
        execution_count: r.get(5)?,
        code_preview: code.as_deref().map(super::write::code_preview),
        status: r.get(7)?,
        started_ms: r.get(8)?,
        ended_ms: r.get(9)?,
        wall_ms: r.get(10)?,
        cpu_ms: r.get(11)?,
        rss_start: r.get(12)?,
        peak_rss: r.get(13)?,
        rss_delta: r.get(14)?,
        gpu_mem_peak: r.get(15)?,
        gpu_util_max: r.get(16)?,
        error_name: r.get(17)?,
        error_value: r.get(18)?,
        output_count: r.get(19)?,
        truncated: r.get(20)?,
        silent: r.get(21)?,
        prev_execution_id: r.get(22)?,
    })
}

const SESSION_COLUMNS: &str = "s.id, s.uuid, s.kernel_session, s.kernelspec, s.argv, s.language,
    s.language_info, s.implementation, s.implementation_version, s.started_ms, s.ended_ms,
    s.exit_code, s.exit_signal, s.notebook_path, s.cwd, s.project_root, s.user, s.host, s.pid,
    s.kernel_pid, s.git_head, s.git_dirty, s.packages_sha256,
    (SELECT count(*) FROM executions x WHERE x.session_id = s.id)";

fn json_col(r: &Row, i: usize) -> rusqlite::Result<Option<Value>> {
    let s: Option<String> = r.get(i)?;
    Ok(s.and_then(|s| serde_json::from_str(&s).ok()))
}

fn session_from_row(r: &Row) -> rusqlite::Result<SessionSummary> {
    Ok(SessionSummary {
        id: r.get(0)?,
        uuid: r.get(1)?,
        kernel_session: r.get(2)?,
        kernelspec: r.get(3)?,
        argv: json_col(r, 4)?,
        language: r.get(5)?,
        language_info: json_col(r, 6)?,
        implementation: r.get(7)?,
        implementation_version: r.get(8)?,
        started_ms: r.get(9)?,
        ended_ms: r.get(10)?,
        exit_code: r.get(11)?,
        exit_signal: r.get(12)?,
        notebook_path: r.get(13)?,
        cwd: r.get(14)?,
        project_root: r.get(15)?,
        user: r.get(16)?,
        host: r.get(17)?,
        pid: r.get(18)?,
        kernel_pid: r.get(19)?,
        git_head: r.get(20)?,
        git_dirty: r.get(21)?,
        packages_sha256: r.get(22)?,
        executions: r.get(23)?,
    })
}

/// Turns user words into an FTS5 query that cannot be a syntax error:
/// every word quoted, all required, each matching the start of a word
/// (`rang` finds `range`, `ZeroDivision` finds `ZeroDivisionError`), as a
/// search box that filters while people type should. A trailing `*` is
/// accepted and means the same.
pub(crate) fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = search_terms(text)
        .iter()
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// The words of a search, without the optional trailing `*`.
pub(crate) fn search_terms(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_end_matches('*'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl Store {
    /// Executions newest first, filtered, one page at a time.
    pub fn history(&self, f: &HistoryFilter) -> Result<HistoryPage, StoreError> {
        let limit = f.limit.unwrap_or(50).clamp(1, 1000);
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM executions e WHERE 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        use rusqlite::types::Value as V;
        if let Some(n) = &f.notebook {
            add("e.notebook_path =", V::Text(n.clone()));
        }
        if let Some(c) = &f.cell_id {
            add("e.cell_id =", V::Text(c.clone()));
        }
        if let Some(s) = &f.status {
            add("e.status =", V::Text(s.clone()));
        }
        if let Some(s) = f.session_id {
            add("e.session_id =", V::Integer(s));
        }
        if let Some(t) = f.since_ms {
            add("e.started_ms >=", V::Integer(t));
        }
        if let Some(t) = f.until_ms {
            add("e.started_ms <", V::Integer(t));
        }
        if let Some(b) = f.before {
            add("e.id <", V::Integer(b));
        }
        if let Some(q) = f.text.as_deref().and_then(fts_query) {
            add(
                "e.id IN (SELECT rowid FROM executions_fts WHERE executions_fts MATCH",
                V::Text(q),
            );
            sql.push(')');
        }
        if !f.include_silent {
            sql.push_str(" AND e.silent = 0");
        }
        sql.push_str(&format!(" ORDER BY e.id DESC LIMIT {}", limit + 1));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut items: Vec<ExecutionSummary> = stmt
            .query_map(params_from_iter(args), summary_from_row)?
            .collect::<Result<_, _>>()?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|e| e.id)
        } else {
            None
        };
        Ok(HistoryPage {
            items,
            next_cursor,
            search_terms: f.text.as_deref().map(search_terms).unwrap_or_default(),
        })
    }

    /// One execution with its outputs (payloads decoded as Jupyter sent them)
    /// and its resource time series.
    pub fn get_execution(&self, id: i64) -> Result<ExecutionDetail, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS}, s.uuid, e.code, e.store_history, e.traceback, e.rss_end,
                    e.exit_code, e.exit_signal
               FROM executions e JOIN sessions s ON s.id = e.session_id WHERE e.id = ?1"
        );
        let detail = self
            .conn
            .prepare_cached(&sql)?
            .query_row([id], |r| {
                Ok(ExecutionDetail {
                    summary: summary_from_row(r)?,
                    session_uuid: r.get(23)?,
                    code: r.get(24)?,
                    store_history: r.get(25)?,
                    traceback: json_col(r, 26)?,
                    rss_end: r.get(27)?,
                    exit_code: r.get(28)?,
                    exit_signal: r.get(29)?,
                    outputs: Vec::new(),
                    samples: Vec::new(),
                })
            })
            .optional()?;
        let mut detail = detail.ok_or(StoreError::NoSuchExecution(id))?;
        detail.outputs = self.outputs_of(id, true)?;
        detail.samples = self
            .conn
            .prepare_cached(
                "SELECT t_ms, rss, cpu_ms, gpu_mem, gpu_util FROM samples
                  WHERE execution_id = ?1 ORDER BY seq",
            )?
            .query_map([id], |r| {
                Ok(SampleRow {
                    t_ms: r.get(0)?,
                    rss: r.get(1)?,
                    cpu_ms: r.get(2)?,
                    gpu_mem: r.get(3)?,
                    gpu_util: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(detail)
    }

    /// The outputs of an execution; with `payloads` false, MIME values are
    /// left null (the diff loads only what it must).
    pub(crate) fn outputs_of(
        &self,
        execution_id: i64,
        payloads: bool,
    ) -> Result<Vec<OutputView>, StoreError> {
        struct Raw {
            id: i64,
            output_type: String,
            name: Option<String>,
            display_id: Option<String>,
            execution_count: Option<i64>,
            metadata: Option<Value>,
            error: Option<Value>,
        }
        let raws: Vec<Raw> = self
            .conn
            .prepare_cached(
                "SELECT id, output_type, name, display_id, execution_count, metadata, error
                   FROM outputs WHERE execution_id = ?1 ORDER BY position",
            )?
            .query_map([execution_id], |r| {
                Ok(Raw {
                    id: r.get(0)?,
                    output_type: r.get(1)?,
                    name: r.get(2)?,
                    display_id: r.get(3)?,
                    execution_count: r.get(4)?,
                    metadata: json_col(r, 5)?,
                    error: json_col(r, 6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let data_sql = if payloads {
            "SELECT d.mime, d.sha256, d.truncated, d.is_json, b.data
               FROM output_data d LEFT JOIN blobs b ON b.sha256 = d.sha256
              WHERE d.output_id = ?1 ORDER BY d.mime"
        } else {
            "SELECT d.mime, d.sha256, d.truncated, d.is_json, NULL
               FROM output_data d WHERE d.output_id = ?1 ORDER BY d.mime"
        };
        let mut data_stmt = self.conn.prepare_cached(data_sql)?;
        let mut views = Vec::with_capacity(raws.len());
        for raw in raws {
            let mut data = serde_json::Map::new();
            let mut truncated = Vec::new();
            let mut sha256 = BTreeMap::new();
            let mut rows = data_stmt.query([raw.id])?;
            while let Some(r) = rows.next()? {
                let mime: String = r.get(0)?;
                let sha: String = r.get(1)?;
                let cut: bool = r.get(2)?;
                let is_json: bool = r.get(3)?;
                let bytes: Option<Vec<u8>> = r.get(4)?;
                let value = match bytes {
                    Some(b) => decode_value(&b, is_json, cut),
                    None => Value::Null,
                };
                if cut {
                    truncated.push(mime.clone());
                }
                sha256.insert(mime.clone(), sha);
                data.insert(mime, value);
            }
            let metadata = raw.metadata.unwrap_or_else(|| json!({}));
            let output = match raw.output_type.as_str() {
                "stream" => json!({
                    "output_type": "stream",
                    "name": raw.name.unwrap_or_else(|| "stdout".into()),
                    "text": data.remove("text/plain").unwrap_or(Value::String(String::new())),
                }),
                "error" => {
                    let e = raw.error.unwrap_or_else(|| json!({}));
                    json!({
                        "output_type": "error",
                        "ename": e.get("ename").cloned().unwrap_or(json!("")),
                        "evalue": e.get("evalue").cloned().unwrap_or(json!("")),
                        "traceback": e.get("traceback").cloned().unwrap_or(json!([])),
                    })
                }
                "execute_result" => json!({
                    "output_type": "execute_result",
                    "execution_count": raw.execution_count,
                    "data": data,
                    "metadata": metadata,
                }),
                _ => json!({
                    "output_type": "display_data",
                    "data": data,
                    "metadata": metadata,
                }),
            };
            views.push(OutputView {
                output,
                display_id: raw.display_id,
                truncated,
                sha256,
            });
        }
        Ok(views)
    }

    /// Per-cell summaries for a notebook (all notebooks when None), most
    /// recently run first.
    pub fn cell_summaries(&self, notebook: Option<&str>) -> Result<Vec<CellSummary>, StoreError> {
        // SQLite takes bare columns (status, wall_ms, …) from the max(id) row.
        let sql = "SELECT cell_id, notebook_path, count(*), sum(status = 'error'), max(id),
                          status, started_ms, wall_ms, min(wall_ms), max(wall_ms), max(peak_rss)
                     FROM executions
                    WHERE cell_id IS NOT NULL AND silent = 0
                      AND (?1 IS NULL OR notebook_path = ?1)
                    GROUP BY notebook_path, cell_id
                    ORDER BY max(id) DESC";
        let rows = self
            .conn
            .prepare_cached(sql)?
            .query_map([notebook], |r| {
                Ok(CellSummary {
                    cell_id: r.get(0)?,
                    notebook_path: r.get(1)?,
                    runs: r.get(2)?,
                    errors: r.get(3)?,
                    last_execution_id: r.get(4)?,
                    last_status: r.get(5)?,
                    last_started_ms: r.get(6)?,
                    last_wall_ms: r.get(7)?,
                    min_wall_ms: r.get(8)?,
                    max_wall_ms: r.get(9)?,
                    peak_rss: r.get(10)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Sessions, newest first.
    pub fn sessions(&self, limit: usize) -> Result<Vec<SessionSummary>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions s ORDER BY s.id DESC LIMIT ?1");
        let rows = self
            .conn
            .prepare_cached(&sql)?
            .query_map([limit.clamp(1, 100_000) as i64], session_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn session(&self, id: i64) -> Result<SessionSummary, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id = ?1");
        self.conn
            .prepare_cached(&sql)?
            .query_row([id], session_from_row)
            .optional()?
            .ok_or(StoreError::NoSuchSession(id))
    }

    /// The installed packages recorded for a session (a JSON list), if any.
    pub fn session_packages(&self, id: i64) -> Result<Option<Value>, StoreError> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT b.data FROM sessions s JOIN blobs b ON b.sha256 = s.packages_sha256
                  WHERE s.id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(bytes.map(|b| decode_value(&b, true, false)))
    }

    /// The executions of a session in order, up to and including `up_to`.
    /// Defaults: the session of `up_to`, else the latest session; its last
    /// execution. Silent executions are included (flagged); callers filter.
    pub fn export_sequence(
        &self,
        session_id: Option<i64>,
        up_to: Option<i64>,
    ) -> Result<ExportSequence, StoreError> {
        let session_id = match (session_id, up_to) {
            (Some(s), _) => s,
            (None, Some(e)) => self.session_of(e)?.ok_or(StoreError::NoSuchExecution(e))?,
            (None, None) => self
                .conn
                .query_row(
                    "SELECT session_id FROM executions ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or(StoreError::NoSuchSession(0))?,
        };
        let session = self.session(session_id)?;
        let ids: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT id FROM executions WHERE session_id = ?1 AND (?2 IS NULL OR id <= ?2)
                  ORDER BY id",
            )?
            .query_map(params![session_id, up_to], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let executions = ids
            .into_iter()
            .map(|id| self.get_execution(id))
            .collect::<Result<_, _>>()?;
        Ok(ExportSequence {
            session,
            executions,
        })
    }

    /// Whether any execution was recorded with exactly this notebook path.
    pub fn has_notebook(&self, path: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM executions WHERE notebook_path = ?1 LIMIT 1")?
            .exists([path])?)
    }

    /// Every notebook path executions were recorded with.
    pub fn notebooks(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT notebook_path FROM executions WHERE notebook_path IS NOT NULL",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Whether any execution was recorded with exactly this cell id.
    pub fn has_cell(&self, cell_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM executions WHERE cell_id = ?1 LIMIT 1")?
            .exists([cell_id])?)
    }

    /// Up to `limit` distinct recorded cell ids that start with `prefix`.
    pub fn cells_starting_with(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        // GLOB with a literal prefix uses the cell_id index (LIKE would not:
        // it is case-insensitive). Its wildcards in the prefix match
        // themselves inside brackets.
        let mut pattern = String::with_capacity(prefix.len() + 1);
        for c in prefix.chars() {
            match c {
                '*' | '?' | '[' => pattern.extend(['[', c, ']']),
                c => pattern.push(c),
            }
        }
        pattern.push('*');
        let rows = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT cell_id FROM executions WHERE cell_id GLOB ?1 LIMIT ?2",
            )?
            .query_map(params![pattern, limit as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The session an execution belongs to; None when there is no such execution.
    pub fn session_of(&self, execution_id: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT session_id FROM executions WHERE id = ?1")?
            .query_row([execution_id], |r| r.get(0))
            .optional()?)
    }

    /// How many executions there are, and how many started before
    /// `cutoff_ms` (what a prune by age would remove).
    pub fn age_profile(&self, cutoff_ms: Option<i64>) -> Result<AgeProfile, StoreError> {
        let (total, older, oldest_ms) = self.conn.query_row(
            "SELECT count(*), count(CASE WHEN started_ms < ?1 THEN 1 END), min(started_ms)
               FROM executions",
            [cutoff_ms.unwrap_or(i64::MIN)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(AgeProfile {
            total,
            older: if cutoff_ms.is_some() { older } else { 0 },
            oldest_ms,
        })
    }

    /// Executions recorded, in all.
    pub fn execution_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM executions", [], |r| r.get(0))?)
    }

    /// Bytes the database occupies (main file plus WAL).
    pub fn size_bytes(&self) -> Result<(u64, u64), StoreError> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
        Ok(((pages * page_size) as u64, wal))
    }

    pub fn stats(&self) -> Result<Stats, StoreError> {
        let count = |sql: &str| -> Result<i64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get(0))?)
        };
        let (db_bytes, wal_bytes) = self.size_bytes()?;
        let by_status = self
            .conn
            .prepare("SELECT status, count(*) FROM executions GROUP BY status")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let (oldest_ms, newest_ms) = self.conn.query_row(
            "SELECT min(started_ms), max(started_ms) FROM executions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Stats {
            db_path: self.path.display().to_string(),
            db_bytes,
            wal_bytes,
            schema_version: self.user_version()?,
            journal_mode: self.journal_mode()?,
            sessions: count("SELECT count(*) FROM sessions")?,
            executions: count("SELECT count(*) FROM executions")?,
            by_status,
            notebooks: count("SELECT count(DISTINCT notebook_path) FROM executions")?,
            outputs: count("SELECT count(*) FROM outputs")?,
            blobs: count("SELECT count(*) FROM blobs")?,
            blob_bytes: count("SELECT coalesce(sum(size), 0) FROM blobs")?,
            samples: count("SELECT count(*) FROM samples")?,
            oldest_ms,
            newest_ms,
        })
    }

    /// Removes old executions (and then the oldest, until under `max_size`),
    /// their outputs, samples and index entries, sessions left empty, and
    /// payloads nothing references; then VACUUMs. Permissions stay 0600.
    pub fn prune(&mut self, opts: &PruneOptions) -> Result<PruneReport, StoreError> {
        let (main, wal) = self.size_bytes()?;
        let bytes_before = main + wal;
        let mut report = PruneReport {
            executions_removed: 0,
            sessions_removed: 0,
            blobs_removed: 0,
            bytes_before,
            bytes_after: bytes_before,
        };
        if let Some(cutoff) = opts.older_than_ms {
            self.delete_executions(
                "SELECT id FROM executions WHERE started_ms < ?1",
                params![cutoff],
                &mut report,
            )?;
        }
        if let Some(max) = opts.max_size {
            loop {
                let used = self.used_bytes()?;
                if used <= max {
                    break;
                }
                let total: i64 =
                    self.conn
                        .query_row("SELECT count(*) FROM executions", [], |r| r.get(0))?;
                if total == 0 {
                    break;
                }
                // Drop in proportion to the excess, at least 1/16 of the rest.
                let frac = ((used - max) as f64 / used as f64).max(1.0 / 16.0);
                let n = ((total as f64 * frac).ceil() as i64).max(1);
                self.delete_executions(
                    "SELECT id FROM executions ORDER BY id LIMIT ?1",
                    params![n],
                    &mut report,
                )?;
            }
        }
        if !opts.no_vacuum {
            self.conn.execute_batch("VACUUM")?;
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        self.fix_permissions();
        let (main, wal) = self.size_bytes()?;
        report.bytes_after = main + wal;
        Ok(report)
    }

    /// Bytes in pages actually in use (what VACUUM would leave).
    fn used_bytes(&self) -> Result<u64, StoreError> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(((pages - free) * page_size) as u64)
    }

    fn delete_executions(
        &mut self,
        select_ids: &str,
        args: impl rusqlite::Params,
        report: &mut PruneReport,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY)",
            [],
        )?;
        tx.execute("DELETE FROM temp.doomed", [])?;
        tx.execute(&format!("INSERT INTO temp.doomed {select_ids}"), args)?;
        tx.execute_batch(
            "DELETE FROM output_data WHERE output_id IN
                 (SELECT id FROM outputs WHERE execution_id IN (SELECT id FROM temp.doomed));
             DELETE FROM outputs WHERE execution_id IN (SELECT id FROM temp.doomed);
             DELETE FROM samples WHERE execution_id IN (SELECT id FROM temp.doomed);
             DELETE FROM executions_fts WHERE rowid IN (SELECT id FROM temp.doomed);
             UPDATE executions SET prev_execution_id = NULL
              WHERE prev_execution_id IN (SELECT id FROM temp.doomed);",
        )?;
        report.executions_removed += tx.execute(
            "DELETE FROM executions WHERE id IN (SELECT id FROM temp.doomed)",
            [],
        )? as i64;
        // Sessions that ended and hold no executions any more.
        report.sessions_removed += tx.execute(
            "DELETE FROM sessions WHERE ended_ms IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.session_id = sessions.id)",
            [],
        )? as i64;
        report.blobs_removed += tx.execute(
            "DELETE FROM blobs WHERE
                 NOT EXISTS (SELECT 1 FROM output_data d WHERE d.sha256 = blobs.sha256)
             AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.packages_sha256 = blobs.sha256)",
            [],
        )? as i64;
        tx.execute("DELETE FROM temp.doomed", [])?;
        tx.commit()?;
        Ok(())
    }
}
