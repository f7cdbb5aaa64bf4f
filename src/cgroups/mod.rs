//! Control groups: one container = one cgroup, on cgroup v1, v2 or a hybrid host.
//!
//! INTERFACE SKELETON (owned by the cgroups work, see issue #2 item 7 and issue #3).
//! The container code relies only on the items below.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the cgroup filesystems live (parameters, so tests use a tempdir).
#[derive(Debug, Clone)]
pub struct Roots {
    /// Usually `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// Usually `/proc/self/mountinfo`.
    pub mountinfo: PathBuf,
    /// Usually `/proc/self/cgroup` (for relative cgroupsPath).
    pub self_cgroup: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            self_cgroup: PathBuf::from("/proc/self/cgroup"),
        }
    }
}

/// A container's cgroup, serializable into state.json so later verbs reload it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroup {}

impl Cgroup {
    /// Create (mkdir -p) the cgroup for `cgroups_path` (None: default `/cuddy/<id>`),
    /// remembering which directories were created by us.
    pub fn create(_roots: &Roots, _cgroups_path: Option<&Path>, _id: &str) -> Result<Cgroup, CgroupError> {
        todo!()
    }
    /// Apply `linux.resources` (what is implemented; clear error otherwise).
    pub fn apply(&self, _res: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        todo!()
    }
    /// Move `pid` into the cgroup in every hierarchy.
    pub fn add_process(&self, _pid: i32) -> Result<(), CgroupError> {
        todo!()
    }
    /// On a pure v2 host: an fd of the cgroup directory for clone3's CLONE_INTO_CGROUP.
    pub fn clone_into_fd(&self) -> Result<Option<OwnedFd>, CgroupError> {
        todo!()
    }
    /// Every pid in the cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        todo!()
    }
    /// Send `signal` to every process in the cgroup (frozen while signalling, so none escapes).
    pub fn kill_all(&self, _signal: i32) -> Result<(), CgroupError> {
        todo!()
    }
    /// Remove the directories we created (deepest first), waiting briefly for them to empty.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        todo!()
    }
}
