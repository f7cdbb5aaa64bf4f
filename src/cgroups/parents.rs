//! Parent cgroup directories that cuddy created and that several containers
//! share (cgroupsPath `/a/parent/c1`, `/a/parent/c2`): whichever container
//! goes last removes them, not only the one that happened to create them.
//!
//! A registry directory (default `/run/cuddy-cgroup-parents`, host-wide like
//! the cgroup filesystems, and on tmpfs like them so it does not outlive a
//! boot) holds one empty file per parent directory cuddy made, named by the
//! escaped path. Creating the parents of a new cgroup and removing parents
//! happen under an exclusive flock of the registry, so a parent is never
//! removed between a sibling's `mkdir` of the parent (EEXIST) and its
//! `mkdir` of its own leaf. The entry is written before the `mkdir` it
//! records (intent first): a create killed in between leaves an entry for a
//! directory that may not exist, which the next removal forgets (ENOENT).

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use super::{Cgroup, CgroupError, fsutil, v1};

/// The default registry (see the module documentation).
pub const DEFAULT_REGISTRY: &str = "/run/cuddy-cgroup-parents";

/// How long to wait for another cuddy holding the registry lock (which only
/// makes or removes a few directories while holding it); past this cuddy
/// goes on without the lock rather than hang.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The registry, locked for as long as this value lives (or not locked, when
/// the lock could not be had in time: best effort, never a hang).
pub(super) struct Registry {
    dir: PathBuf,
    _lock: Option<Flock<OwnedFd>>,
}

impl Registry {
    /// Open (creating it) and lock the registry at `dir`.
    pub(super) fn lock(dir: &Path) -> Result<Registry, CgroupError> {
        let io_err = |op, source| CgroupError::Io {
            op,
            path: dir.to_path_buf(),
            source,
        };
        // Root's own (0700): nobody else can plant an entry or a link.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err("mkdir", e))?;
        let deadline = Instant::now() + LOCK_TIMEOUT;
        let mut delay = Duration::from_millis(1);
        loop {
            // O_CLOEXEC: the lock must never be inherited by a container
            // process (cuddy forks the init later in the same process).
            let fd: OwnedFd = fs::File::open(dir).map_err(|e| io_err("open", e))?.into();
            match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
                Ok(l) => {
                    return Ok(Registry {
                        dir: dir.to_path_buf(),
                        _lock: Some(l),
                    });
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(50));
                }
                Err((_, e)) => {
                    tracing::warn!(
                        "cgroup parents: going on without the lock of {}: {e}",
                        dir.display()
                    );
                    return Ok(Registry {
                        dir: dir.to_path_buf(),
                        _lock: None,
                    });
                }
            }
        }
    }

    /// The registry file of cgroup directory `cg` (None: the escaped path
    /// is too long for a file name, and the parent is left to its creator).
    fn entry(&self, cg: &Path) -> Option<PathBuf> {
        let name = escape(cg);
        (name.len() <= 255).then(|| self.dir.join(name))
    }

    /// Whether cuddy recorded `cg` as a parent it created.
    pub(super) fn contains(&self, cg: &Path) -> bool {
        self.entry(cg).is_some_and(|e| e.exists())
    }

    /// Record `cg` (before it is created).
    pub(super) fn add(&self, cg: &Path) -> Result<(), CgroupError> {
        let Some(e) = self.entry(cg) else {
            return Ok(());
        };
        // O_NOFOLLOW: an entry is never written through a planted link.
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&e)
            .map(drop)
            .map_err(|source| CgroupError::Io {
                op: "record cgroup parent",
                path: e,
                source,
            })
    }

    /// Forget `cg` (removed, gone, or not ours after all).
    pub(super) fn forget(&self, cg: &Path) {
        if let Some(e) = self.entry(cg) {
            if let Err(err) = fs::remove_file(&e) {
                if err.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("forget cgroup parent {}: {err}", e.display());
                }
            }
        }
    }
}

/// `/sys/fs/cgroup/a/b` → `%2Fsys%2Ffs%2Fcgroup%2Fa%2Fb` (`%` and `/` escaped).
fn escape(p: &Path) -> String {
    p.to_string_lossy().replace('%', "%25").replace('/', "%2F")
}

/// What became of one parent's rmdir.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Removed {
    /// Removed, or already gone.
    Gone,
    /// Another cgroup (another container's) still lives below it.
    InUse,
}

/// rmdir a parent cgroup directory unless something still uses it.
pub(super) fn rmdir_parent(dir: &Path) -> Result<Removed, CgroupError> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(Removed::Gone),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removed::Gone),
        // A non-empty cgroup directory: EBUSY from cgroupfs (ENOTEMPTY from
        // a plain directory in the unit tests' fake hierarchy).
        Err(e) if fsutil::is_errno(&e, libc::EBUSY) || fsutil::is_errno(&e, libc::ENOTEMPTY) => {
            tracing::debug!("leaving {} in place: {e}", dir.display());
            Ok(Removed::InUse)
        }
        Err(source) => Err(CgroupError::Io {
            op: "rmdir",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

impl Cgroup {
    /// The registry of shared parents, locked (None: no registry, or it
    /// could not be opened: only a parent's creator removes it then).
    pub(super) fn lock_registry(&self) -> Option<Registry> {
        let dir = self.registry.as_deref()?;
        Registry::lock(dir)
            // Not fatal (e.g. no writable /run when rootless): shared
            // parents are then removed by their creator only.
            .map_err(|e| tracing::debug!("cgroup parents registry: {e}"))
            .ok()
    }

    /// mkdir -p of `dir` below `mountpoint`, remembering what we created
    /// (and recording created parents in the registry, intent first).
    /// Returns whether the leaf already existed.
    pub(super) fn make_chain(
        &mut self,
        mountpoint: &Path,
        dir: &Path,
        is_cpuset: bool,
        reg: Option<&Registry>,
    ) -> Result<bool, CgroupError> {
        let relp = dir
            .strip_prefix(mountpoint)
            .unwrap_or(Path::new(""))
            .to_path_buf();
        let n = relp.components().count();
        let mut cur = mountpoint.to_path_buf();
        let mut leaf_existed = true;
        for (i, comp) in relp.components().enumerate() {
            let parent = cur.clone();
            cur.push(comp);
            let is_leaf = i + 1 == n;
            let recorded = match reg {
                Some(r) if !is_leaf && !cur.exists() => {
                    r.add(&cur)?;
                    true
                }
                _ => false,
            };
            match fs::create_dir(&cur) {
                Ok(()) => {
                    self.created.push(cur.clone());
                    leaf_existed = false;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Made meanwhile by someone who does not use the registry.
                    if let (true, Some(r)) = (recorded, reg) {
                        r.forget(&cur);
                    }
                    leaf_existed = true;
                }
                Err(source) => {
                    if let (true, Some(r)) = (recorded, reg) {
                        r.forget(&cur);
                    }
                    return Err(CgroupError::Io {
                        op: "mkdir",
                        path: cur,
                        source,
                    });
                }
            }
            if is_cpuset {
                v1::copy_cpuset_from_parent(&parent, &cur)?;
            }
        }
        Ok(leaf_existed)
    }

    /// rmdir the parents of `leaf` bottom-up while they are ours (created by
    /// this container, or recorded in the registry by another cuddy) and
    /// empty; one still in use by another container ends the walk.
    pub(super) fn remove_parents(
        &self,
        mountpoint: &Path,
        leaf: &Path,
        reg: Option<&Registry>,
    ) -> Result<(), CgroupError> {
        let mut cur = leaf.parent();
        while let Some(dir) = cur.filter(|d| d.starts_with(mountpoint) && *d != mountpoint) {
            let ours =
                self.created.iter().any(|c| c == dir) || reg.is_some_and(|r| r.contains(dir));
            if !ours {
                break;
            }
            match rmdir_parent(dir)? {
                Removed::Gone => {
                    if let Some(r) = reg {
                        r.forget(dir);
                    }
                }
                Removed::InUse => break,
            }
            cur = dir.parent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_names() {
        assert_eq!(escape(Path::new("/a/b%c")), "%2Fa%2Fb%25c");
        let tmp = tempfile::tempdir().unwrap();
        let r = Registry::lock(&tmp.path().join("reg")).unwrap();
        let p = Path::new("/sys/fs/cgroup/x/parent");
        assert!(!r.contains(p));
        r.add(p).unwrap();
        assert!(r.contains(p));
        r.forget(p);
        assert!(!r.contains(p));
        let long = PathBuf::from(format!("/{}", "a/".repeat(200)));
        r.add(&long).unwrap();
        assert!(!r.contains(&long));
    }
}
