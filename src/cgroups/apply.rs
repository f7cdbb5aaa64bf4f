//! Applying `linux.resources`: normalize (runc's "0 means not set"), check the
//! whole request without writing, then write controller by controller; for
//! `update`, under an undo journal so a failed write puts back what was
//! already written.
//!
//! Write order: memory, pids, cpu, cpuset, blkio/io, hugetlb, network, rdma,
//! unified, and devices last (the device rules are not restored by the
//! journal: v1 devices.allow/deny cannot be read back, so they go where no
//! later write can fail after them).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceType, LinuxResources};

use super::normalize::{normalize, pids_value, pids_zero_is_unlimited};
use super::{Cgroup, CgroupError, CgroupKind, Target};
use super::{devices, fsutil, journal, v1, v2};

impl Cgroup {
    pub(super) fn apply_resources(
        &self,
        res: &LinuxResources,
        update: bool,
    ) -> Result<(), CgroupError> {
        let res = normalize(res);
        if !update {
            self.enable_default_controllers()?;
        }
        self.check(&res)?;
        if !update {
            return self.write(&res, update);
        }
        let j = journal::begin();
        let Err(e) = self.write(&res, update) else {
            return Ok(());
        };
        match j.rollback() {
            Ok(0) => Err(e),
            Ok(n) => Err(CgroupError::Update {
                restored: format!(
                    "nothing was changed (the {n} file(s) already written were restored)"
                ),
                source: Box::new(e),
            }),
            Err(failed) => Err(CgroupError::Update {
                restored: format!(
                    "restoring the values already written failed for: {}",
                    failed.join(", ")
                ),
                source: Box::new(e),
            }),
        }
    }

    /// What [`Cgroup::apply`] leaves until the init is in the cgroup and set
    /// up: a `pids.limit` of 0 (spec 1.3.0), which would make the kernel
    /// refuse to fork the init (pids_can_fork). runc applies every limit at
    /// that point.
    pub fn apply_after_init(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(p) = res.pids() else {
            return Ok(());
        };
        let v = pids_value(p.limit(), self.zero_pids_unlimited());
        if v != "0" {
            return Ok(());
        }
        match self.target("pids", "linux.resources.pids")? {
            Target::V1(d) | Target::V2(d) => v1::pids(d, &v),
        }
    }

    /// Pure v2, as runc: every controller the hierarchy offers is enabled
    /// down to the container (best effort), so stats, update and ps work for
    /// controllers the config did not mention.
    fn enable_default_controllers(&self) -> Result<(), CgroupError> {
        if self.kind != CgroupKind::V2 {
            return Ok(());
        }
        if let Some(u) = &self.unified {
            let offered = fsutil::read_opt(&u.mountpoint.join("cgroup.controllers"))?;
            for c in offered.unwrap_or_default().split_whitespace() {
                if let Err(e) = v2::enable_controller(u, c, "the default controllers") {
                    tracing::debug!("{e}");
                }
            }
        }
        Ok(())
    }

    fn zero_pids_unlimited(&self) -> bool {
        self.oci_version
            .as_deref()
            .is_some_and(pids_zero_is_unlimited)
    }

    /// Where `controller` is handled, without enabling anything; an error when
    /// the host lacks it.
    fn locate_checked(&self, controller: &str, field: &str) -> Result<Target<'_>, CgroupError> {
        self.locate(controller)?
            .ok_or_else(|| self.unavailable(controller, field))
    }

    /// Every check that needs no write: values, the fields this cgroup version
    /// cannot express, the controllers, checkBeforeUpdate. The kernel's own
    /// range checks (cpuset within the parent's, minimum quota...) are left to
    /// it: a refused write is undone by the journal.
    fn check(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(m) = res.memory() {
            // -1 means unlimited; any other negative value is a mistake (v1
            // and v2 would disagree on it: EINVAL vs "max").
            for (name, v) in [
                ("limit", m.limit()),
                ("reservation", m.reservation()),
                ("swap", m.swap()),
            ] {
                if let Some(v) = v.filter(|v| *v < -1) {
                    return Err(CgroupError::Invalid {
                        field: format!("linux.resources.memory.{name}"),
                        reason: format!("{v} is negative (use -1 for unlimited)"),
                    });
                }
            }
            if v1::memory_is_set(m) {
                match self.locate_checked("memory", "linux.resources.memory")? {
                    Target::V1(d) => {
                        v1::check_memory(m)?;
                        v1::check_before_update(m, &d.join("memory.usage_in_bytes"))?;
                    }
                    Target::V2(d) => {
                        v2::check_memory(m)?;
                        v1::check_before_update(m, &d.join("memory.current"))?;
                    }
                }
            }
        }
        if let Some(c) = res.cpu() {
            if v1::cpu_is_set(c) {
                let t = self.locate_checked("cpu", "linux.resources.cpu")?;
                v1::check_cpu(c)?;
                if let Target::V2(_) = t {
                    v2::check_cpu(c)?;
                }
            }
            if c.cpus().is_some() || c.mems().is_some() {
                self.locate_checked("cpuset", "linux.resources.cpu.cpus/mems")?;
                v1::check_cpuset(c)?;
            }
        }
        if res.pids().is_some() {
            self.locate_checked("pids", "linux.resources.pids")?;
        }
        if let Some(b) = res.block_io().as_ref().filter(|b| v1::blkio_is_set(b)) {
            if let Some(Target::V1(_)) = self.locate("blkio")? {
            } else {
                self.locate_checked("io", "linux.resources.blockIO")?;
                v2::check_io(b)?;
            }
        }
        self.check_rest(res)
    }

    fn check_rest(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(h) = res.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
            let suffix = match self.locate_checked("hugetlb", "linux.resources.hugepageLimits")? {
                Target::V1(d) => (d, "limit_in_bytes"),
                Target::V2(d) => (d, "max"),
            };
            v1::check_hugetlb(suffix.0, h, suffix.1)?;
        }
        if let Some(n) = res.network() {
            if n.class_id().is_some() {
                self.v1_only("net_cls", "linux.resources.network.classID")?;
            }
            if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                self.v1_only("net_prio", "linux.resources.network.priorities")?;
            }
        }
        if let Some(r) = res.rdma().as_ref().filter(|r| !r.is_empty()) {
            self.locate_checked("rdma", "linux.resources.rdma")?;
            v1::check_rdma(r)?;
        }
        if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
            match &self.unified {
                Some(dir) if self.kind != CgroupKind::V1 => v2::check_unified(dir, u)?,
                _ => {
                    return Err(CgroupError::Unsupported {
                        field: "linux.resources.unified".to_string(),
                        reason: "on a cgroup v1 host (no cgroup2 hierarchy is mounted)".to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    fn write(&self, res: &LinuxResources, update: bool) -> Result<(), CgroupError> {
        if let Some(m) = res.memory().as_ref().filter(|m| v1::memory_is_set(m)) {
            match self.target("memory", "linux.resources.memory")? {
                Target::V1(d) => v1::memory(d, m)?,
                Target::V2(d) => v2::memory(d, m)?,
            }
        }
        if let Some(p) = res.pids() {
            let v = pids_value(p.limit(), self.zero_pids_unlimited());
            // On create a limit of 0 waits for `apply_after_init`: the init
            // could not be forked into (clone3 CLONE_INTO_CGROUP) or from
            // within the cgroup otherwise.
            if update || v != "0" {
                let d = match self.target("pids", "linux.resources.pids")? {
                    Target::V1(d) | Target::V2(d) => d,
                };
                v1::pids(d, &v)?;
            }
        }
        if let Some(c) = res.cpu() {
            if v1::cpu_is_set(c) {
                match self.target("cpu", "linux.resources.cpu")? {
                    Target::V1(d) => v1::cpu(d, c)?,
                    Target::V2(d) => v2::cpu(d, c)?,
                }
            }
            if c.cpus().is_some() || c.mems().is_some() {
                match self.target("cpuset", "linux.resources.cpu.cpus/mems")? {
                    Target::V1(d) | Target::V2(d) => v1::cpuset(d, c)?,
                }
            }
        }
        if let Some(b) = res.block_io().as_ref().filter(|b| v1::blkio_is_set(b)) {
            match self.locate("blkio")? {
                Some(Target::V1(d)) => v1::blkio(d, b)?,
                _ => match self.target("io", "linux.resources.blockIO")? {
                    Target::V1(d) | Target::V2(d) => v2::io(d, b)?,
                },
            }
        }
        if let Some(h) = res.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
            match self.target("hugetlb", "linux.resources.hugepageLimits")? {
                Target::V1(d) => v1::hugetlb(d, h)?,
                Target::V2(d) => v2::hugetlb(d, h)?,
            }
        }
        self.write_network(res)?;
        if let Some(r) = res.rdma().as_ref().filter(|r| !r.is_empty()) {
            let d = match self.target("rdma", "linux.resources.rdma")? {
                Target::V1(d) | Target::V2(d) => d,
            };
            v1::rdma(d, r)?;
        }
        if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
            if let Some(dir) = &self.unified {
                v2::unified(dir, u)?;
            }
        }
        self.write_devices(res, update)
    }

    fn write_network(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(n) = res.network() else {
            return Ok(());
        };
        if let Some(class_id) = n.class_id() {
            let d = self.v1_only("net_cls", "linux.resources.network.classID")?;
            fsutil::set(
                "linux.resources.network.classID",
                &d.join("net_cls.classid"),
                &class_id.to_string(),
            )?;
        }
        for p in n.priorities().iter().flatten() {
            let d = self.v1_only("net_prio", "linux.resources.network.priorities")?;
            fsutil::set(
                "linux.resources.network.priorities",
                &d.join("net_prio.ifpriomap"),
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
        Ok(())
    }

    /// On create the device policy is always set (no rules: deny-all plus the
    /// default allow-list, as runc); an update leaves it alone unless given.
    fn write_devices(&self, res: &LinuxResources, update: bool) -> Result<(), CgroupError> {
        let no_rules = Vec::new();
        let rules = match res.devices() {
            Some(r) => r,
            None if !update => &no_rules,
            None => return Ok(()),
        };
        // Without a rule of type "a", start from deny-all (as runc), so v1
        // and v2 agree whatever the parent allows.
        let mut all = Vec::with_capacity(rules.len() + 12);
        if !rules
            .iter()
            .any(|r| r.typ().unwrap_or_default() == LinuxDeviceType::A)
        {
            all.extend(devices::deny_all());
        }
        all.extend(rules.iter().cloned());
        all.extend(super::default_allowed_devices());
        match self.locate("devices")? {
            Some(Target::V1(d)) => devices::apply_v1(d, &all),
            _ => match &self.unified {
                Some(u) => devices::apply_v2(&u.dir, &all),
                None => Err(CgroupError::Unavailable {
                    field: "linux.resources.devices".to_string(),
                    path: PathBuf::from("devices"),
                    reason: "no devices cgroup v1 hierarchy and no cgroup v2".to_string(),
                }),
            },
        }
    }

    pub(super) fn v1_only(&self, controller: &str, field: &str) -> Result<&Path, CgroupError> {
        self.v1_dir(controller)
            .ok_or_else(|| CgroupError::Unsupported {
                field: field.to_string(),
                reason: format!(
                    "on this host: the {controller} controller is not mounted as a cgroup v1 \
                     hierarchy, and cgroup v2 has no equivalent"
                ),
            })
    }
}
