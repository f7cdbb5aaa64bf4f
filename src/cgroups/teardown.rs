//! Reading a cgroup's processes and removing its directories (deepest
//! first, waiting briefly for exiting tasks).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CgroupError, RMDIR_TIMEOUT, fsutil};

/// Parse a cgroup.procs file; a missing file is empty.
pub(super) fn read_procs(path: &Path) -> Result<Vec<i32>, CgroupError> {
    Ok(fsutil::read_opt(path)?
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
