//! The relay's one shutdown mechanism, as mini-redis's `shutdown.rs`: a
//! cancellation token every task can watch, plus a completion barrier. Each
//! task holds a sender of one channel; when the last task has ended (and the
//! owner has dropped its own sender), `recv` on the channel returns `None`.
//!
//! Two kinds of task: those that stop when told (the client-facing readers
//! and the heartbeat: once the kernel is gone there is nothing for them to
//! forward) and those that end by themselves (the kernel-facing readers end
//! when the kernel's socket closes, after relaying everything it sent).

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Spawns relay tasks; clones go to tasks that spawn more.
#[derive(Clone)]
pub struct Tasks {
    stop: CancellationToken,
    /// Never sent on: its only job is to be dropped when the task ends.
    alive: mpsc::Sender<()>,
}

/// Held by the owner: stops the tasks and waits for them.
pub struct Barrier {
    stop: CancellationToken,
    ended: mpsc::Receiver<()>,
}

/// A new set of tasks and its barrier.
pub fn tasks() -> (Tasks, Barrier) {
    let stop = CancellationToken::new();
    let (alive, ended) = mpsc::channel(1);
    (
        Tasks {
            stop: stop.clone(),
            alive,
        },
        Barrier { stop, ended },
    )
}

impl Tasks {
    /// A task that runs to its own end; the barrier waits for it.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let alive = self.alive.clone();
        tokio::spawn(async move {
            task.await;
            drop(alive);
        });
    }

    /// A task that ends by itself or when the barrier stops everything.
    pub fn spawn_until_stopped<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let alive = self.alive.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
            drop(alive);
        });
    }
}

impl Barrier {
    /// Tells every task to stop and waits until all have ended, or until
    /// `limit` has passed (a task can only outlive its kernel's socket when
    /// something else holds that socket open, such as a process the kernel
    /// forked). True when every task ended.
    pub async fn shut_down(mut self, tasks: Tasks, limit: Duration) -> bool {
        self.stop.cancel();
        drop(tasks);
        tokio::time::timeout(limit, self.ended.recv()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_tasks_that_end_by_themselves_and_stops_the_others() {
        let (tasks, barrier) = tasks();
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let (seen, mut seen_rx) = mpsc::unbounded_channel();
        let seen_by_draining = seen.clone();
        tasks.spawn(async move {
            let _ = finished.await;
            let _ = seen_by_draining.send("drained");
        });
        tasks.spawn_until_stopped(std::future::pending());
        let nested = tasks.clone();
        tasks.spawn_until_stopped(async move {
            nested.spawn(async move {
                let _ = seen.send("nested");
            });
            std::future::pending::<()>().await;
        });
        let waiting = tokio::spawn(barrier.shut_down(tasks, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the barrier did not wait");
        finish.send(()).unwrap();
        assert!(waiting.await.unwrap());
        let mut got = vec![seen_rx.recv().await.unwrap(), seen_rx.recv().await.unwrap()];
        got.sort();
        assert_eq!(got, ["drained", "nested"]);
    }

    #[tokio::test]
    async fn gives_up_after_the_limit() {
        let (tasks, barrier) = tasks();
        tasks.spawn(std::future::pending());
        assert!(!barrier.shut_down(tasks, Duration::from_millis(20)).await);
    }
}
