//! Control groups: one container = one cgroup, on cgroup v1, v2 or a hybrid host.
//!
//! The host layout is detected from mountinfo ([`CgroupKind`]). On v1 every
//! mounted hierarchy (named ones included) gets a directory for the container; on
//! v2 the unified hierarchy does; on a hybrid host both, and each controller is
//! used where it is mounted: its v1 hierarchy first, otherwise the cgroup2
//! hierarchy when that offers it (e.g. hugetlb on `unified`).
//!
//! v1 and v2 are hidden behind one internal routing step (`Target::V1(dir)` /
//! `Target::V2(dir)` per controller) and per-controller writers in `v1.rs` /
//! `v2.rs`; the freezer, kill and stats paths route the same way. A setting that
//! cannot be applied is an error naming the `linux.resources` field and the
//! file, never a silent skip.
//!
//! Lifecycle: [`Cgroup::create`] → [`Cgroup::apply`] (on error: [`Cgroup::destroy`])
//! → [`Cgroup::clone_into_fd`] (pure v2) or [`Cgroup::add_process`] → ... →
//! [`Cgroup::kill_all`] → [`Cgroup::destroy`]. `Cgroup` serializes into state.json.

mod apply;
mod bpf;
mod detect;
mod devices;
mod freezer;
mod fsutil;
mod journal;
mod normalize;
mod parents;
pub mod stats;
pub mod systemd;
mod teardown;
mod v1;
mod v2;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use detect::CgroupKind;
use detect::RelativeTo;
pub use devices::{allow_rules_for, default_allowed_devices};
pub use normalize::pids_zero_is_unlimited;
pub use parents::DEFAULT_REGISTRY;
pub use stats::Stats;
use teardown::read_procs;
pub use v2::{blkio_weight_to_io_weight, shares_to_weight};

/// Errors of the cgroups module. Each names the operation or the configuration
/// field, and the cgroup file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A filesystem operation on a cgroup file or directory failed.
    #[error("cgroup {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel refused a resource setting.
    #[error("cannot set {field}: writing {value:?} to {path} failed: {source}")]
    Set {
        field: String,
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// The host lacks the controller or the file a setting needs.
    #[error("cannot set {field}: {reason} ({path})")]
    Unavailable {
        field: String,
        path: PathBuf,
        reason: String,
    },
    /// A controller could not be enabled in an ancestor's cgroup.subtree_control.
    #[error("cannot enable the {controller} controller (needed by {field}) in {path}: {reason}")]
    Controller {
        controller: String,
        field: String,
        path: PathBuf,
        reason: String,
        #[source]
        source: Option<io::Error>,
    },
    /// A configuration field this runtime or this cgroup version does not support.
    #[error("{field} is not supported {reason}")]
    Unsupported { field: String, reason: String },
    /// A configuration value that is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A cgroup is in a state that prevents the operation (not empty, still freezing,
    /// unknown layout...).
    #[error("cgroup {op} {path}: {reason}")]
    State {
        op: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// An `update` failed part-way; `restored` says what became of the values
    /// it had already written.
    #[error("{source}; {restored}")]
    Update {
        restored: String,
        #[source]
        source: Box<CgroupError>,
    },
    /// The systemd driver's unit calls failed (the source names the unit,
    /// the call and the D-Bus error).
    #[error("systemd cgroup driver: {source}")]
    Systemd {
        #[source]
        source: Box<systemd::SystemdError>,
    },
    /// Loading or attaching the v2 device-control eBPF program failed.
    #[error("cgroup {op} {path}: {source}")]
    Bpf {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
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
    /// The registry of parent directories cuddy created (see `parents.rs`),
    /// usually [`DEFAULT_REGISTRY`]; `None`: only a parent's creator removes it.
    pub parents: Option<PathBuf>,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            self_cgroup: PathBuf::from("/proc/self/cgroup"),
            parents: Some(PathBuf::from(DEFAULT_REGISTRY)),
        }
    }
}

/// The container's directory in one cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Dir {
    /// The hierarchy's controllers (sorted; `name=systemd` for a named one).
    pub controllers: Vec<String>,
    /// The hierarchy's mount point.
    pub mountpoint: PathBuf,
    /// The container's cgroup directory.
    pub dir: PathBuf,
}

/// The container's directory in the cgroup2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2Dir {
    /// The cgroup2 mount point.
    pub mountpoint: PathBuf,
    /// The container's cgroup directory.
    pub dir: PathBuf,
}

/// A container's cgroup, serializable into state.json so later verbs reload it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    kind: CgroupKind,
    /// The cgroupsPath as given (or the default), for messages.
    path: PathBuf,
    #[serde(default)]
    v1: Vec<V1Dir>,
    #[serde(default)]
    unified: Option<V2Dir>,
    /// Directories created by us, in creation order (parents first).
    #[serde(default)]
    created: Vec<PathBuf>,
    /// The config's `ociVersion`, which decides what `pids.limit` 0 means
    /// (on create and on every later update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oci_version: Option<String>,
    /// The registry of shared parents cuddy created (`Roots::parents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    registry: Option<PathBuf>,
    /// The transient scope holding the cgroup (the systemd driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    systemd: Option<systemd::unit::Scope>,
}

/// Where one controller is handled.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// How long freeze/thaw wait for the kernel to settle.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long destroy() waits for exiting tasks to leave a cgroup.
const RMDIR_TIMEOUT: Duration = Duration::from_secs(3);

impl Cgroup {
    /// Create (mkdir -p) the cgroup for `cgroups_path` (None: default `/cuddy/<id>`),
    /// remembering which directories were created by us.
    ///
    /// An absolute path is taken from each hierarchy's mount point; a relative one
    /// from the calling process's own cgroup in that hierarchy. An existing cgroup
    /// that already holds processes is refused.
    pub fn create(
        roots: &Roots,
        cgroups_path: Option<&Path>,
        id: &str,
    ) -> Result<Cgroup, CgroupError> {
        let mut cg = Cgroup::plan(roots, cgroups_path, id)?;
        cg.make()?;
        Ok(cg)
    }

    /// Where [`Cgroup::create`] would make the cgroup, nothing made yet: a
    /// caller records [`Cgroup::intent`] before [`Cgroup::make`], so a
    /// process killed half-way leaves a record of what it made (issue 11).
    pub fn plan(
        roots: &Roots,
        cgroups_path: Option<&Path>,
        id: &str,
    ) -> Result<Cgroup, CgroupError> {
        let path = match cgroups_path {
            Some(p) => p.to_path_buf(),
            None => {
                if id.is_empty() || id.contains('/') || id == "." || id == ".." {
                    return Err(CgroupError::Invalid {
                        field: "container id".to_string(),
                        reason: format!("{id:?} cannot name a cgroup"),
                    });
                }
                Path::new("/cuddy").join(id)
            }
        };
        detect::validate_cgroups_path(&path)?;
        Cgroup::layout(roots, &path)
    }

    /// The container's directory in each hierarchy for `path` (nothing made).
    fn layout(roots: &Roots, path: &Path) -> Result<Cgroup, CgroupError> {
        let path = path.to_path_buf();
        let mountinfo = fsutil::read(&roots.mountinfo)?;
        let layout = detect::parse_mountinfo(&mountinfo, &roots.cgroup_root, &roots.mountinfo)?;
        let own = if path.is_absolute() {
            Vec::new()
        } else {
            detect::parse_self_cgroup(&fsutil::read(&roots.self_cgroup)?)
        };
        let mut cg = Cgroup {
            kind: layout.kind,
            path: path.clone(),
            v1: Vec::new(),
            unified: None,
            created: Vec::new(),
            oci_version: None,
            registry: roots.parents.clone(),
            systemd: None,
        };
        for m in &layout.v1 {
            let own_path = own
                .iter()
                .find(|s| s.controllers == m.controllers)
                .map(|s| s.path.as_str());
            cg.v1.push(V1Dir {
                controllers: m.controllers.clone(),
                mountpoint: m.mountpoint.clone(),
                dir: detect::resolve(&m.mountpoint, &m.root, own_path, RelativeTo::Own, &path),
            });
        }
        if let Some(u) = &layout.unified {
            // runc's rule on a cgroup-v2-only host (its fs2 driver): a
            // relative path starts from the *parent* of the caller's cgroup.
            // The caller's own cgroup holds the caller (a login session's
            // scope, a service), and the kernel's no-internal-processes rule
            // keeps a populated non-root cgroup from enabling controllers
            // for a child (`cgroup.subtree_control`: EBUSY) or from having
            // a process cloned into one (CLONE_INTO_CGROUP: EOPNOTSUPP). On
            // hybrid hosts runc takes every hierarchy from the caller's own
            // cgroup, and so does cuddy.
            let from = match layout.kind {
                CgroupKind::V2 => RelativeTo::Parent,
                CgroupKind::V1 | CgroupKind::Hybrid => RelativeTo::Own,
            };
            let own_path = own
                .iter()
                .find(|s| s.controllers.is_empty())
                .map(|s| s.path.as_str());
            cg.unified = Some(V2Dir {
                mountpoint: u.mountpoint.clone(),
                dir: detect::resolve(&u.mountpoint, &u.root, own_path, from, &path),
            });
        }
        Ok(cg)
    }

    /// The planned cgroup with every directory that does not exist yet
    /// listed as created: what `make` is about to make, for `destroy` to
    /// remove whichever of them exist by then.
    ///
    /// systemd driver: nothing more; the record names the scope (unit),
    /// which `destroy` stops, and the scope's directories, which it removes
    /// where they exist (systemd makes them, cuddy only in the v1
    /// hierarchies systemd leaves alone, see [`Cgroup::start_scope`]).
    pub fn intent(&self) -> Cgroup {
        let mut cg = self.clone();
        if self.is_systemd() {
            return cg;
        }
        for leaf in self.leaves() {
            let mut missing: Vec<PathBuf> = leaf
                .ancestors()
                .take_while(|d| !d.exists())
                .map(Path::to_path_buf)
                .collect();
            missing.reverse();
            cg.created.extend(missing);
        }
        cg
    }

    fn leaves(&self) -> Vec<&Path> {
        self.v1
            .iter()
            .map(|d| d.dir.as_path())
            .chain(self.unified.iter().map(|u| u.dir.as_path()))
            .collect()
    }

    /// mkdir -p of the planned cgroup; on failure nothing is left behind.
    ///
    /// systemd driver: nothing is made here (the scope is started with the
    /// init's pid, [`Cgroup::start_scope`]); an existing scope cgroup that
    /// holds processes (another container's) is refused, so that a failed
    /// create cannot stop a unit it did not start.
    pub fn make(&mut self) -> Result<(), CgroupError> {
        if self.is_systemd() {
            return self.check_scope_free();
        }
        if let Err(e) = self.make_dirs() {
            if let Err(e2) = self.destroy() {
                tracing::warn!("cleaning up after a failed cgroup creation: {e2}");
            }
            return Err(e);
        }
        Ok(())
    }

    fn make_dirs(&mut self) -> Result<(), CgroupError> {
        let mut leaves: Vec<(PathBuf, PathBuf, bool)> = self
            .v1
            .iter()
            .map(|d| {
                (
                    d.mountpoint.clone(),
                    d.dir.clone(),
                    d.controllers.iter().any(|c| c == "cpuset"),
                )
            })
            .collect();
        if let Some(u) = &self.unified {
            leaves.push((u.mountpoint.clone(), u.dir.clone(), false));
        }
        // Held until every directory exists: no other cuddy removes a shared
        // parent between our EEXIST on it and the mkdir of our leaf.
        let reg = self.lock_registry();
        for (mountpoint, dir, is_cpuset) in leaves {
            let leaf_existed = self.make_chain(&mountpoint, &dir, is_cpuset, reg.as_ref())?;
            if leaf_existed {
                let frozen = fsutil::read_opt(&dir.join("freezer.state"))?
                    .is_some_and(|s| s.trim() != "THAWED")
                    || fsutil::read_opt(&dir.join("cgroup.freeze"))?
                        .is_some_and(|s| s.trim() == "1");
                if frozen {
                    return Err(CgroupError::State {
                        op: "create",
                        path: dir,
                        reason: "the cgroup already exists and is frozen".to_string(),
                    });
                }
                let procs = read_procs(&dir.join("cgroup.procs"))?;
                if !procs.is_empty() {
                    return Err(CgroupError::State {
                        op: "create",
                        path: dir,
                        reason: format!(
                            "the cgroup already exists and is not empty (pids {procs:?})"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Record the config's `ociVersion` (before [`Cgroup::apply`]): below
    /// 1.3.0 a `pids.limit` of 0 means "no limit" (see
    /// [`pids_zero_is_unlimited`]); it is kept in state.json for `update`.
    pub fn set_oci_version(&mut self, version: &str) {
        self.oci_version = Some(version.to_string());
    }

    /// The recorded `ociVersion`, if any.
    pub fn oci_version(&self) -> Option<&str> {
        self.oci_version.as_deref()
    }

    /// The host's cgroup setup this cgroup lives on.
    pub fn kind(&self) -> CgroupKind {
        self.kind
    }

    /// The cgroupsPath (or the default path) this cgroup was created for.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A one-line description for messages, e.g. `cgroup v2 /cuddy/c1 (/sys/fs/cgroup/cuddy/c1)`.
    pub fn describe(&self) -> String {
        let dir = self
            .unified
            .as_ref()
            .filter(|_| self.kind == CgroupKind::V2)
            .map(|u| u.dir.clone())
            .or_else(|| self.v1.first().map(|d| d.dir.clone()))
            .unwrap_or_default();
        format!("{} {} ({})", self.kind, self.path.display(), dir.display())
    }

    /// The container's directory in the cgroup2 hierarchy, if there is one.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_ref().map(|u| u.dir.as_path())
    }

    /// The container's directory in the v1 hierarchy that carries `controller`.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.dir.as_path())
    }

    /// The directories this cgroup created (parents first); destroy removes only these.
    pub fn created_dirs(&self) -> &[PathBuf] {
        &self.created
    }

    /// Where `controller` is handled: its v1 hierarchy, else cgroup2 when the
    /// parent offers it (cgroup.controllers).
    fn locate(&self, controller: &str) -> Result<Option<Target<'_>>, CgroupError> {
        if let Some(d) = self.v1_dir(controller) {
            return Ok(Some(Target::V1(d)));
        }
        if let Some(u) = &self.unified {
            if v2::available(u, controller)? {
                return Ok(Some(Target::V2(&u.dir)));
            }
        }
        Ok(None)
    }

    /// `locate`, enabling the controller for cgroup2, or an error naming `field`.
    fn target(&self, controller: &str, field: &str) -> Result<Target<'_>, CgroupError> {
        match self.locate(controller)? {
            Some(Target::V2(d)) => {
                if let Some(u) = &self.unified {
                    v2::enable_controller(u, controller, field)?;
                }
                Ok(Target::V2(d))
            }
            Some(t) => Ok(t),
            None => Err(self.unavailable(controller, field)),
        }
    }

    /// The error for a controller this host does not offer.
    fn unavailable(&self, controller: &str, field: &str) -> CgroupError {
        let path = match &self.unified {
            Some(u) => u
                .dir
                .parent()
                .unwrap_or(&u.mountpoint)
                .join("cgroup.controllers"),
            None => self
                .v1
                .first()
                .map(|d| d.mountpoint.parent().unwrap_or(&d.mountpoint).to_path_buf())
                .unwrap_or_default(),
        };
        CgroupError::Unavailable {
            field: field.to_string(),
            path,
            reason: format!(
                "the {controller} controller is not available on this host \
                 (no v1 hierarchy mounts it and cgroup v2 does not offer it)"
            ),
        }
    }

    /// Apply `linux.resources` (what is implemented; clear error otherwise).
    ///
    /// Devices (always, as runc): deny-all unless a rule of type `a` is present,
    /// then `devices` in order, then [`default_allowed_devices`]. The caller adds
    /// [`allow_rules_for`]`(linux.devices)` to `devices` so the container can use
    /// the devices its config gives it. On error the cgroup may be
    /// partly configured; the caller destroys it.
    ///
    /// Values are read as runc reads them (0 and "" mean "not set", see
    /// `normalize.rs`), and the whole request is checked before the first write.
    pub fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        self.apply_resources(res, false)
    }

    /// Apply a partial change of resources (`runc update`): only the fields set
    /// are written; memory.checkBeforeUpdate is honoured.
    ///
    /// Atomic as far as the kernel lets it be: the request is checked whole
    /// before any write, and when a write fails every value already written
    /// is put back (read before it was written) before the error is returned.
    pub fn update(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        self.apply_resources(res, true)
    }

    /// Move `pid` into the cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        if pid <= 0 {
            return Err(CgroupError::Invalid {
                field: "pid".to_string(),
                reason: format!("{pid} is not a process id"),
            });
        }
        let pid = pid.to_string();
        for d in &self.v1 {
            fsutil::write(&d.dir.join("cgroup.procs"), &pid)?;
        }
        if let Some(u) = &self.unified {
            fsutil::write(&u.dir.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    /// On a pure v2 host: an fd of the cgroup directory for clone3's CLONE_INTO_CGROUP.
    pub fn clone_into_fd(&self) -> Result<Option<OwnedFd>, CgroupError> {
        if self.kind != CgroupKind::V2 {
            return Ok(None);
        }
        let Some(u) = &self.unified else {
            return Ok(None);
        };
        let c = std::ffi::CString::new(u.dir.as_os_str().as_bytes()).map_err(|_| {
            CgroupError::Invalid {
                field: "cgroup path".to_string(),
                reason: format!("{:?} contains a NUL byte", u.dir),
            }
        })?;
        // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(CgroupError::Io {
                op: "open",
                path: u.dir.clone(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Resource usage in runc's `events --stats` shape.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        stats::collect(self)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_update;
