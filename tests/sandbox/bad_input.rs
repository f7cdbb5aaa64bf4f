//! Bad input: a clear error naming the field or path, and nothing left.

use std::path::Path;

use cuddy::{Sandbox, SandboxError};

use crate::common::*;
use crate::require_root;

/// A fresh state root: after a failed start, it holds nothing.
fn assert_empty_root(state: &Path) {
    let bundles = state.join(".sandbox");
    let left: Vec<_> = std::fs::read_dir(state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".sandbox")
        .chain(
            std::fs::read_dir(&bundles)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name()),
        )
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn fails(s: Sandbox, state: &Path) -> String {
    let e = s.state_root(state).output().unwrap_err();
    assert_empty_root(state);
    e.to_string()
}

#[test]
fn a_missing_rootfs_is_named() {
    require_root!();
    let state = tempfile::tempdir().unwrap();
    let e = fails(
        Sandbox::rootfs("/nonexistent/rootfs")
            .binary(env!("CARGO_BIN_EXE_cuddy"))
            .args(["true"]),
        state.path(),
    );
    assert!(
        e.contains("rootfs") && e.contains("/nonexistent/rootfs"),
        "{e}"
    );
    assert!(e.contains("No such file"), "{e}");
}

#[test]
fn a_missing_mount_source_is_named() {
    require_root!();
    let state = tempfile::tempdir().unwrap();
    let e = fails(
        sandbox()
            .mount("/nonexistent/src", "/x", true)
            .args(["true"]),
        state.path(),
    );
    assert!(
        e.contains("mount source") && e.contains("/nonexistent/src"),
        "{e}"
    );
}

#[test]
fn a_relative_mount_destination_is_refused_before_anything_starts() {
    let e = sandbox()
        .mount("/tmp", "rel", false)
        .args(["true"])
        .spawn()
        .unwrap_err();
    assert!(
        matches!(
            e,
            SandboxError::Invalid {
                field: "mount destination",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_missing_command_is_named() {
    require_root!();
    let state = tempfile::tempdir().unwrap();
    let e = fails(sandbox(), state.path());
    assert!(e.contains("no command"), "{e}");
    let e = fails(sandbox().args(["/no/such/program"]), state.path());
    assert!(e.contains("/no/such/program"), "{e}");
}

#[test]
fn a_missing_image_is_named() {
    require_root!();
    let state = tempfile::tempdir().unwrap();
    let e = fails(
        Sandbox::image("/nonexistent/image.tar")
            .binary(env!("CARGO_BIN_EXE_cuddy"))
            .args(["true"]),
        state.path(),
    );
    assert!(e.contains("/nonexistent/image.tar"), "{e}");
}

#[test]
fn a_missing_binary_lists_what_was_tried() {
    let e = sandbox()
        .binary("/nonexistent/cuddy")
        .args(["true"])
        .output()
        .unwrap_err();
    assert!(matches!(e, SandboxError::Binary { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/cuddy"), "{e}");
}

#[test]
fn a_bad_network_mode_is_named() {
    require_root!();
    let state = tempfile::tempdir().unwrap();
    let e = fails(
        sandbox().network("carrier-pigeon").args(["true"]),
        state.path(),
    );
    assert!(e.contains("carrier-pigeon"), "{e}");
}
