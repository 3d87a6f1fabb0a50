//! The configuration: every environment variable that changes what the
//! kernel records, where, or how the CLI prints, read once into [`Config`].
//!
//! Everything else takes its settings from a `Config` instead of reading the
//! environment itself, so `doctor` can print the whole of it (including the
//! settings left at their defaults, such as redaction being on) and a new
//! variable cannot be honoured in one place and missed in another.
//!
//! Jupyter's own variables that only locate files (`JUPYTER_PATH`,
//! `JUPYTER_DATA_DIR`, `XDG_*`, `VIRTUAL_ENV`…) stay with the code that
//! mirrors jupyter_core's search (`install`); they are not ours to define.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::project::{self, ProjectLocation};

/// Recording on or off: `off` (or `0`, `false`, `no`, `disabled`) turns it off.
pub const RECORDING_VAR: &str = "JUPYTER_LINEAGE";
/// The folder holding the database (then `<dir>/lineage.sqlite`).
pub const DIR_VAR: &str = "JUPYTER_LINEAGE_DIR";
/// The log level (`error` … `trace`) or a full tracing filter.
pub const LOG_VAR: &str = "JUPYTER_LINEAGE_LOG";
/// Milliseconds between resource samples of a running cell.
pub const SAMPLE_MS_VAR: &str = "JUPYTER_LINEAGE_SAMPLE_MS";
/// Bytes kept of one output's payload; the rest is cut and flagged.
pub const MAX_OUTPUT_VAR: &str = "JUPYTER_LINEAGE_MAX_OUTPUT";
/// Secrets redaction: on unless `off` (or `0`, `false`, `no`, `disabled`).
pub const REDACT_VAR: &str = "JUPYTER_LINEAGE_REDACT";
/// The notebook the kernel serves, set by jupyter_server (a full path
/// since jupyter_server 2.0.7; not updated on rename).
pub const SESSION_NAME_VAR: &str = "JPY_SESSION_NAME";
/// Set by jupyter_client when it launches a kernel: the kernel should stop
/// when that process goes away.
pub const PARENT_PID_VAR: &str = "JPY_PARENT_PID";
/// no-color.org: colour off when present and not empty.
pub const NO_COLOR_VAR: &str = "NO_COLOR";

/// Every variable [`Config`] reads, in the order `doctor` prints them.
pub const VARS: [&str; 9] = [
    RECORDING_VAR,
    DIR_VAR,
    LOG_VAR,
    SAMPLE_MS_VAR,
    MAX_OUTPUT_VAR,
    REDACT_VAR,
    SESSION_NAME_VAR,
    PARENT_PID_VAR,
    NO_COLOR_VAR,
];

/// Default sampling period (`JUPYTER_LINEAGE_SAMPLE_MS`).
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// Default per-output payload cap (`JUPYTER_LINEAGE_MAX_OUTPUT`, bytes).
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;
/// The log level when `JUPYTER_LINEAGE_LOG` is unset (the kernel's).
pub const DEFAULT_LOG_LEVEL: &str = crate::logging::KERNEL_DEFAULT;

/// The settings in effect, from the environment once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Record executions (`JUPYTER_LINEAGE`, default on).
    pub recording: bool,
    /// `JUPYTER_LINEAGE_DIR`, as given (relative to the working directory).
    pub lineage_dir: Option<OsString>,
    /// `JUPYTER_LINEAGE_LOG`, as given; [`crate::logging`] turns it into a filter.
    pub log: Option<String>,
    /// `JUPYTER_LINEAGE_SAMPLE_MS`.
    pub sample_interval: Duration,
    /// `JUPYTER_LINEAGE_MAX_OUTPUT`.
    pub max_output_bytes: usize,
    /// Redact credentials before they are written (`JUPYTER_LINEAGE_REDACT`, default on).
    pub redact: bool,
    /// `JPY_SESSION_NAME`.
    pub session_name: Option<OsString>,
    /// `JPY_PARENT_PID` was set: watch the launching process.
    pub watch_parent: bool,
    /// `NO_COLOR` set and not empty.
    pub no_color: bool,
    /// Each variable that was set, with its raw value (for `doctor`).
    pub set: Vec<(&'static str, String)>,
    /// Values that were set but unusable, and what is used instead.
    pub problems: Vec<String>,
}

impl Default for Config {
    /// The settings with no variable set.
    fn default() -> Config {
        Config::from_lookup(|_| None)
    }
}

/// One setting as `doctor` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub var: &'static str,
    /// The value in effect, in words (`on`, `100 ms`, `16777216 bytes`…).
    pub value: String,
    /// The raw value when the variable is set; None means the default.
    pub raw: Option<String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Config {
        Config::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads the variables through `get`, so tests need not touch the
    /// process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<OsString>) -> Config {
        let mut problems = Vec::new();
        let set: Vec<(&'static str, String)> = VARS
            .iter()
            .filter_map(|&v| get(v).map(|x| (v, x.to_string_lossy().into_owned())))
            .collect();
        let text = |name: &str| get(name).map(|v| v.to_string_lossy().into_owned());
        let mut positive = |name: &str| -> Option<u64> {
            let v = text(name)?;
            match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    problems.push(format!(
                        "{name}={v:?} is not a positive integer: using the default"
                    ));
                    None
                }
            }
        };
        let sample_interval = positive(SAMPLE_MS_VAR)
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_SAMPLE_INTERVAL);
        let max_output_bytes = positive(MAX_OUTPUT_VAR)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .unwrap_or(DEFAULT_MAX_OUTPUT);
        Config {
            recording: switch(text(RECORDING_VAR).as_deref()),
            lineage_dir: get(DIR_VAR).filter(|v| !v.is_empty()),
            log: text(LOG_VAR).filter(|v| !v.trim().is_empty()),
            sample_interval,
            max_output_bytes,
            redact: switch(text(REDACT_VAR).as_deref()),
            session_name: get(SESSION_NAME_VAR).filter(|v| !v.is_empty()),
            watch_parent: get(PARENT_PID_VAR).is_some(),
            no_color: get(NO_COLOR_VAR).is_some_and(|v| !v.is_empty()),
            set,
            problems,
        }
    }

    /// Where the project's lineage lives, seen from `cwd`.
    pub fn location_from(&self, cwd: &Path) -> ProjectLocation {
        project::locate(cwd, self.session_name.as_ref(), self.lineage_dir.as_ref())
    }

    /// Where the project's lineage lives, seen from the working directory.
    pub fn location(&self) -> ProjectLocation {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        self.location_from(&cwd)
    }

    /// The raw value of `var` when it is set.
    pub fn raw(&self, var: &str) -> Option<&str> {
        self.set
            .iter()
            .find(|(v, _)| *v == var)
            .map(|(_, x)| x.as_str())
    }

    /// Every setting, set or not, in the order of [`VARS`].
    pub fn settings(&self) -> Vec<Setting> {
        let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
        VARS.iter()
            .map(|&var| {
                let value = match var {
                    RECORDING_VAR => on_off(self.recording),
                    DIR_VAR => match &self.lineage_dir {
                        Some(d) => Path::new(d).display().to_string(),
                        None => format!(
                            "{}/{} under the project root",
                            project::DIR_NAME,
                            project::DB_FILE
                        ),
                    },
                    LOG_VAR => self
                        .log
                        .clone()
                        .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_string()),
                    SAMPLE_MS_VAR => format!("{} ms", self.sample_interval.as_millis()),
                    MAX_OUTPUT_VAR => format!("{} bytes", self.max_output_bytes),
                    REDACT_VAR => on_off(self.redact),
                    SESSION_NAME_VAR => match &self.session_name {
                        Some(s) => Path::new(s).display().to_string(),
                        None => "no notebook (jupyter_server sets it)".into(),
                    },
                    PARENT_PID_VAR => if self.watch_parent {
                        "the kernel stops when its launcher goes"
                    } else {
                        "the launcher is not watched"
                    }
                    .into(),
                    NO_COLOR_VAR => if self.no_color {
                        "no colour"
                    } else {
                        "colour on terminals"
                    }
                    .into(),
                    _ => String::new(),
                };
                Setting {
                    var,
                    value,
                    raw: self.raw(var).map(str::to_string),
                }
            })
            .collect()
    }
}

/// An on/off variable: on unless `off`, `0`, `false`, `no` or `disabled`
/// (any case, spaces ignored); unset is on.
pub fn switch(v: Option<&str>) -> bool {
    !matches!(
        v.map(|s| s.trim().to_ascii_lowercase()).as_deref(),
        Some("off" | "0" | "false" | "no" | "disabled")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = config(&[]);
        assert!(c.recording && c.redact && !c.no_color && !c.watch_parent);
        assert_eq!(c.sample_interval, DEFAULT_SAMPLE_INTERVAL);
        assert_eq!(c.max_output_bytes, DEFAULT_MAX_OUTPUT);
        assert_eq!((c.lineage_dir.clone(), c.log.clone()), (None, None));
        assert!(c.set.is_empty() && c.problems.is_empty());
        assert_eq!(c, Config::default());
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("JUPYTER_LINEAGE", "off"),
            ("JUPYTER_LINEAGE_DIR", "/tmp/l"),
            ("JUPYTER_LINEAGE_LOG", "debug"),
            ("JUPYTER_LINEAGE_SAMPLE_MS", " 250 "),
            ("JUPYTER_LINEAGE_MAX_OUTPUT", "1000"),
            ("JUPYTER_LINEAGE_REDACT", "No"),
            ("JPY_SESSION_NAME", "/p/nb.ipynb"),
            ("JPY_PARENT_PID", "12"),
            ("NO_COLOR", "1"),
        ]);
        assert!(!c.recording && !c.redact && c.no_color && c.watch_parent);
        assert_eq!(c.lineage_dir, Some("/tmp/l".into()));
        assert_eq!(c.log.as_deref(), Some("debug"));
        assert_eq!(c.sample_interval, Duration::from_millis(250));
        assert_eq!(c.max_output_bytes, 1000);
        assert_eq!(c.session_name, Some("/p/nb.ipynb".into()));
        assert_eq!(c.set.len(), VARS.len());
        let loc = c.location_from(Path::new("/elsewhere"));
        assert_eq!(loc.db_path, PathBuf::from("/tmp/l/lineage.sqlite"));
        assert_eq!(loc.notebook_path, Some(PathBuf::from("/p/nb.ipynb")));
    }

    #[test]
    fn bad_numbers_fall_back_to_the_default_and_say_so() {
        let c = config(&[
            ("JUPYTER_LINEAGE_SAMPLE_MS", "0"),
            ("JUPYTER_LINEAGE_MAX_OUTPUT", "lots"),
        ]);
        assert_eq!(c.sample_interval, DEFAULT_SAMPLE_INTERVAL);
        assert_eq!(c.max_output_bytes, DEFAULT_MAX_OUTPUT);
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
        assert!(c.problems[1].contains("JUPYTER_LINEAGE_MAX_OUTPUT=\"lots\""));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = config(&[
            ("JUPYTER_LINEAGE_DIR", ""),
            ("NO_COLOR", ""),
            ("JPY_SESSION_NAME", ""),
        ]);
        assert_eq!((c.lineage_dir, c.session_name), (None, None));
        assert!(!c.no_color);
    }

    #[test]
    fn switches() {
        for off in ["off", "0", "false", "no", "disabled", " OFF "] {
            assert!(!switch(Some(off)), "{off}");
        }
        for on in [None, Some("on"), Some("1"), Some(""), Some("yes")] {
            assert!(switch(on), "{on:?}");
        }
    }

    #[test]
    fn settings_list_every_variable_and_say_redaction_is_off() {
        let s = config(&[("JUPYTER_LINEAGE_REDACT", "off")]).settings();
        assert_eq!(s.iter().map(|s| s.var).collect::<Vec<_>>(), VARS.to_vec());
        let redact = s.iter().find(|s| s.var == REDACT_VAR).unwrap();
        assert_eq!(
            (redact.value.as_str(), redact.raw.as_deref()),
            ("off", Some("off"))
        );
        let rec = s.iter().find(|s| s.var == RECORDING_VAR).unwrap();
        assert_eq!((rec.value.as_str(), rec.raw.as_deref()), ("on", None));
    }
}
