//! cuddy: a daemonless, runc-compatible OCI container runtime.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library; test suites
//! can start throwaway containers from any thread with [`Sandbox`], or drive
//! containers through [`container`] directly (single-threaded programs).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cgroups;
pub mod cli;
pub mod console;
pub mod container;
pub mod exeseal;
pub mod fds;
pub mod features;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod logging;
pub mod lsm;
pub mod mounts;
pub mod namespaces;
pub mod network;
pub mod process;
pub mod sandbox;
pub mod seccomp;
pub mod spec;
pub mod utils;

pub use sandbox::{Output, Running, Sandbox, SandboxError};
