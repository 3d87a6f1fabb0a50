//! Logs go to stderr, which Jupyter shows in its own log.
//!
//! The kernel is silent there by default, as a plain ipykernel is: tools
//! treat a kernel's stderr as a sign of trouble (nbclient's parallel tests
//! assert it is empty, papermill copies it into its log, a Jupyter server's
//! terminal shows it for every kernel). Warnings and errors only, unless
//! `JUPYTER_LINEAGE_LOG` asks for more.

use tracing_subscriber::EnvFilter;

/// The kernel's level when [`LEVEL_VAR`] is unset: warnings and errors.
pub const KERNEL_DEFAULT: &str = "warn";

/// The variable that sets the level (`error`, `warn`, `info`, `debug`,
/// `trace`), or a full tracing filter such as `jupyter_lineage=debug,zeromq=info`.
pub const LEVEL_VAR: &str = "JUPYTER_LINEAGE_LOG";

/// The filter for a value of [`LEVEL_VAR`]. A bare level applies to this
/// program; the zeromq crate then logs errors only (it reports every
/// reconnection to a kernel that is shutting down as a warning).
pub fn directives(value: Option<&str>, default_level: &str) -> String {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    match value {
        Some(v) if v.contains('=') || v.contains(',') => v.to_string(),
        Some(level) => format!("error,jupyter_lineage={level}"),
        None => format!("error,jupyter_lineage={default_level}"),
    }
}

pub fn init(default_level: &str) {
    let value = std::env::var(LEVEL_VAR).ok();
    let directives = directives(value.as_deref(), default_level);
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!(
            "jupyter-lineage: {LEVEL_VAR}={directives:?} is not a valid filter ({e}); \
             using {default_level}"
        );
        EnvFilter::new(directives_default(default_level))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

fn directives_default(level: &str) -> String {
    directives(None, level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_levels_apply_to_this_program() {
        assert_eq!(directives(None, "info"), "error,jupyter_lineage=info");
        assert_eq!(
            directives(Some("debug"), "info"),
            "error,jupyter_lineage=debug"
        );
        assert_eq!(directives(Some(" "), "warn"), "error,jupyter_lineage=warn");
        assert_eq!(directives(Some("zeromq=debug"), "info"), "zeromq=debug");
    }
}
