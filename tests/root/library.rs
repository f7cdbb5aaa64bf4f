//! cuddy as a library (examples/sandbox.rs): a real container through
//! `cuddy::container::run`, from a single-threaded program.

use std::process::Command;

use crate::common::*;
use crate::require_root;

#[test]
fn library_runs_a_throwaway_sandbox() {
    require_root!();
    // cargo builds the examples for `cargo test`, next to deps/.
    let exe = std::env::current_exe().unwrap();
    let sandbox = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/sandbox");
    assert!(
        sandbox.exists(),
        "{} is not built: `cargo test` builds it, or `cargo build --examples`",
        sandbox.display()
    );
    let mut c = Command::new(&sandbox);
    c.arg(fixture_rootfs())
        .args(["/bin/sh", "-c", "echo in the sandbox as pid $$; exit 6"]);
    let out = output_with_timeout(c, 60);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in the sandbox as pid 1\n");
}
