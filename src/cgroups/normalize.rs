//! `linux.resources` as clients send them: the zero-means-unset conventions of
//! runc, and the `pids.limit` rule that depends on the config's `ociVersion`.
//!
//! Clients written against runc send every field of a Go struct, zero or
//! not: Docker 20.10 sends `"blockIO":{"weight":0}` on every create and
//! `"cpu":{"shares":0,"quota":0,"period":0,"cpus":"","mems":""}` on every
//! `docker update`. runc (libcontainer/cgroups fs and fs2) skips a setting
//! whose value is 0 or "" instead of writing it, and so does cuddy: writing 0
//! to `blkio.bfq.weight` or `io.weight` fails with ERANGE, and writing "" to
//! `cpuset.cpus` would empty the cpuset.
//!
//! Fields where 0 is a real value are kept: `hugepageLimits[].limit`,
//! `rdma`, `cpu.burst`, `cpu.idle`, throttle rates (0 removes a throttle),
//! and `pids.limit` from spec 1.3.0 on (see [`pids_zero_is_unlimited`]).

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources, LinuxWeightDeviceBuilder,
};

/// Whether `pids.limit` 0 (and any negative value) means "no limit" for a
/// config of this `ociVersion`: before runtime spec 1.3.0 the spec said
/// "default is no limit" and clients relied on it (podman 4.3 writes
/// `{"limit":0}` for `--pids-limit -1`, with ociVersion `1.0.2-dev`; crun
/// writes "max"). From 1.3.0 on (config-linux.md#pids), 0 is a real limit
/// and -1 means "max". An unparsable version counts as current.
pub fn pids_zero_is_unlimited(oci_version: &str) -> bool {
    let mut it = oci_version.split('.');
    let num = |s: Option<&str>| -> Option<u64> {
        let s = s?;
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let (Some(major), Some(minor)) = (num(it.next()), num(it.next())) else {
        return false;
    };
    (major, minor) < (1, 3)
}

/// The pids.max value for `limit`: "max" or a number.
pub(crate) fn pids_value(limit: i64, zero_is_unlimited: bool) -> String {
    if limit < 0 || (limit == 0 && zero_is_unlimited) {
        "max".to_string()
    } else {
        limit.to_string()
    }
}

fn nz_u64(v: Option<u64>) -> Option<u64> {
    v.filter(|v| *v != 0)
}

fn nz_i64(v: Option<i64>) -> Option<i64> {
    v.filter(|v| *v != 0)
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.trim().is_empty())
}

fn memory(m: &LinuxMemory) -> LinuxMemory {
    let mut m = *m;
    m.set_limit(nz_i64(m.limit()));
    m.set_reservation(nz_i64(m.reservation()));
    m.set_swap(nz_i64(m.swap()));
    #[allow(deprecated)]
    m.set_kernel(nz_i64(m.kernel()));
    m.set_kernel_tcp(nz_i64(m.kernel_tcp()));
    // Go clients put -1 ("unset" in Docker's API) into the uint64 as
    // 18446744073709551615; runc skips it.
    m.set_swappiness(m.swappiness().filter(|s| *s != u64::MAX));
    m
}

fn cpu(c: &LinuxCpu) -> LinuxCpu {
    let mut c = c.clone();
    c.set_shares(nz_u64(c.shares()));
    c.set_quota(nz_i64(c.quota()));
    c.set_period(nz_u64(c.period()));
    c.set_realtime_runtime(nz_i64(c.realtime_runtime()));
    c.set_realtime_period(nz_u64(c.realtime_period()));
    c.set_cpus(non_empty(c.cpus()));
    c.set_mems(non_empty(c.mems()));
    c
}

fn block_io(b: &LinuxBlockIo) -> LinuxBlockIo {
    let mut b = b.clone();
    b.set_weight(b.weight().filter(|w| *w != 0));
    b.set_leaf_weight(b.leaf_weight().filter(|w| *w != 0));
    if let Some(devs) = b.weight_device().clone() {
        let devs = devs
            .into_iter()
            .filter_map(|d| {
                let mut nb = LinuxWeightDeviceBuilder::default()
                    .major(d.major())
                    .minor(d.minor());
                let (w, lw) = (
                    d.weight().filter(|w| *w != 0),
                    d.leaf_weight().filter(|w| *w != 0),
                );
                if let Some(w) = w {
                    nb = nb.weight(w);
                }
                if let Some(lw) = lw {
                    nb = nb.leaf_weight(lw);
                }
                (w.is_some() || lw.is_some())
                    .then(|| nb.build().ok())
                    .flatten()
            })
            .collect();
        b.set_weight_device(Some(devs));
    }
    b
}

/// `res` with every "not set" spelling (0, "", Go's uint64(-1) swappiness)
/// turned into `None`, as runc reads them.
pub(crate) fn normalize(res: &LinuxResources) -> LinuxResources {
    let mut r = res.clone();
    if let Some(m) = res.memory() {
        r.set_memory(Some(memory(m)));
    }
    if let Some(c) = res.cpu() {
        r.set_cpu(Some(cpu(c)));
    }
    if let Some(b) = res.block_io() {
        r.set_block_io(Some(block_io(b)));
    }
    if let Some(n) = res.network() {
        let mut n = n.clone();
        n.set_class_id(n.class_id().filter(|c| *c != 0));
        r.set_network(Some(n));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for v in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.2.99-rc.1"] {
            assert!(pids_zero_is_unlimited(v), "{v}");
        }
        for v in ["1.3.0", "1.3.0-rc.1", "1.4.0", "2.0.0", "", "x.y"] {
            assert!(!pids_zero_is_unlimited(v), "{v}");
        }
    }

    #[test]
    fn pids_values() {
        assert_eq!(pids_value(0, true), "max");
        assert_eq!(pids_value(-5, true), "max");
        assert_eq!(pids_value(0, false), "0");
        assert_eq!(pids_value(-1, false), "max");
        assert_eq!(pids_value(7, true), "7");
    }

    #[test]
    fn docker_update_zeros_are_unset() {
        // Docker 20.10's toContainerdResources for `docker update --pids-limit 5`.
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":0,"reservation":0,"kernel":0,"swappiness":18446744073709551615},
                "cpu":{"shares":0,"quota":0,"period":0,"cpus":"","mems":""},
                "blockIO":{"weight":0,"leafWeight":0,"weightDevice":[{"major":8,"minor":0,"weight":0}]},
                "network":{"classID":0}}"#,
        )
        .unwrap();
        let n = normalize(&r);
        let m = n.memory().unwrap();
        assert!(m.limit().is_none() && m.reservation().is_none() && m.swappiness().is_none());
        let c = n.cpu().clone().unwrap();
        assert!(c.shares().is_none() && c.quota().is_none() && c.period().is_none());
        assert!(c.cpus().is_none() && c.mems().is_none());
        let b = n.block_io().clone().unwrap();
        assert!(b.weight().is_none() && b.leaf_weight().is_none());
        assert_eq!(b.weight_device().as_ref().map(Vec::len), Some(0));
        assert!(n.network().clone().unwrap().class_id().is_none());
    }
}
