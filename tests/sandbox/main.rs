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
//! in `tokio::task::spawn_blocking`: `tokio_rt` does both that and a call on
//! a worker thread (tokio is a dev-dependency only, not one of cuddy's).
#![allow(clippy::unwrap_used)]

mod bad_input;
mod basics;
mod common;
mod crash;
mod image;
mod limits;
mod parallel;
mod tokio_rt;
