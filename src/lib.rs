//! cuddy: a daemonless, runc-compatible OCI container runtime.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cgroups;
