//! `jupyter lineage unwrap NOTEBOOK…`: a notebook saved on a `*-lineage`
//! kernel names that kernelspec, which nobody without jupyter-lineage has.
//! With the provisioner recording every kernel, the notebook can name the
//! kernel it wraps instead. Only the two strings `metadata.kernelspec.name`
//! and `.display_name` change; every other byte of the file stays as it was
//! (the notebook is edited as text, never re-serialised, so diffs show one
//! or two lines).

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::install::{self, Kernelspec, NAME_SUFFIX};

#[derive(Debug, Args)]
pub struct UnwrapArgs {
    /// Notebooks to rewrite in place.
    #[arg(required = true, value_name = "NOTEBOOK")]
    pub notebooks: Vec<PathBuf>,
    /// Say what would change, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UnwrapError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a notebook: {why}")]
    NotNotebook { path: PathBuf, why: String },
}

/// The byte ranges of a JSON object's members, found without building a
/// value (so the text can be patched in place).
struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while self.pos < self.text.len() && self.text[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.ws();
        (self.text.get(self.pos) == Some(&byte)).then(|| self.pos += 1)
    }

    /// Skips one string; returns its range including the quotes.
    fn string(&mut self) -> Option<Range<usize>> {
        self.ws();
        let start = self.pos;
        if self.text.get(self.pos) != Some(&b'"') {
            return None;
        }
        self.pos += 1;
        while let Some(&b) = self.text.get(self.pos) {
            self.pos += 1;
            match b {
                b'\\' => self.pos += 1,
                b'"' => return Some(start..self.pos),
                _ => {}
            }
        }
        None
    }

    /// Skips one value of any kind; returns its range.
    fn value(&mut self) -> Option<Range<usize>> {
        self.ws();
        let start = self.pos;
        match self.text.get(self.pos)? {
            b'"' => return self.string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                while let Some(&b) = self.text.get(self.pos) {
                    match b {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Some(start..self.pos);
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
                return None;
            }
            _ => {
                while let Some(&b) = self.text.get(self.pos) {
                    if b == b',' || b == b'}' || b == b']' || b.is_ascii_whitespace() {
                        break;
                    }
                    self.pos += 1;
                }
            }
        }
        (self.pos > start).then_some(start..self.pos)
    }

    /// The value range of `key` in the object starting at `self.pos`.
    fn member(&mut self, key: &str) -> Option<Range<usize>> {
        self.expect(b'{')?;
        loop {
            self.ws();
            if self.text.get(self.pos) == Some(&b'}') {
                return None;
            }
            let k = self.string()?;
            let name: String = serde_json::from_slice(&self.text[k]).ok()?;
            self.expect(b':')?;
            let v = self.value()?;
            if name == key {
                return Some(v);
            }
            self.ws();
            if self.text.get(self.pos) == Some(&b',') {
                self.pos += 1;
            }
        }
    }
}

/// The range of the value at `path` (object keys) in a JSON document.
fn find(text: &[u8], path: &[&str]) -> Option<Range<usize>> {
    let mut range = 0..text.len();
    for key in path {
        let mut s = Scanner {
            text,
            pos: range.start,
        };
        range = s.member(key)?;
    }
    Some(range)
}

/// What a lineage kernelspec name unwraps to: the installed lineage
/// kernelspec's `wraps` and the wrapped kernelspec's display name when they
/// are installed, else the name without `-lineage` and the display name
/// without ` · lineage`.
pub fn target(
    name: &str,
    display_name: Option<&str>,
    installed: &std::collections::BTreeMap<String, Kernelspec>,
) -> Option<(String, Option<String>)> {
    let wrapped = match installed
        .get(&name.to_lowercase())
        .and_then(Kernelspec::wraps)
    {
        Some(w) => w.to_string(),
        None => name.strip_suffix(NAME_SUFFIX)?.to_string(),
    };
    let display = installed
        .get(&wrapped)
        .map(|k| k.display_name().to_string())
        .or_else(|| display_name.map(|d| d.trim_end_matches(" · lineage").to_string()));
    Some((wrapped, display))
}

/// The notebook text with its kernelspec unwrapped, or None when it does not
/// name a lineage kernelspec.
pub fn unwrap_text(
    text: &[u8],
    installed: &std::collections::BTreeMap<String, Kernelspec>,
) -> Result<Option<(Vec<u8>, String, String)>, String> {
    let parsed: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let spec = &parsed["metadata"]["kernelspec"];
    let Some(name) = spec["name"].as_str() else {
        return Ok(None);
    };
    let Some((wrapped, display)) = target(name, spec["display_name"].as_str(), installed) else {
        return Ok(None);
    };
    let mut patches: Vec<(Range<usize>, String)> = Vec::new();
    let at = |key| {
        find(text, &["metadata", "kernelspec", key])
            .ok_or(format!("cannot locate kernelspec.{key}"))
    };
    patches.push((
        at("name")?,
        serde_json::to_string(&wrapped).expect("a string"),
    ));
    if let (Some(display), Some(_)) = (&display, spec["display_name"].as_str()) {
        patches.push((
            at("display_name")?,
            serde_json::to_string(display).expect("a string"),
        ));
    }
    patches.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_vec();
    for (range, replacement) in patches {
        out.splice(range, replacement.into_bytes());
    }
    Ok(Some((out, name.to_string(), wrapped)))
}

fn unwrap_file(
    path: &Path,
    installed: &std::collections::BTreeMap<String, Kernelspec>,
    dry_run: bool,
) -> Result<Option<(String, String)>, UnwrapError> {
    let text = fs::read(path).map_err(|source| UnwrapError::Read {
        path: path.to_owned(),
        source,
    })?;
    let result = unwrap_text(&text, installed).map_err(|why| UnwrapError::NotNotebook {
        path: path.to_owned(),
        why,
    })?;
    let Some((out, from, to)) = result else {
        return Ok(None);
    };
    if !dry_run {
        // Write beside it, then rename: a crash never leaves half a notebook.
        let tmp = path.with_extension("ipynb.lineage-unwrap");
        let write = |p: &Path, r: std::io::Result<()>| {
            r.map_err(|source| UnwrapError::Write {
                path: p.to_owned(),
                source,
            })
        };
        write(&tmp, fs::write(&tmp, &out))?;
        if let Ok(meta) = fs::metadata(path) {
            let _ = fs::set_permissions(&tmp, meta.permissions());
        }
        write(path, fs::rename(&tmp, path))?;
    }
    Ok(Some((from, to)))
}

/// `jupyter lineage unwrap`.
pub fn unwrap_cmd(args: UnwrapArgs) -> anyhow::Result<ExitCode> {
    let (installed, _) = install::find_all(&install::data_dirs());
    let mut failed = false;
    for path in &args.notebooks {
        match unwrap_file(path, &installed, args.dry_run) {
            Ok(Some((from, to))) => println!(
                "{}: {from} → {to}{}",
                path.display(),
                if args.dry_run { " (dry run)" } else { "" }
            ),
            Ok(None) => println!("{}: not on a lineage kernel, unchanged", path.display()),
            Err(e) => {
                eprintln!("jupyter-lineage: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const NB: &str = r#"{
 "cells": [
  {
   "cell_type": "code",
   "metadata": {"kernelspec": {"name": "not-this-one"}},
   "source": ["x = \"{\\\"name\\\": 1}\"  # ] } braces in a string"]
  }
 ],
 "metadata": {
  "kernelspec": {
   "display_name": "Python 3 (ipykernel) · lineage",
   "language": "python",
   "name": "python3-lineage"
  },
  "language_info": {"name": "python"}
 },
 "nbformat": 4,
 "nbformat_minor": 5
}
"#;

    #[test]
    fn only_the_two_strings_change() {
        let (out, from, to) = unwrap_text(NB.as_bytes(), &BTreeMap::new())
            .unwrap()
            .unwrap();
        assert_eq!((from.as_str(), to.as_str()), ("python3-lineage", "python3"));
        let want = NB
            .replace("\"python3-lineage\"", "\"python3\"")
            .replace("(ipykernel) · lineage", "(ipykernel)");
        assert_eq!(String::from_utf8(out.clone()).unwrap(), want);
        // Unwrapping again changes nothing.
        assert!(unwrap_text(&out, &BTreeMap::new()).unwrap().is_none());
    }

    #[test]
    fn installed_lineage_spec_says_what_it_wraps() {
        let spec = Kernelspec {
            name: "py-rec".into(),
            dir: PathBuf::from("/k/py-rec"),
            spec: serde_json::json!({"display_name": "Mine",
                "metadata": {"jupyter_lineage": {"wraps": "conda-env"}}}),
        };
        let installed = BTreeMap::from([("py-rec".to_string(), spec)]);
        assert_eq!(
            target("py-rec", Some("Mine"), &installed),
            Some(("conda-env".into(), Some("Mine".into())))
        );
        assert_eq!(target("python3", None, &installed), None);
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(unwrap_text(b"{nope", &BTreeMap::new()).is_err());
    }
}
