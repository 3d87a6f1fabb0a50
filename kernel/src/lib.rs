//! jupyter-lineage: a proxy kernel that relays every Jupyter channel to a real
//! kernel, byte for byte, and records each executed cell on the side.
//!
//! The proxy is a *kernel* towards clients (JupyterLab, nbclient, …) and a
//! *client* towards the real kernel; module and type names say which side.

pub mod child;
pub mod cli;
pub mod connection_file;
pub mod dataflow;
pub mod history;
pub mod install;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod project;
pub mod proxy;
pub mod publisher;
pub mod recorder;
pub mod redact;
pub mod relay;
pub mod sampler;
pub mod service;
pub mod store;
pub mod subscriber;
pub mod tap;
pub mod wire;
