//! cgroup v2 resource writers, controller delegation, freezer, and the spec's
//! v1 → v2 conversions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};

use super::fsutil::{self, set};
use super::{CgroupError, V2Dir, v1};

/// Whether the cgroup2 hierarchy offers `controller` (the mount root's cgroup.controllers).
pub(crate) fn available(u: &V2Dir, controller: &str) -> Result<bool, CgroupError> {
    let file = u.mountpoint.join("cgroup.controllers");
    Ok(fsutil::read_opt(&file)?
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == controller))
}

/// The ancestors whose cgroup.subtree_control must list a controller for `dir`
/// to have it: the mount point down to `dir`'s parent.
fn ancestors(u: &V2Dir) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let rel = u.dir.strip_prefix(&u.mountpoint).unwrap_or(Path::new(""));
    let mut cur = u.mountpoint.clone();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        out.push(cur.clone());
        if i + 1 < comps.len() {
            cur.push(c);
        }
    }
    out
}

/// Enable `controller` in every ancestor's cgroup.subtree_control (top-down),
/// explaining which controller is missing or not delegated when it fails.
pub(crate) fn enable_controller(
    u: &V2Dir,
    controller: &str,
    field: &str,
) -> Result<(), CgroupError> {
    for a in ancestors(u) {
        let sc = a.join("cgroup.subtree_control");
        let enabled = fsutil::read_opt(&sc)?.unwrap_or_default();
        if enabled.split_whitespace().any(|c| c == controller) {
            continue;
        }
        let offered = fsutil::read_opt(&a.join("cgroup.controllers"))?.unwrap_or_default();
        if !offered.split_whitespace().any(|c| c == controller) {
            return Err(CgroupError::Controller {
                controller: controller.to_string(),
                field: field.to_string(),
                path: a.join("cgroup.controllers"),
                reason: "the controller is missing there: not enabled by the parent or not \
                         delegated to this cgroup"
                    .to_string(),
                source: None,
            });
        }
        if let Err(e) = fsutil::write_raw(&sc, &format!("+{controller}")) {
            let reason = match e.raw_os_error() {
                Some(libc::EBUSY) => "the cgroup has processes of its own (cgroup v2 allows \
                                      controllers only in cgroups without member processes)"
                    .to_string(),
                Some(libc::EACCES) | Some(libc::EPERM) => {
                    "permission denied: the subtree is not delegated to us".to_string()
                }
                Some(libc::ENOENT) => "the kernel does not know this controller".to_string(),
                _ => "the write was refused".to_string(),
            };
            return Err(CgroupError::Controller {
                controller: controller.to_string(),
                field: field.to_string(),
                path: sc,
                reason,
                source: Some(e),
            });
        }
    }
    Ok(())
}

/// The spec's conversion of v1 memory+swap to v2 memory.swap.max (swap only).
/// `None`: leave memory.swap.max alone. `Some(-1)`: "max".
pub(crate) fn convert_memory_swap(
    swap: Option<i64>,
    limit: Option<i64>,
) -> Result<Option<i64>, CgroupError> {
    let field = "linux.resources.memory.swap";
    let swap = swap.filter(|s| *s != 0);
    let limit = limit.filter(|l| *l != 0);
    match (swap, limit) {
        // Unlimited memory and no explicit swap: unlimited swap too (as on v1).
        (None, Some(-1)) => Ok(Some(-1)),
        (None, _) => Ok(None),
        (Some(-1), _) => Ok(Some(-1)),
        (Some(_), None) | (Some(_), Some(-1)) => Err(CgroupError::Invalid {
            field: field.to_string(),
            reason: "a swap limit needs a memory limit on cgroup v2 (swap is memory+swap)"
                .to_string(),
        }),
        (Some(s), Some(l)) if l < 0 || s < 0 => Err(CgroupError::Invalid {
            field: field.to_string(),
            reason: format!("invalid memory {l} / swap {s}"),
        }),
        (Some(s), Some(l)) if s < l => Err(CgroupError::Invalid {
            field: field.to_string(),
            reason: format!("memory+swap {s} must be >= memory {l}"),
        }),
        (Some(s), Some(l)) => Ok(Some(s - l)),
    }
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Memory fields cgroup v2 cannot express, and the swap conversion.
pub(crate) fn check_memory(m: &LinuxMemory) -> Result<(), CgroupError> {
    const F: &str = "linux.resources.memory";
    if m.swappiness().is_some() {
        return Err(CgroupError::Unsupported {
            field: format!("{F}.swappiness"),
            reason: "on cgroup v2 (there is no per-cgroup swappiness)".to_string(),
        });
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(CgroupError::Unsupported {
            field: format!("{F}.disableOOMKiller"),
            reason: "on cgroup v2 (the OOM killer cannot be disabled per cgroup)".to_string(),
        });
    }
    if m.use_hierarchy() == Some(false) {
        return Err(CgroupError::Unsupported {
            field: format!("{F}.useHierarchy=false"),
            reason: "on cgroup v2 (accounting is always hierarchical)".to_string(),
        });
    }
    convert_memory_swap(m.swap(), m.limit()).map(|_| ())
}

pub(crate) fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    const F: &str = "linux.resources.memory";
    for (name, v) in [("kernel", m.kernel()), ("kernelTCP", m.kernel_tcp())] {
        if v.is_some() {
            tracing::warn!("{F}.{name} ignored: cgroup v2 has no kernel memory limit");
        }
    }
    let swap = convert_memory_swap(m.swap(), m.limit())?;
    if let Some(l) = m.limit().filter(|v| *v != 0) {
        set(&format!("{F}.limit"), &dir.join("memory.max"), &max_or(l))?;
    }
    if let Some(s) = swap {
        let file = dir.join("memory.swap.max");
        if s == -1 && !file.exists() {
            // No swap accounting and nothing to limit.
        } else {
            set(&format!("{F}.swap"), &file, &max_or(s))?;
        }
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        set(
            &format!("{F}.reservation"),
            &dir.join("memory.low"),
            &max_or(r),
        )?;
    }
    Ok(())
}

/// v1 cpu.shares [2, 262144] → v2 cpu.weight [1, 10000], mapping 2→1,
/// 1024→100 (both defaults) and 262144→10000 (the log-quadratic mapping of
/// runc ≥ 1.3.2 and crun ≥ 1.23). 0 stays 0 (unset).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exp = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exp).ceil() as u64).clamp(1, 10_000)
}

/// v1 blkio.weight [10, 1000] → v2 io.weight [1, 10000] (linear, as runc/crun).
pub fn blkio_weight_to_io_weight(w: u64) -> u64 {
    if w == 0 {
        return 0;
    }
    let w = w.clamp(10, 1000);
    1 + (w - 10) * 9999 / 990
}

/// CPU fields cgroup v2 cannot express.
pub(crate) fn check_cpu(c: &LinuxCpu) -> Result<(), CgroupError> {
    if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
        return Err(CgroupError::Unsupported {
            field: "linux.resources.cpu.realtimeRuntime/realtimePeriod".to_string(),
            reason: "on cgroup v2 (the cpu controller has no realtime group scheduling)"
                .to_string(),
        });
    }
    Ok(())
}

pub(crate) fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    const F: &str = "linux.resources.cpu";
    if let Some(s) = c.shares() {
        set(
            &format!("{F}.shares"),
            &dir.join("cpu.weight"),
            &shares_to_weight(s).to_string(),
        )?;
    }
    let quota = c.quota().filter(|v| *v != 0);
    let period = c.period().filter(|v| *v != 0);
    if quota.is_some() || period.is_some() {
        let mut v = match quota {
            Some(q) if q > 0 => q.to_string(),
            Some(_) => "max".to_string(),
            // Only the period changes: keep the current quota.
            None => fsutil::read_opt(&dir.join("cpu.max"))?
                .and_then(|s| s.split_whitespace().next().map(str::to_string))
                .unwrap_or_else(|| "max".to_string()),
        };
        if let Some(p) = period {
            v.push_str(&format!(" {p}"));
        }
        set(&format!("{F}.quota/period"), &dir.join("cpu.max"), &v)?;
    }
    if let Some(b) = c.burst() {
        set(
            &format!("{F}.burst"),
            &dir.join("cpu.max.burst"),
            &b.to_string(),
        )?;
    }
    if let Some(i) = c.idle() {
        set(&format!("{F}.idle"), &dir.join("cpu.idle"), &i.to_string())?;
    }
    Ok(())
}

/// Block IO fields cgroup v2 cannot express.
pub(crate) fn check_io(b: &LinuxBlockIo) -> Result<(), CgroupError> {
    if b.leaf_weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.leaf_weight().is_some())
    {
        return Err(CgroupError::Unsupported {
            field: "linux.resources.blockIO.leafWeight".to_string(),
            reason: "on cgroup v2 (io has no leaf weights)".to_string(),
        });
    }
    Ok(())
}

pub(crate) fn io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    const F: &str = "linux.resources.blockIO";
    // With BFQ, io.bfq.weight takes the v1 range [1, 1000] as is.
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = b.weight() {
        if bfq {
            set(
                &format!("{F}.weight"),
                &dir.join("io.bfq.weight"),
                &w.to_string(),
            )?;
        } else {
            let v = blkio_weight_to_io_weight(u64::from(w));
            set(
                &format!("{F}.weight"),
                &dir.join("io.weight"),
                &format!("default {v}"),
            )?;
        }
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let (file, v) = if bfq {
                ("io.bfq.weight", u64::from(w))
            } else {
                ("io.weight", blkio_weight_to_io_weight(u64::from(w)))
            };
            set(
                &format!("{F}.weightDevice"),
                &dir.join(file),
                &format!("{}:{} {}", d.major(), d.minor(), v),
            )?;
        }
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            "rbps",
            b.throttle_read_bps_device(),
        ),
        (
            "throttleWriteBpsDevice",
            "wbps",
            b.throttle_write_bps_device(),
        ),
        (
            "throttleReadIOPSDevice",
            "riops",
            b.throttle_read_iops_device(),
        ),
        (
            "throttleWriteIOPSDevice",
            "wiops",
            b.throttle_write_iops_device(),
        ),
    ];
    for (field, key, devs) in throttles {
        for d in devs.iter().flatten() {
            // 0 means "no limit" in v1.
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            set(
                &format!("{F}.{field}"),
                &dir.join("io.max"),
                &format!("{}:{} {key}={rate}", d.major(), d.minor()),
            )?;
        }
    }
    Ok(())
}

pub(crate) fn hugetlb(dir: &Path, h: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    v1::hugetlb_files(dir, h, "max", "rsvd.max")
}

/// Files of the cgroup core that a config must not write (they act, not configure).
const FORBIDDEN_CORE: &[&str] = &[
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.kill",
    "cgroup.freeze",
    "cgroup.subtree_control",
    "cgroup.controllers",
    "cgroup.events",
    "cgroup.stat",
];

/// linux.resources.unified: each key must be a file of an available
/// controller, or a cgroup core setting the runtime does not manage.
pub(crate) fn check_unified(u: &V2Dir, map: &HashMap<String, String>) -> Result<(), CgroupError> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let field = format!("linux.resources.unified[{key:?}]");
        let Some((controller, _)) = key.split_once('.') else {
            return Err(CgroupError::Invalid {
                field,
                reason: "a key must be a cgroup v2 file name like memory.high".to_string(),
            });
        };
        if key.contains('/') || key.starts_with('.') || controller.is_empty() {
            return Err(CgroupError::Invalid {
                field,
                reason: "a key must be a plain cgroup v2 file name".to_string(),
            });
        }
        if controller == "cgroup" {
            if FORBIDDEN_CORE.contains(&key.as_str()) {
                return Err(CgroupError::Invalid {
                    field,
                    reason: "this cgroup core file is managed by the runtime".to_string(),
                });
            }
        } else if !available(u, controller)? {
            return Err(CgroupError::Unavailable {
                field,
                path: u.mountpoint.join("cgroup.controllers"),
                reason: format!(
                    "{controller:?} is not a cgroup v2 controller available on this host"
                ),
            });
        }
    }
    Ok(())
}

/// linux.resources.unified (checked by [`check_unified`]): enable each
/// key's controller, and write.
pub(crate) fn unified(u: &V2Dir, map: &HashMap<String, String>) -> Result<(), CgroupError> {
    check_unified(u, map)?;
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let field = format!("linux.resources.unified[{key:?}]");
        let controller = key.split_once('.').map(|(c, _)| c).unwrap_or_default();
        if controller != "cgroup" {
            enable_controller(u, controller, &field)?;
        }
        let file = u.dir.join(key);
        if !file.exists() {
            return Err(CgroupError::Unavailable {
                field,
                path: file,
                reason: format!("the {controller} controller has no such file"),
            });
        }
        set(&field, &file, &map[key])?;
    }
    Ok(())
}

/// Freeze or thaw through cgroup.freeze, waiting for cgroup.events to agree.
pub(crate) fn set_freeze(dir: &Path, frozen: bool, timeout: Duration) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.freeze");
    let events = dir.join("cgroup.events");
    fsutil::write(&file, if frozen { "1" } else { "0" })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_micros(100);
    loop {
        let Some(ev) = fsutil::read_opt(&events)? else {
            return Ok(()); // no cgroup.events: trust the write
        };
        if ev.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if frozen {
                let _ = fsutil::write(&file, "0");
            }
            return Err(CgroupError::State {
                op: if frozen { "freeze" } else { "thaw" },
                path: events,
                reason: format!("no {want:?} after {timeout:?}"),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_conversion() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(2048), 174);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
        let mut last = 0;
        for s in (2..262_144).step_by(97) {
            let w = shares_to_weight(s);
            assert!(w >= last && (1..=10_000).contains(&w));
            last = w;
        }
    }

    #[test]
    fn blkio_conversion() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 1 + 490 * 9999 / 990);
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(convert_memory_swap(None, None).unwrap(), None);
        assert_eq!(convert_memory_swap(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(convert_memory_swap(None, Some(100)).unwrap(), None);
        assert_eq!(convert_memory_swap(Some(-1), Some(100)).unwrap(), Some(-1));
        assert_eq!(
            convert_memory_swap(Some(300), Some(100)).unwrap(),
            Some(200)
        );
        assert_eq!(convert_memory_swap(Some(100), Some(100)).unwrap(), Some(0));
        assert!(convert_memory_swap(Some(50), Some(100)).is_err());
        assert!(convert_memory_swap(Some(50), None).is_err());
        assert!(convert_memory_swap(Some(50), Some(-1)).is_err());
    }

    #[test]
    fn ancestor_list() {
        let u = V2Dir {
            mountpoint: PathBuf::from("/m"),
            dir: PathBuf::from("/m/a/b/c"),
        };
        assert_eq!(
            ancestors(&u),
            vec![
                PathBuf::from("/m"),
                PathBuf::from("/m/a"),
                PathBuf::from("/m/a/b")
            ]
        );
    }
}
