//! Arbitrary comm traffic: `Service::claims` on any msg_type and content, and
//! `ServiceRequest::parse` on any JSON; both refuse garbage, never panic.
//!
//! Input: a msg_type selector byte, then the content bytes.
#![no_main]

use std::sync::LazyLock;

use jupyter_lineage::service::{Service, ServiceContext, ServiceRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// One service for the whole run, with one comm of ours registered, so the
/// `comm_msg`/`comm_close` path is reached too. Nothing here touches a file:
/// the database path is never opened by `claims` or `parse`.
static SERVICE: LazyLock<Service> = LazyLock::new(|| {
    let service = Service::new(
        ServiceContext {
            db_path: "/nonexistent/lineage.db".into(),
            notebook_path: Some("nb.ipynb".into()),
            health: None,
            refused: None,
        },
        None,
    );
    let header = br#"{"msg_id":"m","msg_type":"comm_open"}"#;
    let content = br#"{"comm_id":"c0ffee","target_name":"jupyter.lineage","data":{}}"#;
    service.submit(&[
        header.as_slice().into(),
        b"{}".as_slice().into(),
        b"{}".as_slice().into(),
        content.as_slice().into(),
    ]);
    service
});

const MSG_TYPES: &[&str] = &[
    "comm_open",
    "comm_msg",
    "comm_close",
    "execute_request",
    "kernel_info_request",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, content)) = data.split_first() else {
        return;
    };
    let msg_type = MSG_TYPES[usize::from(which) % MSG_TYPES.len()];
    let _ = SERVICE.claims(msg_type, content);

    let Ok(v) = serde_json::from_slice::<Value>(content) else {
        return;
    };
    // A comm message's request is its `data`; try the value itself too.
    for data in [&v, v.get("data").unwrap_or(&Value::Null)] {
        for notebook in [None, Some("nb.ipynb")] {
            let _ = ServiceRequest::parse(data, notebook);
        }
    }
});
