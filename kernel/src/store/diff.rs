//! Diff of two executions: code as a line diff, outputs paired by kind and
//! content and then compared MIME type by MIME type, and the change in
//! resources.
//!
//! Outputs are paired as a reader would: identical outputs first (in
//! order, as a line diff pairs lines), then, among what is left between
//! two identical ones, outputs of the same kind (a stream with the same
//! stream, a result with a result). So a `print` added before a result
//! reads "stream added, result unchanged", not "result changed into
//! stream". Text is compared without ANSI colour codes (IPython colours
//! its tracebacks) and without "\ No newline at end of file" notes.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;

use crate::ansi::strip_ansi;

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
    /// Where the output is in `b` (in `a` for a removed one).
    pub position: usize,
    /// Its index among the outputs of `a`, of `b`; None on the side that lacks it.
    pub position_a: Option<usize>,
    pub position_b: Option<usize>,
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
    // A missing final newline on one side would add a "\ No newline at end
    // of file" note that says nothing a reader needs.
    let with_newline = |s: &str| {
        if s.is_empty() || s.ends_with('\n') {
            s.to_string()
        } else {
            format!("{s}\n")
        }
    };
    let (a, b) = (with_newline(a), with_newline(b));
    let diff = TextDiff::configure()
        .timeout(DIFF_TIMEOUT)
        .diff_lines(a.as_str(), b.as_str());
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

/// A payload as text for a line diff, without ANSI escapes.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => strip_ansi(s),
        Value::Array(parts) if parts.iter().all(Value::is_string) => {
            strip_ansi(&parts.iter().filter_map(Value::as_str).collect::<String>())
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
            let text = strip_ansi(&format!(
                "{}: {}\n{}",
                out.get("ename").and_then(Value::as_str).unwrap_or(""),
                out.get("evalue").and_then(Value::as_str).unwrap_or(""),
                tb
            ));
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

/// What an output is, for pairing: its type (and stream name).
fn kind(o: &OutputView) -> String {
    let t = o.output["output_type"].as_str().unwrap_or("?");
    match o.output["name"].as_str() {
        Some(name) if t == "stream" => format!("{t}/{name}"),
        _ => t.to_string(),
    }
}

/// What an output shows, for pairing: its kind, and each MIME payload by
/// hash (by value where no hash is stored, as for errors).
fn content_key(o: &OutputView) -> (String, Vec<(String, String)>) {
    let parts = bundle(o)
        .into_iter()
        .map(|(mime, sha, v)| {
            let id = match sha {
                Some(sha) => sha.to_string(),
                None => serde_json::to_string(&v).unwrap_or_default(),
            };
            (mime, id)
        })
        .collect();
    (kind(o), parts)
}

/// Pairs the outputs of `a` with those of `b` (see the module docs):
/// `(index in a, index in b)`, in the order a reader meets them.
fn pair_outputs(a: &[OutputView], b: &[OutputView]) -> Vec<(Option<usize>, Option<usize>)> {
    let ka: Vec<_> = a.iter().map(content_key).collect();
    let kb: Vec<_> = b.iter().map(content_key).collect();
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, &ka, &kb);
    let mut pairs = Vec::new();
    // Outputs between two identical ones, waiting to be paired by kind.
    let (mut gone, mut new): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    let settle = |gone: &mut Vec<usize>, new: &mut Vec<usize>, pairs: &mut Vec<_>| {
        let mut taken = vec![false; gone.len()];
        let matched: Vec<(Option<usize>, Option<usize>)> = new
            .iter()
            .map(|&j| {
                let partner = gone
                    .iter()
                    .enumerate()
                    .find(|&(n, &i)| !taken[n] && ka[i].0 == kb[j].0);
                match partner {
                    Some((n, &i)) => {
                        taken[n] = true;
                        (Some(i), Some(j))
                    }
                    None => (None, Some(j)),
                }
            })
            .collect();
        // As in a line diff's hunk: what went, then what came or changed.
        for (n, &i) in gone.iter().enumerate() {
            if !taken[n] {
                pairs.push((Some(i), None));
            }
        }
        pairs.extend(matched);
        gone.clear();
        new.clear();
    };
    for op in ops {
        match op {
            similar::DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => {
                settle(&mut gone, &mut new, &mut pairs);
                pairs.extend((0..len).map(|k| (Some(old_index + k), Some(new_index + k))));
            }
            other => {
                gone.extend(other.old_range());
                new.extend(other.new_range());
            }
        }
    }
    settle(&mut gone, &mut new, &mut pairs);
    pairs
}

fn compare_outputs(
    a: Option<&OutputView>,
    b: Option<&OutputView>,
    (position_a, position_b): (Option<usize>, Option<usize>),
) -> OutputDiff {
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
        position: position_b.or(position_a).unwrap_or(0),
        position_a,
        position_b,
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
        let outputs = pair_outputs(&ea.outputs, &eb.outputs)
            .into_iter()
            .map(|(i, j)| {
                compare_outputs(
                    i.and_then(|i| ea.outputs.get(i)),
                    j.and_then(|j| eb.outputs.get(j)),
                    (i, j),
                )
            })
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
