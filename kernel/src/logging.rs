//! Logs go to stderr, which Jupyter shows in its own log.

use tracing_subscriber::EnvFilter;

/// The variable that sets the level (`error`, `warn`, `info`, `debug`,
/// `trace`, or a tracing filter such as `jupyter_lineage=debug`).
pub const LEVEL_VAR: &str = "JUPYTER_LINEAGE_LOG";

pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_env(LEVEL_VAR)
        .unwrap_or_else(|_| EnvFilter::new(format!("jupyter_lineage={default_level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}
