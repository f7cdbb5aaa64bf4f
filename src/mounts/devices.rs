//! Device nodes in the container's /dev (config-linux.md "Devices" and
//! "Default Devices") and the usual /dev symlinks.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use nix::sys::stat::{FchmodatFlags, Mode};

use super::secure::{InRoot, Kind, fd_path, openat2};
use super::{MountError, sys};

/// A device to create: path inside the container, type, numbers, mode, owner.
#[derive(Debug, Clone)]
pub struct Dev {
    pub path: PathBuf,
    pub kind: libc::mode_t,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The devices every container gets (config-linux.md "Default Devices").
pub fn default_devices() -> Vec<Dev> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(n, major, minor)| Dev {
        path: PathBuf::from("/dev").join(n),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: None,
        gid: None,
    })
    .collect()
}

pub fn from_spec(d: &LinuxDevice) -> Result<Dev, String> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err("type \"a\" is not a device node type (use c, b, u or p)".into());
        }
    };
    if d.major() < 0 || d.minor() < 0 {
        return Err(format!(
            "major/minor must not be negative ({}:{})",
            d.major(),
            d.minor()
        ));
    }
    Ok(Dev {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid(),
        gid: d.gid(),
    })
}

/// An entry of the image's /dev, opened O_PATH|O_NOFOLLOW (a symlink is
/// opened as itself, never followed), or None when missing.
fn open_entry(parent: &OwnedFd, name: &OsStr, shown: &Path) -> Result<Option<OwnedFd>, MountError> {
    // A single component below an fd resolved inside the root: RESOLVE_IN_ROOT
    // keeps even a `..` inside, O_NOFOLLOW stops at a final symlink.
    match openat2(
        parent.as_raw_fd(),
        Path::new(name),
        libc::O_PATH | libc::O_NOFOLLOW,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(sys("open", shown)(e)),
    }
}

/// Whether `st` is exactly the node `dev` asks for (type, and major:minor
/// for character and block devices).
fn is_expected(st: &libc::stat, dev: &Dev) -> bool {
    let kind = st.st_mode & libc::S_IFMT;
    kind == dev.kind
        && (kind == libc::S_IFIFO
            || st.st_rdev == libc::makedev(dev.major as u32, dev.minor as u32))
}

/// Removes a non-directory entry of the image (a symlink, a regular file, a
/// wrong node) through its parent's fd; a directory or a mount point is
/// refused: cuddy never follows, opens or writes through what the image put
/// at a device path.
fn remove_entry(
    parent: &OwnedFd,
    name: &CString,
    st: &libc::stat,
    shown: &Path,
) -> Result<(), MountError> {
    let refuse = |reason: &str| MountError::Other {
        what: format!("device {}", shown.display()),
        reason: reason.to_string(),
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(refuse(
            "the image has a directory there, not a device; refusing to replace it",
        ));
    }
    // SAFETY: valid dirfd and NUL-terminated single-component name; flag 0
    // removes the entry itself (a symlink is removed, not its target).
    if unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), 0) } < 0 {
        return Err(match Errno::last() {
            Errno::EBUSY => refuse("something is mounted there that is not the expected device"),
            e => sys("remove non-device entry", shown)(e),
        });
    }
    Ok(())
}

/// Creates `dev` inside the root: mknod, or, in a user namespace where mknod is
/// not allowed, a bind mount of the host's node at the same path.
///
/// Whatever the image has at the path is looked at without following it:
/// the expected node is kept, anything else but a directory is removed and
/// replaced. The mode and owner are then set through an O_PATH fd of the
/// node, checked to be the expected device (CVE-2025-31133 class: a
/// `/dev/null -> /host/file` symlink in the image must never make cuddy
/// chmod, chown, open or mount the host file).
pub fn create(root: &InRoot, dev: &Dev, userns: bool) -> Result<(), MountError> {
    let shown = root
        .path
        .join(dev.path.strip_prefix("/").unwrap_or(&dev.path));
    let bind = needs_bind(dev, userns, &shown)?;
    let parent_rel = dev.path.parent().unwrap_or(Path::new("/"));
    let parent = root.ensure(parent_rel, Kind::Dir)?;
    let name = dev
        .path
        .file_name()
        .ok_or_else(|| sys("mknod", &shown)(Errno::EINVAL))?;
    let cname = CString::new(name.as_bytes()).map_err(|_| sys("mknod", &shown)(Errno::EINVAL))?;
    let keep = |st: &libc::stat| {
        let k = st.st_mode & libc::S_IFMT;
        if bind {
            // A bind mount may go onto an empty file or any device node.
            k == libc::S_IFREG || k == libc::S_IFCHR || k == libc::S_IFBLK
        } else {
            is_expected(st, dev)
        }
    };
    let mut node = None;
    if let Some(fd) = open_entry(&parent, name, &shown)? {
        let st = fstat(&fd).map_err(sys("stat", &shown))?;
        if keep(&st) {
            node = Some(fd);
        } else {
            remove_entry(&parent, &cname, &st, &shown)?;
        }
    }
    let node = match node {
        Some(fd) => fd,
        None => {
            // Regular files need no CAP_MKNOD: the bind target is one.
            let (kind, mode) = if bind {
                (libc::S_IFREG, 0o600)
            } else {
                (dev.kind, dev.mode)
            };
            let devnum = libc::makedev(dev.major as u32, dev.minor as u32);
            // SAFETY: valid dirfd (an O_PATH fd of a directory inside the
            // root) and a NUL-terminated single-component name. mknod never
            // follows a symlink: EEXIST here means something raced us.
            let r =
                unsafe { libc::mknodat(parent.as_raw_fd(), cname.as_ptr(), kind | mode, devnum) };
            if r < 0 {
                return Err(sys("mknod", &shown)(Errno::last()));
            }
            let fd = open_entry(&parent, name, &shown)?
                .ok_or_else(|| sys("open new device", &shown)(Errno::ENOENT))?;
            let st = fstat(&fd).map_err(sys("stat", &shown))?;
            if !keep(&st) {
                return Err(MountError::Other {
                    what: format!("device {}", shown.display()),
                    reason: "replaced while cuddy was creating it".into(),
                });
            }
            fd
        }
    };
    if bind {
        return mount(
            Some(dev.path.as_path()),
            fd_path(&node).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind device", shown));
    }
    // mknod applies the umask (and a kept node has the image's mode): set the
    // exact mode. chmod(2) on /proc/thread-self/fd/N reaches the inode the
    // O_PATH fd holds (fchmod refuses O_PATH fds; fchmodat2's AT_EMPTY_PATH
    // needs Linux 6.6).
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        fd_path(&node).as_str(),
        Mode::from_bits_truncate(dev.mode),
        FchmodatFlags::FollowSymlink,
    )
    .map_err(sys("chmod device", &shown))?;
    if dev.uid.is_some() || dev.gid.is_some() {
        let uid = dev.uid.map_or(u32::MAX, |u| u);
        let gid = dev.gid.map_or(u32::MAX, |g| g);
        // SAFETY: an O_PATH fd with AT_EMPTY_PATH and an empty NUL-terminated
        // path: acts on the node the fd holds (-1 leaves an id unchanged).
        let r = unsafe {
            libc::fchownat(
                node.as_raw_fd(),
                c"".as_ptr(),
                uid,
                gid,
                libc::AT_EMPTY_PATH,
            )
        };
        if r < 0 {
            return Err(sys("chown device", shown)(Errno::last()));
        }
    }
    Ok(())
}

/// Whether `dev` is bind-mounted from the host rather than made with mknod.
/// Kernel fact: mknod(2) of a character or block device needs CAP_MKNOD in
/// the initial user namespace; a FIFO needs no capability. So only in a user
/// namespace, and only for c/b/u devices, is the host's node bind-mounted
/// (as runc does); its absence is then a clear error, not an ENOENT from
/// mount(2).
fn needs_bind(dev: &Dev, userns: bool, shown: &Path) -> Result<bool, MountError> {
    if !userns || dev.kind == libc::S_IFIFO {
        return Ok(false);
    }
    match nix::sys::stat::lstat(dev.path.as_path()) {
        Ok(_) => Ok(true),
        Err(Errno::ENOENT) => Err(MountError::Other {
            what: format!("device {} (linux.devices)", shown.display()),
            reason: format!(
                "the host has no {} to bind-mount, and a container in a user namespace may not mknod a character or block device",
                dev.path.display()
            ),
        }),
        Err(e) => Err(sys("stat host device", &dev.path)(e)),
    }
}

fn fstat(fd: &OwnedFd) -> nix::Result<libc::stat> {
    nix::sys::stat::fstat(fd)
}

/// /dev/fd, /dev/std{in,out,err} and /dev/ptmx -> pts/ptmx.
///
/// Existing fd/std* entries of the image are kept (as runc does): cuddy never
/// acts through them and they resolve inside the container. /dev/ptmx is
/// always replaced (a symlink, file or node there is removed through the
/// parent's fd, never followed) so the container uses its own devpts.
pub fn symlinks(root: &InRoot) -> Result<(), MountError> {
    let dev = root.ensure(Path::new("/dev"), Kind::Dir)?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let shown = root.path.join("dev").join(name);
        let cname = CString::new(name).map_err(|_| sys("symlink", &shown)(Errno::EINVAL))?;
        let ctarget = CString::new(target).map_err(|_| sys("symlink", &shown)(Errno::EINVAL))?;
        if name == "ptmx" {
            if let Some(fd) = open_entry(&dev, OsStr::new(name), &shown)? {
                let st = fstat(&fd).map_err(sys("stat", &shown))?;
                remove_entry(&dev, &cname, &st, &shown)?;
            }
        }
        // SAFETY: valid NUL-terminated strings and dirfd.
        let r = unsafe { libc::symlinkat(ctarget.as_ptr(), dev.as_raw_fd(), cname.as_ptr()) };
        if r < 0 && (Errno::last() != Errno::EEXIST || name == "ptmx") {
            return Err(sys("symlink", shown)(Errno::last()));
        }
    }
    Ok(())
}
