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
//!
//! A container that exits (or whose create crashed: the waiting init dies
//! with its parent's channel) before a later `delete` leaves no process to
//! open the namespace from. For CNI mode and moved devices the namespace is
//! therefore also *pinned*: bind-mounted on `<state dir>/netns` (as
//! `ip netns add` and podman do), recorded by the file's very existence
//! before the mount, and unmounted by the teardown. The pin lives in the
//! mount namespace cuddy ran in (the host's, normally); a create run in a
//! private mount namespace that dies with it (`ip netns exec`) loses it,
//! and then only the held fd and the init remain.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
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

/// The pin's file name in the state directory.
pub const PIN_FILE: &str = "netns";

/// Pins the namespace `netns` (an open fd of it) on `<dir>/netns`.
pub fn pin(dir: &Path, netns: BorrowedFd) -> std::io::Result<()> {
    let target = dir.join(PIN_FILE);
    // The empty file is the record (made before the mount).
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&target)?;
    let src = format!("/proc/thread-self/fd/{}", netns.as_raw_fd());
    nix::mount::mount(
        Some(src.as_str()),
        &target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(std::io::Error::from)
}

/// Pins the namespace of the init `pid` (just cloned, waiting).
pub fn pin_init(dir: &Path, pid: i32) -> std::io::Result<()> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    pin(dir, std::os::fd::AsFd::as_fd(&ns))
}

/// Removes the pin (if any): unmounted (MNT_DETACH), file removed.
pub fn unpin(dir: &Path) {
    let target = dir.join(PIN_FILE);
    if std::fs::symlink_metadata(&target).is_err() {
        return;
    }
    // EINVAL: not mounted (a crash before the mount, or another mount
    // namespace): only the file is left.
    if let Err(e) = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH) {
        if e != nix::errno::Errno::EINVAL {
            tracing::warn!("unmount {}: {e}", target.display());
        }
    }
    let _ = std::fs::remove_file(&target);
}

/// The pinned namespace, if the pin is mounted (an nsfs file).
fn pinned(dir: &Path) -> Option<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(dir.join(PIN_FILE))
        .ok()?;
    // Kernel fact: namespace files live on nsfs (NSFS_MAGIC); the empty
    // file under an unmounted pin does not.
    let st = nix::sys::statfs::fstatfs(&f).ok()?;
    (st.filesystem_type() == nix::sys::statfs::NSFS_MAGIC).then(|| OwnedFd::from(f))
}

/// The container's network namespace, opened: the pin when it is mounted,
/// else the recorded init's while that very process (same start time: no
/// pid reuse) is alive; None otherwise.
pub fn hold(dir: &Path, proc_root: &Path) -> Option<OwnedFd> {
    if let Some(fd) = pinned(dir) {
        return Some(fd);
    }
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
