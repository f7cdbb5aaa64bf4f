//! Filesystem instances mounted nowhere: `fsopen(2)` + `fsconfig(2)` +
//! `fsmount(2)` (Linux 5.2) give an fd of a new mount that belongs to no
//! mount namespace, so nothing can be mounted over it, no path leads to it,
//! and it is dissolved when the last fd (or open file) on it goes. Used for
//! cuddy's private procfs handles (`fds::procfs`) and the read-only overlay
//! view of its own binary (`exeseal`).

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// linux/mount.h
const FSOPEN_CLOEXEC: u32 = 1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 1;
pub const MOUNT_ATTR_RDONLY: u32 = 1;
pub const MOUNT_ATTR_NOSUID: u32 = 2;
pub const MOUNT_ATTR_NODEV: u32 = 4;
pub const MOUNT_ATTR_NOEXEC: u32 = 8;

/// One `fsconfig(FSCONFIG_SET_STRING)`; an `optional` one may fail.
pub struct Opt<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub optional: bool,
}

/// Which step failed (for the caller's error), and why.
#[derive(Debug)]
pub struct DetachedError {
    pub op: String,
    pub source: Errno,
}

fn owned(r: libc::c_long, op: impl FnOnce() -> String) -> Result<OwnedFd, DetachedError> {
    if r < 0 {
        return Err(DetachedError {
            op: op(),
            source: Errno::last(),
        });
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

fn cstr(s: &str) -> Result<CString, DetachedError> {
    CString::new(s).map_err(|_| DetachedError {
        op: format!("{s:?} contains a NUL byte"),
        source: Errno::EINVAL,
    })
}

fn fsconfig(ctx: &OwnedFd, cmd: u32, key: Option<&CStr>, value: Option<&CStr>) -> nix::Result<()> {
    // SAFETY: a valid fs context fd and NUL-terminated strings, or NULL
    // where the command takes none.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            cmd,
            key.map_or(std::ptr::null(), CStr::as_ptr),
            value.map_or(std::ptr::null(), CStr::as_ptr),
            0,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn fsopen(fstype: &str) -> Result<OwnedFd, DetachedError> {
    let name = cstr(fstype)?;
    // SAFETY: fsopen(2) with a NUL-terminated name.
    owned(
        unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) },
        || format!("fsopen {fstype}"),
    )
}

fn create_and_mount(ctx: &OwnedFd, fstype: &str, attrs: u32) -> Result<OwnedFd, DetachedError> {
    fsconfig(ctx, FSCONFIG_CMD_CREATE, None, None).map_err(|source| DetachedError {
        op: format!("fsconfig {fstype} create"),
        source,
    })?;
    // SAFETY: fsmount(2) with integer arguments on a created context.
    owned(
        unsafe { libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) },
        || format!("fsmount {fstype}"),
    )
}

/// Like `mount`, with mount(8)-style data options: `key=value` set as a
/// string, a bare `key` as a flag (FSCONFIG_SET_FLAG); every one required.
pub fn mount_kv(
    fstype: &str,
    opts: &[(String, Option<String>)],
    attrs: u32,
) -> Result<OwnedFd, DetachedError> {
    let ctx = fsopen(fstype)?;
    for (k, v) in opts {
        let key = cstr(k)?;
        let r = match v {
            Some(v) => fsconfig(&ctx, FSCONFIG_SET_STRING, Some(&key), Some(&cstr(v)?)),
            None => fsconfig(&ctx, FSCONFIG_SET_FLAG, Some(&key), None),
        };
        r.map_err(|source| DetachedError {
            op: format!(
                "fsconfig {fstype} {k}{}",
                v.as_ref().map(|v| format!("={v}")).unwrap_or_default()
            ),
            source,
        })?;
    }
    create_and_mount(&ctx, fstype, attrs)
}

/// move_mount(2) (Linux 5.2) of the mount whose root is `from` (detached,
/// from fsmount or open_tree) onto the object `onto` is open on.
pub fn move_onto(from: &OwnedFd, onto: &OwnedFd) -> nix::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
    // SAFETY: two valid fds, empty NUL-terminated paths with the EMPTY_PATH
    // flags; the kernel only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            onto.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// mount_setattr(2) (Linux 5.12) on the mount `fd` is open on, and with
/// `recursive` on every mount below it.
pub fn setattr(fd: &OwnedFd, attr: &MountAttr, recursive: bool) -> nix::Result<()> {
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: valid fd, NUL-terminated empty path with AT_EMPTY_PATH, and a
    // properly sized mount_attr that the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// open_tree(2) (Linux 5.2) with OPEN_TREE_CLONE: a detached copy of the
/// mount at `path` (with `recursive`, of the mounts below it too), resolved
/// and opened with the caller's privileges.
pub fn clone_tree(path: &std::path::Path, recursive: bool) -> nix::Result<OwnedFd> {
    const OPEN_TREE_CLONE: u32 = 1;
    let c = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| Errno::EINVAL)?;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as u32
        | if recursive {
            libc::AT_RECURSIVE as u32
        } else {
            0
        };
    // SAFETY: NUL-terminated path and integer flags.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// A new `fstype` instance configured with `opts`, mounted with the
/// `MOUNT_ATTR_*` bits `attrs`, attached nowhere: the mount's root fd.
pub fn mount(fstype: &str, opts: &[Opt], attrs: u32) -> Result<OwnedFd, DetachedError> {
    let ctx = fsopen(fstype)?;
    for o in opts {
        let (k, v) = (cstr(o.key)?, cstr(o.value)?);
        match fsconfig(&ctx, FSCONFIG_SET_STRING, Some(&k), Some(&v)) {
            Err(source) if !o.optional => {
                return Err(DetachedError {
                    op: format!("fsconfig {fstype} {}={}", o.key, o.value),
                    source,
                });
            }
            _ => {}
        }
    }
    create_and_mount(&ctx, fstype, attrs)
}
