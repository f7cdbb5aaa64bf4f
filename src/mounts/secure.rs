//! Resolving and creating paths inside the rootfs without ever leaving it.
//!
//! `openat2(2)` with `RESOLVE_IN_ROOT` treats the rootfs fd as "/" for the whole
//! walk, symlinks included (an absolute symlink `/etc -> /` inside the image
//! resolves to the rootfs, not the host), and `RESOLVE_NO_MAGICLINKS` refuses
//! /proc magic links. Mounts are then made onto `/proc/thread-self/fd/N` of the
//! resolved O_PATH fd, so nothing can swap the path between check and use.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

use super::{MountError, sys};

/// An open root directory plus its host path (for messages).
pub struct InRoot {
    pub fd: OwnedFd,
    pub path: PathBuf,
}

/// The kind of object `ensure` creates when the path is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// `openat2(dirfd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
pub fn open_in_root(root: RawFd, rel: &Path, flags: i32) -> nix::Result<OwnedFd> {
    openat2(
        root,
        rel,
        flags,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// openat2(2) with O_CLOEXEC and the given RESOLVE_* flags.
pub fn openat2(root: RawFd, rel: &Path, flags: i32, resolve: u64) -> nix::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = CString::new(rel.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    /// `struct open_how` of openat2(2).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    retry_eagain(|| {
        // SAFETY: `c` is a valid NUL-terminated string and `how` a properly
        // initialised open_how whose size we pass; the kernel only reads them.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: the syscall returned a new file descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    })
}

/// How many times an openat2 that failed with EAGAIN is tried in all.
const OPENAT2_TRIES: u32 = 32;

/// openat2(2): with RESOLVE_IN_ROOT or RESOLVE_BENEATH, a rename or mount
/// anywhere on the system during the walk ("a race with ..rename_lock or
/// mount_lock") makes the kernel give up with EAGAIN rather than risk an
/// escape; the man page says to retry. A bounded number of times: a
/// process that renames in a loop must not make cuddy spin for ever, and
/// then EAGAIN is reported like any other error.
fn retry_eagain<T>(mut call: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    let mut tries = 1;
    loop {
        match call() {
            Err(Errno::EAGAIN) if tries < OPENAT2_TRIES => tries += 1,
            r => return r,
        }
    }
}

/// The magic-link path naming an open fd, usable as a mount(2) source or target.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/thread-self/fd/{}", fd.as_raw_fd())
}

/// The mount id of an fd and whether it is the root of its mount
/// (statx(2) STATX_MNT_ID and STATX_ATTR_MOUNT_ROOT, Linux 5.8).
fn mount_of(fd: &OwnedFd) -> nix::Result<(u64, bool)> {
    // SAFETY: an all-zero statx is a valid value for the kernel to fill.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, empty NUL-terminated path with AT_EMPTY_PATH, and a
    // statx buffer the kernel writes.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    let root = stx.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0;
    Ok((stx.stx_mnt_id, root))
}

impl InRoot {
    /// After a mount onto `/proc/thread-self/fd/N` of `target` (resolved
    /// before the mount), opens the new mount's root for the remount and
    /// propagation steps. Reopening `fd_path(target)` would give the
    /// covered directory (a magic link does not cross mounts), so `rel` is
    /// resolved again and checked to be that very mount: a mount root, on
    /// another mount than `target`, at the same place (same d_path). A path
    /// swapped for a symlink in between (CVE-2021-30465 class) is refused
    /// instead of read-only/propagation flags landing on another mount.
    pub fn open_mounted(&self, rel: &Path, target: &OwnedFd) -> Result<OwnedFd, MountError> {
        let shown = self.path.join(rel.strip_prefix("/").unwrap_or(rel));
        let fd = self.open(rel).map_err(sys("open mounted", &shown))?;
        let (under, _) = mount_of(target).map_err(sys("statx", &shown))?;
        let (mnt, is_root) = mount_of(&fd).map_err(sys("statx", &shown))?;
        let here = nix::fcntl::readlink(fd_path(&fd).as_str()).map_err(sys("readlink", &shown))?;
        let placed =
            nix::fcntl::readlink(fd_path(target).as_str()).map_err(sys("readlink", &shown))?;
        if !is_root || mnt == under || here != placed {
            return Err(MountError::Other {
                what: format!("mount on {}", shown.display()),
                reason: "the destination changed while it was being mounted (a symlink \
                         swapped in?); refusing to go on"
                    .into(),
            });
        }
        Ok(fd)
    }
}

/// Normal components of a path inside the root ("/a/./b" -> ["a", "b"]).
/// `..` is kept: openat2 clamps it at the root.
fn components(rel: &Path) -> Vec<&std::ffi::OsStr> {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            Component::ParentDir => Some(std::ffi::OsStr::new("..")),
            _ => None,
        })
        .collect()
}

impl InRoot {
    /// Opens `path` inside the root as O_PATH.
    pub fn open(&self, rel: &Path) -> nix::Result<OwnedFd> {
        open_in_root(self.fd.as_raw_fd(), rel, libc::O_PATH)
    }

    /// Opens `rel`, creating it (and missing parent directories, mode 0755) as
    /// `kind` when it does not exist. Returns an O_PATH fd of the object.
    pub fn ensure(&self, rel: &Path, kind: Kind) -> Result<OwnedFd, MountError> {
        self.ensure_at(rel, kind, 0)
    }

    fn ensure_at(&self, rel: &Path, kind: Kind, depth: u32) -> Result<OwnedFd, MountError> {
        let shown = self.path.join(rel.strip_prefix("/").unwrap_or(rel));
        if let Ok(fd) = self.open(rel) {
            return Ok(fd);
        }
        let comps = components(rel);
        let mut prefix = PathBuf::new();
        let mut parent = self.open(Path::new(".")).map_err(sys("open", &self.path))?;
        for (i, name) in comps.iter().enumerate() {
            prefix.push(name);
            match self.open(&prefix) {
                Ok(fd) => {
                    parent = fd;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(sys("resolve", &shown)(e)),
            }
            // A dangling symlink (e.g. `/escape -> /host/dir` in the image):
            // create what it points to, resolved inside the root, as
            // securejoin's MkdirAll does for runc.
            if let Ok(target) = nix::fcntl::readlinkat(&parent, *name) {
                if depth >= 40 {
                    return Err(sys("resolve", &shown)(Errno::ELOOP));
                }
                let target = Path::new(&target);
                let mut next = if target.is_absolute() {
                    target.to_path_buf()
                } else {
                    prefix.parent().unwrap_or(Path::new("")).join(target)
                };
                for c in &comps[i + 1..] {
                    next.push(c);
                }
                return self.ensure_at(&next, kind, depth + 1);
            }
            let last = i + 1 == comps.len();
            let cname =
                CString::new(name.as_bytes()).map_err(|_| sys("resolve", &shown)(Errno::EINVAL))?;
            if last && kind == Kind::File {
                // O_PATH parents cannot be used with openat(O_CREAT): reopen
                // the parent directory for real (still inside the root).
                let dir = open_in_root(
                    self.fd.as_raw_fd(),
                    prefix.parent().unwrap_or(Path::new(".")),
                    libc::O_DIRECTORY | libc::O_RDONLY,
                )
                .map_err(sys("open", &shown))?;
                // SAFETY: valid dirfd and NUL-terminated name; O_NOFOLLOW|O_EXCL
                // refuses to follow or reuse anything planted there.
                let fd = unsafe {
                    libc::openat(
                        dir.as_raw_fd(),
                        cname.as_ptr(),
                        libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_WRONLY
                            | libc::O_CLOEXEC,
                        0o644,
                    )
                };
                if fd < 0 && Errno::last() != Errno::EEXIST {
                    return Err(sys("create file", &shown)(Errno::last()));
                }
                if fd >= 0 {
                    // SAFETY: fd was just returned by openat and is owned by us.
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            } else {
                // SAFETY: valid dirfd and NUL-terminated name.
                let r = unsafe { libc::mkdirat(parent.as_raw_fd(), cname.as_ptr(), 0o755) };
                if r < 0 && Errno::last() != Errno::EEXIST {
                    return Err(sys("mkdir", &shown)(Errno::last()));
                }
            }
            parent = self.open(&prefix).map_err(sys("open", &shown))?;
        }
        Ok(parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root(dir: &Path) -> InRoot {
        let f = std::fs::File::open(dir).unwrap();
        InRoot {
            fd: f.into(),
            path: dir.to_path_buf(),
        }
    }

    #[test]
    fn creates_dirs_and_files_inside_root() {
        let d = tempfile::tempdir().unwrap();
        let r = root(d.path());
        r.ensure(Path::new("/a/b/c"), Kind::Dir).unwrap();
        assert!(d.path().join("a/b/c").is_dir());
        r.ensure(Path::new("/a/f"), Kind::File).unwrap();
        assert!(d.path().join("a/f").is_file());
    }

    #[test]
    fn absolute_symlink_stays_in_root() {
        let outside = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        // A hostile image: /escape -> <outside dir on the host>.
        symlink(outside.path(), d.path().join("escape")).unwrap();
        let r = root(d.path());
        r.ensure(Path::new("/escape/x"), Kind::Dir).unwrap();
        assert!(
            !outside.path().join("x").exists(),
            "created outside the rootfs"
        );
        // The symlink target was resolved inside the root instead.
        let inner = d
            .path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("x");
        assert!(inner.is_dir());
    }

    #[test]
    fn eagain_is_retried_a_bounded_number_of_times() {
        // A fake openat2 that loses the rename/mount race twice, then wins.
        let mut calls = 0;
        let r = retry_eagain(|| {
            calls += 1;
            if calls < 3 { Err(Errno::EAGAIN) } else { Ok(7) }
        });
        assert_eq!((r, calls), (Ok(7), 3));
        // One that always loses: EAGAIN after OPENAT2_TRIES calls, no spin.
        let mut calls = 0;
        let r: nix::Result<()> = retry_eagain(|| {
            calls += 1;
            Err(Errno::EAGAIN)
        });
        assert_eq!((r, calls), (Err(Errno::EAGAIN), OPENAT2_TRIES));
        // Other errors are not retried.
        let mut calls = 0;
        let r: nix::Result<()> = retry_eagain(|| {
            calls += 1;
            Err(Errno::EXDEV)
        });
        assert_eq!((r, calls), (Err(Errno::EXDEV), 1));
    }

    #[test]
    fn dotdot_is_clamped() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let r = root(&d.path().join("sub"));
        r.ensure(Path::new("/../../up"), Kind::Dir).unwrap();
        assert!(!d.path().join("up").exists());
        assert!(d.path().join("sub/up").is_dir());
    }
}
