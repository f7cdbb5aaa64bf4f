//! Procfs handles that cuddy opened itself and verified, for every read and
//! write it makes under /proc (uid/gid maps, setgroups, oom_score_adj,
//! timens_offsets, sysctls, the exec fifo reopen).
//!
//! The CVE-2019-16884 / CVE-2025-52881 class: a write through a path that
//! someone else controls (a `/proc` that is a symlink in the image, a mount
//! over `/proc/sys` or `/proc/self` in the config, a tmpfs dressed up as
//! procfs) lands where the attacker wants. So cuddy never writes through the
//! container's `/proc`, and through its own handles only with:
//! - the handle itself checked: fstatfs says PROC_SUPER_MAGIC and, for a
//!   mounted /proc, its inode is the procfs root (PROC_ROOT_INO, 1);
//! - every path opened with openat2 `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
//!   RESOLVE_NO_XDEV` (no escape, no magic link, no crossing into something
//!   mounted on top of a procfs file), and the opened file checked with
//!   fstatfs again.
//!
//! As libpathrs does, the preferred handle is a *detached* procfs of the
//! caller's PID namespace made with fsopen(2)/fsmount(2) (Linux 5.2, `subset=pid`
//! 5.8): it is attached nowhere, so nothing can be mounted over it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::statfs::{PROC_SUPER_MAGIC, fstatfs};

use crate::mounts::openat2;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("{op} (procfs {what}): {source}")]
    Sys {
        op: String,
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("{path}: not on a procfs (refusing to use it: a mount or symlink may redirect it)")]
    NotProcfs { path: String },
}

/// linux/mount.h
/// include/linux/proc_ns.h: only the root of a procfs has this inode.
const PROC_ROOT_INO: u64 = 1;

/// An open procfs root, verified.
#[derive(Debug)]
pub struct ProcFs {
    root: OwnedFd,
    what: &'static str,
    /// Made with fsopen/fsmount and attached nowhere.
    detached: bool,
}

fn is_procfs(fd: BorrowedFd) -> bool {
    fstatfs(fd).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC)
}

impl ProcFs {
    /// A new procfs instance of the caller's PID namespace, showing only
    /// process directories (`subset=pid`: no /proc/sys, no sysrq-trigger),
    /// mounted nosuid, nodev, noexec (and read-only when `read_only`: a
    /// magic-link reopen still reaches its target for writing) and attached
    /// nowhere.
    pub fn detached_pids(read_only: bool) -> Result<ProcFs, ProcError> {
        use crate::mounts::detached::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC};
        use crate::mounts::detached::{MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, Opt};
        let what = "detached, subset=pid";
        let subset = Opt {
            key: "subset",
            value: "pid",
            optional: false,
        };
        let mut attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        if read_only {
            attrs |= MOUNT_ATTR_RDONLY;
        }
        let root = detached::mount("proc", &[subset], attrs).map_err(|e| ProcError::Sys {
            op: e.op,
            what,
            source: e.source,
        })?;
        if !is_procfs(root.as_fd()) {
            return Err(ProcError::NotProcfs {
                path: "fsmount(proc)".into(),
            });
        }
        Ok(ProcFs {
            root,
            what,
            detached: true,
        })
    }

    /// The procfs mounted at /proc in the caller's mount namespace, checked
    /// to be the root of a procfs (needed for /proc/sys).
    pub fn mounted() -> Result<ProcFs, ProcError> {
        let what = "/proc";
        let root = nix::fcntl::open(
            "/proc",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_NOFOLLOW,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|source| ProcError::Sys {
            op: "open /proc".into(),
            what,
            source,
        })?;
        let st = nix::sys::stat::fstat(&root).map_err(|source| ProcError::Sys {
            op: "fstat /proc".into(),
            what,
            source,
        })?;
        if !is_procfs(root.as_fd()) || st.st_ino != PROC_ROOT_INO {
            return Err(ProcError::NotProcfs {
                path: "/proc".into(),
            });
        }
        Ok(ProcFs {
            root,
            what,
            detached: false,
        })
    }

    /// For per-process files: a detached instance when the kernel allows
    /// one, else the verified mounted /proc.
    pub fn for_pids() -> Result<ProcFs, ProcError> {
        Self::detached_pids(false).or_else(|_| Self::mounted())
    }

    /// Opens `rel` (relative to the procfs root) without leaving the
    /// procfs, following no magic link and crossing no mount, and checks
    /// that what was opened is a procfs file.
    pub fn open(&self, rel: &str, flags: i32) -> Result<OwnedFd, ProcError> {
        let fd = match openat2(
            self.root.as_raw_fd(),
            Path::new(rel),
            flags | libc::O_NOFOLLOW,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV,
        ) {
            // A seccomp profile older than openat2 hides it (the ENOSYS stub
            // for newer syscalls) once the filter is loaded. A detached
            // procfs is attached nowhere, so nothing can be mounted over or
            // planted in it: a plain openat below its root is as safe.
            Err(Errno::ENOSYS) if self.detached => nix::fcntl::openat(
                &self.root,
                Path::new(rel),
                nix::fcntl::OFlag::from_bits_truncate(flags | libc::O_NOFOLLOW | libc::O_CLOEXEC),
                nix::sys::stat::Mode::empty(),
            ),
            r => r,
        }
        .map_err(|source| ProcError::Sys {
            op: format!("open /proc/{rel}"),
            what: self.what,
            source,
        })?;
        if !is_procfs(fd.as_fd()) {
            return Err(ProcError::NotProcfs {
                path: format!("/proc/{rel}"),
            });
        }
        Ok(fd)
    }

    /// Writes `data` to `rel` in one write(2).
    pub fn write(&self, rel: &str, data: &[u8]) -> Result<(), ProcError> {
        let fd = self.open(rel, libc::O_WRONLY)?;
        let n = nix::unistd::write(&fd, data).map_err(|source| ProcError::Sys {
            op: format!("write /proc/{rel}"),
            what: self.what,
            source,
        })?;
        if n != data.len() {
            return Err(ProcError::Sys {
                op: format!("write /proc/{rel} (short write)"),
                what: self.what,
                source: Errno::EIO,
            });
        }
        Ok(())
    }

    pub fn read_to_string(&self, rel: &str) -> Result<String, ProcError> {
        let fd = self.open(rel, libc::O_RDONLY)?;
        std::io::read_to_string(std::fs::File::from(fd)).map_err(|e| ProcError::Sys {
            op: format!("read /proc/{rel}"),
            what: self.what,
            source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })
    }

    /// Reopens one of our own fds (e.g. an O_PATH fd of the exec fifo) with
    /// `flags`, through `thread-self/fd/N` of this procfs, and checks that
    /// the result is the same file.
    pub fn reopen(&self, fd: BorrowedFd, flags: i32) -> Result<OwnedFd, ProcError> {
        // The fd directory is checked to be on this procfs, then closed: the
        // open below may block (a fifo) and must hold nothing else meanwhile.
        drop(self.open("thread-self/fd", libc::O_PATH | libc::O_DIRECTORY)?);
        let rel = format!("thread-self/fd/{}", fd.as_raw_fd());
        let sys = |op: &str, source| ProcError::Sys {
            op: format!("{op} /proc/{rel}"),
            what: self.what,
            source,
        };
        // The last component is the magic link itself: plain openat follows
        // it; what it opened is checked to be the same file.
        let new = nix::fcntl::openat(
            &self.root,
            rel.as_str(),
            nix::fcntl::OFlag::from_bits_retain(flags | libc::O_CLOEXEC),
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| sys("reopen", e))?;
        let (a, b) = (
            nix::sys::stat::fstat(fd).map_err(|e| sys("fstat", e))?,
            nix::sys::stat::fstat(&new).map_err(|e| sys("fstat", e))?,
        );
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
            return Err(sys("reopen (a different file)", Errno::EXDEV));
        }
        Ok(new)
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.root.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounted_proc_reads_and_refuses_escapes() {
        let p = ProcFs::mounted().unwrap();
        assert!(p.read_to_string("self/status").unwrap().contains("Pid:"));
        // Magic links and leaving the procfs are refused.
        assert!(p.open("self/cwd/etc/passwd", libc::O_RDONLY).is_err());
        assert!(p.open("../etc/passwd", libc::O_RDONLY).is_err());
        assert!(p.open("/etc/passwd", libc::O_RDONLY).is_err());
    }

    #[test]
    fn reopen_checks_the_file() {
        let p = ProcFs::mounted().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        let r = p.reopen(f.as_fd(), libc::O_WRONLY).unwrap();
        assert!(nix::unistd::write(&r, b"x").is_ok());
    }
}
