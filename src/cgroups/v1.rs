//! cgroup v1 resource writers (one function per controller), plus the pieces
//! shared with v2 where the files are the same (pids.max, cpuset.*, rdma.max).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxRdma};

use super::CgroupError;
use super::fsutil::{self, set};

pub(crate) fn memory_is_set(m: &LinuxMemory) -> bool {
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || m.kernel().is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
        || m.use_hierarchy().is_some()
}

pub(crate) fn cpu_is_set(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.realtime_runtime().is_some()
        || c.realtime_period().is_some()
        || c.idle().is_some()
}

pub(crate) fn blkio_is_set(b: &LinuxBlockIo) -> bool {
    b.weight().is_some()
        || b.leaf_weight().is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || b.throttle_read_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_write_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_read_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_write_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
}

/// Reject a memory limit below the current usage (memory.checkBeforeUpdate).
pub(crate) fn check_before_update(m: &LinuxMemory, usage_file: &Path) -> Result<(), CgroupError> {
    if m.check_before_update() != Some(true) {
        return Ok(());
    }
    let Some(limit) = m.limit().filter(|l| *l > 0) else {
        return Ok(());
    };
    if let Some(usage) = fsutil::read_u64_opt(usage_file)? {
        if usage > limit as u64 {
            return Err(CgroupError::Invalid {
                field: "linux.resources.memory.limit".to_string(),
                reason: format!(
                    "new limit {limit} is below the current usage {usage} ({}) and \
                     checkBeforeUpdate is set",
                    usage_file.display()
                ),
            });
        }
    }
    Ok(())
}

/// Try a deprecated kernel-memory setting: warn, do not fail, when the kernel
/// no longer has it.
pub(crate) fn try_kernel_limit(field: &str, path: &Path, value: i64) {
    if let Err(e) = set(field, path, &value.to_string()) {
        tracing::warn!("{field} ignored: kernel memory limits are not available: {e}");
    }
}

/// v1 memory values that are wrong whatever the kernel says.
pub(crate) fn check_memory(m: &LinuxMemory) -> Result<(), CgroupError> {
    const F: &str = "linux.resources.memory";
    if let Some(s) = m.swappiness().filter(|s| *s > 100) {
        return Err(CgroupError::Invalid {
            field: format!("{F}.swappiness"),
            reason: format!("{s} is not within 0..=100"),
        });
    }
    if let (Some(l), Some(s)) = (m.limit(), m.swap()) {
        if l > 0 && s > 0 && s < l {
            return Err(CgroupError::Invalid {
                field: format!("{F}.swap"),
                reason: format!("memory+swap {s} must be >= memory {l}"),
            });
        }
    }
    Ok(())
}

pub(crate) fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    const F: &str = "linux.resources.memory";
    if let Some(h) = m.use_hierarchy() {
        set(
            &format!("{F}.useHierarchy"),
            &dir.join("memory.use_hierarchy"),
            if h { "1" } else { "0" },
        )?;
    }
    let limit = m.limit().filter(|v| *v != 0);
    let swap = m.swap().filter(|v| *v != 0);
    let limit_file = dir.join("memory.limit_in_bytes");
    let memsw_file = dir.join("memory.memsw.limit_in_bytes");
    let set_limit = |l: i64| set(&format!("{F}.limit"), &limit_file, &l.to_string());
    let set_swap = |s: i64| {
        if s == -1 && !memsw_file.exists() {
            return Ok(()); // unlimited swap and no swap accounting: nothing to do
        }
        set(&format!("{F}.swap"), &memsw_file, &s.to_string())
    };
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // memory+swap must stay >= memory at every step: raise memsw first when
            // it grows, lower memory first when it shrinks.
            let cur = fsutil::read_opt(&limit_file)?
                .and_then(|c| c.trim().parse::<i64>().ok())
                .unwrap_or(i64::MAX);
            if s == -1 || cur < s {
                set_swap(s)?;
                set_limit(l)?;
            } else {
                set_limit(l)?;
                set_swap(s)?;
            }
        }
        (Some(l), None) => set_limit(l)?,
        (None, Some(s)) => set_swap(s)?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        set(
            &format!("{F}.reservation"),
            &dir.join("memory.soft_limit_in_bytes"),
            &r.to_string(),
        )?;
    }
    if let Some(k) = m.kernel() {
        try_kernel_limit(
            &format!("{F}.kernel"),
            &dir.join("memory.kmem.limit_in_bytes"),
            k,
        );
    }
    if let Some(k) = m.kernel_tcp() {
        try_kernel_limit(
            &format!("{F}.kernelTCP"),
            &dir.join("memory.kmem.tcp.limit_in_bytes"),
            k,
        );
    }
    if let Some(s) = m.swappiness() {
        set(
            &format!("{F}.swappiness"),
            &dir.join("memory.swappiness"),
            &s.to_string(),
        )?;
    }
    if let Some(d) = m.disable_oom_killer() {
        set(
            &format!("{F}.disableOOMKiller"),
            &dir.join("memory.oom_control"),
            if d { "1" } else { "0" },
        )?;
    }
    Ok(())
}

pub(crate) fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    const F: &str = "linux.resources.cpu";
    if let Some(s) = c.shares() {
        set(
            &format!("{F}.shares"),
            &dir.join("cpu.shares"),
            &s.to_string(),
        )?;
    }
    let period = c.period().filter(|v| *v != 0);
    let quota = c.quota().filter(|v| *v != 0);
    let period_file = dir.join("cpu.cfs_period_us");
    let quota_file = dir.join("cpu.cfs_quota_us");
    if let Some(p) = period {
        match set(&format!("{F}.period"), &period_file, &p.to_string()) {
            Ok(()) => {}
            Err(CgroupError::Set { source, .. })
                if quota.is_some() && fsutil::is_errno(&source, libc::EINVAL) =>
            {
                // The old quota does not fit the new period: quota first, then period.
                if let Some(q) = quota {
                    set(&format!("{F}.quota"), &quota_file, &q.to_string())?;
                }
                set(&format!("{F}.period"), &period_file, &p.to_string())?;
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(q) = quota {
        set(&format!("{F}.quota"), &quota_file, &q.to_string())?;
    }
    if let Some(b) = c.burst() {
        set(
            &format!("{F}.burst"),
            &dir.join("cpu.cfs_burst_us"),
            &b.to_string(),
        )?;
    }
    if let Some(p) = c.realtime_period().filter(|v| *v != 0) {
        set(
            &format!("{F}.realtimePeriod"),
            &dir.join("cpu.rt_period_us"),
            &p.to_string(),
        )?;
    }
    if let Some(r) = c.realtime_runtime().filter(|v| *v != 0) {
        set(
            &format!("{F}.realtimeRuntime"),
            &dir.join("cpu.rt_runtime_us"),
            &r.to_string(),
        )?;
    }
    if let Some(i) = c.idle() {
        set(&format!("{F}.idle"), &dir.join("cpu.idle"), &i.to_string())?;
    }
    Ok(())
}

/// CPU values checked before any write: shares within the kernel's range
/// (it would clamp silently), burst within quota.
pub(crate) fn check_cpu(c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares().filter(|s| !(2..=262_144).contains(s)) {
        return Err(CgroupError::Invalid {
            field: "linux.resources.cpu.shares".to_string(),
            reason: format!("{s} is outside the kernel's range 2..=262144"),
        });
    }
    validate_burst(c)
}

/// cpus/mems must be a kernel list ("0-3,5", strides "0-7:2/4"); whether the
/// CPUs exist and lie within the parent's set is the kernel's to say.
pub(crate) fn check_cpuset(c: &LinuxCpu) -> Result<(), CgroupError> {
    for (name, v) in [("cpus", c.cpus()), ("mems", c.mems())] {
        let Some(v) = v else { continue };
        let ok = v
            .trim()
            .chars()
            .all(|ch| ch.is_ascii_digit() || ",-:/".contains(ch));
        if !ok {
            return Err(CgroupError::Invalid {
                field: format!("linux.resources.cpu.{name}"),
                reason: format!("{v:?} is not a list like 0-3,5"),
            });
        }
    }
    Ok(())
}

/// The spec: a positive quota must be no smaller than burst.
pub(crate) fn validate_burst(c: &LinuxCpu) -> Result<(), CgroupError> {
    if let (Some(b), Some(q)) = (c.burst(), c.quota()) {
        if q > 0 && b > q as u64 {
            return Err(CgroupError::Invalid {
                field: "linux.resources.cpu.burst".to_string(),
                reason: format!("burst {b} is larger than quota {q}"),
            });
        }
    }
    Ok(())
}

/// cpuset.cpus / cpuset.mems (same files on v1 and v2).
pub(crate) fn cpuset(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(cpus) = c.cpus() {
        set("linux.resources.cpu.cpus", &dir.join("cpuset.cpus"), cpus)?;
    }
    if let Some(mems) = c.mems() {
        set("linux.resources.cpu.mems", &dir.join("cpuset.mems"), mems)?;
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty cpus/mems, so no task could join it:
/// copy them from the parent.
pub(crate) fn copy_cpuset_from_parent(parent: &Path, dir: &Path) -> Result<(), CgroupError> {
    for name in ["cpuset.cpus", "cpuset.mems"] {
        let file = dir.join(name);
        let Some(cur) = fsutil::read_opt(&file)? else {
            continue;
        };
        if !cur.trim().is_empty() {
            continue;
        }
        let from = fsutil::read(&parent.join(name))?;
        let from = from.trim();
        if !from.is_empty() {
            fsutil::write(&file, from)?;
        }
    }
    Ok(())
}

/// pids.max (same file on v1 and v2): `value` is "max" or a number (see
/// `normalize::pids_value` for what 0 means).
pub(crate) fn pids(dir: &Path, value: &str) -> Result<(), CgroupError> {
    set("linux.resources.pids.limit", &dir.join("pids.max"), value)
}

pub(crate) fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    const F: &str = "linux.resources.blockIO";
    // CFQ had blkio.weight; BFQ kernels offer blkio.bfq.weight instead.
    let bfq = !dir.join("blkio.weight").exists() && dir.join("blkio.bfq.weight").exists();
    let (weight_file, weight_dev_file) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(w) = b.weight() {
        set(
            &format!("{F}.weight"),
            &dir.join(weight_file),
            &w.to_string(),
        )?;
    }
    if let Some(w) = b.leaf_weight() {
        set(
            &format!("{F}.leafWeight"),
            &dir.join("blkio.leaf_weight"),
            &w.to_string(),
        )?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            set(
                &format!("{F}.weightDevice"),
                &dir.join(weight_dev_file),
                &format!("{}:{} {}", d.major(), d.minor(), w),
            )?;
        }
        if let Some(w) = d.leaf_weight() {
            set(
                &format!("{F}.weightDevice.leafWeight"),
                &dir.join("blkio.leaf_weight_device"),
                &format!("{}:{} {}", d.major(), d.minor(), w),
            )?;
        }
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "throttleWriteBpsDevice",
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "throttleReadIOPSDevice",
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "throttleWriteIOPSDevice",
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (field, file, devs) in throttles {
        for d in devs.iter().flatten() {
            set(
                &format!("{F}.{field}"),
                &dir.join(file),
                &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

/// Check a hugepage size string ("2MB", "1GB", "64KB") before using it in a file name.
pub(crate) fn validate_page_size(s: &str) -> Result<(), CgroupError> {
    let ok = s.len() > 2
        && (s.ends_with("KB") || s.ends_with("MB") || s.ends_with("GB"))
        && s[..s.len() - 2].bytes().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(CgroupError::Invalid {
            field: "linux.resources.hugepageLimits.pageSize".to_string(),
            reason: format!("{s:?} is not a size like 2MB or 1GB"),
        })
    }
}

/// Write one hugetlb limit: `<prefix>.<size>.<suffix>` and its reservation twin.
pub(crate) fn hugetlb_files(
    dir: &Path,
    h: &[LinuxHugepageLimit],
    suffix: &str,
    rsvd_suffix: &str,
) -> Result<(), CgroupError> {
    const F: &str = "linux.resources.hugepageLimits";
    check_hugetlb(dir, h, suffix)?;
    for l in h {
        let file = dir.join(format!("hugetlb.{}.{suffix}", l.page_size()));
        let v = if l.limit() < 0 && suffix == "max" {
            "max".to_string()
        } else {
            l.limit().to_string()
        };
        set(&format!("{F}[{}]", l.page_size()), &file, &v)?;
        let rsvd = dir.join(format!("hugetlb.{}.{rsvd_suffix}", l.page_size()));
        if rsvd.exists() {
            set(&format!("{F}[{}]", l.page_size()), &rsvd, &v)?;
        }
    }
    Ok(())
}

/// Page sizes well formed and known to the kernel (`hugetlb.<size>.<suffix>` exists).
pub(crate) fn check_hugetlb(
    dir: &Path,
    h: &[LinuxHugepageLimit],
    suffix: &str,
) -> Result<(), CgroupError> {
    for l in h {
        validate_page_size(l.page_size())?;
        let file = dir.join(format!("hugetlb.{}.{suffix}", l.page_size()));
        if !file.exists() {
            return Err(CgroupError::Unavailable {
                field: format!("linux.resources.hugepageLimits[{}]", l.page_size()),
                path: file,
                reason: "this hugepage size is not supported by the kernel".to_string(),
            });
        }
    }
    Ok(())
}

pub(crate) fn hugetlb(dir: &Path, h: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    hugetlb_files(dir, h, "limit_in_bytes", "rsvd.limit_in_bytes")
}

/// rdma entries: a device name without spaces, and at least one limit.
pub(crate) fn check_rdma(r: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
    for (name, l) in r {
        let field = format!("linux.resources.rdma[{name}]");
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(CgroupError::Invalid {
                field,
                reason: "the device name must be non-empty and without spaces".to_string(),
            });
        }
        if l.hca_handles().is_none() && l.hca_objects().is_none() {
            return Err(CgroupError::Invalid {
                field,
                reason: "set at least one of hcaHandles and hcaObjects".to_string(),
            });
        }
    }
    Ok(())
}

/// rdma.max (same format on v1 and v2).
pub(crate) fn rdma(dir: &Path, r: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
    check_rdma(r)?;
    let mut names: Vec<&String> = r.keys().collect();
    names.sort();
    for name in names {
        let l = &r[name];
        let field = format!("linux.resources.rdma[{name}]");
        let mut line = name.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        set(&field, &dir.join("rdma.max"), &line)?;
    }
    Ok(())
}

/// Freeze or thaw through freezer.state, waiting until the kernel settles.
pub(crate) fn set_freezer(dir: &Path, frozen: bool, timeout: Duration) -> Result<(), CgroupError> {
    let file = dir.join("freezer.state");
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_micros(100);
    let mut tries = 0u32;
    loop {
        // Re-kick the freezer now and then: a stuck FREEZING is retried by the kernel
        // on each write.
        if tries % 16 == 0 {
            fsutil::write(&file, want)?;
        }
        tries += 1;
        let state = fsutil::read(&file)?;
        if state.trim() == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if frozen {
                let _ = fsutil::write(&file, "THAWED");
            }
            return Err(CgroupError::State {
                op: if frozen { "freeze" } else { "thaw" },
                path: file,
                reason: format!("still {} after {timeout:?}", state.trim()),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}
