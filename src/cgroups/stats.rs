//! Resource usage in runc's `events --stats` shape (runc's types.Stats): the
//! JSON field names and omit-when-zero rules follow runc's.
//!
//! Collection is best effort per controller: a controller or file the host
//! lacks reads as zero; an unreadable file is an error.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fsutil::{self, parse_u64};
use super::{Cgroup, CgroupError};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// runc's types.Stats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntelRdt {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServicedRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioQueueRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioWaitTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioMergedRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "sectorsRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", default, skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(rename = "throttledTime", default, skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// CPU usage, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

fn u64_file(dir: &Path, name: &str) -> Result<u64, CgroupError> {
    Ok(fsutil::read_u64_opt(&dir.join(name))?.unwrap_or(0))
}

/// "key value" lines (cpu.stat, memory.stat, memory.events, cpuacct.stat).
fn flat_keyed(dir: &Path, name: &str) -> Result<HashMap<String, u64>, CgroupError> {
    let text = fsutil::read_opt(&dir.join(name))?.unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), parse_u64(it.next()?)))
        })
        .collect())
}

fn numbers(dir: &Path, name: &str) -> Result<Vec<u64>, CgroupError> {
    let text = fsutil::read_opt(&dir.join(name))?.unwrap_or_default();
    Ok(text.split_whitespace().map(parse_u64).collect())
}

/// "0-3,7" → [0, 1, 2, 3, 7].
pub(crate) fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b.min(a.saturating_add(4096)));
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

/// Hugepage sizes with a file `hugetlb.<size>.<suffix>` in `dir`.
fn hugepage_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let rest = n.strip_prefix("hugetlb.")?;
            let size = rest.strip_suffix(suffix)?.strip_suffix('.')?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .collect();
    out.sort();
    out
}

/// v1 blkio files: "8:0 Read 123" lines.
fn blkio_v1(dir: &Path, name: &str) -> Result<Vec<BlkioEntry>, CgroupError> {
    let text = fsutil::read_opt(&dir.join(name))?.unwrap_or_default();
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (dev, op, v) = match f.as_slice() {
            [dev, op, v] => (*dev, *op, *v),
            [dev, v] if dev.contains(':') => (*dev, "", *v),
            _ => continue,
        };
        let Some((ma, mi)) = dev.split_once(':') else {
            continue;
        };
        out.push(BlkioEntry {
            major: parse_u64(ma),
            minor: parse_u64(mi),
            op: op.to_string(),
            value: parse_u64(v),
        });
    }
    Ok(out)
}

fn collect_v1(cg: &Cgroup, st: &mut Stats) -> Result<(), CgroupError> {
    if let Some(d) = cg.v1_dir("cpuacct") {
        st.cpu.usage.total = u64_file(d, "cpuacct.usage")?;
        st.cpu.usage.percpu = numbers(d, "cpuacct.usage_percpu")?;
        st.cpu.usage.percpu_kernel = numbers(d, "cpuacct.usage_percpu_sys")?;
        st.cpu.usage.percpu_user = numbers(d, "cpuacct.usage_percpu_user")?;
        // cpuacct.stat counts USER_HZ ticks.
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let s = flat_keyed(d, "cpuacct.stat")?;
        let ns = |k: &str| {
            s.get(k)
                .copied()
                .unwrap_or(0)
                .saturating_mul(1_000_000_000 / hz)
        };
        st.cpu.usage.user = ns("user");
        st.cpu.usage.kernel = ns("system");
    }
    if let Some(d) = cg.v1_dir("cpu") {
        let s = flat_keyed(d, "cpu.stat")?;
        st.cpu.throttling = Throttling {
            periods: s.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: s.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: s.get("throttled_time").copied().unwrap_or(0),
        };
    }
    if let Some(d) = cg.v1_dir("cpuset") {
        st.cpuset.cpus = parse_list(&fsutil::read_opt(&d.join("cpuset.cpus"))?.unwrap_or_default());
        st.cpuset.mems = parse_list(&fsutil::read_opt(&d.join("cpuset.mems"))?.unwrap_or_default());
    }
    if let Some(d) = cg.v1_dir("memory") {
        let entry = |prefix: &str| -> Result<MemoryEntry, CgroupError> {
            Ok(MemoryEntry {
                limit: u64_file(d, &format!("{prefix}limit_in_bytes"))?,
                usage: u64_file(d, &format!("{prefix}usage_in_bytes"))?,
                max: u64_file(d, &format!("{prefix}max_usage_in_bytes"))?,
                failcnt: u64_file(d, &format!("{prefix}failcnt"))?,
            })
        };
        st.memory.usage = entry("memory.")?;
        st.memory.swap = entry("memory.memsw.")?;
        st.memory.kernel = entry("memory.kmem.")?;
        st.memory.kernel_tcp = entry("memory.kmem.tcp.")?;
        st.memory.raw = flat_keyed(d, "memory.stat")?.into_iter().collect();
        st.memory.cache = st.memory.raw.get("cache").copied().unwrap_or(0);
    }
    if let Some(d) = cg.v1_dir("pids") {
        st.pids.current = u64_file(d, "pids.current")?;
        st.pids.limit = u64_file(d, "pids.max")?;
    }
    if let Some(d) = cg.v1_dir("blkio") {
        let b = &mut st.blkio;
        // CFQ's recursive files, else BFQ's, else the throttle counters.
        if d.join("blkio.io_service_bytes_recursive").exists() {
            b.io_service_bytes_recursive = blkio_v1(d, "blkio.io_service_bytes_recursive")?;
            b.io_serviced_recursive = blkio_v1(d, "blkio.io_serviced_recursive")?;
            b.io_queued_recursive = blkio_v1(d, "blkio.io_queued_recursive")?;
            b.io_service_time_recursive = blkio_v1(d, "blkio.io_service_time_recursive")?;
            b.io_wait_time_recursive = blkio_v1(d, "blkio.io_wait_time_recursive")?;
            b.io_merged_recursive = blkio_v1(d, "blkio.io_merged_recursive")?;
            b.io_time_recursive = blkio_v1(d, "blkio.time_recursive")?;
            b.sectors_recursive = blkio_v1(d, "blkio.sectors_recursive")?;
        } else if d.join("blkio.bfq.io_service_bytes_recursive").exists() {
            b.io_service_bytes_recursive = blkio_v1(d, "blkio.bfq.io_service_bytes_recursive")?;
            b.io_serviced_recursive = blkio_v1(d, "blkio.bfq.io_serviced_recursive")?;
        } else {
            b.io_service_bytes_recursive = blkio_v1(d, "blkio.throttle.io_service_bytes")?;
            b.io_serviced_recursive = blkio_v1(d, "blkio.throttle.io_serviced")?;
        }
    }
    if let Some(d) = cg.v1_dir("hugetlb") {
        for size in hugepage_sizes(d, "usage_in_bytes") {
            let h = Hugetlb {
                usage: u64_file(d, &format!("hugetlb.{size}.usage_in_bytes"))?,
                max: u64_file(d, &format!("hugetlb.{size}.max_usage_in_bytes"))?,
                failcnt: u64_file(d, &format!("hugetlb.{size}.failcnt"))?,
            };
            st.hugetlb.insert(size, h);
        }
    }
    Ok(())
}

/// The v2 readers, for every controller not already read from a v1 hierarchy.
fn collect_v2(cg: &Cgroup, d: &Path, st: &mut Stats) -> Result<(), CgroupError> {
    let has_v1 = |c: &str| cg.v1_dir(c).is_some();
    if !has_v1("cpuacct") && !has_v1("cpu") {
        let s = flat_keyed(d, "cpu.stat")?;
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
        st.cpu.usage.total = g("usage_usec").saturating_mul(1000);
        st.cpu.usage.user = g("user_usec").saturating_mul(1000);
        st.cpu.usage.kernel = g("system_usec").saturating_mul(1000);
        st.cpu.throttling = Throttling {
            periods: g("nr_periods"),
            throttled_periods: g("nr_throttled"),
            throttled_time: g("throttled_usec").saturating_mul(1000),
        };
    }
    if !has_v1("cpuset") && d.join("cpuset.cpus.effective").exists() {
        let rd = |n: &str| -> Result<String, CgroupError> {
            Ok(fsutil::read_opt(&d.join(n))?.unwrap_or_default())
        };
        st.cpuset.cpus = parse_list(&rd("cpuset.cpus.effective")?);
        st.cpuset.mems = parse_list(&rd("cpuset.mems.effective")?);
    }
    if !has_v1("memory") && d.join("memory.current").exists() {
        let ev = flat_keyed(d, "memory.events")?;
        let usage = u64_file(d, "memory.current")?;
        let limit = u64_file(d, "memory.max")?;
        st.memory.usage = MemoryEntry {
            limit,
            usage,
            max: u64_file(d, "memory.peak")?,
            failcnt: ev.get("max").copied().unwrap_or(0),
        };
        // As runc: v2 swap is reported as memory+swap, like v1's memsw.
        if d.join("memory.swap.current").exists() {
            let swap = u64_file(d, "memory.swap.current")?;
            let swap_max = u64_file(d, "memory.swap.max")?;
            st.memory.swap = MemoryEntry {
                limit: if limit == u64::MAX || swap_max == u64::MAX {
                    u64::MAX
                } else {
                    limit.saturating_add(swap_max)
                },
                usage: usage.saturating_add(swap),
                max: 0,
                failcnt: 0,
            };
        }
        st.memory.raw = flat_keyed(d, "memory.stat")?.into_iter().collect();
        st.memory.cache = st.memory.raw.get("file").copied().unwrap_or(0);
    }
    if !has_v1("pids") && d.join("pids.current").exists() {
        st.pids.current = u64_file(d, "pids.current")?;
        st.pids.limit = u64_file(d, "pids.max")?;
    }
    if !has_v1("blkio") {
        let text = fsutil::read_opt(&d.join("io.stat"))?.unwrap_or_default();
        for l in text.lines() {
            let mut it = l.split_whitespace();
            let Some((ma, mi)) = it.next().and_then(|dev| dev.split_once(':')) else {
                continue;
            };
            let (major, minor) = (parse_u64(ma), parse_u64(mi));
            for kv in it {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let (list, op) = match k {
                    "rbytes" => (&mut st.blkio.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut st.blkio.io_service_bytes_recursive, "Write"),
                    "rios" => (&mut st.blkio.io_serviced_recursive, "Read"),
                    "wios" => (&mut st.blkio.io_serviced_recursive, "Write"),
                    _ => continue,
                };
                list.push(BlkioEntry {
                    major,
                    minor,
                    op: op.to_string(),
                    value: parse_u64(v),
                });
            }
        }
    }
    if !has_v1("hugetlb") {
        for size in hugepage_sizes(d, "current") {
            let ev = flat_keyed(d, &format!("hugetlb.{size}.events"))?;
            let h = Hugetlb {
                usage: u64_file(d, &format!("hugetlb.{size}.current"))?,
                max: 0,
                failcnt: ev.get("max").copied().unwrap_or(0),
            };
            st.hugetlb.insert(size, h);
        }
    }
    Ok(())
}

pub(crate) fn collect(cg: &Cgroup) -> Result<Stats, CgroupError> {
    let mut st = Stats::default();
    collect_v1(cg, &mut st)?;
    if let Some(d) = cg.unified_dir() {
        collect_v2(cg, d, &mut st)?;
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(parse_list("0-3,7\n"), vec![0, 1, 2, 3, 7]);
        assert_eq!(parse_list(""), Vec::<u16>::new());
    }

    #[test]
    fn json_shape_like_runc() {
        let mut st = Stats::default();
        st.memory.usage.limit = 5;
        st.pids.current = 2;
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(v["memory"]["usage"]["limit"], 5);
        assert_eq!(v["memory"]["usage"]["failcnt"], 0);
        assert!(v["memory"]["usage"].get("usage").is_none(), "omitempty");
        assert_eq!(v["pids"]["current"], 2);
        assert!(v["pids"].get("limit").is_none());
        assert!(v["cpu"]["usage"].get("kernel").is_some());
        assert!(v["memory"].get("kernelTCP").is_some());
        assert!(v.get("hugetlb").is_some());
    }
}
