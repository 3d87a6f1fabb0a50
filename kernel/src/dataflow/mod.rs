//! Which names an execution defines and reads, and what follows from that
//! for a session: dependency edges, slices and stale cells.
//!
//! Two pure steps, fed by whichever thread owns the data (never the relay):
//!
//! - [`analyse`] reads one cell's code, as the kernel received it, and says
//!   which top-level names its execution defines, deletes, mutates and reads
//!   ([`Analysis`]). Python only, with a real parser that accepts IPython
//!   syntax; every other language is order-only.
//! - [`graph`] takes the analyses of one session's executions in recorded
//!   order and answers: what does each execution depend on, what is the
//!   slice (transitive dependencies) of a run, and which cells' last runs are
//!   stale, with the reason.
//!
//! The analysis errs on the side of *more* dependencies: a missing edge makes
//! a replay fail or hides a stale cell, an extra one only makes a slice
//! longer. Where the code can do things no static reading can see (`exec`,
//! `%run`, a `%%bash` cell, a star import), the analysis says so
//! ([`Mode::Everything`]) instead of guessing, and the graph treats that
//! execution as reading and defining everything.

pub mod graph;
mod python;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use graph::{dependencies, slice, stale, Deps, Execution, StaleCell, StaleReason};

/// Cells larger than this are not parsed (order-only): parsing is linear, but
/// a cell this big is generated code or data, not something a person edits.
pub const MAX_CELL_BYTES: usize = 1 << 20;

/// How far the names of an [`Analysis`] can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    /// The names are complete (within the documented rules).
    #[default]
    Names,
    /// Nothing is known about the names: the execution depends on every
    /// earlier execution of its session, and may have defined anything.
    /// Other languages, syntax errors, oversized cells.
    OrderOnly { reason: String },
    /// The code was read, but it can reach names no reading can see (`exec`,
    /// `%run`, `from m import *`, a `%%bash` cell, …): it depends on every
    /// earlier execution and may have defined anything. The names found are
    /// kept, for display.
    Everything { reason: String },
}

/// What one execution does to the names of its kernel's global namespace.
///
/// All sets hold top-level (module-global) names only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Analysis {
    pub mode: Mode,
    /// Names that hold a (possibly) new value after the execution: bound by
    /// assignment, import, `def`, `class`, a loop, `with`, `except`, walrus,
    /// a function's `global` assignment, or changed in place while bound by
    /// this same cell.
    pub defines: BTreeSet<String>,
    /// Names the execution removed (`del x`, `%xdel x`) and did not bind again.
    pub deletes: BTreeSet<String>,
    /// Names read before this cell bound them, so their value comes from an
    /// earlier execution. Builtins are in [`Analysis::builtins_read`] instead.
    pub reads: BTreeSet<String>,
    /// Names, bound before this cell, that it may have changed in place
    /// (`df['a'] = 1`, `lst.append(x)`, `obj.attr = v`, `del d[k]`, a call
    /// with `inplace=True`). They are also in `reads`. The graph counts them
    /// as definitions unless the name holds a module (bound by an import): a
    /// call of `np.mean(x)` does not change `np`.
    pub mutates: BTreeSet<String>,
    /// The subset of `defines` bound by `import` (modules, or names imported
    /// from them), which the graph uses to ignore "mutations" of modules.
    pub imports: BTreeSet<String>,
    /// Builtin names the cell read (`print`, `len`, …). Kept apart so the
    /// usual case costs nothing, but still linked by the graph when an
    /// earlier execution shadowed the builtin (`sum = 0`).
    pub builtins_read: BTreeSet<String>,
}

impl Analysis {
    /// An order-only analysis with its reason.
    pub fn order_only(reason: impl Into<String>) -> Self {
        Analysis {
            mode: Mode::OrderOnly {
                reason: reason.into(),
            },
            ..Analysis::default()
        }
    }

    /// Whether the names of this analysis are complete.
    pub fn is_names(&self) -> bool {
        matches!(self.mode, Mode::Names)
    }

    /// Why the names are not complete, when they are not.
    pub fn reason(&self) -> Option<&str> {
        match &self.mode {
            Mode::Names => None,
            Mode::OrderOnly { reason } | Mode::Everything { reason } => Some(reason),
        }
    }
}

/// Analyses one executed cell.
///
/// `language` is the kernel's `language_info.name`; only `python` is read
/// (case-insensitive), anything else is order-only. A cell over
/// [`MAX_CELL_BYTES`] or with a syntax error is order-only with the reason.
pub fn analyse(code: &str, language: &str) -> Analysis {
    if !language.eq_ignore_ascii_case("python") {
        return Analysis::order_only(format!(
            "language `{language}`: names are only read for Python"
        ));
    }
    if code.len() > MAX_CELL_BYTES {
        return Analysis::order_only(format!(
            "cell of {} bytes is over the {} byte limit for reading names",
            code.len(),
            MAX_CELL_BYTES
        ));
    }
    python::analyse_python(code)
}
