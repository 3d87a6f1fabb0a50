//! One set of kernel-facing DEALERs per client, each under the client's own
//! routing id, so the real kernel sees on shell, control and stdin exactly
//! the identities it would see without the proxy.
//!
//! With one shared DEALER, the kernel's ROUTER puts the proxy's routing id
//! in front of the client's: `kernel._parent_ident['shell']` reads
//! `[b'lineage-…', b'<client id>']` instead of `[b'<client id>']`, and code
//! that addresses the requesting client (ipykernel extensions do) sees a
//! client that does not exist. Here a client's first message makes its
//! link: a DEALER on each of shell, control and stdin, all announcing the
//! client's routing id, so shell and stdin share it as ipykernel needs
//! (it sends `input_request` to the shell request's identities). Replies
//! come back on the client's own DEALER and go to that client alone.
//!
//! A link nobody has used for [`IDLE_CLOSE`], with no request waiting for
//! its reply, is closed (a client that is gone sends nothing more; one that
//! was only quiet gets a fresh link on its next message, under the same
//! id). At most [`MAX_LINKS`] exist; past that, clients share one overflow
//! link that carries their ids as leading frames, as a plain relay would,
//! and the proxy says so once in its log.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Mutex as AsyncMutex, OnceCell};
use zeromq::RouterSendHalf;

use crate::kernel_dealer::{self, KernelDealerSend};
use crate::relay::{self, Shared};
use crate::tap::Channel;
use crate::tasks::Tasks;

/// Links kept at most; past this, new clients share the overflow link.
pub const MAX_LINKS: usize = 64;
/// A link unused this long, with nothing in flight, is closed.
pub const IDLE_CLOSE: Duration = Duration::from_secs(120);

/// Which of the three request channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Shell,
    Control,
    Stdin,
}

/// The real kernel's shell, control and stdin endpoints.
#[derive(Debug, Clone)]
pub struct KernelEndpoints {
    pub shell: String,
    pub control: String,
    pub stdin: String,
}

/// The client-facing ROUTERs' send halves, where the kernel's messages go.
#[derive(Clone)]
pub struct ClientReplies {
    pub shell: RouterSendHalf,
    pub control: RouterSendHalf,
    pub stdin: RouterSendHalf,
}

/// What a link's readers and senders both see.
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests (`*_request` on shell and control) sent and not answered yet.
    in_flight: AtomicUsize,
    /// Last use, in milliseconds since the links were made.
    last_ms: AtomicU64,
}

impl Activity {
    /// A reply came back.
    pub fn answered(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

struct Dealers {
    shell: AsyncMutex<KernelDealerSend>,
    control: AsyncMutex<KernelDealerSend>,
    stdin: AsyncMutex<KernelDealerSend>,
}

struct Link {
    /// The client's routing id; None for the overflow link, whose messages
    /// keep the client's id as their first frame.
    identity: Option<Bytes>,
    activity: Arc<Activity>,
    dealers: OnceCell<Dealers>,
}

/// Every client's link to the real kernel.
pub struct Links {
    shared: Arc<Shared>,
    endpoints: KernelEndpoints,
    replies: ClientReplies,
    /// Readers run to their own end: the kernel's EOF, or ours when a link
    /// is closed.
    tasks: Tasks,
    epoch: Instant,
    table: Mutex<HashMap<Bytes, Arc<Link>>>,
    overflow: Arc<Link>,
    /// Set while past the bound, so the log says so once per episode.
    over_bound: AtomicBool,
}

impl Links {
    pub fn new(
        shared: Arc<Shared>,
        endpoints: KernelEndpoints,
        replies: ClientReplies,
        tasks: Tasks,
    ) -> Links {
        Links {
            shared,
            endpoints,
            replies,
            tasks,
            epoch: Instant::now(),
            table: Mutex::new(HashMap::new()),
            overflow: Arc::new(Link {
                identity: None,
                activity: Arc::default(),
                dealers: OnceCell::new(),
            }),
            over_bound: AtomicBool::new(false),
        }
    }

    /// Short critical sections only, never across an await.
    fn table(&self) -> MutexGuard<'_, HashMap<Bytes, Arc<Link>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Forwards a client's message (as its ROUTER gave it: the client's id
    /// first) on its own link, making the link on its first message.
    /// `request` counts a message whose reply keeps the link open.
    pub async fn forward(&self, route: Route, frames: &[Bytes], request: bool) -> io::Result<()> {
        let Some(identity) = frames.first() else {
            return Ok(());
        };
        let link = self.link(identity);
        let dealers = link.dealers.get_or_try_init(|| self.open(&link)).await?;
        link.activity
            .last_ms
            .store(self.now_ms(), Ordering::Relaxed);
        if request {
            link.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        let frames = if link.identity.is_some() {
            &frames[1..]
        } else {
            frames
        };
        let dealer = match route {
            Route::Shell => &dealers.shell,
            Route::Control => &dealers.control,
            Route::Stdin => &dealers.stdin,
        };
        // Bound first: the guard must go before `link` does (edition 2021
        // keeps a tail expression's temporaries past the locals).
        let sent = dealer.lock().await.send(frames).await;
        sent
    }

    /// The link for `identity`, made (not yet connected) when new.
    fn link(&self, identity: &Bytes) -> Arc<Link> {
        let mut table = self.table();
        if let Some(link) = table.get(identity) {
            return link.clone();
        }
        if table.len() >= MAX_LINKS {
            // Room for one: the least recently used link with nothing in flight.
            let oldest = table
                .iter()
                .filter(|(_, l)| l.activity.in_flight.load(Ordering::Relaxed) == 0)
                .min_by_key(|(_, l)| l.activity.last_ms.load(Ordering::Relaxed))
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                table.remove(&id);
            }
        }
        if table.len() >= MAX_LINKS {
            if !self.over_bound.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "more than {MAX_LINKS} clients are using this kernel at once: further \
                     clients share one connection to it, and the kernel sees the proxy's \
                     routing id in front of theirs"
                );
            }
            return self.overflow.clone();
        }
        self.over_bound.store(false, Ordering::Relaxed);
        let link = Arc::new(Link {
            identity: Some(identity.clone()),
            activity: Arc::new(Activity {
                in_flight: AtomicUsize::new(0),
                last_ms: AtomicU64::new(self.now_ms()),
            }),
            dealers: OnceCell::new(),
        });
        table.insert(identity.clone(), link.clone());
        link
    }

    /// Closes links idle for `idle` or longer with nothing in flight.
    /// Dropping a link's senders closes its connections; the kernel closes
    /// its side and the link's readers end.
    fn close_idle(&self, table: &mut HashMap<Bytes, Arc<Link>>, idle: Duration) {
        let now = self.now_ms();
        let idle = idle.as_millis() as u64;
        table.retain(|_, link| {
            let quiet = now.saturating_sub(link.activity.last_ms.load(Ordering::Relaxed));
            link.activity.in_flight.load(Ordering::Relaxed) > 0 || quiet < idle
        });
    }

    /// Housekeeping, called now and then: closes links unused for
    /// [`IDLE_CLOSE`].
    pub fn sweep(&self) {
        let mut table = self.table();
        let before = table.len();
        self.close_idle(&mut table, IDLE_CLOSE);
        if table.len() < before {
            tracing::debug!("closed {} idle client links", before - table.len());
        }
    }

    /// Connects a link's three DEALERs and starts their readers.
    async fn open(&self, link: &Link) -> io::Result<Dealers> {
        let own;
        let identity: &[u8] = match &link.identity {
            Some(id) => id,
            None => {
                own = format!("lineage-{}", uuid::Uuid::new_v4().simple());
                own.as_bytes()
            }
        };
        let (shell_rx, shell) = kernel_dealer::connect(&self.endpoints.shell, identity).await?;
        let (control_rx, control) =
            kernel_dealer::connect(&self.endpoints.control, identity).await?;
        let (stdin_rx, stdin) = kernel_dealer::connect(&self.endpoints.stdin, identity).await?;
        let readers = [
            (
                "shell",
                Some(Channel::ShellReply),
                shell_rx,
                &self.replies.shell,
            ),
            ("control", None, control_rx, &self.replies.control),
            ("stdin", None, stdin_rx, &self.replies.stdin),
        ];
        for (name, tap_as, from_kernel, to_client) in readers {
            self.tasks.spawn(relay::kernel_to_client(
                self.shared.clone(),
                name,
                tap_as,
                from_kernel,
                to_client.clone(),
                link.identity.clone(),
                (name != "stdin").then(|| link.activity.clone()),
            ));
        }
        Ok(Dealers {
            shell: AsyncMutex::new(shell),
            control: AsyncMutex::new(control),
            stdin: AsyncMutex::new(stdin),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tap::Tap;
    use crate::tasks;
    use crate::wire::Signer;
    use zeromq::{RouterSocket, Socket, SocketRecv};

    const WAIT: Duration = Duration::from_secs(10);

    async fn router() -> (RouterSocket, String) {
        let mut socket = RouterSocket::new();
        let ep = socket.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        (socket, ep)
    }

    /// Links to a fake kernel (three ROUTERs); the client side is a ROUTER
    /// nobody connects to, enough for requests.
    async fn links() -> (Links, [RouterSocket; 3], tasks::Barrier, Tasks) {
        let (shell, shell_ep) = router().await;
        let (control, control_ep) = router().await;
        let (stdin, stdin_ep) = router().await;
        let (client, _) = router().await;
        let (to_client, _from_client) = client.split();
        let shared = Arc::new(Shared {
            signer: Signer::new("hmac-sha256", b"k").unwrap(),
            tap: Tap::disabled(),
            service: None,
            refused: Arc::default(),
        });
        let (tasks, barrier) = crate::tasks::tasks();
        let links = Links::new(
            shared,
            KernelEndpoints {
                shell: shell_ep,
                control: control_ep,
                stdin: stdin_ep,
            },
            ClientReplies {
                shell: to_client.clone(),
                control: to_client.clone(),
                stdin: to_client,
            },
            tasks.clone(),
        );
        (links, [shell, control, stdin], barrier, tasks)
    }

    async fn next(socket: &mut RouterSocket) -> Vec<Bytes> {
        tokio::time::timeout(WAIT, socket.recv())
            .await
            .expect("a message in time")
            .unwrap()
            .into_vec()
    }

    fn from(id: &str, body: &str) -> Vec<Bytes> {
        vec![Bytes::from(id.to_string()), Bytes::from(body.to_string())]
    }

    #[tokio::test]
    async fn each_client_reaches_the_kernel_under_its_own_id() {
        let (links, [mut shell, mut control, mut stdin], _barrier, _tasks) = links().await;
        for (route, socket) in [
            (Route::Shell, &mut shell),
            (Route::Control, &mut control),
            (Route::Stdin, &mut stdin),
        ] {
            links.forward(route, &from("a", "1"), true).await.unwrap();
            links.forward(route, &from("b", "2"), true).await.unwrap();
            assert_eq!(next(socket).await, from("a", "1"));
            assert_eq!(next(socket).await, from("b", "2"));
        }
        assert_eq!(links.table().len(), 2);

        // Idle with nothing in flight: closed, and made again on demand.
        links.table().values().for_each(|l| {
            l.activity.in_flight.store(0, Ordering::Relaxed);
        });
        links.close_idle(&mut links.table(), Duration::ZERO);
        assert!(links.table().is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        links
            .forward(Route::Shell, &from("a", "3"), false)
            .await
            .unwrap();
        assert_eq!(next(&mut shell).await, from("a", "3"));
    }

    #[tokio::test]
    async fn past_the_bound_clients_share_one_link_that_keeps_their_ids() {
        let (links, [mut shell, _control, _stdin], _barrier, _tasks) = links().await;
        for i in 0..MAX_LINKS {
            let id = format!("client-{i}");
            links
                .forward(Route::Shell, &from(&id, "x"), true)
                .await
                .unwrap();
            assert_eq!(next(&mut shell).await, from(&id, "x"));
        }
        links
            .forward(Route::Shell, &from("late", "y"), true)
            .await
            .unwrap();
        let got = next(&mut shell).await;
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with(b"lineage-"));
        assert_eq!(&got[1..], &from("late", "y")[..]);
        assert_eq!(links.table().len(), MAX_LINKS);

        // A client whose requests were all answered makes room for a new one.
        let first = links.table()[&Bytes::from("client-0")].clone();
        first.activity.answered();
        links
            .forward(Route::Shell, &from("next", "z"), true)
            .await
            .unwrap();
        assert_eq!(next(&mut shell).await, from("next", "z"));
        assert!(!links.table().contains_key(&Bytes::from("client-0")));
    }
}
