//! Reading a cgroup's processes and removing its directories (deepest
//! first, waiting briefly for exiting tasks).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Cgroup, CgroupError, CgroupKind, RMDIR_TIMEOUT, fsutil};

/// Parse a cgroup.procs file; a missing file is empty, and so is that of
/// a cgroup removed while we read it: kernfs answers ENODEV once the
/// directory is gone (systemd removes an emptied scope on its own, racing
/// delete's reads).
pub(super) fn read_procs(path: &Path) -> Result<Vec<i32>, CgroupError> {
    let text = match fsutil::read_opt(path) {
        Err(CgroupError::Io { source, .. }) if fsutil::is_errno(&source, libc::ENODEV) => None,
        r => r?,
    };
    Ok(text
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Pids of `dir` and of every cgroup below it.
pub(super) fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    out.extend(read_procs(&dir.join("cgroup.procs"))?);
    for sub in subdirs(dir)? {
        collect_pids(&sub, out)?;
    }
    Ok(())
}

/// Child cgroup directories of `dir` (none if `dir` is gone).
pub(super) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Io {
                op: "readdir",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(ent.path());
        }
    }
    Ok(out)
}

/// rmdir `dir` and everything below it, deepest first, retrying on EBUSY while
/// tasks exit, until `deadline` (one for all of a container's hierarchies:
/// a process that does not die keeps every one busy, and waiting the full
/// timeout per hierarchy made a stuck delete take 10 × as long).
pub(super) fn remove_subtree(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    for sub in subdirs(dir)? {
        remove_subtree(&sub, deadline)?;
    }
    let mut delay = Duration::from_millis(2);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if fsutil::is_errno(&e, libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(e) if fsutil::is_errno(&e, libc::EBUSY) => {
                let pids = read_procs(&dir.join("cgroup.procs")).unwrap_or_default();
                return Err(CgroupError::State {
                    op: "rmdir",
                    path: dir.to_path_buf(),
                    reason: format!("still busy after {RMDIR_TIMEOUT:?} (pids {pids:?}): {e}"),
                });
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    op: "rmdir",
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// The container's processes and `destroy` (moved from mod.rs).
impl Cgroup {
    /// The directory whose cgroup.procs lists the container's processes.
    fn procs_dir(&self) -> Option<&Path> {
        if self.kind == CgroupKind::V2 {
            return self.unified_dir();
        }
        self.v1_dir("freezer")
            .or_else(|| self.v1_dir("pids"))
            .or_else(|| self.v1_dir("memory"))
            .or_else(|| self.v1.first().map(|d| d.dir.as_path()))
            .or_else(|| self.unified_dir())
    }

    /// Every pid in the cgroup (and its sub-cgroups), sorted.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        if self.is_systemd() {
            // Every hierarchy: a create killed after StartTransientUnit may
            // not have made the scope's directory in the v1 hierarchies
            // systemd leaves alone (freezer...) yet.
            for d in self.scope_leaves() {
                collect_pids(d, &mut out)?;
            }
        } else if let Some(d) = self.procs_dir() {
            collect_pids(d, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Remove the directories we created (deepest first), waiting briefly for them to empty.
    ///
    /// The container's leaf cgroup is removed with any sub-cgroups the container
    /// made inside it. Then its parents, bottom-up, that cuddy created (this
    /// container, or another one sharing them, as the registry records): each
    /// that is empty is removed, whoever created it; one that still holds
    /// other cgroups (another container's) is left alone. Idempotent.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        // systemd driver: StopUnit kills and removes the scope first, then
        // the directories systemd left (those cuddy made in the v1
        // hierarchies systemd does not manage).
        let mut first_err: Option<CgroupError> = self.stop_scope().err();
        let deadline = std::time::Instant::now() + RMDIR_TIMEOUT;
        if self.is_systemd() {
            for leaf in self.scope_leaves().into_iter().filter(|d| d.exists()) {
                if let Err(e) = remove_subtree(leaf, deadline) {
                    first_err.get_or_insert(e);
                }
            }
        }
        let leaves: Vec<(&Path, &Path)> = self
            .v1
            .iter()
            .map(|d| (d.mountpoint.as_path(), d.dir.as_path()))
            .chain(
                self.unified
                    .iter()
                    .map(|u| (u.mountpoint.as_path(), u.dir.as_path())),
            )
            .collect();
        for (_, dir) in &leaves {
            if self.created.iter().any(|c| c == dir) {
                if let Err(e) = remove_subtree(dir, deadline) {
                    first_err.get_or_insert(e);
                }
            }
        }
        // A parent is only ever empty when our leaf is gone (or was never made).
        let reg = self.lock_registry();
        for (mountpoint, leaf) in &leaves {
            if let Err(e) = self.remove_parents(mountpoint, leaf, reg.as_ref()) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
