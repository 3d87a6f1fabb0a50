//! The `jupyter.lineage` comm, answered by the proxy itself.
//!
//! Placeholder until the query layer lands: it claims nothing, so every comm
//! goes to the real kernel as before.

use tokio::sync::mpsc;

use crate::wire::OwnMessage;

pub const TARGET: &str = "jupyter.lineage";

pub struct Service {}

impl Service {
    /// Whether a verified shell message is for the service.
    pub fn claims(&self, _msg_type: &str, _content: &[u8]) -> bool {
        false
    }

    /// Queues a claimed request (its four signed frames).
    pub fn submit(&self, _signed: &[bytes::Bytes]) {}

    /// Starts answering, publishing on iopub through `iopub` in `session`.
    pub fn start(&self, _iopub: mpsc::UnboundedSender<OwnMessage>, _session: String) {}
}
