//! `update`: change the resource limits of a live container, from runc's
//! flags and/or a JSON `LinuxResources` (`--resources FILE|-`, as containerd
//! and docker send it on stdin).

use std::io::Read;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxPids, LinuxResources};

use super::{ContainerError, Result, Root, Status, io_err};
use crate::cgroups::CgroupError;
use crate::cli::UpdateArgs;

fn invalid(field: &str, reason: String) -> ContainerError {
    ContainerError::Cgroup(CgroupError::Invalid {
        field: field.to_string(),
        reason,
    })
}

/// A size as runc takes it (docker's RAMInBytes: `1024`, `512k`, `64m`,
/// `1.5g`, `2GiB`; binary multiples), or `-1` for unlimited.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let bad = || {
        invalid(
            flag,
            format!(
                "{s:?} is not a size (bytes, or a number with k, m, g, t or p; -1 for unlimited)"
            ),
        )
    };
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    if num.is_empty() {
        return Err(bad());
    }
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let bytes = v * mult as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(invalid(flag, format!("{s:?} is too large")));
    }
    Ok(bytes as i64)
}

/// Parse a JSON `LinuxResources`. `"pids":{}` (no `limit`) leaves pids.max
/// alone, as runtime spec 1.3.0 says (the limit is optional there), instead
/// of reading as a limit of 0.
pub(crate) fn parse_resources(text: &[u8]) -> std::result::Result<LinuxResources, String> {
    crate::spec::json::parse_object(text, "", |v| {
        if let Some(obj) = v.as_object_mut() {
            let no_limit = obj
                .get("pids")
                .is_some_and(|p| p.is_null() || p.get("limit").is_none_or(|l| l.is_null()));
            if no_limit {
                obj.remove("pids");
            }
        }
    })
}

/// The resources to apply: the JSON from --resources (if any), then the flags.
pub fn resources_from_args(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut res = match &a.resources {
        None => LinuxResources::default(),
        Some(p) => {
            let mut text = Vec::new();
            if p.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_end(&mut text)
                    .map_err(io_err("read", "stdin (--resources -)"))?;
            } else {
                text = std::fs::read(p).map_err(io_err("read (--resources)", p))?;
            }
            parse_resources(&text)
                .map_err(|e| invalid("--resources", format!("{}: {e}", p.display())))?
        }
    };
    let mem_flags = [
        &a.memory,
        &a.memory_swap,
        &a.memory_reservation,
        &a.kernel_memory,
        &a.kernel_memory_tcp,
    ];
    if mem_flags.iter().any(|f| f.is_some()) {
        let mut m = res.memory().unwrap_or_default();
        if let Some(v) = &a.memory {
            m.set_limit(Some(parse_bytes("--memory", v)?));
        }
        if let Some(v) = &a.memory_swap {
            m.set_swap(Some(parse_bytes("--memory-swap", v)?));
        }
        if let Some(v) = &a.memory_reservation {
            m.set_reservation(Some(parse_bytes("--memory-reservation", v)?));
        }
        if let Some(v) = &a.kernel_memory {
            #[allow(deprecated)]
            m.set_kernel(Some(parse_bytes("--kernel-memory", v)?));
        }
        if let Some(v) = &a.kernel_memory_tcp {
            m.set_kernel_tcp(Some(parse_bytes("--kernel-memory-tcp", v)?));
        }
        res.set_memory(Some(m));
    }
    let cpu_set = a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_share.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if cpu_set {
        let mut c: LinuxCpu = res.cpu().clone().unwrap_or_default();
        if let Some(v) = a.cpu_period {
            c.set_period(Some(v));
        }
        if let Some(v) = a.cpu_quota {
            c.set_quota(Some(v));
        }
        if let Some(v) = a.cpu_share {
            c.set_shares(Some(v));
        }
        if let Some(v) = a.cpu_rt_period {
            c.set_realtime_period(Some(v));
        }
        if let Some(v) = a.cpu_rt_runtime {
            c.set_realtime_runtime(Some(v));
        }
        if let Some(v) = &a.cpuset_cpus {
            c.set_cpus(Some(v.clone()));
        }
        if let Some(v) = &a.cpuset_mems {
            c.set_mems(Some(v.clone()));
        }
        res.set_cpu(Some(c));
    }
    if let Some(v) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(v);
        res.set_pids(Some(p));
    }
    // 0 means "not set" (as runc), so Docker's zero values pass through.
    if let Some(w) = a.blkio_weight.filter(|w| *w != 0) {
        if !(10..=1000).contains(&w) {
            return Err(invalid(
                "--blkio-weight",
                format!("{w} is out of range (10..1000, or 0 for unchanged)"),
            ));
        }
        let mut b: LinuxBlockIo = res.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        res.set_block_io(Some(b));
    }
    Ok(res)
}

/// Applies `res` to the container's cgroup. A stopped container is refused.
pub fn update(root: &Root, id: &str, res: &LinuxResources) -> Result<()> {
    let _lock = root.lock(id)?;
    let st = root.load(id)?;
    let status = root.status(&st);
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(ContainerError::BadStatus {
            id: id.into(),
            status,
            hint: "only a created, running or paused container can be updated",
        });
    }
    let mut cg = st.cgroup.ok_or_else(|| {
        ContainerError::Unsupported(format!("container {id:?} has no cgroup: cannot update it"))
    })?;
    // pids.limit 0 means what it meant at create: the ociVersion recorded in
    // state.json, or (state written before it was recorded) the bundle's.
    if cg.oci_version().is_none() {
        if let Some(v) = bundle_oci_version(&st.bundle) {
            cg.set_oci_version(&v);
        }
    }
    cg.update(res)?;
    // systemd driver: the same values as unit properties (runtime).
    Ok(cg.update_scope(res)?)
}

/// The `ociVersion` of the bundle's config.json, if it can be read.
fn bundle_oci_version(bundle: &std::path::Path) -> Option<String> {
    let text = std::fs::read(bundle.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v.get("ociVersion")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_without_limit_is_unset() {
        let r = parse_resources(br#"{"pids":{},"memory":{"limit":5}}"#).unwrap();
        assert!(r.pids().is_none());
        let r = parse_resources(br#"{"pids":{"limit":0}}"#).unwrap();
        assert_eq!(r.pids().map(|p| p.limit()), Some(0));
    }

    #[test]
    fn sizes() {
        for (s, v) in [
            ("1024", 1024),
            ("512k", 512 << 10),
            ("64m", 64 << 20),
            ("1g", 1 << 30),
            ("2GiB", 2 << 30),
            ("1.5k", 1536),
            ("10 MB", 10 << 20),
            ("-1", -1),
        ] {
            assert_eq!(parse_bytes("--memory", s).unwrap(), v, "{s}");
        }
        for s in ["", "-5", "abc", "12x", "1e99g", "-1k"] {
            let e = parse_bytes("--memory", s).unwrap_err().to_string();
            assert!(e.contains("--memory"), "{s}: {e}");
        }
    }
}
