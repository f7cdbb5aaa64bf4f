//! Keeping a container's network namespace alive until its teardown.
//!
//! Kernel fact: a network namespace lives while a process is in it *or* a
//! file refers to it (an open fd of /proc/PID/ns/net, a bind mount). When
//! the last one goes, its virtual devices (the veth's container end, a moved
//! dummy) are destroyed and its physical ones moved to the initial
//! namespace. A teardown that needs the namespace (CNI DEL removing the
//! interface and the masquerade rules made for its address; moved devices
//! returned) must therefore open it *before* the container's processes are
//! killed: [`hold`] does so from the init recorded by create
//! ([`record_init`]); `run` holds it from create to its delete, so the
//! teardown after the container exited still finds it.

use std::os::fd::OwnedFd;
use std::path::Path;

use crate::utils::proc_start_time;

/// The file, in the state directory, naming the init whose namespace the
/// network was wired into: "PID START".
pub const INIT_FILE: &str = "netns.init";

/// Records the init (pid and start time) right after clone, before any
/// network side effect, so that even a delete after a crashed create can
/// hold its namespace.
pub fn record_init(dir: &Path, proc_root: &Path, pid: i32) -> std::io::Result<()> {
    let start = proc_start_time(proc_root, pid).map(|s| s.0).unwrap_or(0);
    crate::utils::write_atomic(
        &dir.join(INIT_FILE),
        format!("{pid} {start}").as_bytes(),
        0o600,
    )
}

/// The recorded init's network namespace, opened, while that very process
/// (same start time: no pid reuse) is alive; None otherwise.
pub fn hold(dir: &Path, proc_root: &Path) -> Option<OwnedFd> {
    let text = std::fs::read_to_string(dir.join(INIT_FILE)).ok()?;
    let mut w = text.split_whitespace();
    let pid: i32 = w.next()?.parse().ok()?;
    let start: u64 = w.next()?.parse().ok()?;
    let alive = || matches!(proc_start_time(proc_root, pid), Some((s, st)) if s == start && st != 'Z' && st != 'X');
    if pid <= 0 || !alive() {
        return None;
    }
    let fd = std::fs::File::open(proc_root.join(format!("{pid}/ns/net")))
        .ok()
        .map(OwnedFd::from)?;
    // Still the same process after the open: the fd is its namespace.
    alive().then_some(fd)
}
