//! `tmpcopyup` (a crun/runc extension that podman sends for `--read-only`
//! and `--tmpfs`): a tmpfs whose initial content is what the image has at
//! the destination.
//!
//! The image is hostile, so the copy is made by fd, never by path: every
//! entry is opened with `openat(dirfd, name, O_NOFOLLOW)` relative to an
//! already opened directory, symlinks are recreated with the target they
//! have (never followed), and the tmpfs is a detached one (`fsopen`,
//! `detached::mount_kv`) that no path leads to while it is filled. It is
//! moved onto the destination (`move_mount`, Linux 5.2) only once complete.
//!
//! Kept: file types (directories, files, symlinks, fifos, sockets, device
//! nodes where mknod is allowed: in a user namespace it is not, and device
//! nodes are skipped), ownership (ids the container's user namespace does
//! not map cannot be set and are left to its root), modes (set after chown,
//! which clears set-id bits), xattrs where the tmpfs takes them, access and
//! modification times. Hard links become separate copies.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::stat::{FileStat, Mode, SFlag};

use super::flags::{MountOptions, attr};
use super::{MountError, detached, sys};

/// Deeper trees are refused: each level holds two fds open.
const MAX_DEPTH: usize = 128;

/// Copies the content of directory `src` (opened O_RDONLY|O_DIRECTORY) into
/// directory `dst`, and `src`'s own owner, mode, xattrs and times onto
/// `dst` unless `keep_root` (the options gave mode/uid/gid).
pub fn copy_tree(
    src: &OwnedFd,
    dst: &OwnedFd,
    shown: &Path,
    keep_root: bool,
) -> Result<(), MountError> {
    copy_dir(src, dst, shown, 0)?;
    if !keep_root {
        let st = nix::sys::stat::fstat(src).map_err(sys("stat", shown))?;
        set_meta(src, dst, &st, shown)?;
    }
    Ok(())
}

/// openat(2) with O_NOFOLLOW|O_CLOEXEC added.
fn open_at(dir: &OwnedFd, name: &CStr, flags: i32, mode: u32) -> nix::Result<OwnedFd> {
    // SAFETY: valid dirfd and NUL-terminated name; O_NOFOLLOW refuses a
    // symlink in the last component, and `name` has no other component.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The names in a directory, "." and ".." left out.
fn names(dir: &OwnedFd, shown: &Path) -> Result<Vec<CString>, MountError> {
    let dup = dir.try_clone().map_err(|e| MountError::Other {
        what: format!("copy {}", shown.display()),
        reason: format!("dup: {e}"),
    })?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(sys("opendir", shown))?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(sys("readdir", shown))?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

/// Is `fd` the very object that fstatat saw (not swapped in between)?
fn same(fd: &OwnedFd, st: &FileStat, shown: &Path) -> Result<(), MountError> {
    let now = nix::sys::stat::fstat(fd).map_err(sys("stat", shown))?;
    if (now.st_dev, now.st_ino, now.st_mode & libc::S_IFMT)
        != (st.st_dev, st.st_ino, st.st_mode & libc::S_IFMT)
    {
        return Err(MountError::Other {
            what: format!("copy {}", shown.display()),
            reason: "the file changed while it was being copied; refusing to go on".into(),
        });
    }
    Ok(())
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd, shown: &Path, depth: usize) -> Result<(), MountError> {
    if depth >= MAX_DEPTH {
        return Err(MountError::Other {
            what: format!("tmpcopyup of {}", shown.display()),
            reason: format!("the directory tree is deeper than {MAX_DEPTH} levels"),
        });
    }
    for name in names(src, shown)? {
        let shown = shown.join(OsStr::from_bytes(name.as_bytes()));
        copy_entry(src, dst, &name, &shown, depth)?;
    }
    Ok(())
}

fn copy_entry(
    src: &OwnedFd,
    dst: &OwnedFd,
    name: &CStr,
    shown: &Path,
    depth: usize,
) -> Result<(), MountError> {
    let st = nix::sys::stat::fstatat(src, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(sys("stat", shown))?;
    let perm = st.st_mode & 0o7777;
    match SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) {
        SFlag::S_IFDIR => {
            let s = open_at(src, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(sys("open", shown))?;
            same(&s, &st, shown)?;
            nix::sys::stat::mkdirat(dst, name, Mode::from_bits_truncate(0o700))
                .map_err(sys("mkdir", shown))?;
            let d = open_at(dst, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(sys("open", shown))?;
            copy_dir(&s, &d, shown, depth + 1)?;
            set_meta(&s, &d, &st, shown)
        }
        SFlag::S_IFREG => {
            let s = open_at(
                src,
                name,
                libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK,
                0,
            )
            .map_err(sys("open", shown))?;
            same(&s, &st, shown)?;
            let d = open_at(
                dst,
                name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o600,
            )
            .map_err(sys("create", shown))?;
            let (mut r, mut w) = (std::fs::File::from(s), std::fs::File::from(d));
            std::io::copy(&mut r, &mut w).map_err(|e| MountError::Other {
                what: format!("copy {}", shown.display()),
                reason: e.to_string(),
            })?;
            set_meta(&r.into(), &w.into(), &st, shown)
        }
        SFlag::S_IFLNK => {
            // Recreated as the same symlink; its target is never opened.
            let target = nix::fcntl::readlinkat(src, name).map_err(sys("readlink", shown))?;
            nix::unistd::symlinkat(target.as_os_str(), dst, name).map_err(sys("symlink", shown))?;
            set_meta_at(dst, name, &st, None, shown)
        }
        kind => {
            // Fifos, sockets and device nodes, which the kernel refuses to
            // create in a user namespace (EPERM): those are skipped.
            match nix::sys::stat::mknodat(
                dst,
                name,
                kind,
                Mode::from_bits_truncate(perm),
                st.st_rdev,
            ) {
                Err(Errno::EPERM) if matches!(kind, SFlag::S_IFCHR | SFlag::S_IFBLK) => Ok(()),
                Err(e) => Err(sys("mknod", shown)(e)),
                Ok(()) => set_meta_at(dst, name, &st, Some(perm), shown),
            }
        }
    }
}

/// Owner, then mode (chown clears set-id bits), xattrs, then times.
fn set_meta(src: &OwnedFd, dst: &OwnedFd, st: &FileStat, shown: &Path) -> Result<(), MountError> {
    // Ids the container's user namespace does not map (EINVAL) stay its root's.
    match nix::unistd::fchown(dst, Some(st.st_uid.into()), Some(st.st_gid.into())) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::EPERM) => {}
        Err(e) => return Err(sys("chown", shown)(e)),
    }
    nix::sys::stat::fchmod(dst, Mode::from_bits_truncate(st.st_mode & 0o7777))
        .map_err(sys("chmod", shown))?;
    copy_xattrs(src, dst);
    let times = [
        ts(st.st_atime, st.st_atime_nsec),
        ts(st.st_mtime, st.st_mtime_nsec),
    ];
    nix::sys::stat::futimens(dst, &times[0], &times[1]).map_err(sys("set times", shown))
}

/// The same for an object that cannot be opened (symlink, device, fifo):
/// by name, never following.
fn set_meta_at(
    dir: &OwnedFd,
    name: &CStr,
    st: &FileStat,
    mode: Option<u32>,
    shown: &Path,
) -> Result<(), MountError> {
    use nix::fcntl::AtFlags;
    match nix::unistd::fchownat(
        dir,
        name,
        Some(st.st_uid.into()),
        Some(st.st_gid.into()),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::EPERM) => {}
        Err(e) => return Err(sys("chown", shown)(e)),
    }
    if let Some(m) = mode {
        // Not a symlink here: fchmodat follows nothing else.
        nix::sys::stat::fchmodat(
            dir,
            name,
            Mode::from_bits_truncate(m),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(sys("chmod", shown))?;
    }
    let (a, m) = (
        ts(st.st_atime, st.st_atime_nsec),
        ts(st.st_mtime, st.st_mtime_nsec),
    );
    nix::sys::stat::utimensat(
        dir,
        name,
        &a,
        &m,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(sys("set times", shown))
}

fn ts(sec: i64, nsec: i64) -> nix::sys::time::TimeSpec {
    nix::sys::time::TimeSpec::new(sec, nsec)
}

/// Copies the extended attributes that the target filesystem accepts
/// ("where possible": a tmpfs of Linux 6.1 refuses user.*, and an
/// unprivileged container trusted.*). Failures are not errors.
fn copy_xattrs(src: &OwnedFd, dst: &OwnedFd) {
    let mut list = vec![0u8; 65536];
    // SAFETY: valid fd and a buffer of the given size that the kernel fills.
    let n = unsafe { libc::flistxattr(src.as_raw_fd(), list.as_mut_ptr().cast(), list.len()) };
    if n <= 0 {
        return;
    }
    list.truncate(n as usize);
    for key in list.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let Ok(key) = CString::new(key) else { continue };
        let mut val = vec![0u8; 65536];
        // SAFETY: valid fd, NUL-terminated name, buffer of the given size.
        let len = unsafe {
            libc::fgetxattr(
                src.as_raw_fd(),
                key.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if len < 0 {
            continue;
        }
        // SAFETY: valid fd, NUL-terminated name, `len` initialised bytes.
        unsafe {
            libc::fsetxattr(
                dst.as_raw_fd(),
                key.as_ptr(),
                val.as_ptr().cast(),
                len as usize,
                0,
            )
        };
    }
}

/// Mounts a tmpfs with `opts` on `target` (an O_PATH fd of the resolved
/// destination), filled first with what the rootfs has there. `label` is
/// `linux.mountLabel`.
pub fn mount_tmpfs_copy(
    target: &OwnedFd,
    shown: &Path,
    opts: &MountOptions,
    label: Option<&str>,
) -> Result<(), MountError> {
    use nix::mount::MsFlags;
    let fail = |op: String, e: Errno| MountError::Other {
        what: format!("tmpfs with tmpcopyup on {}", shown.display()),
        reason: format!("{op}: {e}"),
    };
    let mut kv: Vec<(String, Option<String>)> = opts
        .data
        .iter()
        .map(|d| match d.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (d.clone(), None),
        })
        .collect();
    let keep_root = kv
        .iter()
        .any(|(k, _)| matches!(k.as_str(), "mode" | "uid" | "gid"));
    if let Some(l) = label.filter(|l| !l.is_empty()) {
        kv.push(("context".into(), Some(l.to_string())));
    }
    // Superblock flags are fsconfig flags; per-mount ones MOUNT_ATTR_* bits.
    for (ms, key) in [
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
        (MsFlags::MS_LAZYTIME, "lazytime"),
        (MsFlags::MS_MANDLOCK, "mand"),
    ] {
        if opts.flags.contains(ms) {
            kv.push((key.into(), None));
        }
    }
    let mut attrs = 0;
    for (ms, a) in [
        (MsFlags::MS_NOSUID, attr::NOSUID),
        (MsFlags::MS_NODEV, attr::NODEV),
        (MsFlags::MS_NOEXEC, attr::NOEXEC),
        (MsFlags::MS_NOATIME, attr::NOATIME),
        (MsFlags::MS_STRICTATIME, attr::STRICTATIME),
        (MsFlags::MS_NODIRATIME, attr::NODIRATIME),
    ] {
        if opts.flags.contains(ms) {
            attrs |= a;
        }
    }
    let mnt = detached::mount_kv("tmpfs", &kv, attrs as u32).map_err(|e| fail(e.op, e.source))?;
    let src =
        open_at(target, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(sys("open", shown))?;
    let dst = open_at(&mnt, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(sys("open new tmpfs", shown))?;
    copy_tree(&src, &dst, shown, keep_root)?;
    drop((src, dst));
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let ro = detached::MountAttr {
            attr_set: attr::RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        detached::setattr(&mnt, &ro, false).map_err(|e| fail("mount_setattr ro".into(), e))?;
    }
    detached::move_onto(&mnt, target).map_err(|e| fail("move_mount".into(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &Path) -> OwnedFd {
        std::fs::File::open(p).unwrap().into()
    }

    #[test]
    fn copies_a_tree_and_keeps_symlinks_as_symlinks() {
        let (s, d, host) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        std::fs::write(host.path().join("secret"), "host").unwrap();
        std::fs::create_dir_all(s.path().join("a/b")).unwrap();
        std::fs::write(s.path().join("a/b/f"), "data").unwrap();
        std::os::unix::fs::symlink(host.path().join("secret"), s.path().join("a/link")).unwrap();
        std::os::unix::fs::symlink(host.path(), s.path().join("dirlink")).unwrap();
        copy_tree(&dir(s.path()), &dir(d.path()), Path::new("/t"), false).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("a/b/f")).unwrap(),
            "data"
        );
        let l = d.path().join("a/link");
        assert!(
            std::fs::symlink_metadata(&l)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_link(&l).unwrap(), host.path().join("secret"));
        assert!(
            std::fs::symlink_metadata(d.path().join("dirlink"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}
