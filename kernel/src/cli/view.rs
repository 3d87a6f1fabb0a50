//! Pieces of text the report commands share: short names for a notebook or
//! a cell, a section heading, an output as text.

use std::path::Path;

use serde_json::Value;

use super::format::{self, Style};

pub fn hint_list(what: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = items.iter().take(8).map(String::as_str).collect();
    let more = if items.len() > shown.len() {
        format!(", … ({} in all)", items.len())
    } else {
        String::new()
    };
    format!("; {what}: {}{more}", shown.join(", "))
}

/// The last path component of a notebook, as the log shows it.
pub fn short_notebook(path: Option<&str>) -> String {
    match path {
        Some(p) => Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.to_string()),
        None => "-".into(),
    }
}

pub fn short_cell(cell: Option<&str>) -> String {
    match cell {
        Some(c) => c.chars().take(8).collect(),
        None => "-".into(),
    }
}

pub fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// A database's size as `stats` and `doctor` both print it: the main
/// file's pages, plus the write-ahead log when it holds anything.
pub fn db_size(main: u64, wal: u64) -> String {
    if wal > 0 {
        format!("{} + WAL {}", format::bytes(main), format::bytes(wal))
    } else {
        format::bytes(main)
    }
}

pub fn section(style: Style, title: &str) -> String {
    format!("\n{}\n", style.bold(&format!("── {title} ──")))
}

/// An output as text: stream text, text/plain, the traceback (ANSI
/// escapes kept only on a terminal), and a size tag for everything else.
pub fn output_text(o: &Value, style: Style) -> String {
    let mut out = String::new();
    let text_of = |v: &Value| -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(Value::as_str).collect(),
            other => other.to_string(),
        }
    };
    let ansi = |s: &str| -> String {
        if style.color {
            s.to_string()
        } else {
            format::strip_ansi(s)
        }
    };
    match o.get("output_type").and_then(Value::as_str) {
        Some("stream") => out.push_str(&ansi(&text_of(&o["text"]))),
        Some("error") => {
            let tb: Vec<String> = o["traceback"]
                .as_array()
                .map(|l| l.iter().map(text_of).collect())
                .unwrap_or_default();
            if tb.is_empty() {
                out.push_str(&format!(
                    "{}: {}",
                    text_of(&o["ename"]),
                    text_of(&o["evalue"])
                ));
            } else {
                out.push_str(&ansi(&tb.join("\n")));
            }
        }
        _ => {
            if let Some(data) = o.get("data").and_then(Value::as_object) {
                if let Some(t) = data.get("text/plain") {
                    out.push_str(&ansi(&text_of(t)));
                }
                for (mime, v) in data {
                    if mime == "text/plain" {
                        continue;
                    }
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(&style.dim(&format!(
                        "[{mime} {}]",
                        format::bytes(format::payload_size(mime, v))
                    )));
                }
            }
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outputs_as_text() {
        let style = Style::PLAIN;
        let stream = json!({"output_type": "stream", "name": "stdout", "text": "hi\n"});
        assert_eq!(output_text(&stream, style), "hi\n");
        let err = json!({"output_type": "error", "ename": "E", "evalue": "v",
                         "traceback": ["\u{1b}[31mE\u{1b}[0m: v"]});
        assert_eq!(output_text(&err, style), "E: v\n");
        let img = json!({"output_type": "display_data", "metadata": {},
                         "data": {"text/plain": "<Figure>", "image/png": "aGVsbG8="}});
        assert_eq!(output_text(&img, style), "<Figure>\n[image/png 5 B]\n");
    }

    #[test]
    fn short_names() {
        assert_eq!(short_notebook(Some("/a/b/c.ipynb")), "c.ipynb");
        assert_eq!(short_notebook(None), "-");
        assert_eq!(short_cell(Some("0123456789")), "01234567");
        assert_eq!(short_cell(None), "-");
    }
}
