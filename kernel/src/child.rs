//! The real kernel process: launch, signals, exit.
//!
//! The child runs in its own process group (so a terminal's Ctrl-C or a
//! `killpg` aimed at the proxy does not hit it twice) and dies with the proxy
//! through `PR_SET_PDEATHSIG`. That signal fires when the *thread* that forked
//! the child exits, so the child is spawned from a dedicated thread that lives
//! exactly as long as the child: it spawns, waits, and reports the exit.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;

use tokio::sync::{oneshot, watch};

/// Signals the real kernel starts with at their default disposition,
/// whatever the proxy inherited (std already resets SIGPIPE and the mask).
const RESET_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP];

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("the real kernel's command line is empty")]
    EmptyArgv,
    #[error("cannot start the real kernel {program:?}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("the launcher thread ended before the kernel started")]
    Launcher,
}

/// How the real kernel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    /// The proxy's own exit code, shell style (128 + signal).
    pub fn as_exit_code(&self) -> u8 {
        match (self.code, self.signal) {
            (Some(code), _) => code.clamp(0, 255) as u8,
            (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
            _ => 1,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(sig)) => write!(f, "signal {sig}"),
            _ => write!(f, "unknown status"),
        }
    }
}

/// A running real kernel.
#[derive(Debug)]
pub struct RealKernel {
    pub pid: u32,
    /// Becomes `Some` when the process has been reaped.
    pub exited: watch::Receiver<Option<Exit>>,
}

impl RealKernel {
    /// Launches `argv` with the environment and working directory of the
    /// proxy, plus `JPY_PARENT_PID` naming the proxy.
    pub async fn launch(argv: &[String], cwd: Option<&Path>) -> Result<RealKernel, ChildError> {
        let (program, args) = argv.split_first().ok_or(ChildError::EmptyArgv)?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("JPY_PARENT_PID", std::process::id().to_string());
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // A shell starting a job in the background (`nohup make
                // test &`) leaves SIGINT and SIGQUIT ignored, and ignored
                // signals survive exec: the kernel could then never be
                // interrupted. Give it the dispositions a kernel started
                // by a foreground Jupyter has.
                for sig in RESET_SIGNALS {
                    libc::signal(sig, libc::SIG_DFL);
                }
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The proxy may have died between fork and prctl.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let (started_tx, started_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        let program = program.clone();
        std::thread::Builder::new()
            .name("real-kernel".into())
            .spawn(move || match cmd.spawn() {
                Err(source) => {
                    let _ = started_tx.send(Err(ChildError::Spawn { program, source }));
                }
                Ok(mut child) => {
                    let _ = started_tx.send(Ok(child.id()));
                    let exit = match child.wait() {
                        Ok(status) => Exit {
                            code: status.code(),
                            signal: status.signal(),
                        },
                        Err(e) => {
                            tracing::error!("waiting for the real kernel failed: {e}");
                            Exit {
                                code: None,
                                signal: None,
                            }
                        }
                    };
                    let _ = exit_tx.send(Some(exit));
                }
            })
            .map_err(|_| ChildError::Launcher)?;
        let pid = started_rx.await.map_err(|_| ChildError::Launcher)??;
        Ok(RealKernel {
            pid,
            exited: exit_rx,
        })
    }

    /// Sends `signal` to the kernel's whole process group (what
    /// jupyter_client does to a kernel it launched itself).
    pub fn signal(&self, signal: i32) {
        if self.exited.borrow().is_some() {
            return;
        }
        // SAFETY: plain syscall; the group id is the child's pid (setpgid(0, 0)).
        let rc = unsafe { libc::killpg(self.pid as libc::pid_t, signal) };
        if rc != 0 {
            tracing::debug!(
                "signal {signal} to kernel group {}: {}",
                self.pid,
                std::io::Error::last_os_error()
            );
        }
    }

    /// Waits for the kernel to exit.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.exited.clone();
        loop {
            if let Some(exit) = *rx.borrow_and_update() {
                return exit;
            }
            if rx.changed().await.is_err() {
                return Exit {
                    code: None,
                    signal: None,
                };
            }
        }
    }

    /// Waits up to `grace` for the kernel to exit on its own, then SIGTERM,
    /// then SIGKILL (jupyter_client's shutdown ladder).
    pub async fn stop(&self, grace: std::time::Duration) -> Exit {
        if let Ok(exit) = tokio::time::timeout(grace, self.wait()).await {
            return exit;
        }
        tracing::info!("real kernel still running after {grace:?}: SIGTERM");
        self.signal(libc::SIGTERM);
        if let Ok(exit) = tokio::time::timeout(grace, self.wait()).await {
            return exit;
        }
        tracing::warn!("real kernel ignored SIGTERM: SIGKILL");
        self.signal(libc::SIGKILL);
        self.wait().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn reports_exit_code_and_signal() {
        let k = RealKernel::launch(&["sh".into(), "-c".into(), "exit 3".into()], None)
            .await
            .unwrap();
        assert_eq!(k.wait().await.code, Some(3));

        let k = RealKernel::launch(&["sleep".into(), "30".into()], None)
            .await
            .unwrap();
        k.signal(libc::SIGINT);
        let exit = k.wait().await;
        assert_eq!(exit.signal, Some(libc::SIGINT));
        assert_eq!(exit.as_exit_code(), 130);
    }

    /// However the proxy was started (here: with SIGINT ignored, as by
    /// `nohup … &`), an interrupt reaches the real kernel.
    #[tokio::test]
    async fn kernel_gets_default_signal_dispositions() {
        // SAFETY: plain signal() calls; the previous disposition is restored.
        let before = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
        let launched = RealKernel::launch(&["sleep".into(), "30".into()], None).await;
        unsafe { libc::signal(libc::SIGINT, before) };
        let k = launched.unwrap();
        k.signal(libc::SIGINT);
        assert_eq!(k.wait().await.signal, Some(libc::SIGINT));
    }

    #[tokio::test]
    async fn child_sees_parent_pid_and_own_group() {
        let k = RealKernel::launch(
            &[
                "sh".into(),
                "-c".into(),
                "[ \"$JPY_PARENT_PID\" = \"$PPID\" ] && [ \"$(ps -o pgid= $$ | tr -d ' ')\" = \"$$\" ]"
                    .into(),
            ],
            None,
        )
        .await
        .unwrap();
        assert_eq!(k.wait().await.code, Some(0));
    }

    #[tokio::test]
    async fn stop_escalates_to_kill() {
        let k = RealKernel::launch(
            &[
                "sh".into(),
                "-c".into(),
                "trap '' TERM; while :; do sleep 0.05; done".into(),
            ],
            None,
        )
        .await
        .unwrap();
        let exit = k.stop(Duration::from_millis(200)).await;
        assert!(exit.signal.is_some());
    }

    #[tokio::test]
    async fn missing_program_is_a_clear_error() {
        let err = RealKernel::launch(&["/nonexistent/kernel".into()], None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kernel"));
    }
}
