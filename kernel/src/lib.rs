//! jupyter-lineage: a proxy kernel that relays every Jupyter channel to a real
//! kernel, byte for byte, and records each executed cell on the side.
//!
//! The proxy is a *kernel* towards clients (JupyterLab, nbclient, …) and a
//! *client* towards the real kernel; module and type names say which side.

pub mod ansi;
pub mod child;
pub mod cli;
pub mod client_iopub;
pub mod config;
pub mod connection_file;
pub mod dataflow;
pub mod guard;
pub mod install;
pub mod kernel_dealer;
pub mod kernel_iopub;
pub mod links;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod project;
pub mod provisioner;
pub mod proxy;
pub mod recorder;
pub mod redact;
pub mod relay;
pub mod sampler;
pub mod service;
pub mod store;
pub mod tap;
pub mod tasks;
pub mod unwrap;
pub mod wire;
pub mod zmtp;
