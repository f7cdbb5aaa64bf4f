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

/// A new `fstype` instance configured with `opts`, mounted with the
/// `MOUNT_ATTR_*` bits `attrs`, attached nowhere: the mount's root fd.
pub fn mount(fstype: &str, opts: &[Opt], attrs: u32) -> Result<OwnedFd, DetachedError> {
    let name = cstr(fstype)?;
    // SAFETY: fsopen(2) with a NUL-terminated name.
    let ctx = owned(
        unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) },
        || format!("fsopen {fstype}"),
    )?;
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
    fsconfig(&ctx, FSCONFIG_CMD_CREATE, None, None).map_err(|source| DetachedError {
        op: format!("fsconfig {fstype} create"),
        source,
    })?;
    // SAFETY: fsmount(2) with integer arguments on a created context.
    owned(
        unsafe { libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) },
        || format!("fsmount {fstype}"),
    )
}
