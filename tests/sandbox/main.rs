//! An example integration-test crate for `cuddy::Sandbox` (issue 12): it
//! uses only cuddy's public API, as a project's own test suite would. Run
//! as root (`cargo test --test sandbox`); each test skips with a note
//! otherwise. The sandboxes run over the busybox fixture rootfs
//! (rootfs-fixtures/build.sh).
//!
//! The examples of the API's doc comments are here as real tests
//! (doctests are off for the crate): `basics::doc_example`.
//!
//! From async code: `Sandbox::output()` blocks, so a tokio program calls it
//! in `tokio::task::spawn_blocking`; it is the same call from another thread,
//! which `parallel::fifty_threads_at_once` covers with std threads (tokio
//! is not a dependency of cuddy).
#![allow(clippy::unwrap_used)]

mod bad_input;
mod basics;
mod common;
mod crash;
mod image;
mod limits;
mod parallel;
