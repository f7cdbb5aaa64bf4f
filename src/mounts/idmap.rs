//! id-mapped mounts (config.md#posix-platform-mounts: a mount's
//! `uidMappings`/`gidMappings`, options `idmap`/`ridmap`).
//!
//! `mount_setattr(MOUNT_ATTR_IDMAP)` (Linux 5.12) takes an fd of a user
//! namespace whose mappings translate the ids on disk: a file whose raw
//! owner is `containerID + k` shows as `hostID + k`. The caller needs
//! CAP_SYS_ADMIN in the user namespace of the filesystem (the host's for a
//! disk filesystem), so this runs in the runtime, before the clone, on a
//! detached `open_tree` copy; the child then only moves it in place. The
//! user namespace is a throwaway one: a helper is cloned into a new user
//! namespace, its maps are written through the verified procfs, its
//! `ns/user` is opened, and the helper exits (the fd keeps the namespace).
//! The filesystem must support id-mapped mounts (ext4, xfs, btrfs from
//! 5.12-5.15; tmpfs only from 6.3): otherwise the kernel says EINVAL.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxIdMapping;

use crate::fds::Keep;
use crate::fds::procfs::ProcFs;
use crate::process::clone::{Forked, clone};

/// `MOUNT_ATTR_IDMAP` of linux/mount.h.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// uid_map/gid_map text: "inside outside count" lines.
fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// An fd of a new user namespace with these mappings.
pub fn userns_fd(
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
    proc: &ProcFs,
) -> Result<OwnedFd, String> {
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let keep = Keep {
        preserve: 0,
        fds: vec![r.as_raw_fd()],
    };
    let pid = match clone(CloneFlags::CLONE_NEWUSER, None, &keep).map_err(|e| e.to_string())? {
        Forked::Child => {
            // Wait for the parent to close its end (EOF), then go.
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&r, &mut b);
            // SAFETY: _exit skips the parent's atexit handlers and destructors.
            unsafe { libc::_exit(0) }
        }
        Forked::Parent { pid, .. } => pid,
    };
    drop(r);
    let res = (|| {
        let p = pid.as_raw();
        proc.write(&format!("{p}/uid_map"), map_text(uids).as_bytes())
            .map_err(|e| format!("write uid_map: {e}"))?;
        proc.write(&format!("{p}/gid_map"), map_text(gids).as_bytes())
            .map_err(|e| format!("write gid_map: {e}"))?;
        // ns/* are magic links: open the checked ns dir, then the entry.
        let dir = proc
            .open(&format!("{p}/ns"), libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| format!("open ns: {e}"))?;
        nix::fcntl::openat(
            &dir,
            "user",
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| format!("open ns/user: {e}"))
    })();
    drop(w);
    let _ = nix::sys::wait::waitpid(pid, None);
    res
}
