//! Diff of two executions: code as a line diff, outputs position by
//! position and MIME type by MIME type, and the change in resources.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;

use super::query::{ExecutionSummary, OutputView};
use super::{Store, StoreError};

/// Line diffs give up refining after this long (huge, very different texts).
const DIFF_TIMEOUT: Duration = Duration::from_millis(30);

#[derive(Debug, Clone, Serialize)]
pub struct CodeDiff {
    pub changed: bool,
    /// Unified diff (`--- a`, `+++ b`, hunks); empty when unchanged.
    pub unified: String,
    pub added_lines: usize,
    pub removed_lines: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MimeDiff {
    pub mime: String,
    /// `added`, `removed`, `changed` or `unchanged`.
    pub status: &'static str,
    /// Text MIME types: unified diff when changed.
    pub unified: Option<String>,
    /// Binary MIME types when changed/added/removed: both payloads as Jupyter
    /// sent them (base64 strings for images).
    pub a: Option<Value>,
    pub b: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputDiff {
    pub position: usize,
    /// `added`, `removed`, `changed` or `unchanged`.
    pub status: &'static str,
    pub output_type_a: Option<String>,
    pub output_type_b: Option<String>,
    pub mimes: Vec<MimeDiff>,
}

/// `b − a` for each resource; None where either side is unknown.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResourceDelta {
    pub wall_ms: Option<f64>,
    pub cpu_ms: Option<f64>,
    pub peak_rss: Option<i64>,
    pub rss_delta: Option<i64>,
    pub gpu_mem_peak: Option<i64>,
    pub gpu_util_max: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecutionDiff {
    pub a: ExecutionSummary,
    pub b: ExecutionSummary,
    pub code: CodeDiff,
    pub outputs: Vec<OutputDiff>,
    pub resources: ResourceDelta,
}

/// MIME types compared as text.
pub(crate) fn is_text_mime(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime == "application/json"
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || mime == "application/javascript"
        || mime == "image/svg+xml"
}

fn unified(a: &str, b: &str, name_a: &str, name_b: &str) -> (String, usize, usize) {
    let diff = TextDiff::configure().timeout(DIFF_TIMEOUT).diff_lines(a, b);
    let (mut added, mut removed) = (0, 0);
    for op in diff.ops() {
        for change in diff.iter_changes(op) {
            match change.tag() {
                similar::ChangeTag::Insert => added += 1,
                similar::ChangeTag::Delete => removed += 1,
                similar::ChangeTag::Equal => {}
            }
        }
    }
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(name_a, name_b)
        .to_string();
    (text, added, removed)
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) if parts.iter().all(Value::is_string) => {
            parts.iter().filter_map(Value::as_str).collect()
        }
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// The comparable parts of an output: (mime → (sha256, value)).
fn bundle(o: &OutputView) -> Vec<(String, Option<&str>, Value)> {
    let out = &o.output;
    match out.get("output_type").and_then(Value::as_str) {
        Some("stream") => vec![(
            "text/plain".into(),
            o.sha256.get("text/plain").map(String::as_str),
            out.get("text").cloned().unwrap_or(Value::Null),
        )],
        Some("error") => {
            let tb = out
                .get("traceback")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            let text = format!(
                "{}: {}\n{}",
                out.get("ename").and_then(Value::as_str).unwrap_or(""),
                out.get("evalue").and_then(Value::as_str).unwrap_or(""),
                tb
            );
            vec![("text/plain".into(), None, Value::String(text))]
        }
        _ => out
            .get("data")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), o.sha256.get(k).map(String::as_str), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn otype(o: Option<&OutputView>) -> Option<String> {
    o.and_then(|o| o.output.get("output_type"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn compare_outputs(a: Option<&OutputView>, b: Option<&OutputView>, position: usize) -> OutputDiff {
    let ba = a.map(bundle).unwrap_or_default();
    let bb = b.map(bundle).unwrap_or_default();
    let mut mimes: Vec<String> = ba.iter().chain(&bb).map(|(m, _, _)| m.clone()).collect();
    mimes.sort();
    mimes.dedup();
    let mut diffs = Vec::new();
    for mime in mimes {
        let va = ba.iter().find(|(m, _, _)| *m == mime);
        let vb = bb.iter().find(|(m, _, _)| *m == mime);
        let (status, same) = match (va, vb) {
            (Some(_), None) => ("removed", false),
            (None, Some(_)) => ("added", false),
            (Some((_, sa, xa)), Some((_, sb, xb))) => {
                let same = match (sa, sb) {
                    (Some(sa), Some(sb)) => sa == sb,
                    _ => xa == xb,
                };
                (if same { "unchanged" } else { "changed" }, same)
            }
            (None, None) => continue,
        };
        let text = is_text_mime(&mime);
        let mut d = MimeDiff {
            mime: mime.clone(),
            status,
            unified: None,
            a: None,
            b: None,
        };
        if !same {
            if text {
                let ta = va.map(|(_, _, v)| as_text(v)).unwrap_or_default();
                let tb = vb.map(|(_, _, v)| as_text(v)).unwrap_or_default();
                d.unified = Some(unified(&ta, &tb, "a", "b").0);
            } else {
                d.a = va.map(|(_, _, v)| v.clone());
                d.b = vb.map(|(_, _, v)| v.clone());
            }
        }
        diffs.push(d);
    }
    let status = match (a, b) {
        (Some(_), None) => "removed",
        (None, Some(_)) => "added",
        _ if otype(a) != otype(b) => "changed",
        _ if diffs.iter().all(|d| d.status == "unchanged") => "unchanged",
        _ => "changed",
    };
    OutputDiff {
        position,
        status,
        output_type_a: otype(a),
        output_type_b: otype(b),
        mimes: diffs,
    }
}

fn sub_f(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

fn sub_i(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    Some(b? - a?)
}

impl Store {
    /// Compares execution `a` (before) with `b` (after).
    pub fn diff(&self, a: i64, b: i64) -> Result<ExecutionDiff, StoreError> {
        let ea = self.get_execution(a)?;
        let eb = self.get_execution(b)?;
        let ca = ea.code.clone().unwrap_or_default();
        let cb = eb.code.clone().unwrap_or_default();
        let code = if ca == cb {
            CodeDiff {
                changed: false,
                unified: String::new(),
                added_lines: 0,
                removed_lines: 0,
            }
        } else {
            let (unified, added_lines, removed_lines) = unified(
                &ca,
                &cb,
                &format!("execution {a}"),
                &format!("execution {b}"),
            );
            CodeDiff {
                changed: true,
                unified,
                added_lines,
                removed_lines,
            }
        };
        let n = ea.outputs.len().max(eb.outputs.len());
        let outputs = (0..n)
            .map(|i| compare_outputs(ea.outputs.get(i), eb.outputs.get(i), i))
            .collect();
        let (sa, sb) = (&ea.summary, &eb.summary);
        let resources = ResourceDelta {
            wall_ms: sub_f(sa.wall_ms, sb.wall_ms),
            cpu_ms: sub_f(sa.cpu_ms, sb.cpu_ms),
            peak_rss: sub_i(sa.peak_rss, sb.peak_rss),
            rss_delta: sub_i(sa.rss_delta, sb.rss_delta),
            gpu_mem_peak: sub_i(sa.gpu_mem_peak, sb.gpu_mem_peak),
            gpu_util_max: sub_f(sa.gpu_util_max, sb.gpu_util_max),
        };
        Ok(ExecutionDiff {
            a: ea.summary,
            b: eb.summary,
            code,
            outputs,
            resources,
        })
    }
}
