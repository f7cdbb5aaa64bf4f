//! Which mounts may go inside the container's /proc and /sys (runc's
//! `checkProcMount`, CVE-2019-16884 / CVE-2023-27561 / CVE-2023-28642 /
//! CVE-2025-52881 / youki CVE-2025-54867).
//!
//! A mount over `/proc/self`, `/proc/sys` or `/proc/thread-self/attr` can
//! redirect what a runtime writes there (LSM labels, sysctls,
//! oom_score_adj), or hide what the container must not see. cuddy writes
//! only through its own procfs handles (`crate::fds::procfs`), but it also
//! refuses such mounts, as runc does:
//! - on `/proc` itself: only a new procfs (type `proc`) or a bind mount of
//!   the root of a procfs;
//! - inside `/proc`: only the files lxcfs emulates (below), never a
//!   directory, never `/proc/self`, `/proc/sys`, ...;
//! - inside `/sys`: only the cgroup tree (`/sys/fs/cgroup` and below);
//!   `/sys` itself may be anything (sysfs, or a bind of the host's).
//!
//! The check runs twice: on the configured destination when config.json is
//! validated, and on the destination as resolved inside the rootfs right
//! before mounting (an image symlink `/foo -> /proc/sys` makes
//! `destination: /foo` a mount inside /proc).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::Mount;

use super::secure::{InRoot, Kind, fd_path};

/// runc's list (libcontainer/rootfs_linux.go), the files lxcfs provides.
const PROC_FILES: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// `path` made absolute and lexically clean ("." dropped, ".." applied,
/// clamped at "/") — how the kernel resolves it inside the root when no
/// symlink is involved.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// What the source of a bind mount on /proc is; only asked for that case.
pub enum Source {
    /// The root of a procfs.
    ProcRoot,
    /// Anything else (or unknown).
    Other,
}

/// Checks a mount whose destination, inside the root, is `dest` (absolute,
/// clean). `typ` is the mount type, `bind` whether it is a bind mount,
/// `source` says what a bind mount's source is (called only when needed).
pub fn check(
    dest: &Path,
    typ: &str,
    bind: bool,
    source: impl FnOnce() -> Source,
) -> Result<(), String> {
    if dest == Path::new("/proc") {
        if bind {
            return match source() {
                Source::ProcRoot => Ok(()),
                Source::Other => Err(
                    "/proc: a bind mount there must be the root of a procfs (refusing to hide the container's procfs)"
                        .into(),
                ),
            };
        }
        if typ == "proc" {
            return Ok(());
        }
        return Err(format!(
            "/proc: only a mount of type \"proc\" may go there, not {typ:?}"
        ));
    }
    if dest.starts_with("/proc") {
        if PROC_FILES.iter().any(|f| dest == Path::new(f)) {
            return Ok(());
        }
        return Err(format!(
            "{}: refusing a mount inside /proc (only {} may be mounted over, as runc allows)",
            dest.display(),
            PROC_FILES.join(", ")
        ));
    }
    if dest.starts_with("/sys") && dest != Path::new("/sys") && !dest.starts_with("/sys/fs/cgroup")
    {
        return Err(format!(
            "{}: refusing a mount inside /sys (only /sys itself and /sys/fs/cgroup and below)",
            dest.display()
        ));
    }
    Ok(())
}

/// What a bind mount's host source is: the root of a procfs or not.
pub fn source_kind(src: &Path) -> Source {
    use std::os::unix::fs::MetadataExt;
    let is_proc = nix::sys::statfs::statfs(src)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC);
    match std::fs::metadata(src) {
        Ok(m) if is_proc && m.ino() == 1 => Source::ProcRoot,
        _ => Source::Other,
    }
}

/// `source_kind` of a source opened by the runtime (an open_tree fd).
pub fn fd_source_kind(fd: &std::os::fd::OwnedFd) -> Source {
    let is_proc = nix::sys::statfs::fstatfs(fd)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC);
    match nix::sys::stat::fstat(fd) {
        Ok(st) if is_proc && st.st_ino == 1 => Source::ProcRoot,
        _ => Source::Other,
    }
}

/// Is the mount a bind mount (type "bind", or a bind/rbind option)?
pub fn is_bind(typ: &str, options: &[String]) -> bool {
    typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind")
}

/// The destination as resolved inside the root, for the /proc and /sys
/// rules (`procsys`), and proc/sysfs only on a real directory: never through
/// a symlink (CVE-2019-16884: `/proc -> /host/dir` in the image). Creates
/// the destination when missing (inside the root, as the mount would).
pub(super) fn check_dest(
    root: &InRoot,
    m: &Mount,
    typ: &str,
    bundle: &Path,
    src_fd: Option<&OwnedFd>,
) -> Result<(), String> {
    let dest = m.destination();
    let opts = m.options().clone().unwrap_or_default();
    let bind = is_bind(typ, &opts);
    if matches!(typ, "proc" | "sysfs") && !bind {
        match super::openat2(
            root.fd.as_raw_fd(),
            dest,
            libc::O_PATH,
            libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
        ) {
            Err(Errno::ELOOP) => {
                return Err(format!(
                    "a {typ} filesystem must be mounted on a directory, not through a symlink ({} is or goes through one in the rootfs)",
                    dest.display()
                ));
            }
            Ok(fd) => {
                let st = nix::sys::stat::fstat(&fd).map_err(|e| format!("fstat: {e}"))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(format!(
                        "a {typ} filesystem must be mounted on a directory, and {} is not one",
                        dest.display()
                    ));
                }
            }
            Err(_) => {}
        }
    }
    let src = m.source().clone().map(|s| bundle.join(s));
    // A source opened by the runtime is known by its fd (its path may be
    // out of the container's reach).
    let fd_is_dir = src_fd.map(|fd| {
        nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    });
    let kind = match (&src, fd_is_dir) {
        (_, Some(true)) => Kind::Dir,
        (_, Some(false)) => Kind::File,
        // A missing source: the mount itself reports it.
        (Some(s), None) if bind && !s.exists() => return Ok(()),
        (Some(s), None) if bind && !s.is_dir() => Kind::File,
        _ => Kind::Dir,
    };
    let target = root.ensure(dest, kind).map_err(|e| e.to_string())?;
    let link = |fd: &OwnedFd| {
        std::fs::read_link(fd_path(fd)).map_err(|e| format!("resolve {}: {e}", dest.display()))
    };
    let (top, at) = (link(&root.fd)?, link(&target)?);
    let inside = at.strip_prefix(&top).map_err(|_| {
        format!(
            "{} resolves outside the rootfs ({})",
            dest.display(),
            at.display()
        )
    })?;
    check(
        &clean(&Path::new("/").join(inside)),
        typ,
        bind,
        || match src_fd {
            Some(fd) => fd_source_kind(fd),
            None => src.as_deref().map_or(Source::Other, source_kind),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(dest: &str, typ: &str, bind: bool) -> bool {
        check(&clean(Path::new(dest)), typ, bind, || Source::Other).is_ok()
    }

    #[test]
    fn runc_list() {
        assert!(ok("/proc", "proc", false));
        assert!(!ok("/proc", "tmpfs", false));
        assert!(!ok("/proc", "bind", true));
        assert!(check(Path::new("/proc"), "bind", true, || Source::ProcRoot).is_ok());
        assert!(ok("/proc/meminfo", "bind", true));
        assert!(ok("/proc/sys/kernel/ns_last_pid", "bind", true));
        for bad in [
            "/proc/self",
            "/proc/sys",
            "/proc/sys/kernel",
            "/proc/thread-self/attr",
            "/proc/1/oom_score_adj",
            "/x/../proc/sys",
            "/proc/./self/oom_score_adj",
        ] {
            assert!(!ok(bad, "tmpfs", false), "{bad}");
        }
        assert!(ok("/procfoo", "tmpfs", false));
        assert!(ok("/sys", "sysfs", false));
        assert!(ok("/sys/fs/cgroup", "cgroup", false));
        assert!(ok("/sys/fs/cgroup/cpu", "bind", true));
        assert!(!ok("/sys/kernel", "tmpfs", false));
        assert!(!ok("/sys/fs", "tmpfs", false));
        assert!(ok("/sysx", "tmpfs", false));
    }
}
