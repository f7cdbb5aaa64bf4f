//! The systemd driver on a [`Cgroup`]: the cgroupfs view of the scope (for
//! everything cuddy does by path: apply, freeze, kill, stats, exec) plus the
//! unit calls.
//!
//! Order in `create` (runc's; documented in docs/cgroups.md): the cgroup is
//! not made before the clone (no `CLONE_INTO_CGROUP`: the scope does not exist
//! yet), the init (or, two-stage, the middle process the init is forked from)
//! is cloned in cuddy's own cgroup, then [`Cgroup::start_scope`] creates the
//! scope with that pid (`StartTransientUnit`, waiting for the job), writes
//! every resource to cgroupfs too (so a `daemon-reload` changes nothing),
//! and only then the init gets Go.

use std::os::fd::AsRawFd;
use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::unit::{self, Scope, UnitError};
use super::wire::Value;
use super::{Manager, SystemdError};
use crate::cgroups::{Cgroup, CgroupError, CgroupKind, Roots, pids_zero_is_unlimited};

fn unit_err(e: UnitError) -> CgroupError {
    match e {
        UnitError::Invalid {
            field,
            value,
            reason,
        } => CgroupError::Invalid {
            field,
            reason: format!("{value:?}: {reason}"),
        },
    }
}

fn sd_err(e: SystemdError) -> CgroupError {
    CgroupError::Systemd {
        source: Box::new(e),
    }
}

impl Cgroup {
    /// The cgroup of the scope `cgroupsPath` (`slice:prefix:name`) names; no
    /// directory is made (systemd makes them in [`Cgroup::start_scope`]).
    pub fn for_systemd(
        roots: &Roots,
        cgroups_path: Option<&str>,
        id: &str,
    ) -> Result<Cgroup, CgroupError> {
        let scope = Scope::parse(cgroups_path, id).map_err(unit_err)?;
        let rel = scope.cgroup_path().map_err(unit_err)?;
        let mut cg = Cgroup::layout(roots, Path::new(&rel))?;
        cg.systemd = Some(scope);
        // The slice's directories are systemd's: no parent is cuddy's to
        // remove (destroy stops the unit and removes the scope's own
        // directories only).
        cg.registry = None;
        Ok(cg)
    }

    /// Refuse a scope whose cgroup already holds processes (a unit of that
    /// name running for someone else): cuddy would stop it on failure.
    pub(crate) fn check_scope_free(&self) -> Result<(), CgroupError> {
        for leaf in self.scope_leaves() {
            let mut pids = Vec::new();
            crate::cgroups::teardown::collect_pids(leaf, &mut pids)?;
            if !pids.is_empty() {
                return Err(CgroupError::State {
                    op: "create",
                    path: leaf.to_path_buf(),
                    reason: format!(
                        "the scope's cgroup already exists and holds processes {pids:?}"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Check that systemd answers (before anything is created, so that a
    /// host without systemd gets a clear error and nothing is left).
    pub fn systemd_reachable() -> Result<(), CgroupError> {
        Manager::connect().map(|_| ()).map_err(sd_err)
    }

    /// Whether the systemd driver manages this cgroup.
    pub fn is_systemd(&self) -> bool {
        self.systemd.is_some()
    }

    fn scope_properties(
        &self,
        mgr: &Manager,
        res: &LinuxResources,
        default_devices: bool,
    ) -> Result<Vec<Value>, CgroupError> {
        let zero_unlimited = self.oci_version().is_some_and(pids_zero_is_unlimited);
        let v2 = self.kind() == CgroupKind::V2;
        let mut props =
            unit::resource_properties(res, v2, mgr.version, zero_unlimited).map_err(unit_err)?;
        let mut rules = res.devices().clone();
        if default_devices {
            // As `apply` writes them: the config's rules, then the defaults.
            let mut all = rules.unwrap_or_default();
            all.extend(crate::cgroups::default_allowed_devices());
            rules = Some(all);
        }
        if let Some(rules) = &rules {
            let proc_devices =
                std::fs::read_to_string("/proc/devices").map_err(|source| CgroupError::Io {
                    op: "read",
                    path: "/proc/devices".into(),
                    source,
                })?;
            props.extend(unit::device_properties(rules, &proc_devices).map_err(unit_err)?);
        }
        Ok(props)
    }

    /// systemd driver: create the scope holding `pid` with the resources as
    /// unit properties, then write them to cgroupfs as well ([`Cgroup::apply`]).
    /// A no-op for the cgroupfs driver.
    pub fn start_scope(&self, pid: i32, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(scope) = &self.systemd else {
            return Ok(());
        };
        let pid = u32::try_from(pid).map_err(|_| CgroupError::Invalid {
            field: "pid".into(),
            reason: format!("{pid} is not a process id"),
        })?;
        let mut mgr = Manager::connect().map_err(sd_err)?;
        let mut props =
            unit::base_properties(scope, pid, &format!("cuddy container {}", scope.unit));
        let mut limits = self.scope_properties(&mgr, res, true)?;
        // systemd refuses TasksMax=0 ("out of range"), so a pids.limit of
        // 0 (ociVersion >= 1.3: no fork at all) cannot be kept across a
        // daemon-reload: refused rather than silently lost.
        if limits.contains(&unit::prop("TasksMax", Value::U64(0))) {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.pids.limit 0".into(),
                reason: "with the systemd cgroup driver (systemd's TasksMax must be at least 1)"
                    .into(),
            });
        }
        if !limits
            .iter()
            .any(|p| unit::prop_name(p) == Some("TasksMax"))
        {
            // systemd's DefaultTasksMax would apply otherwise.
            limits.push(unit::prop("TasksMax", Value::U64(unit::INFINITY)));
        }
        props.extend(limits);
        // systemd >= 255 takes the pid as a pidfd (PIDFDs): no pid reuse race.
        let pidfd = (mgr.version >= 255 && mgr.can_pass_fds())
            .then(|| crate::process::clone::pidfd_open(nix::unistd::Pid::from_raw(pid as i32)).ok())
            .flatten();
        let fds: Vec<std::os::fd::RawFd> = pidfd.iter().map(|f| f.as_raw_fd()).collect();
        if !fds.is_empty() {
            let pids = unit::prop("PIDs", Value::Array("u".into(), vec![Value::U32(pid)]));
            let pidfds = unit::prop("PIDFDs", Value::Array("h".into(), vec![Value::UnixFd(0)]));
            props
                .iter_mut()
                .filter(|p| **p == pids)
                .for_each(|p| *p = pidfds.clone());
        }
        mgr.start_transient_unit_with_fds(&scope.unit, props, &fds)
            .map_err(sd_err)?;
        drop(pidfd);
        self.join_unmanaged(pid)?;
        self.apply(res)
    }

    /// The leaf directories of the scope, one per hierarchy.
    pub(crate) fn scope_leaves(&self) -> Vec<&Path> {
        let v1 = self.v1.iter().map(|d| d.dir.as_path());
        v1.chain(self.unified.iter().map(|u| u.dir.as_path()))
            .collect()
    }

    /// v1: systemd makes the scope's directory only in the hierarchies it
    /// manages (not cpuset, freezer, net_cls, perf_event..., nor a cpuacct
    /// mounted apart from cpu); as runc, cuddy makes the others and moves
    /// the pid there itself.
    fn join_unmanaged(&self, pid: u32) -> Result<(), CgroupError> {
        let mounts = self
            .v1
            .iter()
            .map(|d| (d.mountpoint.as_path(), d.dir.as_path()));
        let unified = self
            .unified
            .iter()
            .map(|u| (u.mountpoint.as_path(), u.dir.as_path()));
        for (mountpoint, dir) in mounts.chain(unified) {
            if dir.exists() {
                continue;
            }
            let rel = dir.strip_prefix(mountpoint).unwrap_or(Path::new(""));
            let mut cur = mountpoint.to_path_buf();
            for comp in rel.components() {
                let parent = cur.clone();
                cur.push(comp);
                match std::fs::create_dir(&cur) {
                    Ok(()) if cur.join("cpuset.cpus").exists() => {
                        crate::cgroups::v1::copy_cpuset_from_parent(&parent, &cur)?
                    }
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(source) => {
                        return Err(CgroupError::Io {
                            op: "mkdir",
                            path: cur,
                            source,
                        });
                    }
                }
            }
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string()).map_err(|source| CgroupError::Io {
                op: "write",
                path: procs,
                source,
            })?;
        }
        Ok(())
    }

    /// systemd driver: the same change as unit properties (`update`), after
    /// cgroupfs ([`Cgroup::update`]). A no-op for the cgroupfs driver.
    pub fn update_scope(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(scope) = &self.systemd else {
            return Ok(());
        };
        let mut mgr = Manager::connect().map_err(sd_err)?;
        let props = self.scope_properties(&mgr, res, false)?;
        if props.is_empty() {
            return Ok(());
        }
        mgr.set_unit_properties(&scope.unit, props).map_err(sd_err)
    }

    /// systemd driver: `StopUnit` (kills what is left, removes the scope).
    pub(crate) fn stop_scope(&self) -> Result<(), CgroupError> {
        let Some(scope) = &self.systemd else {
            return Ok(());
        };
        let mut mgr = Manager::connect().map_err(sd_err)?;
        mgr.stop_unit(&scope.unit).map_err(sd_err)
    }
}
