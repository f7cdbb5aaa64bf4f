//! Sealing cuddy's own binary away from containers (the CVE-2019-5736 class).
//!
//! cuddy forks the container's processes without re-executing itself, so
//! until they execve the user's program they run whatever `/proc/self/exe`
//! is. If that were the host's cuddy binary, a container could reach its
//! writable inode: an image file starting with `#!/proc/self/exe` makes the
//! *kernel* load the caller's own exe as the interpreter (the check on the
//! program never sees it), with the image's dynamic loader, which can then
//! open `/proc/self/exe` and write to it once the binary is no longer
//! running; a container with `CAP_SYS_PTRACE` can open `/proc/<init>/exe`.
//!
//! So `create`, `run` and `exec` first re-execute cuddy from a sealed view
//! of its binary ([`ensure_sealed`]), and the library refuses to fork a
//! container from an unsealed program ([`check_sealed`]). Two ways, the first
//! that works:
//!
//! 1. **A private read-only overlayfs** (zero copy): `fsopen("overlay")` with
//!    two lower layers (the binary's directory over an empty directory) and
//!    no upper layer, `fsmount` with `MOUNT_ATTR_RDONLY`, never attached to
//!    any mount namespace. An overlay without an upper layer has nowhere to
//!    copy a file up to, so a write through it fails (EROFS) whatever the
//!    mount flags: unlike a read-only bind mount, a container with
//!    `CAP_SYS_ADMIN` cannot "unwrap" it by cloning the mount
//!    (`open_tree(OPEN_TREE_CLONE)`) and clearing the read-only flag. The
//!    real inode underneath is never exposed through the overlay. It needs
//!    `CAP_SYS_ADMIN` (cuddy runs as root) and overlayfs (Linux >= 5.2 for
//!    fsopen).
//! 2. **A sealed memfd copy** (as runc's exeseal): the binary copied into a
//!    `memfd_create(MFD_ALLOW_SEALING)` file sealed with
//!    `F_SEAL_SEAL|SHRINK|GROW|WRITE`: nobody, root included, can change it.
//!    It costs a copy of the binary on every `create`/`run`/`exec`.
//!
//! The new process is started with `execveat(2)` of the sealed file, with
//! the same argv and environment plus a marker variable that only stops a
//! loop (the marker is removed at once, and the seal is always verified by
//! inspecting `/proc/self/exe` itself, never by trusting the marker).

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// Set in the environment of the re-executed cuddy, removed at once.
const MARKER: &str = "_CUDDY_EXESEAL";
/// statfs(2) f_type of overlayfs (linux/magic.h).
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
/// F_SEAL_* (linux/fcntl.h).
const SEALS: i32 = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

#[derive(Debug, thiserror::Error)]
pub enum ExesealError {
    #[error("exeseal: {op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::Error,
    },
    #[error(
        "exeseal: re-executed from a sealed copy, but /proc/self/exe is still not sealed ({0}); refusing to go on"
    )]
    StillUnsealed(String),
    #[error(
        "the program that forks this container runs from an unsealed binary ({0}): a container could overwrite it (CVE-2019-5736); call cuddy::exeseal::ensure_sealed first in main (docs/library.md)"
    )]
    NotSealed(String),
}

fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> ExesealError {
    let op = op.into();
    move |source| ExesealError::Sys { op, source }
}

/// How `/proc/self/exe` is protected, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// On a read-only overlayfs mount.
    Overlay,
    /// A memfd with all write seals.
    Memfd,
}

/// Inspects the running binary: `Some` when no process can write to it
/// through `/proc/self/exe`.
pub fn current_seal() -> Result<Option<Seal>, ExesealError> {
    let fd = nix::fcntl::open(
        "/proc/self/exe",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("open /proc/self/exe"))?;
    // SAFETY: fcntl(F_GET_SEALS) on a valid fd; no pointers.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & SEALS == SEALS {
        return Ok(Some(Seal::Memfd));
    }
    let st = nix::sys::statfs::fstatfs(&fd).map_err(sys("fstatfs /proc/self/exe"))?;
    let vfs = nix::sys::statvfs::fstatvfs(&fd).map_err(sys("fstatvfs /proc/self/exe"))?;
    let ro = vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY);
    if st.filesystem_type().0 as i64 == OVERLAYFS_SUPER_MAGIC && ro {
        return Ok(Some(Seal::Overlay));
    }
    Ok(None)
}

/// Refuses to go on unless the running binary is sealed: the library's
/// guard before it forks a container process.
pub fn check_sealed() -> Result<Seal, ExesealError> {
    match current_seal()? {
        Some(s) => Ok(s),
        None => Err(ExesealError::NotSealed(exe_path_for_msg())),
    }
}

fn exe_path_for_msg() -> String {
    std::fs::read_link("/proc/self/exe")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/proc/self/exe".into())
}

/// Makes sure the running program executes from a sealed view of its
/// binary: returns when it already does; otherwise re-executes it from one
/// (and does not return on success). `scratch` is a directory cuddy owns
/// (the state root) where an empty directory for the overlay is kept.
///
/// Call it first in `main`, while single-threaded; the environment is
/// changed (the marker removed).
pub fn ensure_sealed() -> Result<Seal, ExesealError> {
    let marker = std::env::var_os(MARKER);
    let reexecuted = marker.is_some();
    if let Some(m) = marker {
        // "DEV:INO" of the host file we were sealed from.
        let m = m.to_string_lossy().into_owned();
        if let Some((d, i)) = m.split_once(':') {
            if let (Ok(d), Ok(i)) = (d.parse(), i.parse()) {
                let _ = ORIGINAL.set((d, i));
            }
        }
        // SAFETY: called first in main while the process is single-threaded,
        // so no other thread reads the environment concurrently.
        unsafe { std::env::remove_var(MARKER) };
    }
    if let Some(seal) = current_seal()? {
        if seal == Seal::Memfd {
            // execveat(fd, "") names the process after the fd number on
            // kernels before 6.14; give it its name back.
            // SAFETY: PR_SET_NAME with a NUL-terminated string.
            unsafe { libc::prctl(libc::PR_SET_NAME, c"cuddy".as_ptr(), 0, 0, 0) };
        }
        return Ok(seal);
    }
    if reexecuted {
        return Err(ExesealError::StillUnsealed(exe_path_for_msg()));
    }
    let orig = nix::sys::stat::stat("/proc/self/exe").map_err(sys("stat /proc/self/exe"))?;
    // CUDDY_EXESEAL=memfd picks the fallback (both are sound; the tests
    // exercise each).
    let memfd_only = std::env::var_os("CUDDY_EXESEAL").is_some_and(|v| v == "memfd");
    let view = if memfd_only {
        Err(sys("overlay view")(Errno::ENOTSUP))
    } else {
        overlay_view()
    };
    let (dir, name) = match view {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!("exeseal: overlayfs view unavailable ({e}); using a sealed memfd copy");
            (memfd_copy()?, CString::default())
        }
    };
    Err(reexec(
        &dir,
        &name,
        &format!("{}:{}", orig.st_dev, orig.st_ino),
    ))
}

static ORIGINAL: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// (device, inode) of the host file this process was sealed from, when it
/// re-executed itself: a container must not exec that file either (a
/// config could bind-mount it in).
pub fn original_identity() -> Option<(u64, u64)> {
    ORIGINAL.get().copied()
}

/// A detached read-only overlayfs whose top layer is the binary's directory:
/// returns the mount's root fd and the binary's name in it.
fn overlay_view() -> Result<(OwnedFd, CString), ExesealError> {
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| sys("readlink /proc/self/exe")(io_errno(&e)))?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(sys(format!("{}: no directory", exe.display()))(
            Errno::EINVAL,
        ));
    };
    if exe.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(sys(format!("{}: binary replaced", exe.display()))(
            Errno::ENOENT,
        ));
    }
    let empty = TempDir::new(dir)?;
    let lower = format!("{}:{}", escape_lower(dir), escape_lower(&empty.path));
    use crate::mounts::detached::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
    let opts = [
        detached::Opt {
            key: "lowerdir",
            value: &lower,
            optional: false,
        },
        // xino only matters for inode numbers; off avoids kernel log noise
        // when the layers are on different filesystems.
        detached::Opt {
            key: "xino",
            value: "off",
            optional: true,
        },
    ];
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    let mnt = detached::mount("overlay", &opts, attrs).map_err(|e| sys(e.op)(e.source))?;
    let name = CString::new(name.as_bytes()).map_err(|_| sys("binary name")(Errno::EINVAL))?;
    // The binary must be there, a regular file of the same size.
    let st = nix::sys::stat::fstatat(
        &mnt,
        name.as_c_str(),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(sys(format!("stat {name:?} in the overlay")))?;
    let orig = nix::sys::stat::stat("/proc/self/exe").map_err(sys("stat /proc/self/exe"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_size != orig.st_size {
        return Err(sys(format!("{name:?} in the overlay is not the binary"))(
            Errno::ESTALE,
        ));
    }
    Ok((mnt, name))
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// overlayfs separates layers with ':' and escapes with '\'.
fn escape_lower(p: &Path) -> String {
    p.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

/// An empty directory: the overlay's lower layer under the binary's
/// directory (overlayfs needs two lower layers to run without an upper
/// one). What it holds would not matter: only the binary's name is opened,
/// and the upper of the two layers wins. It is one persistent directory per
/// user (`cuddy-exeseal-empty-UID`), used only if it is a real directory
/// owned by the caller and writable by nobody else; otherwise a fresh
/// mkdtemp one, removed as soon as the overlay exists (the overlay keeps its
/// own reference). A per-run directory alone would be left behind by a
/// cuddy killed between its mkdtemp and its removal (the crash tier found
/// it).
struct TempDir {
    path: PathBuf,
    remove: bool,
}

impl TempDir {
    /// In the first of the usual temporary directories that is not inside
    /// `avoid` (overlayfs refuses layers inside one another: ELOOP).
    fn new(avoid: &Path) -> Result<TempDir, ExesealError> {
        let bases = [
            std::env::temp_dir(),
            PathBuf::from("/run"),
            PathBuf::from("/dev/shm"),
            PathBuf::from("/var/tmp"),
        ];
        let base = bases
            .iter()
            .find(|b| !b.starts_with(avoid) && b.is_dir())
            .ok_or_else(|| {
                sys(format!("a temporary directory outside {}", avoid.display()))(Errno::ENOENT)
            })?;
        let uid = nix::unistd::geteuid().as_raw();
        let fixed = base.join(format!("cuddy-exeseal-empty-{uid}"));
        if usable_fixed_dir(&fixed, uid) {
            return Ok(TempDir {
                path: fixed,
                remove: false,
            });
        }
        let tmpl = base.join("cuddy-exeseal-XXXXXX");
        nix::unistd::mkdtemp(&tmpl)
            .map(|path| TempDir { path, remove: true })
            .map_err(sys(format!("mkdtemp {}", tmpl.display())))
    }
}

/// Makes `p` if missing (0700) and checks it, without following a link:
/// a directory owned by `uid`, writable by nobody else.
fn usable_fixed_dir(p: &Path, uid: u32) -> bool {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let made = std::fs::DirBuilder::new().mode(0o700).create(p);
    if made.is_err_and(|e| e.kind() != std::io::ErrorKind::AlreadyExists) {
        return false;
    }
    std::fs::symlink_metadata(p)
        .is_ok_and(|m| m.file_type().is_dir() && m.uid() == uid && m.mode() & 0o022 == 0)
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// A sealed memfd copy of the binary.
fn memfd_copy() -> Result<OwnedFd, ExesealError> {
    let src = std::fs::File::open("/proc/self/exe")
        .map_err(|e| sys("open /proc/self/exe")(io_errno(&e)))?;
    let len = src
        .metadata()
        .map_err(|e| sys("stat /proc/self/exe")(io_errno(&e)))?
        .len();
    // MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC (Linux 6.3; older kernels
    // refuse the unknown flag, then retry without it).
    let mut fd = memfd_create(libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | 0x10);
    if matches!(fd, Err(Errno::EINVAL)) {
        fd = memfd_create(libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING);
    }
    let fd = fd.map_err(sys("memfd_create"))?;
    let mut off = 0u64;
    while off < len {
        // SAFETY: sendfile(2) between two valid fds; null offset = the source's file position.
        let n = unsafe {
            libc::sendfile(
                fd.as_raw_fd(),
                src.as_raw_fd(),
                std::ptr::null_mut(),
                (len - off) as usize,
            )
        };
        if n < 0 {
            return Err(sys("copy the binary into a memfd")(Errno::last()));
        }
        if n == 0 {
            break;
        }
        off += n as u64;
    }
    // SAFETY: fcntl(F_ADD_SEALS) with integer arguments on our memfd.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(sys("seal the memfd")(Errno::last()));
    }
    Ok(fd)
}

fn memfd_create(flags: libc::c_uint) -> nix::Result<OwnedFd> {
    // SAFETY: memfd_create(2) with a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"cuddy".as_ptr(), flags) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// execveat(dir, name) (or the fd itself when `name` is empty) with our own
/// argv and environment plus the marker. Returns only the failure.
fn reexec(dir: &OwnedFd, name: &CString, orig: &str) -> ExesealError {
    let cstr = |s: OsString| CString::new(s.into_vec()).ok();
    let args: Vec<CString> = std::env::args_os().filter_map(cstr).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(kv)
        })
        .collect();
    env.push(CString::new(format!("{MARKER}={orig}")).unwrap_or_default());
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        0
    };
    // SAFETY: NUL-terminated argv/envp arrays of valid C strings that outlive
    // the call; execveat only returns on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            dir.as_raw_fd(),
            name.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            flags,
        )
    };
    sys("execveat the sealed binary")(Errno::last())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_overlay_separators() {
        assert_eq!(escape_lower(Path::new("/a:b\\c")), "/a\\:b\\\\c");
    }

    #[test]
    fn empty_dir_is_one_per_user_and_kept() {
        let d = TempDir::new(Path::new("/nonexistent")).unwrap();
        let p = d.path.clone();
        assert!(p.is_dir());
        assert!(!d.remove, "{p:?}: the per-user directory is used");
        let uid = nix::unistd::geteuid().as_raw();
        assert!(p.ends_with(format!("cuddy-exeseal-empty-{uid}")), "{p:?}");
        drop(d);
        assert!(p.is_dir(), "kept for the next run: nothing to leave behind");
        // Never inside the binary's directory.
        let d = TempDir::new(&std::env::temp_dir()).unwrap();
        assert!(!d.path.starts_with(std::env::temp_dir()), "{:?}", d.path);
    }

    #[test]
    fn a_planted_fixed_dir_is_not_used() {
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        assert!(!usable_fixed_dir(&link, uid), "a symlink is refused");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            !usable_fixed_dir(&target, uid),
            "a world-writable one is refused"
        );
        assert!(
            !usable_fixed_dir(&target, uid + 1),
            "another user's is refused"
        );
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(usable_fixed_dir(&target, uid));
    }

    #[test]
    fn memfd_copy_is_sealed() {
        let fd = memfd_copy().unwrap();
        // SAFETY: fcntl on a valid fd.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        assert_eq!(seals & SEALS, SEALS);
        let r = nix::unistd::write(&fd, b"x");
        assert_eq!(r, Err(Errno::EPERM));
    }
}
