//! A container without a mount namespace of its own (config-linux.md
//! "Namespaces": "If a namespace type is not specified in the namespaces
//! array, the container MUST inherit the runtime namespace of that type").
//!
//! As runc and crun do, its init then mounts into the rootfs in the caller's
//! mount namespace and `chroot`s into it instead of `pivot_root` (which would
//! replace the caller's root). Unlike them, cuddy never changes the caller's
//! propagation (no `/` made rslave) and leaves nothing mounted behind: every
//! mount of the container is made inside one bind mount of the rootfs onto
//! itself, and detaching that one mount (`MNT_DETACH` takes its whole
//! subtree) undoes them all. Which mount that is, is recorded in the state
//! directory before the init exists: the id of the mount that held the
//! rootfs before (`base`); everything stacked on the rootfs above it is the
//! container's. The record also names the mount namespace, so a `delete`
//! run from another namespace never unmounts what it sees at that path.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};

use super::{MountError, sys};
use crate::fds::procfs::ProcFs;

/// The record's file name in the container's state directory.
pub const RECORD: &str = "shared-mountns.json";

#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
struct Record {
    /// (st_dev, st_ino) of the caller's mount namespace.
    mntns: (u64, u64),
    /// The id of the mount that held the rootfs before the container.
    base: u64,
    rootfs: PathBuf,
}

/// At most this many mounts are detached from the top of the rootfs (the
/// container makes one; a config mount on "/" would stack a second).
const MAX_DETACH: usize = 8;

/// The id of the topmost mount at `path` (statx STATX_MNT_ID, Linux 5.8).
fn mnt_id(path: &Path) -> Result<u64, MountError> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| sys("statx", path)(Errno::EINVAL))?;
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statx buffer we own.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if r < 0 {
        return Err(sys("statx", path)(Errno::last()));
    }
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(MountError::Other {
            what: format!("statx {}", path.display()),
            reason: "the kernel reports no mount id (Linux 5.8 or later is needed)".into(),
        });
    }
    Ok(stx.stx_mnt_id)
}

/// The caller's mount namespace, through the verified procfs.
fn own_mntns() -> Result<(u64, u64), MountError> {
    let proc_err = |e: crate::fds::procfs::ProcError| MountError::Other {
        what: "/proc/self/ns/mnt".into(),
        reason: e.to_string(),
    };
    let proc = ProcFs::mounted().map_err(proc_err)?;
    // ns/* are magic links: open the directory checked, stat the entry.
    let dir = proc
        .open("self/ns", libc::O_PATH | libc::O_DIRECTORY)
        .map_err(proc_err)?;
    let st = nix::sys::stat::fstatat(&dir, "mnt", nix::fcntl::AtFlags::empty())
        .map_err(sys("stat", "/proc/self/ns/mnt"))?;
    Ok((st.st_dev, st.st_ino))
}

/// Before the init exists: records what holds `rootfs` now, in `state_dir`.
pub fn record(state_dir: &Path, rootfs: &Path) -> Result<(), MountError> {
    let rec = Record {
        mntns: own_mntns()?,
        base: mnt_id(rootfs)?,
        rootfs: rootfs.to_path_buf(),
    };
    let path = state_dir.join(RECORD);
    let text = serde_json::to_vec(&rec).map_err(|e| MountError::Other {
        what: format!("write {}", path.display()),
        reason: e.to_string(),
    })?;
    // Atomic and never through a link planted at the name.
    crate::utils::write_atomic(&path, &text, 0o600).map_err(|e| MountError::Other {
        what: format!("write {}", path.display()),
        reason: e.to_string(),
    })
}

/// After the container is gone (failed create, delete): detaches every
/// mount stacked on the rootfs above the recorded one. Nothing to do when
/// the container had its own mount namespace (no record). Refused, with
/// nothing unmounted, from another mount namespace than the creator's.
pub fn release(state_dir: &Path) -> Result<(), MountError> {
    let path = state_dir.join(RECORD);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(MountError::Other {
                what: format!("read {}", path.display()),
                reason: e.to_string(),
            });
        }
    };
    let rec: Record = serde_json::from_slice(&text).map_err(|e| MountError::Other {
        what: format!("read {}", path.display()),
        reason: e.to_string(),
    })?;
    if own_mntns()? != rec.mntns {
        return Err(MountError::Other {
            what: format!("unmount the container's rootfs {}", rec.rootfs.display()),
            reason: "the container shares the mount namespace of the cuddy that created it, and this cuddy runs in another one: run delete from that namespace".into(),
        });
    }
    for _ in 0..MAX_DETACH {
        match mnt_id(&rec.rootfs) {
            Ok(id) if id != rec.base => {}
            // The rootfs is as it was (or gone): nothing of ours is left.
            Ok(_) | Err(_) => return Ok(()),
        }
        match umount2(
            &rec.rootfs,
            MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW,
        ) {
            Ok(()) => {}
            // Not a mount point: what differs is not a mount of ours.
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(sys("unmount the container's rootfs", &rec.rootfs)(e)),
        }
    }
    Ok(())
}

/// In the init, instead of pivot_root: chroot into the rootfs (the bind
/// mount of it onto itself, so that a read-only root remounts only that).
/// The caller's mount namespace keeps its root.
pub fn enter(rootfs: &Path) -> Result<(), MountError> {
    nix::unistd::chdir(rootfs).map_err(sys("chdir", rootfs))?;
    nix::unistd::chroot(".").map_err(sys("chroot", rootfs))
}
